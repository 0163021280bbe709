"""The shipped attribute estimators read freshly rendered faces as they were drawn.

The bias benchmark is only as good as these estimators, so they are checked here on faces
the estimators never saw (a seed outside their training and validation draws), the way the
benchmark uses them: labels from `render_batch` must come back, and switching one planted
attribute on a face must switch its estimate.
"""

from __future__ import annotations

import numpy as np
import pytest

from net2fair.synth.benchmark import CONTENT
from net2fair.synth.estimators import load_estimators
from net2fair.synth.priors import DOMAINS, PLANTED_ATTRIBUTES, sample_attributes
from net2fair.synth.render import render_batch, render_face

SEED = 424_242  # not a seed the estimators were trained or validated on


@pytest.fixture(scope="module")
def estimators():  # noqa: ANN201
    est = load_estimators()
    if est is None:
        pytest.skip("the attribute estimators are not installed in this checkout")
    return est


@pytest.mark.parametrize("domain", DOMAINS)
def test_fresh_faces_are_read_back_as_drawn(estimators, domain):
    images, attrs = render_batch(domain, 80, 64, seed=SEED)
    pred = {k: v.numpy() for k, v in estimators.predict(images).items()}
    assert np.mean(np.array(DOMAINS)[pred["domain"]] == domain) >= 0.95
    for attr in PLANTED_ATTRIBUTES:
        truth = np.array([a[attr] for a in attrs])
        # held out, the estimators read 97% to 100% of each attribute; 80 faces leave slack
        assert np.mean(pred[attr] == truth) >= 0.9, attr
    for key in CONTENT:
        truth = np.array([float(a[key]) for a in attrs])
        # in units of the attribute's spread, as the benchmark measures content error;
        # position and pose: 0.15 to 0.24 sd held out; an untrained head would be near 1
        assert np.mean(np.abs(pred[key] - truth)) / truth.std() < 0.4, key


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("attr", ["glasses", "beard", "mouth_open"])
def test_switching_an_attribute_switches_its_estimate(estimators, domain, attr):
    rng = np.random.default_rng(SEED)
    faces = sample_attributes(domain, 12, rng)
    pairs = []
    for i, face in enumerate(faces):
        for value in (0, 1):
            # the same nuisance draw (background, light, textures) for both versions
            img = render_face({**face, attr: value}, domain, 64, np.random.default_rng(i))
            pairs.append(img)
    pred = estimators.predict(np.stack(pairs))[attr].numpy().reshape(-1, 2)
    assert (pred[:, 0] == 0).mean() >= 11 / 12 and (pred[:, 1] == 1).mean() >= 11 / 12
