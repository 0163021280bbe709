"""FFHQ-style face alignment: the geometry without dlib, the real thing with it."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from PIL import Image

from net2fair.data import align
from tests.conftest import FIXTURES

PHOTOS = sorted((FIXTURES / "photo").glob("*.png")) if (FIXTURES / "photo").is_dir() else []
needs_dlib = pytest.mark.skipif(
    align.backend_problem() is not None, reason=str(align.backend_problem())
)


def _landmarks(eye_y: float = 120.0, mouth_y: float = 180.0) -> np.ndarray:
    """68 points with the eye centres at (100, eye_y) and (156, eye_y) and the mouth
    corners at (100, mouth_y) and (156, mouth_y); the rest are unused by the recipe."""
    lm = np.zeros((68, 2))
    lm[36:42] = (100.0, eye_y)
    lm[42:48] = (156.0, eye_y)
    lm[48] = (100.0, mouth_y)
    lm[54] = (156.0, mouth_y)
    return lm


def _centre_and_side(quad: np.ndarray) -> tuple[np.ndarray, float]:
    return quad.mean(0), float(np.hypot(*(quad[3] - quad[0])))


# ------------------------------------------------------------------------------ geometry


def test_ffhq_quad_follows_the_recipe() -> None:
    quad, replaced = align.ffhq_quad(_landmarks())
    assert not replaced
    # eye distance 56, eye-mouth 60: half side max(2 * 56, 1.8 * 60) = 112, centre at
    # the eye midpoint plus a tenth of the way to the mouth.
    np.testing.assert_allclose(quad, [[16, 14], [16, 238], [240, 238], [240, 14]], atol=1e-9)


def test_ffhq_quad_turns_with_the_face() -> None:
    lm = _landmarks()
    theta = np.deg2rad(30)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    c = np.array([128.0, 128.0])
    quad, _ = align.ffhq_quad((lm - c) @ rot.T + c)
    upright, _ = align.ffhq_quad(lm)
    np.testing.assert_allclose(quad, (upright - c) @ rot.T + c, atol=1e-9)


def test_a_mouth_on_the_chin_is_replaced_from_the_eyes() -> None:
    assert align.mouth_is_plausible(_landmarks())
    chin = _landmarks(mouth_y=120 + 56 * 1.9)
    nose = _landmarks(mouth_y=120 + 56 * 0.4)
    sideways = _landmarks()
    sideways[48], sideways[54] = (150.0, 160.0), (210.0, 160.0)
    for lm in (chin, nose, sideways):
        assert not align.mouth_is_plausible(lm)
        quad, replaced = align.ffhq_quad(lm)
        assert replaced
        centre, side = _centre_and_side(quad)
        # Eye-driven: half side 2 * 56 and the mouth placed TYPICAL_MOUTH_RATIO * 56 below.
        np.testing.assert_allclose(side, 224.0)
        np.testing.assert_allclose(centre, [128.0, 120 + 0.1 * align.TYPICAL_MOUTH_RATIO * 56])


def test_warp_quad_of_the_whole_image_is_the_image() -> None:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize(
        (64, 64), Image.Resampling.BICUBIC
    )
    quad = np.array([[0, 0], [0, 64], [64, 64], [64, 0]], dtype=float) - 0.5
    out = align.warp_quad(img, quad, 64)
    assert out.size == (64, 64)
    assert np.abs(np.asarray(out, float) - np.asarray(img, float)).mean() < 4.0


def test_warp_quad_fills_outside_the_photo_softly() -> None:
    img = Image.new("RGB", (64, 64), (200, 40, 40))
    # A square twice the photo's size around it: three quarters is outside.
    quad = np.array([[-32, -32], [-32, 96], [96, 96], [96, -32]], dtype=float)
    out = np.asarray(align.warp_quad(img, quad, 32)).astype(int)
    assert out.shape == (32, 32, 3)
    # Mirrored, not black: the padding keeps the photo's colours.
    assert out.min() > 0 and np.abs(out - [200, 40, 40]).max() < 16


def test_centre_crop() -> None:
    img = Image.new("RGB", (300, 100), (0, 0, 0))
    img.paste((255, 255, 255), (100, 0, 200, 100))
    out = np.asarray(align.centre_crop(img, 50))
    # Only the white middle third, up to a little bicubic ringing at the edges.
    assert out.shape == (50, 50, 3) and out[:, 1:-1].min() > 240 and out.mean() > 250


# ---------------------------------------------------------------------------- fallbacks


def test_without_dlib_a_centred_crop_and_a_notice(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        align.importlib.util, "find_spec", lambda name, *a: None if name == "dlib" else real(name)
    )
    img = Image.new("RGB", (80, 60), (1, 2, 3))
    res = align.align_face(img, 32)
    assert not res.aligned and res.quad is None
    assert res.image.size == (32, 32)
    assert "dlib" in res.notice and "net2fair[align]" in res.notice
    assert "centred crop" in res.notice


def test_without_the_landmark_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(align, "landmark_model_path", lambda: None)
    if importlib.util.find_spec("dlib") is None:
        pytest.skip("dlib missing: that notice comes first")
    res = align.align_face(Image.new("RGB", (40, 40)), 16)
    assert not res.aligned and "landmark model" in res.notice


def test_a_failing_detector_is_a_notice_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(align, "backend_problem", lambda: None)

    def boom(image: Image.Image) -> None:
        raise RuntimeError("Unsupported image type")

    monkeypatch.setattr(align, "detect_landmarks", boom)
    res = align.align_face(Image.new("RGB", (40, 40)), 16)
    assert not res.aligned and "RuntimeError" in res.notice and res.image.size == (16, 16)


# ------------------------------------------------------------------------------ with dlib


@needs_dlib
def test_no_face_in_noise() -> None:
    noise = np.random.default_rng(3).integers(0, 256, (200, 150, 3), dtype=np.uint8)
    res = align.align_face(Image.fromarray(noise), 64)
    assert not res.aligned and res.notice.startswith("no face found")
    assert res.image.size == (64, 64)


@needs_dlib
@pytest.mark.skipif(not PHOTOS, reason="no fixture photos in ../shared")
def test_aligned_fixture_photos_stay_where_they_are() -> None:
    # The FFHQ fixtures are already aligned this way (at 256 px): aligning again must
    # land on almost the same square.
    for path in PHOTOS:
        img = Image.open(path).convert("RGB")
        res = align.align_face(img, 256)
        assert res.aligned and res.notice is None, path.name
        centre, side = _centre_and_side(res.quad)
        assert np.abs(centre - 128).max() < 2.0, (path.name, centre)
        assert abs(side - 256) < 8.0, (path.name, side)
        mad = np.abs(np.asarray(res.image, float) - np.asarray(img, float)).mean()
        assert mad < 15.0, (path.name, mad)


@needs_dlib
@pytest.mark.skipif(not PHOTOS, reason="no fixture photos in ../shared")
def test_a_tilted_offset_face_is_straightened() -> None:
    img = Image.open(PHOTOS[2]).convert("RGB")
    canvas = Image.new("RGB", (600, 480), (40, 90, 40))
    canvas.paste(img.rotate(20, expand=True, fillcolor=(40, 90, 40)), (260, 140))
    res = align.align_face(canvas, 256)
    assert res.aligned
    target = np.asarray(img, float)
    mad = np.abs(np.asarray(res.image, float) - target).mean()
    naive = np.abs(np.asarray(align.centre_crop(canvas, 256), float) - target).mean()
    assert mad < 15.0 and naive > 3 * mad, (mad, naive)
