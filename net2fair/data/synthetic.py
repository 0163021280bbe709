"""Procedural multi-dataset face benchmark with planted biases.

Three "datasets" render the same kind of head in three styles: ``photo`` (soft light,
skin grain, blurred backgrounds), ``portrait`` (oil painting: dark warm grounds, brush
strokes, yellowed varnish) and ``anime`` (flat colours, dark outlines, big eyes).

Every image carries its attributes:

* shared content, drawn from ONE distribution for every dataset: head position ``x``,
  ``y``, ``size``, ``yaw``, ``roll`` and ``mouth_open``;
* planted attributes, categorical, drawn from per-dataset priors kept in
  ``net2fair/configs/synth_priors.yaml``: skin tone (six levels on the ITA scale), hair
  colour, hair length, beard, glasses, age cues and eye size.

Because the attributes are known, the benchmark can measure whether a projection a -> b
moves the attribute distribution to b's prior while keeping the shared content.

Rendering is numpy + Pillow only. Shapes are signed distance fields evaluated on the pixel
grid, so edges are anti-aliased analytically; below 64 px the face is drawn at twice the
size and downscaled with LANCZOS so that eyes and frames keep their shape. Style and
content are separable: :func:`render_face` draws any attribute dict in any style.

Example::

    images, attrs = render_batch("anime", n=16, resolution=64, seed=0)  # (16, 64, 64, 3) uint8
"""

from __future__ import annotations

import csv
import functools
import logging
import math
import os
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

DOMAINS: tuple[str, ...] = ("photo", "portrait", "anime")

#: Shared content attributes and their ranges. ``x``, ``y``: head centre offset as a
#: fraction of the image side (normal, sd 0.015, clipped); ``size``: head scale (uniform);
#: ``yaw``: features shifted sideways, -1 (turned to image left) .. 1 (uniform); ``roll``:
#: head tilt in degrees, counter-clockwise positive (uniform); ``mouth_open``: 0 or 1.
SHARED_ATTRIBUTES: dict[str, tuple[float, float]] = {
    "x": (-0.04, 0.04),
    "y": (-0.04, 0.04),
    "size": (0.9, 1.1),
    "yaw": (-1.0, 1.0),
    "roll": (-15.0, 15.0),
    "mouth_open": (0.0, 1.0),
}
_XY_SD = 0.015
_P_MOUTH_OPEN = 0.4

#: Planted attributes: name -> category names; an attribute dict stores the category index.
PLANTED_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "skin_tone": ("very_light", "light", "intermediate", "tan", "brown", "dark"),
    "hair_colour": ("black", "brown", "blond", "red", "grey", "pink", "blue", "green", "purple"),
    "hair_length": ("short", "medium", "long"),
    "beard": ("no", "yes"),
    "glasses": ("no", "yes"),
    "age": ("young", "old"),
    "eye_size": ("small", "normal", "large"),
}

#: Base skin colours (sRGB 0..255), one per skin-tone level, each near the centre of its
#: ITA band: very light > 55, light 41..55, intermediate 28..41, tan 10..28, brown -30..10,
#: dark <= -30 (ITA about 65, 48, 34, 19, -10, -45 degrees).
SKIN_RGB: tuple[tuple[int, int, int], ...] = (
    (245, 211, 185),
    (224, 180, 145),
    (210, 158, 119),
    (187, 132, 95),
    (145, 97, 66),
    (103, 66, 47),
)
ITA_BANDS: tuple[tuple[float, float], ...] = (
    (55.0, 90.0),
    (41.0, 55.0),
    (28.0, 41.0),
    (10.0, 28.0),
    (-30.0, 10.0),
    (-90.0, -30.0),
)

# Same hue family in every style so that an attribute reads as the same thing; anime only
# saturates them.
_HAIR_RGB: dict[str, tuple[tuple[int, int, int], ...]] = {
    "natural": (
        (30, 26, 26),
        (96, 60, 36),
        (218, 182, 112),
        (168, 66, 30),
        (172, 172, 174),
        (236, 122, 178),
        (62, 112, 218),
        (60, 162, 92),
        (132, 72, 192),
    ),
    "anime": (
        (44, 42, 60),
        (142, 86, 50),
        (250, 214, 110),
        (218, 62, 48),
        (196, 196, 206),
        (255, 140, 200),
        (80, 140, 245),
        (80, 204, 120),
        (162, 92, 232),
    ),
}
_IRIS_RGB = ((90, 58, 32), (60, 40, 25), (70, 110, 160), (80, 120, 80), (120, 90, 50))
_ANIME_IRIS_RGB = ((60, 120, 230), (40, 170, 120), (200, 60, 90), (150, 80, 220), (210, 140, 40))
_FRAME_RGB = ((20, 20, 22), (70, 40, 25), (110, 25, 30), (25, 35, 80))

_SSAA_BELOW = 64  # resolutions below this are drawn at 2x and downscaled
_FACE_HALF_WIDTH = 0.26  # fraction of the image side, at size 1
_FACE_ASPECT = 1.27
_HEAD_CENTRE_Y = 0.45

_PRIORS_FILE = "synth_priors.yaml"


# --------------------------------------------------------------------------------------
# colour science


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
    m = np.array(
        [
            [0.4124564, 0.3575761, 0.1804375],
            [0.2126729, 0.7151522, 0.0721750],
            [0.0193339, 0.1191920, 0.9503041],
        ]
    )
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    eps = (6.0 / 29.0) ** 3
    f = np.where(xyz > eps, np.cbrt(xyz), xyz / (3.0 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    lab = np.empty_like(f)
    lab[..., 0] = 116.0 * f[..., 1] - 16.0
    lab[..., 1] = 500.0 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200.0 * (f[..., 1] - f[..., 2])
    return lab


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


# --------------------------------------------------------------------------------------
# priors


def _canonical_key(key: object) -> object:
    # YAML 1.1 reads unquoted yes/no as booleans; accept them as the category names.
    if isinstance(key, bool):
        return "yes" if key else "no"
    return key


def validate_priors(priors: Mapping) -> dict[str, dict[str, dict[str, float]]]:
    """Check a priors mapping and return it in canonical form.

    The canonical form lists, for every dataset in ``priors`` (each must be one of
    :data:`DOMAINS`), every planted attribute with every category in the order of
    :data:`PLANTED_ATTRIBUTES` (missing categories get probability 0).

    Raises:
        ValueError: naming the dataset and attribute, for an unknown dataset, a missing or
            unknown attribute, an unknown category, a negative probability or
            probabilities that do not sum to 1 within 1e-6.
    """
    if not isinstance(priors, Mapping) or not priors:
        raise ValueError(f"priors must be a non-empty mapping dataset -> attribute, got {priors!r}")
    out: dict[str, dict[str, dict[str, float]]] = {}
    for domain, table in priors.items():
        if domain not in DOMAINS:
            raise ValueError(f"priors: unknown dataset {domain!r}; expected one of {DOMAINS}")
        if not isinstance(table, Mapping):
            raise ValueError(f"priors[{domain!r}] must map attribute -> categories")
        unknown = set(table) - set(PLANTED_ATTRIBUTES)
        if unknown:
            raise ValueError(
                f"priors[{domain!r}]: unknown attribute(s) {sorted(map(str, unknown))}; "
                f"expected {list(PLANTED_ATTRIBUTES)}"
            )
        out[domain] = {}
        for attr, names in PLANTED_ATTRIBUTES.items():
            if attr not in table:
                raise ValueError(f"priors[{domain!r}]: missing attribute {attr!r}")
            probs = table[attr]
            if not isinstance(probs, Mapping):
                raise ValueError(f"priors[{domain!r}][{attr!r}] must map category -> probability")
            probs = {_canonical_key(k): v for k, v in probs.items()}
            bad = [k for k in probs if k not in names]
            if bad:
                raise ValueError(
                    f"priors[{domain!r}][{attr!r}]: unknown category {bad[0]!r}; "
                    f"expected some of {names}"
                )
            values = {}
            for name in names:
                p = probs.get(name, 0.0)
                if isinstance(p, bool) or not isinstance(p, (int, float)) or not p >= 0:
                    raise ValueError(
                        f"priors[{domain!r}][{attr!r}][{name!r}] must be a probability >= 0, "
                        f"got {p!r}"
                    )
                values[name] = float(p)
            total = sum(values.values())
            if abs(total - 1.0) > 1e-6:
                raise ValueError(
                    f"priors[{domain!r}][{attr!r}]: probabilities sum to {total:.8g}, not 1"
                )
            out[domain][attr] = values
    return out


def load_priors(path: str | Path | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """Load and validate the per-dataset priors of the planted attributes.

    Arguments:
        path: a YAML file ``dataset -> attribute -> category -> probability``; default the
            packaged ``net2fair/configs/synth_priors.yaml``.

    Returns:
        the canonical priors (see :func:`validate_priors`).
    """
    if path is None:
        text = resources.files("net2fair").joinpath("configs", _PRIORS_FILE).read_text("utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return validate_priors(yaml.safe_load(text))


@functools.cache
def _default_priors() -> dict[str, dict[str, dict[str, float]]]:
    return load_priors()


def priors_markdown_table(priors: Mapping) -> str:
    """Render priors as a Markdown table: one row per attribute category, one column per
    dataset, probabilities in percent."""
    priors = validate_priors(priors)
    domains = list(priors)
    lines = [
        "| attribute | category | " + " | ".join(domains) + " |",
        "|---|---|" + "---:|" * len(domains),
    ]
    for attr, names in PLANTED_ATTRIBUTES.items():
        for i, name in enumerate(names):
            cells = [f"{100.0 * priors[d][attr][name]:.1f}%" for d in domains]
            lines.append(f"| {attr if i == 0 else ''} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# sampling


def _check_domain(domain: str) -> None:
    if domain not in DOMAINS:
        raise ValueError(f"unknown dataset {domain!r}; expected one of {DOMAINS}")


def sample_attributes(
    domain: str, n: int, rng: np.random.Generator, priors: Mapping | None = None
) -> list[dict]:
    """Draw ``n`` attribute dicts for ``domain``.

    The shared attributes come from the same code path for every domain; the planted ones
    from ``priors[domain]``. Each face consumes one row of ``rng.random((n, 13))``, so the
    first k faces do not depend on ``n``.

    Returns:
        list of dicts with float ``x, y, size, yaw, roll``, int ``mouth_open`` (0/1) and an
        int category index for every planted attribute.
    """
    _check_domain(domain)
    table = _default_priors() if priors is None else validate_priors(priors)
    if domain not in table:
        raise ValueError(f"priors have no entry for dataset {domain!r}")
    u = rng.random((n, 6 + len(PLANTED_ATTRIBUTES)))

    # Box-Muller on the row's own uniforms keeps faces independent of n.
    radius = np.sqrt(-2.0 * np.log1p(-u[:, 0]))
    lo, hi = SHARED_ATTRIBUTES["x"]
    x = np.clip(_XY_SD * radius * np.cos(2 * np.pi * u[:, 1]), lo, hi)
    y = np.clip(_XY_SD * radius * np.sin(2 * np.pi * u[:, 1]), lo, hi)

    def uniform(name: str, col: np.ndarray) -> np.ndarray:
        lo, hi = SHARED_ATTRIBUTES[name]
        return lo + (hi - lo) * col

    size, yaw, roll = uniform("size", u[:, 2]), uniform("yaw", u[:, 3]), uniform("roll", u[:, 4])
    mouth = (u[:, 5] < _P_MOUTH_OPEN).astype(int)

    planted = {}
    for j, (attr, names) in enumerate(PLANTED_ATTRIBUTES.items()):
        p = np.array([table[domain][attr][k] for k in names])
        cdf = np.cumsum(p / p.sum())
        idx = np.searchsorted(cdf, u[:, 6 + j], side="right")
        planted[attr] = np.minimum(idx, np.flatnonzero(p > 0)[-1])

    return [
        {
            "x": float(x[i]),
            "y": float(y[i]),
            "size": float(size[i]),
            "yaw": float(yaw[i]),
            "roll": float(roll[i]),
            "mouth_open": int(mouth[i]),
            **{attr: int(planted[attr][i]) for attr in PLANTED_ATTRIBUTES},
        }
        for i in range(n)
    ]


def _domain_key(domain: str) -> int:
    return zlib.crc32(domain.encode("utf-8"))


def attribute_rng(domain: str, seed: int) -> np.random.Generator:
    """The generator :func:`render_batch` and :func:`write_benchmark` draw ``domain``'s
    attributes from: ``sample_attributes(domain, n, attribute_rng(domain, seed))``
    reproduces their labels."""
    return np.random.default_rng([seed, _domain_key(domain), 0])


def _image_rng(domain: str, seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _domain_key(domain), 1, index])


# --------------------------------------------------------------------------------------
# geometry


@dataclass(frozen=True)
class _Geometry:
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
    def from_attrs(cls, attrs: Mapping, side: int) -> _Geometry:
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
        gx, gy = _grid(self.side)
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
def _grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    c = np.arange(side, dtype=np.float32) + 0.5
    return c[None, :].repeat(side, 0), c[:, None].repeat(side, 1)


# Signed distances in pixels (negative inside). Union = min, intersection = max.


def _sd_ellipse(
    x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float
) -> np.ndarray:
    dx, dy = (x - cx) / rx, (y - cy) / ry
    f = dx * dx + dy * dy - 1.0
    g = 2.0 * np.sqrt((dx / rx) ** 2 + (dy / ry) ** 2) + 1e-6
    return f / g


def _sd_segment(x: np.ndarray, y: np.ndarray, p0: tuple, p1: tuple, r: float) -> np.ndarray:
    px, py = x - p0[0], y - p0[1]
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    h = np.clip((px * dx + py * dy) / (dx * dx + dy * dy + 1e-9), 0.0, 1.0)
    return np.hypot(px - h * dx, py - h * dy) - r


def _sd_polyline(x: np.ndarray, y: np.ndarray, pts: Sequence[tuple], r: float) -> np.ndarray:
    d = _sd_segment(x, y, pts[0], pts[1], r)
    for p0, p1 in zip(pts[1:-1], pts[2:], strict=True):
        d = np.minimum(d, _sd_segment(x, y, p0, p1, r))
    return d


def _sd_box(
    x: np.ndarray, y: np.ndarray, cx: float, cy: float, hx: float, hy: float, r: float
) -> np.ndarray:
    qx = np.abs(x - cx) - hx + r
    qy = np.abs(y - cy) - hy + r
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return outside + np.minimum(np.maximum(qx, qy), 0.0) - r


def _coverage(d: np.ndarray, soft: float = 1.0) -> np.ndarray:
    return np.clip(0.5 - d / soft, 0.0, 1.0)


def _skin_sd(g: _Geometry, hx: np.ndarray, hy: np.ndarray) -> np.ndarray:
    """Distance to the cheek regions: below the eyes, beside the nose, above beard/mouth."""
    d = None
    for ex, _, side in g.eye_centres():
        di = _sd_ellipse(hx, hy, ex + side * 0.1 * g.a, 0.33 * g.b, 0.22 * g.a, 0.085 * g.b)
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
    g = _Geometry.from_attrs(attrs or {}, resolution)
    hx, hy, _, _ = g.frames()
    return _skin_sd(g, hx, hy) < 0.0


# --------------------------------------------------------------------------------------
# rendering


def _rgb(c: Sequence[float]) -> np.ndarray:
    return np.asarray(c, dtype=np.float32) / 255.0


def _mix(a: np.ndarray, b: np.ndarray | Sequence[float], t: float) -> np.ndarray:
    return (1.0 - t) * a + t * np.asarray(b, dtype=np.float32)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """HSV (each in [0, 1]) to RGB float."""
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array(
        [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], dtype=np.float32
    )


def _smooth_field(rng: np.random.Generator, side: int, cells: int, channels: int) -> np.ndarray:
    """Smooth random field ``(side, side, channels)`` in [0, 1] by bicubic upsampling."""
    small = (rng.random((cells, cells, channels)) * 255).astype(np.uint8)
    img = Image.fromarray(small.squeeze(-1) if channels == 1 else small)
    big = np.asarray(img.resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    return big.reshape(side, side, channels)


def _streaks(
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


class _Canvas:
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
        cov = _coverage(d, soft) * alpha
        c = colour if colour.ndim == 3 else colour[None, None, :]
        self.img += cov[..., None] * (c - self.img)
        if outline and self.outline_px > 0:
            self.stroke(d, self.outline_px)

    def stroke(
        self, d: np.ndarray, width: float, colour: np.ndarray | None = None, alpha: float = 1.0
    ) -> None:
        colour = self.outline_colour if colour is None else colour
        cov = _coverage(np.abs(d) - 0.5 * width) * alpha
        self.img += cov[..., None] * (colour[None, None, :] - self.img)

    def shade(self, d: np.ndarray, factor: float, *, soft: float, alpha: float = 1.0) -> None:
        """Multiply the image by ``factor`` inside ``d`` (shadows, glows)."""
        cov = _coverage(d, soft) * alpha
        self.img *= 1.0 + cov[..., None] * (factor - 1.0)


def _background(domain: str, rng: np.random.Generator, side: int) -> np.ndarray:
    if domain == "photo":
        # A blurred room or street: one dominant colour, smooth light falloff, a few
        # out-of-focus blobs.
        base = _hsv(rng.random(), rng.uniform(0.05, 0.45), rng.uniform(0.35, 0.85))
        light = _smooth_field(rng, side, 3, 1)
        tint = _smooth_field(rng, side, 3, 3) - 0.5
        img = base * (0.6 + 0.8 * light) + 0.12 * tint
        gx, gy = _grid(side)
        for _ in range(int(rng.integers(1, 4))):
            bx, by = rng.random(2) * side
            r = rng.uniform(0.08, 0.25) * side
            blob = np.exp(-((gx - bx) ** 2 + (gy - by) ** 2) / (2 * r * r))
            colour = _hsv(rng.random(), rng.uniform(0.05, 0.5), rng.uniform(0.5, 1.0))
            img += blob[..., None] * (colour - img) * rng.uniform(0.3, 0.7)
        return np.clip(img, 0, 1)
    if domain == "portrait":
        palette = (
            (62, 42, 26),
            (48, 44, 24),
            (36, 28, 20),
            (74, 50, 30),
            (40, 40, 28),
            (30, 26, 24),
        )
        base = _rgb(palette[rng.integers(len(palette))]) * rng.uniform(0.8, 1.2)
        field = _smooth_field(rng, side, 4, 1)
        gx, gy = _grid(side)
        # Painters lit the ground behind the sitter and let the corners fall into shadow.
        r2 = ((gx - side * rng.uniform(0.3, 0.7)) ** 2 + (gy - side * 0.4) ** 2) / side**2
        glow = 1.0 + 0.7 * np.exp(-r2 / 0.08)
        return np.clip(base * (0.75 + 0.5 * field) * glow[..., None], 0, 1)
    # anime: light pastel, plain or a gentle vertical gradient
    top = _hsv(rng.random(), rng.uniform(0.08, 0.3), rng.uniform(0.9, 1.0))
    bottom = _hsv(rng.random(), rng.uniform(0.08, 0.3), rng.uniform(0.9, 1.0))
    if rng.random() < 0.4:
        bottom = top
    t = np.linspace(0, 1, side, dtype=np.float32)[:, None, None]
    return np.broadcast_to((1 - t) * top + t * bottom, (side, side, 3)).copy()


@dataclass
class _Look:
    """Per-image nuisance choices and per-style textures."""

    light: float  # -1 light from image left .. 1 from the right
    skin_field: np.ndarray  # (S, S, 3) skin colour with shading and grain
    hair_field: np.ndarray
    beard_field: np.ndarray
    shirt: np.ndarray
    iris: np.ndarray
    frame: np.ndarray
    hair: np.ndarray  # flat hair colour


def _hair_colour(attrs: Mapping, domain: str) -> np.ndarray:
    palette = _HAIR_RGB["anime" if domain == "anime" else "natural"]
    hair = _rgb(palette[int(attrs["hair_colour"])])
    if int(attrs["age"]) == 1:
        # Greying: pull towards a light grey, keeping a hint of the original colour.
        hair = _mix(hair, (0.74, 0.73, 0.72), 0.65)
    return hair


def _look(
    attrs: Mapping,
    domain: str,
    g: _Geometry,
    hx: np.ndarray,
    hy: np.ndarray,
    rng: np.random.Generator,
) -> _Look:
    side = g.side
    skin = _rgb(SKIN_RGB[int(attrs["skin_tone"])])
    hair = _hair_colour(attrs, domain)
    light = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 1.0))
    if domain == "anime":
        shirt = _hsv(rng.random(), rng.uniform(0.3, 0.8), rng.uniform(0.35, 0.95))
        iris = _rgb(_ANIME_IRIS_RGB[rng.integers(len(_ANIME_IRIS_RGB))])
        flat = np.broadcast_to
        return _Look(
            light,
            flat(skin, (side, side, 3)),
            flat(hair, (side, side, 3)),
            flat(hair * 0.9, (side, side, 3)),
            shirt,
            iris,
            _rgb(_FRAME_RGB[rng.integers(len(_FRAME_RGB))]),
            hair,
        )

    strength, curve, grain = (0.16, 0.2, 0.022) if domain == "photo" else (0.3, 0.3, 0.015)
    u = hx / g.a - 0.3 * g.yaw
    v = hy / g.b
    shade = 1.0 + strength * light * np.clip(u, -1.3, 1.3) - curve * (0.6 * u * u + 0.3 * v * v)
    shade = np.clip(shade, 0.35, 1.25)[..., None]
    noise = rng.standard_normal((side, side)).astype(np.float32)[..., None]
    skin_field = skin * shade * (1.0 + grain * noise)
    strands = _streaks(
        rng, side, length=side / 5, width=1.0, angle=90.0 + math.degrees(math.atan2(g.sin, g.cos))
    )[..., None]
    hair_field = hair * shade * (1.0 + 0.18 * strands)
    beard_field = hair * 0.85 * shade * (1.0 + 0.12 * noise + 0.12 * strands)
    if domain == "photo":
        shirt = _hsv(rng.random(), rng.uniform(0.1, 0.6), rng.uniform(0.25, 0.85))
    else:
        dark = ((30, 26, 24), (70, 22, 20), (24, 44, 30), (26, 30, 60), (60, 48, 30))
        shirt = _rgb(dark[rng.integers(len(dark))])
    iris = _rgb(_IRIS_RGB[rng.integers(len(_IRIS_RGB))])
    frame = _rgb(_FRAME_RGB[rng.integers(len(_FRAME_RGB))])
    return _Look(light, skin_field, hair_field, beard_field, shirt, iris, frame, hair)


def _hairline(domain: str, u: np.ndarray, parting: float) -> np.ndarray:
    """Lower edge of the fringe, in face units (v), as a function of u."""
    if domain == "anime":
        # Spiky bangs: tips reach lower than the gaps between them.
        spikes = np.abs(np.sin(np.pi * (u * 2.2 + parting)))
        return -0.6 + 0.22 * spikes + 0.35 * u * u
    return -0.62 + 0.5 * u * u + 0.12 * parting * u


def _draw_face(attrs: Mapping, domain: str, side: int, rng: np.random.Generator) -> np.ndarray:
    g = _Geometry.from_attrs(attrs, side)
    hx, hy, bx, by = g.frames()
    a, b = g.a, g.b
    anime = domain == "anime"
    img = _background(domain, rng, side)
    look = _look(attrs, domain, g, hx, hy, rng)
    outline_colour = np.array([0.16, 0.11, 0.12], dtype=np.float32)
    c = _Canvas(img, outline_px=max(1.0, 0.05 * a) if anime else 0.0, outline_colour=outline_colour)
    skin = _rgb(SKIN_RGB[int(attrs["skin_tone"])])
    length = PLANTED_ATTRIBUTES["hair_length"][int(attrs["hair_length"])]
    parting = float(rng.uniform(-1, 1))
    hair_shift = -0.08 * g.yaw * a
    chin = 0.5 if anime else 0.18

    # Body: shoulders and neck stay upright while the head rolls.
    c.fill(_sd_ellipse(bx, by, 0.0, 2.25 * b, 2.3 * a, 1.05 * b), look.shirt)

    # Hair behind the head, one shape with the skull's volume: down to the jaw (medium)
    # or over the shoulders (long). The neck is drawn over it.
    cap = _sd_ellipse(hx, hy, hair_shift, -0.14 * b, 1.12 * a, 1.02 * b)
    if length == "medium":
        back = _sd_box(hx, hy, hair_shift, 0.1 * b, 1.27 * a, 0.78 * b, 0.45 * a)
        c.fill(np.minimum(cap, back), look.hair_field)
    elif length == "long":
        back = _sd_box(hx, hy, hair_shift, 0.45 * b, 1.3 * a, 1.2 * b, 0.35 * a)
        c.fill(np.minimum(cap, back), look.hair_field)

    neck = _sd_box(bx, by, 0.0, 1.0 * b, 0.46 * a, 0.5 * b, 0.1 * a)
    c.fill(neck, look.skin_field * 0.82)
    c.shade(_sd_ellipse(bx, by, 0.0, 0.95 * b, 0.5 * a, 0.12 * b), 0.7, soft=2.0, alpha=0.8)

    if length == "short":
        c.fill(np.maximum(cap, hy), look.hair_field)
        for s in (-1, 1):
            ear = _sd_ellipse(hx, hy, s * 0.98 * a - 0.1 * g.yaw * a, 0.02 * b, 0.16 * a, 0.22 * b)
            c.fill(ear, look.skin_field * 0.92)

    # Face: an ellipse narrowed towards the chin (more so in anime).
    sx = hx * (1.0 + chin * np.clip(hy / b, 0, None) ** 2)
    face = _sd_ellipse(sx, hy, 0.0, 0.0, a, b)
    c.fill(face, look.skin_field)
    face_cov = _coverage(face)

    if int(attrs["beard"]):
        _draw_beard(c, g, hx, hy, face, look, anime)
    _draw_eyes(c, g, hx, hy, attrs, look, domain)
    _draw_nose(c, g, hx, hy, look, domain)
    _draw_mouth(c, g, hx, hy, attrs, skin, domain)
    if int(attrs["age"]):
        _draw_wrinkles(c, g, hx, hy, skin, domain, face_cov)
    if int(attrs["glasses"]):
        _draw_glasses(c, g, hx, hy, look, domain)

    # Fringe over the forehead, clipped to the hair cap.
    u = (hx - hair_shift) / a
    fringe = np.maximum(cap, (hy / b - _hairline(domain, u, parting)) * b)
    if anime:
        # Cel shadow cast by the bangs on the forehead.
        shadow = np.maximum(face, (hy / b - _hairline(domain, u, parting) - 0.1) * b)
        c.shade(shadow, 0.86, soft=1.0, alpha=1.0)
    c.fill(fringe, look.hair_field)
    if anime:
        # Hair sheen band.
        visible_hair = np.minimum(fringe, np.maximum(cap, -face))
        band = np.maximum(visible_hair + 0.12 * a, np.abs(hy + 0.72 * b) - 0.05 * b)
        c.fill(band, np.minimum(look.hair * 1.3 + 0.1, 1.0), alpha=0.6, outline=False)
    return c.img


def _draw_eyes(
    c: _Canvas,
    g: _Geometry,
    hx: np.ndarray,
    hy: np.ndarray,
    attrs: Mapping,
    look: _Look,
    domain: str,
) -> None:
    a, b = g.a, g.b
    scale = (0.65, 1.0, 1.4)[int(attrs["eye_size"])]
    brow = look.hair * 0.7 if domain != "anime" else look.hair * 0.6
    for ex, ey, side in g.eye_centres():
        fore = 1.0 - 0.25 * max(0.0, g.yaw * side)  # the far eye is foreshortened
        if domain == "anime":
            rx, ry = 0.25 * a * scale * fore, 0.27 * a * scale
            ey2 = ey + 0.02 * b
            white = _sd_ellipse(hx, hy, ex, ey2, rx, ry)
            c.fill(white, np.array([1.0, 1.0, 1.0], np.float32), outline=False)
            iris_d = np.maximum(
                _sd_ellipse(hx, hy, ex + 0.1 * g.yaw * rx, ey2 + 0.1 * ry, 0.72 * rx, 0.86 * ry),
                white,
            )
            c.fill(iris_d, look.iris, outline=False)
            c.fill(np.maximum(iris_d, hy - (ey2 - 0.25 * ry)), look.iris * 0.55, outline=False)
            c.fill(
                _sd_ellipse(hx, hy, ex + 0.1 * g.yaw * rx, ey2 + 0.15 * ry, 0.3 * rx, 0.38 * ry),
                look.iris * 0.25,
                outline=False,
            )
            for hx0, hy0, r in ((-0.3, -0.35, 0.26), (0.28, 0.4, 0.13)):
                c.fill(
                    _sd_ellipse(hx, hy, ex + hx0 * rx, ey2 + hy0 * ry, r * rx, r * rx),
                    np.array([1.0, 1.0, 1.0], np.float32),
                    outline=False,
                )
            # Heavy upper lash line with a wing at the outer corner; thin lower line.
            lash = np.maximum(np.abs(white) - 0.09 * ry, hy - (ey2 - 0.35 * ry))
            wing = _sd_segment(
                hx,
                hy,
                (ex + side * 0.7 * rx, ey2 - 0.6 * ry),
                (ex + side * 1.2 * rx, ey2 - 0.85 * ry),
                0.07 * ry,
            )
            c.fill(np.minimum(lash - 0.05 * ry, wing), c.outline_colour, outline=False)
            c.stroke(np.maximum(white, ey2 + 0.5 * ry - hy), max(0.8, 0.03 * a))
            by = ey2 - ry - 0.22 * b
            c.fill(
                _sd_polyline(
                    hx,
                    hy,
                    [
                        (ex - side * 0.7 * rx, by + 0.03 * b),
                        (ex, by - 0.02 * b),
                        (ex + side * 0.8 * rx, by + 0.02 * b),
                    ],
                    0.02 * b,
                ),
                brow,
                outline=False,
            )
            continue
        rx, ry = 0.2 * a * scale * fore, 0.11 * a * scale
        # Socket shadow makes the eye read at low resolution.
        c.shade(_sd_ellipse(hx, hy, ex, ey - 0.2 * ry, 1.5 * rx, 2.0 * ry), 0.82, soft=2.5)
        white = _sd_ellipse(hx, hy, ex, ey, rx, ry)
        c.fill(white, np.array([0.9, 0.88, 0.85], np.float32) * (0.9 + 0.1 * look.light * side))
        iris_d = np.maximum(
            _sd_ellipse(hx, hy, ex + 0.15 * g.yaw * rx, ey, 0.5 * rx, 0.5 * rx), white
        )
        c.fill(iris_d, look.iris)
        c.fill(
            np.maximum(_sd_ellipse(hx, hy, ex + 0.15 * g.yaw * rx, ey, 0.2 * rx, 0.2 * rx), white),
            np.array([0.05, 0.04, 0.04], np.float32),
        )
        lid = np.maximum(np.abs(white) - 0.12 * ry, hy - ey)
        c.fill(lid, np.array([0.12, 0.08, 0.07], np.float32), alpha=0.9)
        by0 = ey - ry - 0.13 * b
        brow_d = _sd_polyline(
            hx,
            hy,
            [
                (ex - side * 0.95 * rx, by0 + 0.04 * b),
                (ex + side * 0.2 * rx, by0 - 0.02 * b),
                (ex + side * 1.15 * rx, by0 + 0.03 * b),
            ],
            0.035 * b,
        )
        c.fill(brow_d, brow, alpha=0.9)


def _draw_nose(
    c: _Canvas,
    g: _Geometry,
    hx: np.ndarray,
    hy: np.ndarray,
    look: _Look,
    domain: str,
) -> None:
    a, b = g.a, g.b
    nx = g.shift(0.38)
    if domain == "anime":
        c.fill(
            _sd_segment(hx, hy, (nx, 0.16 * b), (nx - 0.03 * a, 0.22 * b), 0.012 * b),
            c.outline_colour * 2.0,
            alpha=0.8,
            outline=False,
        )
        return
    dark = -np.sign(look.light) if look.light != 0 else 1.0
    ridge = _sd_segment(
        hx, hy, (nx + dark * 0.07 * a, -0.02 * b), (nx + dark * 0.1 * a, 0.2 * b), 0.025 * b
    )
    c.shade(ridge, 0.8, soft=1.5)
    c.shade(_sd_ellipse(hx, hy, nx, 0.25 * b, 0.14 * a, 0.04 * b), 0.72, soft=1.5)


def _draw_mouth(
    c: _Canvas,
    g: _Geometry,
    hx: np.ndarray,
    hy: np.ndarray,
    attrs: Mapping,
    skin: np.ndarray,
    domain: str,
) -> None:
    a, b = g.a, g.b
    mx, my = g.shift(0.28), 0.52 * b
    open_ = int(attrs["mouth_open"]) == 1
    inside = np.array([0.3, 0.08, 0.1], np.float32)
    if domain == "anime":
        if open_:
            d = np.maximum(
                _sd_ellipse(hx, hy, mx, my - 0.02 * b, 0.13 * a, 0.12 * b), my - 0.02 * b - hy
            )
            c.fill(d, np.array([0.55, 0.15, 0.18], np.float32))
            c.fill(
                np.maximum(_sd_ellipse(hx, hy, mx, my + 0.08 * b, 0.08 * a, 0.04 * b), d),
                np.array([0.95, 0.5, 0.55], np.float32),
                outline=False,
            )
        else:
            c.fill(
                _sd_polyline(
                    hx,
                    hy,
                    [
                        (mx - 0.1 * a, my - 0.01 * b),
                        (mx, my + 0.015 * b),
                        (mx + 0.1 * a, my - 0.01 * b),
                    ],
                    0.012 * b,
                ),
                c.outline_colour,
                outline=False,
            )
        return
    lips = _mix(skin, (0.72, 0.3, 0.32), 0.45) * 0.85
    if open_:
        outer = _sd_ellipse(hx, hy, mx, my, 0.25 * a, 0.12 * b)
        c.fill(outer, lips)
        inner = _sd_ellipse(hx, hy, mx, my, 0.2 * a, 0.075 * b)
        c.fill(inner, inside)
        c.fill(
            np.maximum(inner, hy - (my - 0.03 * b)),
            np.array([0.92, 0.9, 0.85], np.float32),
            alpha=0.9,
        )
    else:
        c.fill(_sd_ellipse(hx, hy, mx, my, 0.25 * a, 0.05 * b), lips)
        c.fill(
            _sd_segment(hx, hy, (mx - 0.24 * a, my), (mx + 0.24 * a, my), 0.01 * b),
            inside,
            alpha=0.8,
        )


def _draw_beard(
    c: _Canvas,
    g: _Geometry,
    hx: np.ndarray,
    hy: np.ndarray,
    face: np.ndarray,
    look: _Look,
    anime: bool,
) -> None:
    a, b = g.a, g.b
    mx = g.shift(0.28)
    u = (hx - mx) / a
    # Covers the jaw and chin (a little beyond the face outline), sideburns at the sides.
    grown = face - 0.06 * b
    lower = (0.46 - 0.16 * u * u) * b - hy
    sideburn = np.maximum(0.78 * a - np.abs(hx), (-0.2 * b) - hy)
    region = np.maximum(grown, np.minimum(lower, sideburn))
    moustache = _sd_ellipse(hx, hy, mx, 0.42 * b, 0.32 * a, 0.07 * b)
    c.fill(
        np.minimum(region, moustache),
        look.beard_field,
        soft=1.0 if anime else 1.6,
        alpha=1.0 if anime else 0.95,
    )


def _draw_wrinkles(
    c: _Canvas,
    g: _Geometry,
    hx: np.ndarray,
    hy: np.ndarray,
    skin: np.ndarray,
    domain: str,
    face_cov: np.ndarray,
) -> None:
    a, b = g.a, g.b
    colour = c.outline_colour if domain == "anime" else skin * 0.55
    width = max(0.55, 0.016 * b)
    lines = []
    mx = g.shift(0.28)
    for s in (-1, 1):  # nasolabial folds
        lines.append(
            [
                (mx + s * 0.2 * a, 0.24 * b),
                (mx + s * 0.32 * a, 0.38 * b),
                (mx + s * 0.34 * a, 0.52 * b),
            ]
        )
    for ex, ey, s in g.eye_centres():  # under-eye bags
        lines.append(
            [(ex - 0.18 * a, ey + 0.13 * b), (ex, ey + 0.17 * b), (ex + 0.18 * a, ey + 0.13 * b)]
        )
        if domain != "anime":  # crow's feet
            lines.append([(ex + s * 0.28 * a, ey - 0.03 * b), (ex + s * 0.4 * a, ey - 0.07 * b)])
            lines.append([(ex + s * 0.28 * a, ey + 0.02 * b), (ex + s * 0.4 * a, ey + 0.05 * b)])
    if domain != "anime":
        for v in (-0.52, -0.44):  # forehead lines
            lines.append(
                [
                    (g.shift(0.2) - 0.3 * a, v * b + 0.02 * b),
                    (g.shift(0.2), v * b),
                    (g.shift(0.2) + 0.3 * a, v * b + 0.02 * b),
                ]
            )
    d = np.minimum.reduce([_sd_polyline(hx, hy, pts, width / 2) for pts in lines])
    alpha = 0.9 if domain == "anime" else 0.75
    cov = _coverage(d) * alpha * face_cov
    c.img += cov[..., None] * (colour - c.img)


def _draw_glasses(
    c: _Canvas, g: _Geometry, hx: np.ndarray, hy: np.ndarray, look: _Look, domain: str
) -> None:
    a, b = g.a, g.b
    anime = domain == "anime"
    rx, ry = (0.33 * a, 0.36 * a) if anime else (0.3 * a, 0.21 * a)
    width = max(1.1, 0.07 * a)
    eyes = g.eye_centres()
    rings = []
    for ex, ey, side in eyes:
        fore = 1.0 - 0.25 * max(0.0, g.yaw * side)
        cy = ey + (0.02 * b if anime else 0.0)
        lens = _sd_box(hx, hy, ex, cy, rx * fore, ry, 0.6 * ry)
        if not anime:
            c.fill(lens, np.array([0.8, 0.9, 1.0], np.float32), alpha=0.12)
        rings.append(np.abs(lens) - width / 2)
        outer_x = ex + side * rx * fore
        temple = _sd_segment(
            hx,
            hy,
            (outer_x, cy - 0.3 * ry),
            (side * 0.98 * a + g.shift(0.05), cy - 0.5 * ry),
            width / 2,
        )
        rings.append(temple)
    (lx, ly, _), (rx_, _, _) = eyes
    bridge_y = ly - 0.05 * b + (0.02 * b if anime else 0.0)
    rings.append(
        _sd_segment(hx, hy, (lx + rx * 0.85, bridge_y), (rx_ - rx * 0.85, bridge_y), width / 2)
    )
    c.fill(np.minimum.reduce(rings), look.frame, outline=False)


def _post(img: np.ndarray, domain: str, rng: np.random.Generator) -> np.ndarray:
    side = img.shape[0]
    if domain == "photo":
        noise = rng.standard_normal((side, side, 1)).astype(np.float32)
        return img + 0.012 * noise
    if domain == "portrait":
        angle = float(rng.uniform(0, 180))
        rad = math.radians(angle)
        step = (math.cos(rad), -math.sin(rad))
        # Smear along the stroke direction, as a loaded brush drags paint.
        reach = max(1, side // 64)
        weights = [reach + 1 - abs(k) for k in range(-reach, reach + 1)]
        smear = np.zeros_like(img)
        for k, w in zip(range(-reach, reach + 1), weights, strict=True):
            smear += w * np.roll(img, (round(k * step[1]), round(k * step[0])), axis=(0, 1))
        img = smear / sum(weights)
        strokes = _streaks(rng, side, length=side / 6, width=max(1.0, side / 40), angle=angle)
        fine = _streaks(rng, side, length=side / 12, width=1.0, angle=angle + 25)
        img = img * (1.0 + 0.06 * strokes[..., None] + 0.035 * fine[..., None])
        # Lower contrast about a fixed pivot (not the image mean) so that a local change
        # such as glasses stays local.
        img = 0.4 + 0.85 * (img - 0.4)
        # Yellowed varnish.
        img = img * np.array([1.0, 0.93, 0.74], np.float32) + np.array(
            [0.05, 0.035, 0.0], np.float32
        )
        return img
    return img


def _validate_resolution(resolution: int) -> None:
    if not isinstance(resolution, (int, np.integer)) or not 32 <= resolution <= 256:
        raise ValueError(f"resolution must be an integer in 32..256, got {resolution!r}")


def render_face(
    attrs: Mapping, domain: str, resolution: int, rng: np.random.Generator
) -> np.ndarray:
    """Render one face.

    Arguments:
        attrs: an attribute dict as drawn by :func:`sample_attributes` (any domain's).
        domain: the STYLE to draw in, one of :data:`DOMAINS`; independent of where
            ``attrs`` came from, so content and style are separable.
        resolution: image side R, 32..256.
        rng: nuisance randomness (background, light side, clothes, iris and frame colour,
            textures).

    Returns:
        uint8 array ``(R, R, 3)``.
    """
    _check_domain(domain)
    _validate_resolution(resolution)
    side = resolution * 2 if resolution < _SSAA_BELOW else resolution
    img = _draw_face(attrs, domain, side, rng)
    img = _post(img, domain, rng)
    out = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if side != resolution:
        out = np.asarray(
            Image.fromarray(out).resize((resolution, resolution), Image.Resampling.LANCZOS)
        )
    return out


def _iter_faces(
    domain: str, n: int, resolution: int, seed: int, priors: Mapping | None
) -> Iterator[tuple[np.ndarray, dict]]:
    attrs = sample_attributes(domain, n, attribute_rng(domain, seed), priors)
    for i, a in enumerate(attrs):
        yield render_face(a, domain, resolution, _image_rng(domain, seed, i)), a


def render_batch(
    domain: str, n: int, resolution: int, seed: int, priors: Mapping | None = None
) -> tuple[np.ndarray, list[dict]]:
    """Render ``n`` faces of ``domain``, deterministic per ``(domain, seed)``.

    Image i depends only on (domain, seed, i), so a larger ``n`` extends a smaller one.

    Returns:
        uint8 images ``(n, R, R, 3)`` and their attribute dicts.
    """
    _validate_resolution(resolution)
    images = np.empty((n, resolution, resolution, 3), dtype=np.uint8)
    attrs = []
    for i, (img, a) in enumerate(_iter_faces(domain, n, resolution, seed, priors)):
        images[i] = img
        attrs.append(a)
    return images, attrs


def reference_ita(domain: str, *, resolution: int = 64, n: int = 32, seed: int = 0) -> np.ndarray:
    """Typical measured ITA of each skin-tone level in ``domain``'s style.

    Styles shift measured ITA (the portrait varnish yellows and darkens skin), so skin
    tone read from images of one style is best compared with that style's references
    rather than with the textbook bands. For each of ``n`` sampled faces and each level,
    the median ITA over :func:`skin_region_mask` (true geometry) is taken; the result is
    the median over faces.

    Returns:
        float array ``(6,)`` in degrees, indexed by skin-tone level (decreasing).
    """
    _check_domain(domain)
    attrs = sample_attributes(domain, n, attribute_rng(domain, seed))
    ita = np.empty((len(SKIN_RGB), n))
    for i, a in enumerate(attrs):
        mask = skin_region_mask(resolution, a)
        for tone in range(len(SKIN_RGB)):
            rng = _image_rng(domain, seed, i)
            img = render_face({**a, "skin_tone": tone}, domain, resolution, rng)
            ita[tone, i] = np.median(ita_degrees(srgb_to_lab(img[mask])))
    return np.median(ita, axis=1)


# --------------------------------------------------------------------------------------
# files

_LABEL_COLUMNS: tuple[str, ...] = (
    "file",
    "domain",
    *SHARED_ATTRIBUTES,
    *[c for attr in PLANTED_ATTRIBUTES for c in (attr, f"{attr}_name")],
)


def _atomic_write(path: Path, writer: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    writer(tmp)
    os.replace(tmp, path)


def write_benchmark(
    out_dir: str | Path,
    *,
    n: int = 1000,
    resolution: int = 64,
    seed: int = 0,
    priors: Mapping | None = None,
    domains: Sequence[str] = DOMAINS,
    progress: bool = False,
) -> dict[str, Path]:
    """Write the benchmark: ``out_dir/<domain>/00000.png ...`` and ``labels.csv``.

    Every file is written under a temporary name and moved into place; ``labels.csv`` is
    written last, so a folder with a labels file is complete.

    Arguments:
        out_dir: destination folder (created).
        n: images PER dataset.
        resolution: image side, 32..256.
        seed: with the domain, fixes every image and label (see :func:`render_batch`).
        priors: planted-attribute priors; default the packaged ones.
        domains: which datasets to write.
        progress: show a tqdm bar per dataset.

    Returns:
        dataset -> its folder.
    """
    _validate_resolution(resolution)
    for d in domains:
        _check_domain(d)
    width = max(5, len(str(max(n - 1, 0))))
    folders = {}
    for domain in domains:
        folder = Path(out_dir) / domain
        folder.mkdir(parents=True, exist_ok=True)
        # An old labels file would vouch for images that are about to be replaced.
        (folder / "labels.csv").unlink(missing_ok=True)
        rows = []
        faces = _iter_faces(domain, n, resolution, seed, priors)
        for i, (img, attrs) in enumerate(
            tqdm(faces, total=n, desc=f"synth {domain}", disable=not progress)
        ):
            name = f"{i:0{width}d}.png"
            pil = Image.fromarray(img)
            _atomic_write(folder / name, lambda p, pil=pil: pil.save(p, format="PNG"))
            row = {"file": name, "domain": domain}
            for attr in SHARED_ATTRIBUTES:
                row[attr] = repr(attrs[attr])
            for attr, names in PLANTED_ATTRIBUTES.items():
                row[attr] = attrs[attr]
                row[f"{attr}_name"] = names[attrs[attr]]
            rows.append(row)

        def write_csv(path: Path, rows: list[dict] = rows) -> None:
            with open(path, "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=_LABEL_COLUMNS)
                writer.writeheader()
                writer.writerows(rows)

        _atomic_write(folder / "labels.csv", write_csv)
        logger.debug("wrote %d %s faces at %d px to %s", n, domain, resolution, folder)
        folders[domain] = folder
    return folders


def read_labels(folder: str | Path) -> list[dict]:
    """Read ``folder/labels.csv`` (or the CSV file itself) written by :func:`write_benchmark`.

    Returns:
        one dict per image: ``file``, ``domain`` and the ``*_name`` columns as str, the
        shared attributes as float (``mouth_open`` as int), category indices as int.
    """
    path = Path(folder)
    if path.is_dir():
        path = path / "labels.csv"
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            rec: dict = {"file": row["file"], "domain": row["domain"]}
            for attr in SHARED_ATTRIBUTES:
                rec[attr] = int(row[attr]) if attr == "mouth_open" else float(row[attr])
            for attr in PLANTED_ATTRIBUTES:
                rec[attr] = int(row[attr])
                rec[f"{attr}_name"] = row[f"{attr}_name"]
            out.append(rec)
    return out
