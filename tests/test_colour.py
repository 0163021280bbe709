"""Colour science: CIELAB both ways, ITA and its bands, HSV, BT.601 YCbCr."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from net2fair.colour import (
    ITA_BAND_NAMES,
    hsv_to_rgb,
    ita_band,
    ita_degrees,
    lab_to_srgb,
    median_ita,
    rgb_to_cbcr,
    rgb_to_ycbcr,
    srgb_to_lab,
    ycbcr_to_rgb,
)


def test_srgb_to_lab_reference_values():
    lab = srgb_to_lab(np.array([[255, 255, 255], [255, 0, 0], [0, 0, 0]], np.uint8))
    np.testing.assert_allclose(lab[0], [100.0, 0.0, 0.0], atol=0.02)
    np.testing.assert_allclose(lab[1], [53.24, 80.09, 67.20], atol=0.05)
    np.testing.assert_allclose(lab[2], [0.0, 0.0, 0.0], atol=1e-6)
    # float input in [0, 1] means the same colour as its uint8 version
    np.testing.assert_allclose(srgb_to_lab(np.array([1.0, 0.0, 0.0])), lab[1])


def test_lab_to_srgb_inverts_srgb_to_lab():
    rgb = np.random.default_rng(0).random((200, 3))
    # the two published matrices are inverses to about 7 digits
    np.testing.assert_allclose(lab_to_srgb(srgb_to_lab(rgb)), rgb, atol=1e-5)
    # out of gamut: clipped into [0, 1]
    out = lab_to_srgb(np.array([[50.0, 120.0, -120.0], [120.0, 0.0, 0.0]]))
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_ita_degrees_is_the_textbook_angle_for_skin():
    lab = np.array([[70.0, 10.0, 20.0], [40.0, 12.0, 25.0]])
    expected = np.degrees(np.arctan((lab[:, 0] - 50.0) / lab[:, 2]))
    np.testing.assert_allclose(ita_degrees(lab), expected)
    # bluish pixels (b* < 0) keep the sign of L* - 50 instead of flipping
    assert ita_degrees(np.array([80.0, 0.0, -5.0])) > 90.0


def test_median_ita_over_regions():
    rng = np.random.default_rng(1)
    pixels = (rng.random((4, 30, 3)) * 255).astype(np.uint8)
    per_region = median_ita(pixels)
    assert per_region.shape == (4,)
    for i in range(4):
        assert per_region[i] == np.median(ita_degrees(srgb_to_lab(pixels[i])))
    assert median_ita(pixels[0]).shape == ()


@pytest.mark.parametrize(
    ("angle", "band"),
    [
        (60.0, "very light"),
        (55.0, "light"),
        (41.5, "light"),
        (30.0, "intermediate"),
        (10.0, "brown"),
        (-29.9, "brown"),
        (-30.0, "dark"),
        (-80.0, "dark"),
        (math.nan, ""),
    ],
)
def test_ita_band_bounds_are_exclusive_below(angle, band):
    assert ita_band(angle) == band


def test_ita_band_of_arrays():
    names = ita_band(np.array([70.0, 50.0, 30.0, 20.0, 0.0, -50.0]))
    assert list(names) == list(ITA_BAND_NAMES)


@pytest.mark.parametrize(
    ("hsv", "rgb"),
    [
        ((0.0, 1.0, 1.0), (1, 0, 0)),
        ((1 / 3, 1.0, 1.0), (0, 1, 0)),
        ((2 / 3, 1.0, 1.0), (0, 0, 1)),
        ((0.5, 0.0, 0.4), (0.4, 0.4, 0.4)),
        ((1 / 6, 1.0, 0.5), (0.5, 0.5, 0)),
    ],
)
def test_hsv_to_rgb(hsv, rgb):
    out = hsv_to_rgb(*hsv)
    assert out.dtype == np.float32 and out.shape == (3,)
    np.testing.assert_allclose(out, rgb, atol=1e-6)


def test_ycbcr_of_known_colours_and_its_inverse():
    # white, black, red in 8-bit levels
    x = torch.tensor([[255.0, 0.0, 255.0], [255.0, 0.0, 0.0], [255.0, 0.0, 0.0]]).view(1, 3, 1, 3)
    ycc = rgb_to_ycbcr(x.double())
    np.testing.assert_allclose(ycc[0, :, 0, 0], [255.0, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(ycc[0, :, 0, 1], [0.0, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(ycc[0, :, 0, 2], [76.245, -43.02768, 127.5], atol=1e-9)
    assert torch.equal(rgb_to_cbcr(x), rgb_to_ycbcr(x)[:, 1:])
    y = torch.rand(2, 3, 5, 4) * 2 - 1
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(y)), y, atol=1e-6, rtol=0)
