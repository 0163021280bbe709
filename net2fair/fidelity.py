"""How faithfully stage 1 reproduces a face: PSNR and the eye-band colour-noise ratio.

Colour noise ("confetti") is high-frequency chroma: isolated pixels whose hue differs
from their neighbours'. It is measured as in issue 17:

1. convert the image to YCbCr (ITU-R BT.601, full range, as in JPEG), in 8-bit levels;
2. for the two chroma channels Cb and Cr, take the squared difference between the
   channel and its Gaussian blur (sigma 1 px; 7 taps, reflected at the border);
3. sum over Cb and Cr and average over the eye band: rows 33% to 58% of the height,
   columns 20% to 80% of the width (where eyes and glasses are in aligned faces).

:func:`colour_noise` gives that value per image (in squared 8-bit levels);
:func:`colour_noise_ratio` divides the mean over a set of reconstructions by the mean over
their inputs. A faithful reconstruction gives about 1.0, a blurry one less, confetti more.
Luma is left out on purpose: a sharp edge in brightness is content, while a pixel of a
different hue inside a flat region is the artifact.

Images can be given as

- ``uint8`` arrays or tensors, ``(H, W, 3)`` / ``(N, H, W, 3)`` (channels last) or
  ``(3, H, W)`` / ``(N, 3, H, W)`` (channels first), values 0 to 255;
- float arrays or tensors in the same layouts with values in ``value_range``
  (default ``(-1, 1)``, the range net2fair's models take and return);
- PIL images, or a list of any of these of one size.

Only numpy and torch are used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from net2fair.colour import rgb_to_cbcr

__all__ = [
    "EYE_BAND_COLUMNS",
    "EYE_BAND_ROWS",
    "ImageBatch",
    "colour_noise",
    "colour_noise_map",
    "colour_noise_ratio",
    "eye_band",
    "psnr",
    "to_rgb255",
]

#: the eye band as fractions of the height (rows) and width (columns), start inclusive,
#: end exclusive
EYE_BAND_ROWS: tuple[float, float] = (0.33, 0.58)
EYE_BAND_COLUMNS: tuple[float, float] = (0.20, 0.80)

_Image = np.ndarray | torch.Tensor | Image.Image
#: what the functions here accept: one image or batch, or a sequence of them
ImageBatch = _Image | Sequence[_Image]

_SIGMA = 1.0
_RADIUS = 3  # 3 sigma


def to_rgb255(
    images: ImageBatch, *, value_range: tuple[float, float] = (-1.0, 1.0)
) -> torch.Tensor:
    """Any accepted image input -> float64 tensor ``(N, 3, H, W)`` with values 0 to 255.

    Arguments:
        images: see the module docstring for the accepted layouts.
        value_range: ``(low, high)`` of float inputs; ignored for ``uint8`` and PIL input.
            Float values are clipped to it first, as when the image is saved.

    Raises:
        ValueError: not an image batch of 3 channels, an empty list, or sizes that differ.
    """
    if isinstance(images, Image.Image):
        return torch.from_numpy(np.asarray(images.convert("RGB"), dtype=np.float64)).permute(
            2, 0, 1
        )[None]
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("no images given")
        items = [to_rgb255(im, value_range=value_range) for im in images]
        sizes = {tuple(t.shape[2:]) for t in items}
        if len(sizes) != 1:
            raise ValueError(f"images of different sizes (H, W): {sorted(sizes)}")
        return torch.cat(items)
    if not isinstance(images, (np.ndarray, torch.Tensor)):
        raise ValueError(f"expected images as arrays, tensors or PIL images, got {type(images)!r}")
    return _tensor_to_rgb255(images, value_range)


def _tensor_to_rgb255(
    images: np.ndarray | torch.Tensor, value_range: tuple[float, float]
) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        is_uint8 = images.dtype == np.uint8
        x = torch.from_numpy(np.ascontiguousarray(images))
    else:
        is_uint8 = images.dtype == torch.uint8
        x = images.detach().cpu()
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"expected (H, W, 3), (3, H, W) or a batch of them, got {tuple(x.shape)}")
    if x.shape[1] != 3 and x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2)
    if x.shape[1] != 3:
        raise ValueError(f"expected 3 colour channels, got shape {tuple(x.shape)}")
    x = x.to(torch.float64)
    if is_uint8:
        return x
    low, high = (float(v) for v in value_range)
    if not high > low:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    return (x.clamp(low, high) - low) * (255.0 / (high - low))


def eye_band(height: int, width: int) -> tuple[slice, slice]:
    """Row and column slices of the eye band of an image of that size."""
    r0, r1 = (round(f * height) for f in EYE_BAND_ROWS)
    c0, c1 = (round(f * width) for f in EYE_BAND_COLUMNS)
    return slice(r0, max(r1, r0 + 1)), slice(c0, max(c1, c0 + 1))


def _gaussian_blur(x: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur (sigma 1 px) of ``(N, C, H, W)``, borders reflected."""
    t = torch.arange(-_RADIUS, _RADIUS + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / _SIGMA) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    mode = "reflect" if min(x.shape[-2:]) > _RADIUS else "replicate"
    h = torch.nn.functional.pad(x, (_RADIUS, _RADIUS, 0, 0), mode=mode)
    h = torch.nn.functional.conv2d(h, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    h = torch.nn.functional.pad(h, (0, 0, _RADIUS, _RADIUS), mode=mode)
    return torch.nn.functional.conv2d(h, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def colour_noise_map(
    images: ImageBatch, *, value_range: tuple[float, float] = (-1.0, 1.0)
) -> torch.Tensor:
    """Per-pixel colour noise ``(N, H, W)``: squared Cb and Cr high-pass, summed (levels^2)."""
    # Cb, Cr without their + 128, which the high-pass removes
    chroma = rgb_to_cbcr(to_rgb255(images, value_range=value_range))
    return ((chroma - _gaussian_blur(chroma)) ** 2).sum(dim=1)


def colour_noise(
    images: ImageBatch, *, value_range: tuple[float, float] = (-1.0, 1.0)
) -> np.ndarray:
    """Colour noise of each image in the eye band: float64 array of shape ``(N,)``.

    The mean of :func:`colour_noise_map` over the eye band (:func:`eye_band`), in squared
    8-bit levels. Pixels outside the band do not count, though the blur reads their values
    next to the band's edge.
    """
    noise = colour_noise_map(images, value_range=value_range)
    rows, cols = eye_band(noise.shape[-2], noise.shape[-1])
    return noise[:, rows, cols].mean(dim=(1, 2)).numpy()


def _matched(
    reconstructions: ImageBatch, inputs: ImageBatch, value_range: tuple[float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    rec = to_rgb255(reconstructions, value_range=value_range)
    inp = to_rgb255(inputs, value_range=value_range)
    if rec.shape != inp.shape:
        raise ValueError(
            f"reconstructions and inputs must match, got {tuple(rec.shape)} and {tuple(inp.shape)}"
        )
    return rec, inp


def colour_noise_ratio(
    reconstructions: ImageBatch,
    inputs: ImageBatch,
    *,
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> float:
    """Mean eye-band colour noise of ``reconstructions`` over that of their ``inputs``.

    A ratio of means over the set (not a mean of per-image ratios, which a few flat inputs
    with almost no chroma detail would dominate). Identical sets give exactly 1.0; an
    input set without any colour noise gives 1.0 if the reconstructions have none either,
    else ``inf``.

    Raises:
        ValueError: the two sets differ in number or size of images.
    """
    rec, inp = _matched(reconstructions, inputs, value_range)
    num = float(colour_noise(rec, value_range=(0.0, 255.0)).mean())
    den = float(colour_noise(inp, value_range=(0.0, 255.0)).mean())
    if den == 0.0:
        return 1.0 if num == 0.0 else math.inf
    return num / den


def psnr(
    reconstructions: ImageBatch,
    inputs: ImageBatch,
    *,
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> np.ndarray:
    """PSNR of each reconstruction against its input, in dB: float64 array ``(N,)``.

    ``10 log10(255^2 / MSE)`` over all pixels and channels, on 8-bit levels (float inputs
    are not rounded); identical images give ``inf``. Average dataset PSNR as the mean of
    these per-image values.

    Raises:
        ValueError: the two sets differ in number or size of images.
    """
    rec, inp = _matched(reconstructions, inputs, value_range)
    mse = ((rec - inp) ** 2).mean(dim=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(255.0**2 / mse.numpy())
