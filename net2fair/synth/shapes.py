"""Head geometry, signed distance fields and the canvas the renderer draws on.

Shapes are signed distance fields in pixels (negative inside; union = min, intersection =
max) evaluated on the pixel grid, so edges are anti-aliased analytically by
:func:`coverage`. :class:`Geometry` places a head from an attribute dict; the head frame is
rotated by roll so that features are drawn upright. :func:`skin_region_mask` is where skin
tone is measured, in the same geometry.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

_FACE_HALF_WIDTH = 0.26  # fraction of the image side, at size 1
_FACE_ASPECT = 1.27
_HEAD_CENTRE_Y = 0.45


@dataclass(frozen=True)
class Geometry:
    """Head placement in pixels of a canvas of side ``side``."""

    side: int
    cx: float
    cy: float
    a: float  # face half width
    b: float  # face half height
    cos: float
    sin: float
    yaw: float

    @classmethod
    def from_attrs(cls, attrs: Mapping, side: int) -> Geometry:
        a = _FACE_HALF_WIDTH * side * float(attrs.get("size", 1.0))
        roll = math.radians(float(attrs.get("roll", 0.0)))
        return cls(
            side=side,
            cx=side * (0.5 + float(attrs.get("x", 0.0))),
            cy=side * (_HEAD_CENTRE_Y + float(attrs.get("y", 0.0))),
            a=a,
            b=a * _FACE_ASPECT,
            cos=math.cos(roll),
            sin=math.sin(roll),
            yaw=float(attrs.get("yaw", 0.0)),
        )

    def frames(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Pixel-centre coordinates relative to the head centre: the head frame (rotated by
        roll, so features are drawn upright) and the body frame (not rotated)."""
        gx, gy = grid(self.side)
        bx, by = gx - self.cx, gy - self.cy
        # Counter-clockwise roll in the image (y down) means rotating coordinates clockwise.
        hx = self.cos * bx - self.sin * by
        hy = self.sin * bx + self.cos * by
        return hx, hy, bx, by

    def shift(self, depth: float) -> float:
        """Sideways offset (pixels) of a feature at ``depth`` for the head's yaw."""
        return depth * self.yaw * self.a

    def eye_centres(self) -> list[tuple[float, float, int]]:
        spread = 0.4 * (1.0 - 0.1 * abs(self.yaw))
        return [
            (self.shift(0.25) + side * spread * self.a, -0.08 * self.b, side) for side in (-1, 1)
        ]


@functools.cache
def grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    c = np.arange(side, dtype=np.float32) + 0.5
    return c[None, :].repeat(side, 0), c[:, None].repeat(side, 1)


# Signed distances in pixels (negative inside). Union = min, intersection = max.


def sd_ellipse(
    x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float
) -> np.ndarray:
    dx, dy = (x - cx) / rx, (y - cy) / ry
    f = dx * dx + dy * dy - 1.0
    g = 2.0 * np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2) + 1e-6
    return f / g


def sd_segment(x: np.ndarray, y: np.ndarray, p0: tuple, p1: tuple, r: float) -> np.ndarray:
    px, py = x - p0[0], y - p0[1]
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    h = np.clip((px * dx + py * dy) / (dx * dx + dy * dy + 1e-9), 0.0, 1.0)
    return np.hypot(px - h * dx, py - h * dy) - r


def sd_polyline(x: np.ndarray, y: np.ndarray, pts: Sequence[tuple], r: float) -> np.ndarray:
    d = sd_segment(x, y, pts[0], pts[1], r)
    for p0, p1 in zip(pts[1:-1], pts[2:], strict=True):
        d = np.minimum(d, sd_segment(x, y, p0, p1, r))
    return d


def sd_box(
    x: np.ndarray, y: np.ndarray, cx: float, cy: float, hx: float, hy: float, r: float
) -> np.ndarray:
    qx = np.abs(x - cx) - hx + r
    qy = np.abs(y - cy) - hy + r
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return outside + np.minimum(np.maximum(qx, qy), 0.0) - r


def coverage(d: np.ndarray, soft: float = 1.0) -> np.ndarray:
    return np.clip(0.5 - d / soft, 0.0, 1.0)


def _skin_sd(g: Geometry, hx: np.ndarray, hy: np.ndarray) -> np.ndarray:
    """Distance to the cheek regions: below the eyes, beside the nose, above beard/mouth."""
    d = None
    for ex, _, side in g.eye_centres():
        di = sd_ellipse(hx, hy, ex + side * 0.1 * g.a, 0.33 * g.b, 0.22 * g.a, 0.085 * g.b)
        d = di if d is None else np.minimum(d, di)
    return d


def skin_region_mask(resolution: int, attrs: Mapping | None = None) -> np.ndarray:
    """Boolean ``(R, R)`` mask of the cheeks, where skin tone is measured.

    The forehead is left out on purpose: bangs, brows and wrinkles cover it in some styles.

    Arguments:
        resolution: image side R.
        attrs: an attribute dict; with it the mask follows that face's position, size, yaw
            and roll, without it the average aligned geometry (centred, size 1, frontal).
    """
    g = Geometry.from_attrs(attrs or {}, resolution)
    hx, hy, _, _ = g.frames()
    return _skin_sd(g, hx, hy) < 0.0


# ------------------------------------------------------------------------------ canvas
def rgb_float(c: Sequence[float]) -> np.ndarray:
    """sRGB levels 0..255 -> float32 in [0, 1]."""
    return np.asarray(c, dtype=np.float32) / 255.0


def mix(a: np.ndarray, b: np.ndarray | Sequence[float], t: float) -> np.ndarray:
    """``(1 - t) * a + t * b``."""
    return (1.0 - t) * a + t * np.asarray(b, dtype=np.float32)


def smooth_field(rng: np.random.Generator, side: int, cells: int, channels: int) -> np.ndarray:
    """Smooth random field ``(side, side, channels)`` in [0, 1] by bicubic upsampling."""
    small = (rng.random((cells, cells, channels)) * 255).astype(np.uint8)
    img = Image.fromarray(small.squeeze(-1) if channels == 1 else small)
    big = np.asarray(img.resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    return big.reshape(side, side, channels)


def streaks(
    rng: np.random.Generator, side: int, length: float, width: float, angle: float
) -> np.ndarray:
    """Zero-mean noise ``(side, side)`` stretched along ``angle`` (degrees): brush strokes,
    hair strands."""
    n = int(side * 1.5)
    small = rng.standard_normal((max(2, int(n / width)), max(2, int(n / length))))
    img = Image.fromarray(small.astype(np.float32)).resize((n, n), Image.Resampling.BILINEAR)
    img = img.rotate(angle, resample=Image.Resampling.BILINEAR)
    off = (n - side) // 2
    return np.asarray(img, dtype=np.float32)[off : off + side, off : off + side]


class Canvas:
    """A float RGB image plus the style's way of filling shapes."""

    def __init__(self, img: np.ndarray, *, outline_px: float, outline_colour: np.ndarray | None):
        self.img = img
        self.outline_px = outline_px
        self.outline_colour = outline_colour

    def fill(
        self,
        d: np.ndarray,
        colour: np.ndarray,
        *,
        alpha: float = 1.0,
        soft: float = 1.0,
        outline: bool = True,
    ) -> None:
        cov = coverage(d, soft) * alpha
        c = colour if colour.ndim == 3 else colour[None, None, :]
        self.img += cov[..., None] * (c - self.img)
        if outline and self.outline_px > 0:
            self.stroke(d, self.outline_px)

    def stroke(
        self, d: np.ndarray, width: float, colour: np.ndarray | None = None, alpha: float = 1.0
    ) -> None:
        colour = self.outline_colour if colour is None else colour
        cov = coverage(np.abs(d) - 0.5 * width) * alpha
        self.img += cov[..., None] * (colour[None, None, :] - self.img)

    def shade(self, d: np.ndarray, factor: float, *, soft: float, alpha: float = 1.0) -> None:
        """Multiply the image by ``factor`` inside ``d`` (shadows, glows)."""
        cov = coverage(d, soft) * alpha
        self.img *= 1.0 + cov[..., None] * (factor - 1.0)
