"""The face geometry (net2fair/synth/shapes.py): the skin region follows the face."""

from __future__ import annotations

import numpy as np
import pytest

from net2fair.synth.shapes import skin_region_mask
from tests.synth.conftest import BASE


def test_skin_region_mask_follows_the_face():
    mask = skin_region_mask(64)
    assert mask.dtype == bool and mask.shape == (64, 64)
    assert 20 < mask.sum() < 400
    ys, xs = np.nonzero(mask)
    assert abs(xs.mean() - 32) < 1.5 and 32 < ys.mean() < 48  # cheeks: centred, below middle
    shifted = skin_region_mask(64, {**BASE, "x": 0.04})
    assert np.nonzero(shifted)[1].mean() - xs.mean() == pytest.approx(0.04 * 64, abs=0.6)
    assert skin_region_mask(64, BASE).tolist() == mask.tolist()
