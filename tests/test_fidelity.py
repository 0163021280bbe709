"""net2fair.fidelity: the eye-band colour-noise ratio and PSNR (issue 17)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from net2fair.fidelity import (
    colour_noise,
    colour_noise_map,
    colour_noise_ratio,
    eye_band,
    psnr,
    to_rgb255,
)


def _faces(n: int = 6, size: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth colourful uint8 images (N, H, W, 3) with some chroma structure in the band."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        a, b, c = rng.uniform(0.5, 3.0, 3)
        img = np.stack(
            [
                128 + 90 * np.sin(a * 3 * xx + c),
                128 + 90 * np.cos(b * 3 * yy),
                128 + 90 * np.sin(a * 2 * (xx + yy)),
            ],
            axis=-1,
        )
        # an "eye": a sharp blue disc, chroma detail of the input itself
        disc = (xx - 0.35) ** 2 + (yy - 0.45) ** 2 < 0.004
        img[disc] = (40, 60, 220)
        out.append(img)
    return np.clip(np.stack(out), 0, 255).round().astype(np.uint8)


def _chroma_noise(images: np.ndarray, rows: slice, cols: slice, seed: int = 1) -> np.ndarray:
    """Add opposite-signed red/blue pixel noise (luma roughly unchanged) in a region."""
    rng = np.random.default_rng(seed)
    out = images.astype(np.float64)
    region = out[:, rows, cols]
    noise = rng.normal(0.0, 40.0, region.shape[:-1])
    region[..., 0] += noise
    region[..., 2] -= noise
    out[:, rows, cols] = region
    return np.clip(out, 0, 255).round().astype(np.uint8)


def _blur(images: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).double()
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=torch.float64)
    k2 = (k[:, None] * k[None, :]) / 256.0
    x = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    x = torch.nn.functional.conv2d(x, k2.expand(3, 1, 5, 5).contiguous(), groups=3)
    return x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def test_identical_sets_give_exactly_one() -> None:
    x = _faces()
    assert colour_noise_ratio(x, x) == 1.0
    assert colour_noise_ratio(torch.from_numpy(x), x.copy()) == 1.0


def test_blurred_reconstruction_gives_at_most_one() -> None:
    x = _faces()
    assert colour_noise_ratio(_blur(x), x) <= 1.0
    assert colour_noise_ratio(_blur(_blur(x)), x) < 0.5


def test_chroma_noise_in_the_eye_band_gives_a_large_ratio() -> None:
    x = _faces()
    rows, cols = eye_band(64, 64)
    noisy = _chroma_noise(x, rows, cols)
    assert colour_noise_ratio(noisy, x) > 5.0
    # per image too
    assert np.all(colour_noise(noisy) > 3 * colour_noise(x))


def test_noise_outside_the_band_does_not_count() -> None:
    x = _faces()
    rows, cols = eye_band(64, 64)
    # everything at least the blur radius (3 px) away from the band
    top = _chroma_noise(x, slice(0, rows.start - 4), slice(None))
    bottom = _chroma_noise(x, slice(rows.stop + 4, None), slice(None))
    sides = _chroma_noise(
        _chroma_noise(x, slice(None), slice(0, cols.start - 4)),
        slice(None),
        slice(cols.stop + 4, None),
    )
    for noisy in (top, bottom, sides):
        assert not np.array_equal(noisy, x)
        assert colour_noise_ratio(noisy, x) == pytest.approx(1.0, abs=1e-12)
    # while the map itself sees it
    assert colour_noise_map(top).mean() > 2 * colour_noise_map(x).mean()


def test_luma_only_noise_does_not_count_as_colour_noise() -> None:
    x = _faces()
    rows, cols = eye_band(64, 64)
    rng = np.random.default_rng(3)
    grey = x.astype(np.float64)
    grey[:, rows, cols] += rng.normal(0, 20, grey[:, rows, cols].shape[:-1])[..., None]
    grey = np.clip(grey, 0, 255).round().astype(np.uint8)
    assert colour_noise_ratio(grey, x) < 1.2


def test_layouts_and_value_ranges_agree() -> None:
    x = _faces(3)
    ref = colour_noise(x)
    t = torch.from_numpy(x)
    as_float = t.permute(0, 3, 1, 2).float() / 127.5 - 1.0  # net2fair's [-1, 1] NCHW
    np.testing.assert_allclose(colour_noise(t.permute(0, 3, 1, 2)), ref)  # uint8 NCHW
    np.testing.assert_allclose(colour_noise(as_float), ref, rtol=1e-5)
    np.testing.assert_allclose(colour_noise(x / 255.0, value_range=(0.0, 1.0)), ref, rtol=1e-9)
    np.testing.assert_allclose(colour_noise([Image.fromarray(im) for im in x]), ref)
    np.testing.assert_allclose(colour_noise(x[0]), ref[:1])
    assert to_rgb255(x).shape == (3, 3, 64, 64)


def test_eye_band_rows_and_columns() -> None:
    rows, cols = eye_band(64, 64)
    assert (rows.start, rows.stop) == (21, 37)
    assert (cols.start, cols.stop) == (13, 51)
    rows, cols = eye_band(256, 256)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (84, 148, 51, 205)


def test_psnr_per_image() -> None:
    x = _faces(4)
    assert np.all(np.isinf(psnr(x, x)))
    y = x.astype(np.int16)
    y[1] = np.clip(y[1] + 10, 0, 255)  # mostly +10 levels
    y = y.astype(np.uint8)
    values = psnr(y, x)
    assert values.shape == (4,)
    assert math.isinf(values[0]) and math.isinf(values[2])
    mse = ((y[1].astype(np.float64) - x[1]) ** 2).mean()
    assert values[1] == pytest.approx(10 * math.log10(255**2 / mse))
    assert 28.0 < values[1] <= 10 * math.log10(255**2 / 1.0)


def test_mismatched_or_bad_inputs_are_refused() -> None:
    x = _faces(3)
    with pytest.raises(ValueError, match="must match"):
        colour_noise_ratio(x[:2], x)
    with pytest.raises(ValueError, match="must match"):
        psnr(x[:2], x)
    with pytest.raises(ValueError, match="3 colour channels"):
        colour_noise(np.zeros((2, 64, 64, 4), np.uint8))
    with pytest.raises(ValueError, match="no images"):
        colour_noise([])
    with pytest.raises(ValueError, match="different sizes"):
        colour_noise([x[0], x[0, :32, :32]])


def test_flat_inputs_without_chroma_detail() -> None:
    flat = np.full((2, 64, 64, 3), 100, np.uint8)
    assert colour_noise_ratio(flat, flat) == 1.0
    rows, cols = eye_band(64, 64)
    assert math.isinf(colour_noise_ratio(_chroma_noise(flat, rows, cols), flat))


def test_chroma_detail_loss_charges_what_the_measure_counts() -> None:
    """models.losses.chroma_detail_l1, the stage-1 term that removes the confetti."""
    from net2fair.models.losses import AutoencoderLoss, chroma_detail_l1

    x8 = _faces(4)
    rows, cols = eye_band(64, 64)

    def as_model_input(images: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0

    x = as_model_input(x8)
    confetti = as_model_input(_chroma_noise(x8, rows, cols))
    assert chroma_detail_l1(x, x).item() == 0.0
    # a uniform colour cast and a blur cost (almost) nothing; confetti costs
    cast = (x + torch.tensor([0.1, -0.05, 0.0]).view(1, 3, 1, 1)).clamp(-1, 1)
    blurred = as_model_input(_blur(x8))
    assert chroma_detail_l1(x, confetti) > 5 * chroma_detail_l1(x, blurred)
    assert chroma_detail_l1(x, confetti) > 5 * chroma_detail_l1(x, cast)
    rec = confetti.clone().requires_grad_(True)
    chroma_detail_l1(x, rec).backward()
    assert rec.grad is not None and rec.grad.abs().sum() > 0

    loss = AutoencoderLoss(perceptual_weight=0.0, disc_weight=0.0, chroma_weight=2.0)
    kl = torch.zeros(4)
    total, logs = loss.generator_loss(x, confetti, kl, step=0, last_layer=torch.zeros(1))
    assert logs["chroma"] == pytest.approx(chroma_detail_l1(x, confetti).item(), rel=1e-5)
    assert logs["rec"] == pytest.approx(logs["l1"] + 2.0 * logs["chroma"], rel=1e-5)
    off = AutoencoderLoss(perceptual_weight=0.0, disc_weight=0.0)
    assert "chroma" not in off.generator_loss(x, confetti, kl, step=0, last_layer=torch.zeros(1))[1]
