"""The face features (net2fair/synth/features.py): skin colours in their ITA bands,
glasses around the eyes only, the anime eyes' size."""

from __future__ import annotations

import numpy as np
import pytest

from net2fair.colour import ITA_BAND_NAMES, ita_band, ita_degrees, srgb_to_lab
from net2fair.synth.features import SKIN_RGB
from net2fair.synth.priors import DOMAINS, PLANTED_ATTRIBUTES
from net2fair.synth.render import render_face
from net2fair.synth.shapes import Geometry
from tests.synth.conftest import BASE


def test_skin_colours_fall_in_their_ita_bands():
    ita = ita_degrees(srgb_to_lab(np.array(SKIN_RGB, np.uint8)))
    assert len(SKIN_RGB) == len(PLANTED_ATTRIBUTES["skin_tone"]) == 6
    # level k is drawn in the k-th ITA band (Del Bino and Bernerd), lightest first
    assert [ita_band(v) for v in ita] == list(ITA_BAND_NAMES), ita
    assert [b.replace(" ", "_") for b in ITA_BAND_NAMES] == list(PLANTED_ATTRIBUTES["skin_tone"])


def _eye_region(resolution, attrs, pad):
    """Boolean mask of a band around both eyes (head frame), and the rest of the head."""
    g = Geometry.from_attrs(attrs, resolution)
    hx, hy, _, _ = g.frames()
    near = (np.abs(hy - (-0.08 * g.b)) < pad * g.b) & (np.abs(hx) < 1.1 * g.a)
    return near


@pytest.mark.parametrize("domain", DOMAINS)
def test_glasses_change_pixels_around_the_eyes(domain):
    attrs = {**BASE, "yaw": 0.3, "roll": 8.0}
    without = render_face(attrs, domain, 64, np.random.default_rng(4)).astype(int)
    with_ = render_face({**attrs, "glasses": 1}, domain, 64, np.random.default_rng(4)).astype(int)
    changed = np.abs(with_ - without).max(axis=-1) > 30
    near = _eye_region(64, attrs, 0.45)
    assert changed[near].sum() >= 40
    # the portrait brush smear spreads a change by a pixel or two; nothing moves further
    assert not changed[~_eye_region(64, attrs, 0.6)].any()


def test_eye_size_modulates_anime_eyes():
    whites = []
    for k in range(3):
        img = render_face({**BASE, "eye_size": k}, "anime", 64, np.random.default_rng(0))
        whites.append(int((img.min(axis=-1) >= 245)[_eye_region(64, BASE, 0.45)].sum()))
    assert whites[0] < whites[1] < whites[2]
