"""The renderer of the synthetic benchmark: one kind of head in three styles.

``photo`` (soft light, skin grain, blurred backgrounds), ``portrait`` (oil painting: dark
warm grounds, brush strokes, yellowed varnish) and ``anime`` (flat colours, dark outlines,
big eyes). Style and content are separable: :func:`render_face` draws any attribute dict
(:func:`~net2fair.synth.priors.sample_attributes`) in any style.

Rendering is numpy + Pillow only. Below 64 px the face is drawn at twice the size and
downscaled with LANCZOS so that eyes and frames keep their shape.

Example::

    images, attrs = render_batch("anime", n=16, resolution=64, seed=0)  # (16, 64, 64, 3) uint8
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import numpy as np
from PIL import Image

from net2fair.colour import hsv_to_rgb, median_ita
from net2fair.synth.features import (
    SKIN_RGB,
    choose_look,
    draw_beard,
    draw_eyes,
    draw_glasses,
    draw_mouth,
    draw_nose,
    draw_wrinkles,
)
from net2fair.synth.priors import (
    PLANTED_ATTRIBUTES,
    attribute_rng,
    check_domain,
    image_rng,
    sample_attributes,
)
from net2fair.synth.shapes import (
    Canvas,
    Geometry,
    coverage,
    grid,
    rgb_float,
    sd_box,
    sd_ellipse,
    skin_region_mask,
    smooth_field,
    streaks,
)

_SSAA_BELOW = 64  # resolutions below this are drawn at 2x and downscaled


def _background(domain: str, rng: np.random.Generator, side: int) -> np.ndarray:
    if domain == "photo":
        # A blurred room or street: one dominant colour, smooth light falloff, a few
        # out-of-focus blobs.
        base = hsv_to_rgb(rng.random(), rng.uniform(0.05, 0.45), rng.uniform(0.35, 0.85))
        light = smooth_field(rng, side, 3, 1)
        tint = smooth_field(rng, side, 3, 3) - 0.5
        img = base * (0.6 + 0.8 * light) + 0.12 * tint
        gx, gy = grid(side)
        for _ in range(int(rng.integers(1, 4))):
            bx, by = rng.random(2) * side
            r = rng.uniform(0.08, 0.25) * side
            blob = np.exp(-((gx - bx) ** 2 + (gy - by) ** 2) / (2 * r * r))
            colour = hsv_to_rgb(rng.random(), rng.uniform(0.05, 0.5), rng.uniform(0.5, 1.0))
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
        base = rgb_float(palette[rng.integers(len(palette))]) * rng.uniform(0.8, 1.2)
        field = smooth_field(rng, side, 4, 1)
        gx, gy = grid(side)
        # Painters lit the ground behind the sitter and let the corners fall into shadow.
        r2 = ((gx - side * rng.uniform(0.3, 0.7)) ** 2 + (gy - side * 0.4) ** 2) / side**2
        glow = 1.0 + 0.7 * np.exp(-r2 / 0.08)
        return np.clip(base * (0.75 + 0.5 * field) * glow[..., None], 0, 1)
    # anime: light pastel, plain or a gentle vertical gradient
    top = hsv_to_rgb(rng.random(), rng.uniform(0.08, 0.3), rng.uniform(0.9, 1.0))
    bottom = hsv_to_rgb(rng.random(), rng.uniform(0.08, 0.3), rng.uniform(0.9, 1.0))
    if rng.random() < 0.4:
        bottom = top
    t = np.linspace(0, 1, side, dtype=np.float32)[:, None, None]
    return np.broadcast_to((1 - t) * top + t * bottom, (side, side, 3)).copy()


def _hairline(domain: str, u: np.ndarray, parting: float) -> np.ndarray:
    """Lower edge of the fringe, in face units (v), as a function of u."""
    if domain == "anime":
        # Spiky bangs: tips reach lower than the gaps between them.
        spikes = np.abs(np.sin(np.pi * (u * 2.2 + parting)))
        return -0.6 + 0.22 * spikes + 0.35 * u * u
    return -0.62 + 0.5 * u * u + 0.12 * parting * u


def _draw_face(attrs: Mapping, domain: str, side: int, rng: np.random.Generator) -> np.ndarray:
    g = Geometry.from_attrs(attrs, side)
    hx, hy, bx, by = g.frames()
    a, b = g.a, g.b
    anime = domain == "anime"
    img = _background(domain, rng, side)
    look = choose_look(attrs, domain, g, hx, hy, rng)
    outline_colour = np.array([0.16, 0.11, 0.12], dtype=np.float32)
    c = Canvas(img, outline_px=max(1.0, 0.05 * a) if anime else 0.0, outline_colour=outline_colour)
    skin = rgb_float(SKIN_RGB[int(attrs["skin_tone"])])
    length = PLANTED_ATTRIBUTES["hair_length"][int(attrs["hair_length"])]
    parting = float(rng.uniform(-1, 1))
    hair_shift = -0.08 * g.yaw * a
    chin = 0.5 if anime else 0.18

    # Body: shoulders and neck stay upright while the head rolls.
    c.fill(sd_ellipse(bx, by, 0.0, 2.25 * b, 2.3 * a, 1.05 * b), look.shirt)

    # Hair behind the head, one shape with the skull's volume: down to the jaw (medium)
    # or over the shoulders (long). The neck is drawn over it.
    cap = sd_ellipse(hx, hy, hair_shift, -0.14 * b, 1.12 * a, 1.02 * b)
    if length == "medium":
        back = sd_box(hx, hy, hair_shift, 0.1 * b, 1.27 * a, 0.78 * b, 0.45 * a)
        c.fill(np.minimum(cap, back), look.hair_field)
    elif length == "long":
        back = sd_box(hx, hy, hair_shift, 0.45 * b, 1.3 * a, 1.2 * b, 0.35 * a)
        c.fill(np.minimum(cap, back), look.hair_field)

    neck = sd_box(bx, by, 0.0, 1.0 * b, 0.46 * a, 0.5 * b, 0.1 * a)
    c.fill(neck, look.skin_field * 0.82)
    c.shade(sd_ellipse(bx, by, 0.0, 0.95 * b, 0.5 * a, 0.12 * b), 0.7, soft=2.0, alpha=0.8)

    if length == "short":
        c.fill(np.maximum(cap, hy), look.hair_field)
        for s in (-1, 1):
            ear = sd_ellipse(hx, hy, s * 0.98 * a - 0.1 * g.yaw * a, 0.02 * b, 0.16 * a, 0.22 * b)
            c.fill(ear, look.skin_field * 0.92)

    # Face: an ellipse narrowed towards the chin (more so in anime).
    sx = hx * (1.0 + chin * np.clip(hy / b, 0, None) ** 2)
    face = sd_ellipse(sx, hy, 0.0, 0.0, a, b)
    c.fill(face, look.skin_field)
    face_cov = coverage(face)

    if int(attrs["beard"]):
        draw_beard(c, g, hx, hy, face, look, anime)
    draw_eyes(c, g, hx, hy, attrs, look, domain)
    draw_nose(c, g, hx, hy, look, domain)
    draw_mouth(c, g, hx, hy, attrs, skin, domain)
    if int(attrs["age"]):
        draw_wrinkles(c, g, hx, hy, skin, domain, face_cov)
    if int(attrs["glasses"]):
        draw_glasses(c, g, hx, hy, look, domain)

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
        strokes = streaks(rng, side, length=side / 6, width=max(1.0, side / 40), angle=angle)
        fine = streaks(rng, side, length=side / 12, width=1.0, angle=angle + 25)
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


def validate_resolution(resolution: int) -> None:
    """Raise ValueError unless ``resolution`` is an integer in 32..256."""
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
    check_domain(domain)
    validate_resolution(resolution)
    side = resolution * 2 if resolution < _SSAA_BELOW else resolution
    img = _draw_face(attrs, domain, side, rng)
    img = _post(img, domain, rng)
    out = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if side != resolution:
        out = np.asarray(
            Image.fromarray(out).resize((resolution, resolution), Image.Resampling.LANCZOS)
        )
    return out


def iter_faces(
    domain: str, n: int, resolution: int, seed: int, priors: Mapping | None = None
) -> Iterator[tuple[np.ndarray, dict]]:
    """Render the faces of :func:`render_batch` one at a time: ``(image, attrs)`` pairs."""
    attrs = sample_attributes(domain, n, attribute_rng(domain, seed), priors)
    for i, a in enumerate(attrs):
        yield render_face(a, domain, resolution, image_rng(domain, seed, i)), a


def render_batch(
    domain: str, n: int, resolution: int, seed: int, priors: Mapping | None = None
) -> tuple[np.ndarray, list[dict]]:
    """Render ``n`` faces of ``domain``, deterministic per ``(domain, seed)``.

    Image i depends only on (domain, seed, i), so a larger ``n`` extends a smaller one.

    Returns:
        uint8 images ``(n, R, R, 3)`` and their attribute dicts.
    """
    validate_resolution(resolution)
    images = np.empty((n, resolution, resolution, 3), dtype=np.uint8)
    attrs = []
    for i, (img, a) in enumerate(iter_faces(domain, n, resolution, seed, priors)):
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
    check_domain(domain)
    attrs = sample_attributes(domain, n, attribute_rng(domain, seed))
    ita = np.empty((len(SKIN_RGB), n))
    for i, a in enumerate(attrs):
        mask = skin_region_mask(resolution, a)
        for tone in range(len(SKIN_RGB)):
            rng = image_rng(domain, seed, i)
            img = render_face({**a, "skin_tone": tone}, domain, resolution, rng)
            ita[tone, i] = median_ita(img[mask])
    return np.median(ita, axis=1)
