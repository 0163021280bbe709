"""The report's measures: ITA, regions, change (L1, SSIM), bootstrap, Frechet, sentences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from net2fair.colour import srgb_to_lab
from net2fair.report.measures import (
    ITA_BAND_NAMES,
    MomentAccumulator,
    background_mask,
    band_counts,
    bootstrap_mean_ci,
    describe_level,
    describe_shift,
    frechet_distance,
    image_measures,
    ita_band,
    l1_change,
    skin_ita,
    skin_mask,
    ssim,
)

WHITE = np.array([0.95047, 1.0, 1.08883])


def lab_to_srgb_uint8(lab: np.ndarray) -> np.ndarray:
    """Inverse of the CIELAB (D65) conversion, written independently for the test."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    fx = fy + lab[..., 1] / 500.0
    fz = fy - lab[..., 2] / 200.0
    f = np.stack([fx, fy, fz], axis=-1)
    d = 6.0 / 29.0
    xyz = np.where(f > d, f**3, 3 * d * d * (f - 4.0 / 29.0)) * WHITE
    m_inv = np.array(
        [
            [3.2404542, -1.5371385, -0.4985314],
            [-0.9692660, 1.8760108, 0.0415560],
            [0.0556434, -0.2040259, 1.0572252],
        ]
    )
    lin = xyz @ m_inv.T
    assert lin.min() > -1e-3 and lin.max() < 1.0 + 1e-3, "chosen Lab colour is out of gamut"
    lin = np.clip(lin, 0.0, 1.0)
    c = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    return np.round(c * 255.0).astype(np.uint8)


def test_lab_conversion_matches_reference_values():
    # Published sRGB -> CIELAB (D65) values.
    lab = srgb_to_lab(np.array([[255, 0, 0], [255, 255, 255], [0, 0, 0]], dtype=np.uint8))
    np.testing.assert_allclose(lab[0], [53.24, 80.09, 67.20], atol=0.05)
    np.testing.assert_allclose(lab[1], [100.0, 0.0, 0.0], atol=0.05)
    np.testing.assert_allclose(lab[2], [0.0, 0.0, 0.0], atol=0.05)


@pytest.mark.parametrize(
    ("angle", "band"),
    [
        (65.0, "very light"),
        (48.0, "light"),
        (34.0, "intermediate"),
        (19.0, "tan"),
        (-10.0, "brown"),
        (-45.0, "dark"),
    ],
)
def test_ita_of_colour_patches_with_known_lab(angle, band):
    b_star = 15.0
    l_star = 50.0 + b_star * math.tan(math.radians(angle))
    patch = lab_to_srgb_uint8(np.array([l_star, 8.0, b_star]))
    img = np.broadcast_to(patch, (2, 64, 64, 3)).copy()
    got = skin_ita(img, "ffhq")
    assert got.shape == (2,)
    # uint8 quantisation moves L* and b* by a fraction of a unit
    assert got[0] == pytest.approx(angle, abs=1.0)
    assert ita_band(float(got[0])) == band


def test_ita_band_edges_follow_the_published_bands():
    assert ita_band(55.01) == "very light"
    assert ita_band(55.0) == "light"
    assert ita_band(41.0) == "intermediate"
    assert ita_band(28.0) == "tan"
    assert ita_band(10.0) == "brown"
    assert ita_band(-29.99) == "brown"
    assert ita_band(-30.0) == "dark"
    assert ita_band(float("nan")) == ""
    assert list(ita_band(np.array([60.0, -40.0]))) == ["very light", "dark"]
    counts = band_counts([60.0, 60.0, 0.0, -31.0])
    assert list(counts) == list(ITA_BAND_NAMES)
    assert counts["very light"] == 2 and counts["brown"] == 1 and counts["dark"] == 1


@pytest.mark.parametrize("layout", ["ffhq", "synthetic"])
def test_skin_tone_is_read_from_the_skin_region_only(layout):
    res = 64
    mask = skin_mask(res, layout)
    assert 10 < mask.sum() < 0.1 * res * res
    skin = lab_to_srgb_uint8(np.array([70.0, 12.0, 20.0]))  # ITA 45
    img = np.zeros((1, res, res, 3), np.uint8)
    img[:] = (20, 40, 200)  # anything else: blue
    img[0, mask] = skin
    assert skin_ita(img, layout)[0] == pytest.approx(45.0, abs=1.0)


def test_ffhq_region_avoids_eyes_mouth_and_hair():
    res = 256
    mask = skin_mask(res, "ffhq")

    def at(x: float, y: float) -> bool:
        return bool(mask[int(y * res), int(x * res)])

    # FFHQ alignment: eyes about (0.375, 0.47) and (0.625, 0.47), mouth (0.5, 0.72)
    for x, y in [(0.375, 0.47), (0.625, 0.47), (0.5, 0.72), (0.5, 0.1), (0.1, 0.5)]:
        assert not at(x, y)
    for x, y in [(0.345, 0.6), (0.655, 0.6), (0.5, 0.35)]:
        assert at(x, y)
    assert mask.sum() > 0 and skin_mask(16, "ffhq").sum() > 0
    with pytest.raises(ValueError, match="layout"):
        skin_mask(64, "celeba")


def test_image_measures_brightness_and_colour_of_face_and_background():
    res = 32
    img = np.full((1, res, res, 3), 128, np.uint8)
    img[0, background_mask(res)] = (255, 255, 255)
    img[0, skin_mask(res, "ffhq")] = (200, 150, 120)
    m = image_measures(img, "ffhq")
    assert m["bg_L"][0] == pytest.approx(100.0, abs=0.1)
    assert (m["face_r"][0], m["face_g"][0], m["face_b"][0]) == (200.0, 150.0, 120.0)
    assert m["face_L"][0] == pytest.approx(srgb_to_lab(np.array([200, 150, 120], np.uint8))[0])
    with pytest.raises(ValueError, match="uint8"):
        image_measures(img.astype(np.float32), "ffhq")


def test_l1_change():
    a = torch.full((2, 3, 8, 8), -1.0)
    b = torch.full((2, 3, 8, 8), 1.0)
    assert torch.allclose(l1_change(a, a), torch.zeros(2))
    assert torch.allclose(l1_change(a, b), torch.ones(2))


def test_ssim_is_one_for_identical_images_and_falls_with_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 32, 32, generator=g) * 1.6 - 0.8
    x = torch.nn.functional.avg_pool2d(x, 3, 1, 1)  # some structure
    assert torch.allclose(ssim(x, x), torch.ones(3), atol=1e-6)
    small = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    large = (x + 0.4 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    s_small, s_large = ssim(x, small), ssim(x, large)
    assert (s_small < 0.999).all() and (s_large < s_small).all()
    assert torch.allclose(ssim(x, large), ssim(large, x), atol=1e-6)
    # a uniform brightness shift lowers only the luminance term
    assert (ssim(x, (x + 0.2).clamp(-1, 1)) > s_large).all()
    assert ssim(x[:, :, :6, :6], x[:, :, :6, :6]).shape == (3,)  # window shrinks to fit


def test_bootstrap_interval_covers_the_true_mean_at_about_the_nominal_rate():
    rng = np.random.default_rng(0)
    true_mean, hits, reps = 1.5, 0, 200
    for rep in range(reps):
        sample = true_mean + rng.standard_normal(60)
        _, lo, hi, n = bootstrap_mean_ci(sample, n_resamples=1000, seed=rep)
        assert n == 60
        hits += lo <= true_mean <= hi
    assert 0.88 <= hits / reps <= 0.99


def test_bootstrap_edge_cases_and_determinism():
    assert all(math.isnan(v) for v in bootstrap_mean_ci([])[:3])
    assert bootstrap_mean_ci([float("nan")])[3] == 0
    assert bootstrap_mean_ci([2.0, float("nan")]) == (2.0, 2.0, 2.0, 1)
    v = np.arange(10.0)
    assert bootstrap_mean_ci(v, seed=3) == bootstrap_mean_ci(v, seed=3)
    mean, lo, hi, n = bootstrap_mean_ci(v, seed=3)
    assert mean == 4.5 and lo < 4.5 < hi and n == 10


def test_frechet_distance_zero_for_identical_gaussians():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64)
    cov = a @ a.T + 0.1 * torch.eye(6, dtype=torch.float64)
    mu = torch.randn(6, generator=g, dtype=torch.float64)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_the_closed_form_for_diagonal_covariances():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()
    got = frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-9)
    # the distance only depends on the geometry: rotating both Gaussians keeps it
    q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((3, 3)))
    rotated = frechet_distance(q @ mu1, q @ np.diag(s1) @ q.T, q @ mu2, q @ np.diag(s2) @ q.T)
    assert rotated == pytest.approx(expected, rel=1e-7)


def test_frechet_distance_with_singular_covariance_is_finite():
    x = np.random.default_rng(0).standard_normal((3, 8))  # 3 samples in 8 dimensions
    cov = np.cov(x, rowvar=False)
    d = frechet_distance(x.mean(0), cov, np.zeros(8), np.eye(8))
    assert math.isfinite(d) and d > 0


def test_moment_accumulator_matches_batch_statistics():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 4, generator=g, dtype=torch.float64) * 3 + 100.0
    acc = MomentAccumulator()
    for chunk in x.split(7):
        acc.update(chunk)
    mean, cov = acc.mean_cov()
    assert acc.n == 50
    assert torch.allclose(mean, x.mean(0))
    assert torch.allclose(cov, torch.cov(x.T), atol=1e-9)
    with pytest.raises(ValueError, match="at least 2"):
        MomentAccumulator().mean_cov()


def test_sentence_names_direction_size_and_uncertainty():
    s = describe_shift(
        target="portrait",
        subject="skin tone",
        shift=14.21,
        low=11.0,
        high=17.3,
        n=500,
        up="lightens",
        down="darkens",
        unit="ITA degrees",
    )
    assert s == (
        "Projected into portrait, skin tone lightens by 14.2 ITA degrees on average "
        "(95% CI 11.0 to 17.3, n = 500)."
    )
    s = describe_shift(
        target="anime",
        subject="skin tone",
        shift=-5.0,
        low=-7.1,
        high=-3.2,
        n=40,
        up="lightens",
        down="darkens",
        unit="ITA degrees",
    )
    assert "darkens by 5.0 ITA degrees" in s and "95% CI 3.2 to 7.1" in s
    assert "no clear change" not in s


def test_sentence_says_no_clear_change_when_the_interval_covers_zero():
    s = describe_shift(
        target="anime",
        subject="face brightness",
        shift=0.8,
        low=-0.4,
        high=2.0,
        n=30,
        up="brightens",
        down="darkens",
        unit="L* units",
    )
    assert "no clear change" in s
    assert "brightens" not in s and "darkens" not in s
    assert "-0.4 to 2.0" in s and "n = 30" in s
    assert "not measured" in describe_shift(
        target="a", subject="b", shift=math.nan, low=math.nan, high=math.nan, n=0
    )
    level = describe_level(
        target="anime", subject="images change by LPIPS", mean=0.2134, low=0.2, high=0.23, n=9
    )
    assert level == (
        "Projected into anime, images change by LPIPS 0.213 on average "
        "(95% CI 0.200 to 0.230, n = 9)."
    )


def test_sentence_never_reads_zero_for_a_clear_tiny_shift():
    s = describe_shift(
        target="squares",
        subject="p(squares | image)",
        shift=-4.2e-5,
        low=-5.1e-5,
        high=-3.3e-5,
        n=24,
        digits=3,
    )
    assert "falls by 0.00004" in s and "0.000 " not in s
    s = describe_shift(
        target="squares", subject="p", shift=-4.2e-9, low=-5e-9, high=-3e-9, n=24, digits=3
    )
    assert "falls by 4.2e-09" in s


def test_ssim_matches_a_float64_two_dimensional_reference():
    import torch.nn.functional as F

    from net2fair.report.measures import _gaussian_window

    g = torch.Generator().manual_seed(3)
    a = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    b = (a + 0.3 * torch.randn(4, 3, 32, 32, generator=g)).clamp(-1, 1)
    x, y = (a.double() + 1) / 2, (b.double() + 1) / 2
    w = _gaussian_window(11, 1.5)
    k = (w[:, None] * w[None, :]).expand(3, 1, 11, 11).contiguous()

    def blur(t):
        return F.conv2d(t, k, groups=3)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    ref = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert torch.allclose(ssim(a, b).double(), ref.mean(dim=(1, 2, 3)), atol=1e-5)
