"""The parts of a face: colours, per-image looks, eyes, nose, mouth, beard, wrinkles and
glasses, each drawn in one of the three styles onto a :class:`~net2fair.synth.shapes.Canvas`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from net2fair.colour import hsv_to_rgb
from net2fair.synth.shapes import (
    Canvas,
    Geometry,
    coverage,
    mix,
    rgb_float,
    sd_box,
    sd_ellipse,
    sd_polyline,
    sd_segment,
    streaks,
)

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


@dataclass
class Look:
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
    hair = rgb_float(palette[int(attrs["hair_colour"])])
    if int(attrs["age"]) == 1:
        # Greying: pull towards a light grey, keeping a hint of the original colour.
        hair = mix(hair, (0.74, 0.73, 0.72), 0.65)
    return hair


def choose_look(
    attrs: Mapping,
    domain: str,
    g: Geometry,
    hx: np.ndarray,
    hy: np.ndarray,
    rng: np.random.Generator,
) -> Look:
    side = g.side
    skin = rgb_float(SKIN_RGB[int(attrs["skin_tone"])])
    hair = _hair_colour(attrs, domain)
    light = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 1.0))
    if domain == "anime":
        shirt = hsv_to_rgb(rng.random(), rng.uniform(0.3, 0.8), rng.uniform(0.35, 0.95))
        iris = rgb_float(_ANIME_IRIS_RGB[rng.integers(len(_ANIME_IRIS_RGB))])
        flat = np.broadcast_to
        return Look(
            light,
            flat(skin, (side, side, 3)),
            flat(hair, (side, side, 3)),
            flat(hair * 0.9, (side, side, 3)),
            shirt,
            iris,
            rgb_float(_FRAME_RGB[rng.integers(len(_FRAME_RGB))]),
            hair,
        )

    strength, curve, grain = (0.16, 0.2, 0.022) if domain == "photo" else (0.3, 0.3, 0.015)
    u = hx / g.a - 0.3 * g.yaw
    v = hy / g.b
    shade = 1.0 + strength * light * np.clip(u, -1.3, 1.3) - curve * (0.6 * u * u + 0.3 * v * v)
    shade = np.clip(shade, 0.35, 1.25)[..., None]
    noise = rng.standard_normal((side, side)).astype(np.float32)[..., None]
    skin_field = skin * shade * (1.0 + grain * noise)
    strands = streaks(
        rng, side, length=side / 5, width=1.0, angle=90.0 + math.degrees(math.atan2(g.sin, g.cos))
    )[..., None]
    hair_field = hair * shade * (1.0 + 0.18 * strands)
    beard_field = hair * 0.85 * shade * (1.0 + 0.12 * noise + 0.12 * strands)
    if domain == "photo":
        shirt = hsv_to_rgb(rng.random(), rng.uniform(0.1, 0.6), rng.uniform(0.25, 0.85))
    else:
        dark = ((30, 26, 24), (70, 22, 20), (24, 44, 30), (26, 30, 60), (60, 48, 30))
        shirt = rgb_float(dark[rng.integers(len(dark))])
    iris = rgb_float(_IRIS_RGB[rng.integers(len(_IRIS_RGB))])
    frame = rgb_float(_FRAME_RGB[rng.integers(len(_FRAME_RGB))])
    return Look(light, skin_field, hair_field, beard_field, shirt, iris, frame, hair)


def draw_eyes(
    c: Canvas,
    g: Geometry,
    hx: np.ndarray,
    hy: np.ndarray,
    attrs: Mapping,
    look: Look,
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
            white = sd_ellipse(hx, hy, ex, ey2, rx, ry)
            c.fill(white, np.array([1.0, 1.0, 1.0], np.float32), outline=False)
            iris_d = np.maximum(
                sd_ellipse(hx, hy, ex + 0.1 * g.yaw * rx, ey2 + 0.1 * ry, 0.72 * rx, 0.86 * ry),
                white,
            )
            c.fill(iris_d, look.iris, outline=False)
            c.fill(np.maximum(iris_d, hy - (ey2 - 0.25 * ry)), look.iris * 0.55, outline=False)
            c.fill(
                sd_ellipse(hx, hy, ex + 0.1 * g.yaw * rx, ey2 + 0.15 * ry, 0.3 * rx, 0.38 * ry),
                look.iris * 0.25,
                outline=False,
            )
            for hx0, hy0, r in ((-0.3, -0.35, 0.26), (0.28, 0.4, 0.13)):
                c.fill(
                    sd_ellipse(hx, hy, ex + hx0 * rx, ey2 + hy0 * ry, r * rx, r * rx),
                    np.array([1.0, 1.0, 1.0], np.float32),
                    outline=False,
                )
            # Heavy upper lash line with a wing at the outer corner; thin lower line.
            lash = np.maximum(np.abs(white) - 0.09 * ry, hy - (ey2 - 0.35 * ry))
            wing = sd_segment(
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
                sd_polyline(
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
        c.shade(sd_ellipse(hx, hy, ex, ey - 0.2 * ry, 1.5 * rx, 2.0 * ry), 0.82, soft=2.5)
        white = sd_ellipse(hx, hy, ex, ey, rx, ry)
        c.fill(white, np.array([0.9, 0.88, 0.85], np.float32) * (0.9 + 0.1 * look.light * side))
        iris_d = np.maximum(
            sd_ellipse(hx, hy, ex + 0.15 * g.yaw * rx, ey, 0.5 * rx, 0.5 * rx), white
        )
        c.fill(iris_d, look.iris)
        c.fill(
            np.maximum(sd_ellipse(hx, hy, ex + 0.15 * g.yaw * rx, ey, 0.2 * rx, 0.2 * rx), white),
            np.array([0.05, 0.04, 0.04], np.float32),
        )
        lid = np.maximum(np.abs(white) - 0.12 * ry, hy - ey)
        c.fill(lid, np.array([0.12, 0.08, 0.07], np.float32), alpha=0.9)
        by0 = ey - ry - 0.13 * b
        brow_d = sd_polyline(
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


def draw_nose(
    c: Canvas,
    g: Geometry,
    hx: np.ndarray,
    hy: np.ndarray,
    look: Look,
    domain: str,
) -> None:
    a, b = g.a, g.b
    nx = g.shift(0.38)
    if domain == "anime":
        c.fill(
            sd_segment(hx, hy, (nx, 0.16 * b), (nx - 0.03 * a, 0.22 * b), 0.012 * b),
            c.outline_colour * 2.0,
            alpha=0.8,
            outline=False,
        )
        return
    dark = -np.sign(look.light) if look.light != 0 else 1.0
    ridge = sd_segment(
        hx, hy, (nx + dark * 0.07 * a, -0.02 * b), (nx + dark * 0.1 * a, 0.2 * b), 0.025 * b
    )
    c.shade(ridge, 0.8, soft=1.5)
    c.shade(sd_ellipse(hx, hy, nx, 0.25 * b, 0.14 * a, 0.04 * b), 0.72, soft=1.5)


def draw_mouth(
    c: Canvas,
    g: Geometry,
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
                sd_ellipse(hx, hy, mx, my - 0.02 * b, 0.13 * a, 0.12 * b), my - 0.02 * b - hy
            )
            c.fill(d, np.array([0.55, 0.15, 0.18], np.float32))
            c.fill(
                np.maximum(sd_ellipse(hx, hy, mx, my + 0.08 * b, 0.08 * a, 0.04 * b), d),
                np.array([0.95, 0.5, 0.55], np.float32),
                outline=False,
            )
        else:
            c.fill(
                sd_polyline(
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
    lips = mix(skin, (0.72, 0.3, 0.32), 0.45) * 0.85
    if open_:
        outer = sd_ellipse(hx, hy, mx, my, 0.25 * a, 0.12 * b)
        c.fill(outer, lips)
        inner = sd_ellipse(hx, hy, mx, my, 0.2 * a, 0.075 * b)
        c.fill(inner, inside)
        c.fill(
            np.maximum(inner, hy - (my - 0.03 * b)),
            np.array([0.92, 0.9, 0.85], np.float32),
            alpha=0.9,
        )
    else:
        c.fill(sd_ellipse(hx, hy, mx, my, 0.25 * a, 0.05 * b), lips)
        c.fill(
            sd_segment(hx, hy, (mx - 0.24 * a, my), (mx + 0.24 * a, my), 0.01 * b),
            inside,
            alpha=0.8,
        )


def draw_beard(
    c: Canvas,
    g: Geometry,
    hx: np.ndarray,
    hy: np.ndarray,
    face: np.ndarray,
    look: Look,
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
    moustache = sd_ellipse(hx, hy, mx, 0.42 * b, 0.32 * a, 0.07 * b)
    c.fill(
        np.minimum(region, moustache),
        look.beard_field,
        soft=1.0 if anime else 1.6,
        alpha=1.0 if anime else 0.95,
    )


def draw_wrinkles(
    c: Canvas,
    g: Geometry,
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
    d = np.minimum.reduce([sd_polyline(hx, hy, pts, width / 2) for pts in lines])
    alpha = 0.9 if domain == "anime" else 0.75
    cov = coverage(d) * alpha * face_cov
    c.img += cov[..., None] * (colour - c.img)


def draw_glasses(
    c: Canvas, g: Geometry, hx: np.ndarray, hy: np.ndarray, look: Look, domain: str
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
        lens = sd_box(hx, hy, ex, cy, rx * fore, ry, 0.6 * ry)
        if not anime:
            c.fill(lens, np.array([0.8, 0.9, 1.0], np.float32), alpha=0.12)
        rings.append(np.abs(lens) - width / 2)
        outer_x = ex + side * rx * fore
        temple = sd_segment(
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
        sd_segment(hx, hy, (lx + rx * 0.85, bridge_y), (rx_ - rx * 0.85, bridge_y), width / 2)
    )
    c.fill(np.minimum.reduce(rings), look.frame, outline=False)
