"""Colour science: sRGB <-> CIELAB, skin tone as the Individual Typology Angle, HSV, and
the YCbCr chroma of ITU-R BT.601.

The renderer of the synthetic benchmark, the report's measures, the change maps, the
stage-1 fidelity measure and the chroma loss all use these, so that a number means the same
thing everywhere.

* CIELAB with the D65 white point and the 2 degree observer (CIE 15:2004), from sRGB as
  defined in IEC 61966-2-1.
* ITA = atan((L* - 50) / b*) in degrees (Chardon et al. 1991); the skin-tone bands of
  Del Bino and Bernerd (2013). Used for dataset audits by Merler et al. 2019, "Diversity
  in Faces".
* YCbCr: ITU-R BT.601, full range as in JPEG, without the +128 offset of Cb and Cr (every
  use here takes differences or a high-pass, where the offset cancels).

numpy only at import; the YCbCr functions take torch tensors and import torch when called,
so that the renderer and ``net2fair --help`` stay free of it.

Example::

    lab = srgb_to_lab(pixels)  # pixels: uint8 (..., 3)
    median_ita(pixels[mask])   # skin tone of a region, degrees
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "CBCR_FROM_RGB",
    "ITA_BANDS",
    "ITA_BAND_NAMES",
    "YCBCR_FROM_RGB",
    "hsv_to_rgb",
    "ita_band",
    "ita_degrees",
    "lab_to_srgb",
    "median_ita",
    "rgb_to_cbcr",
    "rgb_to_ycbcr",
    "srgb_to_lab",
    "ycbcr_to_rgb",
]

# linear sRGB -> XYZ (D65) and back (IEC 61966-2-1), and the D65 white in XYZ
_XYZ_FROM_RGB = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_RGB_FROM_XYZ = np.array(
    [
        [3.2404542, -1.5371385, -0.4985314],
        [-0.9692660, 1.8760108, 0.0415560],
        [0.0556434, -0.2040259, 1.0572252],
    ]
)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
_DELTA = 6.0 / 29.0

#: ITU-R BT.601 full-range RGB -> (Y, Cb, Cr), rows in that order, without offsets
YCBCR_FROM_RGB: tuple[tuple[float, float, float], ...] = (
    (0.299, 0.587, 0.114),
    (-0.168736, -0.331264, 0.5),
    (0.5, -0.418688, -0.081312),
)
#: the chroma rows (Cb, Cr) of :data:`YCBCR_FROM_RGB`
CBCR_FROM_RGB: tuple[tuple[float, float, float], ...] = YCBCR_FROM_RGB[1:]

#: ITA bands (Del Bino and Bernerd 2013), lightest first: (name, lower bound exclusive).
#: The last band, "dark", takes everything at or below -30 degrees.
ITA_BANDS: tuple[tuple[str, float], ...] = (
    ("very light", 55.0),
    ("light", 41.0),
    ("intermediate", 28.0),
    ("tan", 10.0),
    ("brown", -30.0),
    ("dark", -math.inf),
)
ITA_BAND_NAMES: tuple[str, ...] = tuple(name for name, _ in ITA_BANDS)


# ------------------------------------------------------------------------------ CIELAB
def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Convert sRGB to CIELAB (D65 white, 2 degree observer).

    Arguments:
        rgb: array ``(..., 3)``; uint8 in 0..255, or float in [0, 1].

    Returns:
        float64 array ``(..., 3)`` of L* (0..100), a*, b*.
    """
    rgb = np.asarray(rgb)
    c = rgb.astype(np.float64) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float64)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = lin @ _XYZ_FROM_RGB.T / _WHITE_D65
    eps = _DELTA**3
    f = np.where(xyz > eps, np.cbrt(xyz), xyz / (3.0 * _DELTA**2) + 4.0 / 29.0)
    lab = np.empty_like(f)
    lab[..., 0] = 116.0 * f[..., 1] - 16.0
    lab[..., 1] = 500.0 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200.0 * (f[..., 1] - f[..., 2])
    return lab


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (D65) ``(..., 3)`` -> sRGB floats in [0, 1], clipped (the inverse of
    :func:`srgb_to_lab` inside the sRGB gamut)."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    d = _DELTA
    xyz = np.where(f > d, f**3, 3.0 * d * d * (f - 4.0 / 29.0)) * _WHITE_D65
    lin = np.clip(xyz @ _RGB_FROM_XYZ.T, 0.0, 1.0)
    rgb = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1.0 / 2.4) - 0.055)
    return np.clip(rgb, 0.0, 1.0)


# --------------------------------------------------------------------------- skin tone
def ita_degrees(lab: np.ndarray) -> np.ndarray:
    """Individual Typology Angle ``atan((L* - 50) / b*)`` in degrees.

    Arguments:
        lab: array ``(..., 3)`` of CIELAB values (see :func:`srgb_to_lab`).

    Returns:
        array ``(...)``. Computed with ``arctan2`` so that bluish pixels (b* <= 0) do not
        flip sign; for skin (b* > 0) it equals the textbook formula.
    """
    lab = np.asarray(lab, dtype=np.float64)
    return np.degrees(np.arctan2(lab[..., 0] - 50.0, lab[..., 2]))


def median_ita(pixels: np.ndarray) -> np.ndarray:
    """Skin tone of a region: the median ITA (degrees) over its pixels.

    Arguments:
        pixels: sRGB ``(..., P, 3)`` (uint8, or float in [0, 1]), the P pixels of a region,
            e.g. ``image[mask]`` or ``images[:, mask]``.

    Returns:
        float64 ``(...)``: one value per region (a 0-d array for ``(P, 3)``).
    """
    return np.median(ita_degrees(srgb_to_lab(pixels)), axis=-1)


def ita_band(angle: float | np.ndarray) -> str | np.ndarray:
    """Name of the ITA band (:data:`ITA_BANDS`) of an angle, or an array of band names.
    NaN gives ``""``."""
    arr = np.asarray(angle, dtype=np.float64)
    out = np.full(arr.shape, "", dtype=object)
    for name, lower in reversed(ITA_BANDS):
        out[arr > lower] = name
    out[np.isnan(arr)] = ""
    return str(out[()]) if out.ndim == 0 else out


# --------------------------------------------------------------------------------- HSV
def hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    """HSV (each in [0, 1]) to RGB: float32 ``(3,)`` in [0, 1]."""
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array(
        [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], dtype=np.float32
    )


# ------------------------------------------------------------------------------- YCbCr
def _mix_channels(weights: tuple[tuple[float, float, float], ...], x: torch.Tensor) -> torch.Tensor:
    import torch  # here, so that importing this module does not import torch

    return torch.einsum("kc,nchw->nkhw", x.new_tensor(weights), x)


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB -> Y, Cb, Cr (BT.601, no offsets) in the same scale: 8-bit levels
    give 8-bit levels, [-1, 1] gives Y in [-1, 1] and Cb, Cr in [-1, 1] centred on 0."""
    return _mix_channels(YCBCR_FROM_RGB, x)


def rgb_to_cbcr(x: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB -> ``(N, 2, H, W)``: the chroma channels Cb, Cr of
    :func:`rgb_to_ycbcr`."""
    return _mix_channels(CBCR_FROM_RGB, x)


def ycbcr_to_rgb(c: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (not clamped)."""
    import torch

    inverse = torch.linalg.inv(torch.tensor(YCBCR_FROM_RGB, dtype=torch.float64))
    return torch.einsum("kc,nchw->nkhw", inverse.to(c), c)
