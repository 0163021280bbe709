"""The equivariance prior: the warps do what their parameters say, and the residual is 0
exactly for codes that move linearly with them."""

from __future__ import annotations

import math

import pytest
import torch

from net2fair.models.equivariance import N_PARAMS, equivariance_residual, random_similarity


def _blob(side: int = 64, cx: float = 40.0, cy: float = 22.0) -> torch.Tensor:
    """A small Gaussian blob: its centre of mass is where it is drawn (no border)."""
    ys, xs = torch.meshgrid(torch.arange(float(side)), torch.arange(float(side)), indexing="ij")
    return torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * 2.0**2))[None, None]


def _centre(img: torch.Tensor) -> tuple[float, float]:
    side = img.shape[-1]
    ys, xs = torch.meshgrid(torch.arange(float(side)), torch.arange(float(side)), indexing="ij")
    w = img[0, 0]
    return float((xs * w).sum() / w.sum()), float((ys * w).sum() / w.sum())


def _warp(img: torch.Tensor, seed: int, **kw: float) -> tuple[torch.Tensor, torch.Tensor]:
    return random_similarity(img, torch.Generator().manual_seed(seed), **kw)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shift_moves_the_face_by_the_drawn_fraction_of_the_side(seed):
    img = _blob()
    out, p = _warp(img, seed, max_shift=0.1, max_scale=0.0, max_rotation=0.0)
    (x0, y0), (x1, y1) = _centre(img), _centre(out)
    assert p[0, 2:].abs().max() == 0
    # right and down are positive, in pixels: parameter * max_shift * side
    assert x1 - x0 == pytest.approx(float(p[0, 0]) * 0.1 * 64, abs=0.05)
    assert y1 - y0 == pytest.approx(float(p[0, 1]) * 0.1 * 64, abs=0.05)


@pytest.mark.parametrize("seed", [0, 3])
def test_rotation_is_counter_clockwise_about_the_image_centre(seed):
    img = _blob()
    out, p = _warp(img, seed, max_shift=0.0, max_scale=0.0, max_rotation=40.0)
    angle = math.radians(float(p[0, 3]) * 40.0)
    c = 31.5  # pixel-centre convention of align_corners=False
    (x0, y0), (x1, y1) = _centre(img), _centre(out)
    # counter-clockwise on screen with y pointing down
    ex = c + math.cos(angle) * (x0 - c) + math.sin(angle) * (y0 - c)
    ey = c - math.sin(angle) * (x0 - c) + math.cos(angle) * (y0 - c)
    assert (x1, y1) == pytest.approx((ex, ey), abs=0.1)


def test_scale_multiplies_distances_from_the_centre():
    img = _blob()
    out, p = _warp(img, 4, max_shift=0.0, max_scale=0.3, max_rotation=0.0)
    s = math.exp(float(p[0, 2]) * math.log1p(0.3))
    c = 31.5
    (x0, y0), (x1, y1) = _centre(img), _centre(out)
    assert (x1 - c, y1 - c) == pytest.approx((s * (x0 - c), s * (y0 - c)), abs=0.1)


def test_no_warp_gives_the_image_back_and_parameters_are_in_range():
    x = torch.rand(5, 3, 32, 32)
    out, p = _warp(x, 0, max_shift=0.0, max_scale=0.0, max_rotation=0.0)
    assert p.shape == (5, N_PARAMS) and p.abs().max() == 0
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)
    _, p = _warp(x, 0)
    assert p.abs().max() <= 1.0 and p.abs().min() > 0


def test_residual_is_zero_for_codes_linear_in_the_parameters():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(32, 16, generator=g)
    p = torch.rand(32, N_PARAMS, generator=g) * 2 - 1
    a, c = torch.randn(16, N_PARAMS, generator=g), torch.randn(16, generator=g)
    linear = mu + c + p @ a.T
    assert float(equivariance_residual(mu, linear, p)) < 1e-10
    # a warp the parameters do not explain (each image moves its own way) is penalised,
    # by the share of the code's variance it adds
    noise = torch.randn(32, 16, generator=g)
    r = float(equivariance_residual(mu, linear + noise, p))
    expected = float(((noise - noise.mean(0)) ** 2).sum(1).mean() / mu.var(0, False).sum())
    assert r == pytest.approx(expected, rel=0.3) and r > 0.5


def test_residual_does_not_reward_a_shrinking_code_and_has_gradients():
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(32, 8, generator=g)
    warped = torch.randn(32, 8, generator=g)
    p = torch.rand(32, N_PARAMS, generator=g)
    r = equivariance_residual(mu, warped, p)
    assert float(equivariance_residual(3 * mu, 3 * warped, p)) == pytest.approx(float(r), rel=1e-5)
    warped.requires_grad_(True)
    equivariance_residual(mu, warped, p).backward()
    assert warped.grad is not None and warped.grad.abs().sum() > 0


def test_residual_needs_a_batch_larger_than_the_fit():
    with pytest.raises(ValueError, match="larger batch"):
        equivariance_residual(torch.zeros(5, 4), torch.zeros(5, 4), torch.zeros(5, N_PARAMS))
    with pytest.raises(ValueError, match="shapes"):
        equivariance_residual(torch.zeros(8, 4), torch.zeros(8, 3), torch.zeros(8, N_PARAMS))


def test_the_prior_starts_late_and_ramps_up_linearly():
    from net2fair.models.equivariance import equivariance_weight_at

    assert equivariance_weight_at(99, 0.4, start=100, ramp=4) == 0.0
    assert [equivariance_weight_at(s, 0.4, 100, 4) for s in (100, 101, 103, 500)] == [
        pytest.approx(0.1),
        pytest.approx(0.2),
        pytest.approx(0.4),
        pytest.approx(0.4),
    ]
    assert equivariance_weight_at(0, 0.4, start=0, ramp=0) == 0.4
    assert equivariance_weight_at(10**6, 0.0, start=0, ramp=0) == 0.0
