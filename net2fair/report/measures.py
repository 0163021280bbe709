"""Measures of a face image and of the change between an image and its projection.

Everything here is a pure function of pixels or numbers; :mod:`net2fair.report.build`
applies them to every input and every projection. Image arrays are uint8 ``(B, H, W, 3)``
sRGB; image tensors are ``(B, 3, H, W)`` in [-1, 1], the package-wide convention.

Skin tone is the Individual Typology Angle (Chardon et al. 1991; used for dataset audits
by Merler et al. 2019, "Diversity in Faces"): ITA = atan((L* - 50) / b*) in degrees, from
CIELAB (D65), taken as the median over a face-skin region. Where that region lies depends
on how the faces are aligned, hence the ``layout`` argument:

* ``"ffhq"``: the FFHQ alignment (Karras et al. 2019), which fixes the eyes at about
  (0.375, 0.47) and (0.625, 0.47) of the image side and the mouth at (0.5, 0.72). The
  region is two cheek ellipses below the eyes and beside the nose, and a band of the
  lower forehead above the brows; eyes, brows, nose tip, mouth and (mostly) hair are
  outside it.
* ``"synthetic"``: the cheeks of the procedural benchmark's average head
  (:func:`net2fair.synth.shapes.skin_region_mask`).

The background is the two top corners of the image, where aligned portraits rarely have
hair or shoulders.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from net2fair.colour import ITA_BAND_NAMES, ita_band, ita_degrees, srgb_to_lab
from net2fair.data.images import LAYOUTS
from net2fair.synth.shapes import skin_region_mask

# FFHQ face-skin region as ellipses (centre x, centre y, half width, half height) in
# fractions of the image side. Checked by overlaying the mask on aligned FFHQ photos:
# the cheeks sit under the pupils, clear of the lower eyelid, the nose and the smile
# lines; the forehead band sits above the brows and below most hairlines.
_FFHQ_SKIN: tuple[tuple[float, float, float, float], ...] = (
    (0.345, 0.600, 0.060, 0.045),
    (0.655, 0.600, 0.060, 0.045),
    (0.500, 0.350, 0.085, 0.030),
)
_CORNER = 0.2  # side of each top-corner background square, fraction of the image side


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown face layout {layout!r}; expected one of {LAYOUTS}")


@lru_cache(maxsize=16)
def _skin_mask(resolution: int, layout: str) -> np.ndarray:
    if layout == "synthetic":
        mask = skin_region_mask(resolution)
    else:
        g = (np.arange(resolution) + 0.5) / resolution
        x, y = np.meshgrid(g, g)
        mask = np.zeros((resolution, resolution), dtype=bool)
        for cx, cy, rx, ry in _FFHQ_SKIN:
            mask |= ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1.0
            # At tiny sizes an ellipse can miss every pixel centre: keep its centre pixel
            # so that the measure stays defined.
            last = resolution - 1
            mask[min(int(cy * resolution), last), min(int(cx * resolution), last)] = True
    mask.setflags(write=False)
    return mask


def skin_mask(resolution: int, layout: str) -> np.ndarray:
    """Boolean ``(R, R)`` mask of the face skin (cheeks, plus the forehead for ``ffhq``)
    where skin tone and face colour are measured. Read-only; do not modify."""
    _check_layout(layout)
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    return _skin_mask(int(resolution), layout)


@lru_cache(maxsize=16)
def _background_mask(resolution: int) -> np.ndarray:
    k = max(1, round(_CORNER * resolution))
    mask = np.zeros((resolution, resolution), dtype=bool)
    mask[:k, :k] = True
    mask[:k, -k:] = True
    mask.setflags(write=False)
    return mask


def background_mask(resolution: int) -> np.ndarray:
    """Boolean ``(R, R)`` mask of the background: the two top corner squares (side 0.2 R).
    The same for every layout: aligned faces leave the top corners to the background."""
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    return _background_mask(int(resolution))


def _as_batch(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"expected uint8 images shaped (B, H, W, 3), got {images.dtype} {images.shape}"
        )
    if images.shape[1] != images.shape[2]:
        raise ValueError(f"expected square images, got {images.shape[1]}x{images.shape[2]}")
    return images


def ita(lab: np.ndarray) -> np.ndarray:
    """ITA in degrees of CIELAB values ``(..., 3)``: ``atan((L* - 50) / b*)``.

    Uses ``atan2`` so that pixels with b* <= 0 (grey or bluish, never skin) do not flip the
    sign; for skin (b* > 0) it is the textbook formula."""
    return ita_degrees(lab)


def skin_ita(images: np.ndarray, layout: str) -> np.ndarray:
    """Median ITA (degrees) over the face-skin region of each image.

    Arguments:
        images: uint8 ``(B, R, R, 3)``.
        layout: ``"ffhq"`` or ``"synthetic"`` (see the module docstring).

    Returns:
        float64 ``(B,)``.
    """
    images = _as_batch(images)
    mask = skin_mask(images.shape[1], layout)
    lab = srgb_to_lab(images[:, mask])  # (B, P, 3)
    return np.median(ita_degrees(lab), axis=1)


def region_colour(images: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Mean brightness and colour of each image over a region.

    Arguments:
        images: uint8 ``(B, R, R, 3)``.
        mask: boolean ``(R, R)``.

    Returns:
        ``{"L": mean L* (0..100), "r", "g", "b": mean channel values (0..255)}``, each
        float64 ``(B,)``.
    """
    images = _as_batch(images)
    pixels = images[:, mask]  # (B, P, 3)
    rgb = pixels.astype(np.float64).mean(axis=1)
    lightness = srgb_to_lab(pixels)[..., 0].mean(axis=1)
    return {"L": lightness, "r": rgb[:, 0], "g": rgb[:, 1], "b": rgb[:, 2]}


def image_measures(images: np.ndarray, layout: str) -> dict[str, np.ndarray]:
    """All per-image measures of :mod:`net2fair.report` that need only the pixels.

    Returns:
        float64 ``(B,)`` arrays: ``ita``, ``face_L``, ``face_r``, ``face_g``, ``face_b``,
        ``bg_L``, ``bg_r``, ``bg_g``, ``bg_b``.
    """
    images = _as_batch(images)
    res = images.shape[1]
    out = {"ita": skin_ita(images, layout)}
    for prefix, mask in (("face", skin_mask(res, layout)), ("bg", background_mask(res))):
        for key, value in region_colour(images, mask).items():
            out[f"{prefix}_{key}"] = value
    return out


# ------------------------------------------------------------------------------ change


def l1_change(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute pixel difference of ``(B, 3, H, W)`` images in [-1, 1], on the
    0..1 scale: ``(B,)``; 0 for identical images, 1 for black against white."""
    _check_pair(a, b)
    return (a.float() - b.float()).abs().mean(dim=(1, 2, 3)) / 2.0


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.dim() != 4 or a.shape[1] != 3:
        raise ValueError(
            f"expected two image batches of one shape (B, 3, H, W), got {tuple(a.shape)} "
            f"and {tuple(b.shape)}"
        )


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, *, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) of ``(B, 3, H, W)`` images in [-1, 1].

    Gaussian window (11 px, sigma 1.5, shrunk to fit small images), the usual constants
    K1 = 0.01, K2 = 0.03 on the 0..1 range, statistics per colour channel, averaged over
    the valid (unpadded) positions and the channels.

    Returns:
        ``(B,)``: 1 for identical images, lower the more they differ (can be negative).
    """
    _check_pair(a, b)
    # float32 and a separable window, the five blurs in one grouped convolution: 80x faster
    # than float64 2-D blurs and within 1e-6 of them (the report's hottest spot before).
    x = (a.float() + 1.0) / 2.0
    y = (b.float() + 1.0) / 2.0
    size = min(window, x.shape[-1], x.shape[-2])
    if size % 2 == 0:
        size -= 1
    g = _gaussian_window(size, sigma * size / window).float().to(x.device)
    stacked = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (B, 15, H, W)
    ch = stacked.shape[1]
    blurred = F.conv2d(stacked, g.view(1, 1, 1, size).expand(ch, 1, 1, size), groups=ch)
    blurred = F.conv2d(blurred, g.view(1, 1, size, 1).expand(ch, 1, size, 1), groups=ch)
    mx, my, xx, yy, xy = blurred.split(3, dim=1)

    c1, c2 = 0.01**2, 0.03**2
    vx = xx - mx * mx
    vy = yy - my * my
    cov = xy - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))


# -------------------------------------------------------------------------- statistics


def bootstrap_mean_ci(
    values: np.ndarray,
    *,
    n_resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float, int]:
    """Mean of ``values`` with a percentile bootstrap interval.

    For a paired shift pass the per-image differences (projection - input): resampling
    the differences is resampling the pairs. NaNs are dropped first.

    Returns:
        ``(mean, low, high, n)``; NaNs when no value is left, and ``low == high == mean``
        for a single value.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    n = int(v.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(v.mean())
    if n == 1:
        return mean, mean, mean, 1
    rng = np.random.default_rng(seed)
    # Draw the resamples in chunks so that memory stays near 16 MB whatever n is.
    chunk = max(1, 2_000_000 // n)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = v[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return mean, float(low), float(high), n


def frechet_distance(
    mu1: np.ndarray | torch.Tensor,
    cov1: np.ndarray | torch.Tensor,
    mu2: np.ndarray | torch.Tensor,
    cov2: np.ndarray | torch.Tensor,
) -> float:
    """Frechet (2-Wasserstein) distance between Gaussians N(mu1, cov1) and N(mu2, cov2):

        ||mu1 - mu2||^2 + tr(cov1) + tr(cov2) - 2 tr((cov1^1/2 cov2 cov1^1/2)^1/2)

    (the squared distance, as in FID, Heusel et al. 2017). Both square roots are taken by
    ``eigh`` of symmetric matrices in float64 with negative round-off eigenvalues clipped
    to 0, so singular covariances (fewer samples than dimensions) are fine.
    """
    m1, m2 = (torch.as_tensor(m, dtype=torch.float64).cpu() for m in (mu1, mu2))
    c1, c2 = (torch.as_tensor(c, dtype=torch.float64).cpu() for c in (cov1, cov2))
    c1 = (c1 + c1.T) / 2.0
    c2 = (c2 + c2.T) / 2.0
    w, q = torch.linalg.eigh(c1)
    root1 = (q * w.clamp_min(0.0).sqrt()) @ q.T
    inner = root1 @ c2 @ root1
    inner = (inner + inner.T) / 2.0
    tr_root = torch.linalg.eigvalsh(inner).clamp_min(0.0).sqrt().sum()
    d = ((m1 - m2) ** 2).sum() + torch.trace(c1) + torch.trace(c2) - 2.0 * tr_root
    return max(0.0, float(d))


class MomentAccumulator:
    """Running mean and covariance of vectors, fed in batches (memory O(D^2), not O(N)).

    Sums are kept in float64 about a fixed shift (the first batch's mean) so that the
    covariance does not lose digits when the mean is large compared to the spread.
    """

    def __init__(self) -> None:
        self.n = 0
        self._shift: torch.Tensor | None = None
        self._sum: torch.Tensor | None = None
        self._outer: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> None:
        """Add a batch ``(B, D)``."""
        x = x.detach().to("cpu", torch.float64)
        if self._shift is None:
            self._shift = x.mean(dim=0)
            self._sum = torch.zeros_like(self._shift)
            self._outer = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64)
        d = x - self._shift
        self._sum += d.sum(dim=0)
        self._outer += d.T @ d
        self.n += x.shape[0]

    def mean_cov(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``(D,)`` and unbiased covariance ``(D, D)``; needs at least two vectors."""
        if self.n < 2 or self._sum is None or self._outer is None or self._shift is None:
            raise ValueError(f"need at least 2 vectors for a covariance, have {self.n}")
        m = self._sum / self.n
        cov = (self._outer - self.n * torch.outer(m, m)) / (self.n - 1)
        return m + self._shift, cov


# ------------------------------------------------------------------------------- words


def _fmt(x: float, digits: int) -> str:
    s = f"{x:.{digits}f}"
    return "0" + s[2:] if s.startswith("-0") and float(s) == 0.0 else s


def number_formatter(values: Sequence[float], digits: int, most: int = 6) -> Callable[[float], str]:
    """A formatter with ``digits`` decimals, or more (up to ``most``, then 2 significant
    digits) when a non-zero value among ``values`` would otherwise show as 0: a real but
    tiny shift must not read "by 0.000"."""
    for d in range(digits, most + 1):
        if not any(v != 0 and float(_fmt(v, d)) == 0 for v in values):
            return lambda x, d=d: _fmt(x, d)
    return lambda x: f"{x:.2g}"


def describe_shift(
    *,
    target: str,
    subject: str,
    shift: float,
    low: float,
    high: float,
    n: int,
    up: str = "rises",
    down: str = "falls",
    unit: str = "",
    digits: int = 1,
) -> str:
    """A plain-language sentence for a mean shift and its 95% interval.

    Example: ``Projected into portrait, skin tone lightens by 14.2 ITA degrees on average
    (95% CI 11.0 to 17.3, n = 500).`` When the interval covers zero the sentence says
    "no clear change" and gives the signed estimate.

    Arguments:
        target: dataset name (shown as is; writers escape it).
        subject: what is measured, e.g. ``"skin tone"``.
        shift, low, high: the mean shift (projection - input) and its interval.
        up, down: verbs for a rise and a fall (``"lightens"``, ``"darkens"``).
        unit: after the number, e.g. ``"ITA degrees"``.
        digits: decimals shown.
    """
    unit_s = f" {unit}" if unit else ""
    head = f"Projected into {target}, {subject}"
    if n == 0 or any(math.isnan(v) for v in (shift, low, high)):
        return f"{head}: not measured (n = {n})."
    f = number_formatter((shift, low, high), digits)
    if low <= 0.0 <= high:
        return (
            f"{head} shows no clear change ({f(shift)}{unit_s} on average, "
            f"95% CI {f(low)} to {f(high)}, n = {n})."
        )
    verb, size, lo, hi = (up, shift, low, high) if shift > 0 else (down, -shift, -high, -low)
    return f"{head} {verb} by {f(size)}{unit_s} on average (95% CI {f(lo)} to {f(hi)}, n = {n})."


def describe_level(
    *,
    target: str,
    subject: str,
    mean: float,
    low: float,
    high: float,
    n: int,
    digits: int = 3,
) -> str:
    """A sentence for a level (not a shift), e.g. how much images change:
    ``Projected into anime, images change by LPIPS 0.213 on average (95% CI ...).``"""
    if n == 0 or math.isnan(mean):
        return f"Projected into {target}, {subject}: not measured (n = {n})."
    f = number_formatter((mean, low, high), digits)
    return (
        f"Projected into {target}, {subject} {f(mean)} on average "
        f"(95% CI {f(low)} to {f(high)}, n = {n})."
    )


def band_counts(angles: Sequence[float] | np.ndarray) -> dict[str, int]:
    """How many angles fall into each ITA band (lightest first)."""
    names = np.asarray(ita_band(np.asarray(angles, dtype=np.float64)), dtype=object).ravel()
    return {band: int(np.sum(names == band)) for band in ITA_BAND_NAMES}
