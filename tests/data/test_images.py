from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from net2fair.data.images import (
    IMAGE_EXTENSIONS,
    ImageError,
    check_image,
    list_images,
    load_image,
    save_image_atomic,
    tensor_to_pil,
    tensor_to_uint8,
    to_tensor,
    to_uint8_array,
    uint8_to_tensor,
)
from tests.badinputs import (
    EXIF_STORED_SIZE,
    VALID_SIZE,
    expected_size,
    write_bad_inputs,
    write_valid_faces,
)

BAD_DIR_NAME = "bad_inputs"


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]]]:
    root = tmp_path_factory.mktemp("images") / BAD_DIR_NAME
    return root, write_bad_inputs(root)


def _kinds() -> dict[str, list[str]]:
    # The parametrisation needs the names at collection time: write once to a scratch dir.
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return write_bad_inputs(Path(tmp) / "x")


KINDS = _kinds()


def test_bad_inputs_cover_enough_kinds():
    assert len(KINDS["bad"]) + len(KINDS["odd_valid"]) >= 20
    assert len(KINDS["bad"]) >= 10


@pytest.mark.parametrize("rel", KINDS["bad"])
def test_bad_file_raises_image_error_with_reason(bad_inputs, rel):
    root, _ = bad_inputs
    with pytest.raises(ImageError) as info:
        load_image(root / rel)
    err = info.value
    assert err.path == root / rel
    assert err.reason and "\n" not in err.reason
    assert str(err) == f"{root / rel}: {err.reason}"
    assert isinstance(err, ValueError)


@pytest.mark.parametrize(
    ("rel", "words"),
    [
        ("empty.jpg", "empty file"),
        ("truncated.png", "truncated"),
        ("truncated.jpg", "truncated"),
        ("text.jpg", "not an image"),
        ("tiny_1x1.png", "too small (1x1"),
        ("thin_4000x10.png", "aspect ratio (4000x10"),
        ("bomb_30000x30000.png", "too large"),
        ("dir.jpg", "folder"),
        ("broken_link.png", "broken symlink"),
    ],
)
def test_bad_file_reasons(bad_inputs, rel, words):
    root, _ = bad_inputs
    with pytest.raises(ImageError) as info:
        load_image(root / rel)
    assert words in info.value.reason


def test_image_error_survives_pickling():
    # DataLoader workers send exceptions to the main process by pickling them.
    import pickle

    err = pickle.loads(pickle.dumps(ImageError("a/b.png", "empty file")))
    assert (err.path, err.reason, str(err)) == (
        Path("a/b.png"),
        "empty file",
        "a/b.png: empty file",
    )


def test_missing_file_is_an_image_error(tmp_path):
    with pytest.raises(ImageError, match="file not found"):
        load_image(tmp_path / "nope.png")


def test_max_pixels_is_checked_before_decoding(bad_inputs):
    root, _ = bad_inputs
    with pytest.raises(ImageError, match=r"image too large \(40x32 pixels, limit 1000\)"):
        load_image(root / "png_named.jpg", max_pixels=1000)


@pytest.mark.parametrize("rel", KINDS["odd_valid"])
def test_odd_valid_file_loads_as_rgb(bad_inputs, rel):
    root, _ = bad_inputs
    img = load_image(root / rel)
    assert img.mode == "RGB"
    assert img.size == expected_size(rel)
    img.load()  # still usable after the file was closed
    assert np.asarray(img).shape == (img.height, img.width, 3)


def test_exif_orientation_is_applied(bad_inputs):
    root, _ = bad_inputs
    img = load_image(root / "exif_rotated.jpg")
    assert img.size == (EXIF_STORED_SIZE[1], EXIF_STORED_SIZE[0])
    arr = np.asarray(img).astype(int)
    top, bottom = arr[2, img.width // 2], arr[-3, img.width // 2]
    assert top[0] > 200 and top[2] < 60  # red on top
    assert bottom[2] > 200 and bottom[0] < 60  # blue below


def test_16_bit_images_are_scaled_not_clipped(bad_inputs):
    root, _ = bad_inputs
    gray = np.asarray(load_image(root / "gray16.png"))
    assert np.all(np.abs(gray.astype(int) - round(40000 * 255 / 65535)) <= 1)
    rgb = np.asarray(load_image(root / "rgb16.png"))
    assert np.all(np.abs(rgb[0, 0].astype(int) - [128, 64, 192]) <= 1)


def test_alpha_is_composited_on_mid_grey(bad_inputs):
    root, _ = bad_inputs
    arr = np.asarray(load_image(root / "rgba_transparent.png"))
    assert np.all(arr == 128)
    la = np.asarray(load_image(root / "la.png")).astype(int)
    # The alpha gradient runs top (transparent) to bottom (opaque).
    assert np.all(np.abs(la[0] - 128) <= 2)
    assert not np.all(np.abs(la[-1] - 128) <= 2)


def test_animated_image_gives_first_frame(bad_inputs):
    root, _ = bad_inputs
    arr = np.asarray(load_image(root / "animated.gif"))
    assert np.all(arr == [255, 0, 0])


def test_cmyk_comes_back_close_to_the_original(bad_inputs):
    root, _ = bad_inputs
    cmyk = np.asarray(load_image(root / "cmyk.jpg")).astype(int)
    rgb = np.asarray(load_image(root / "png_named.jpg")).astype(int)
    assert np.abs(cmyk - rgb).mean() < 10


@pytest.mark.parametrize(
    ("mode", "values", "expected"),
    [
        ("I", np.full((16, 16), 65535, dtype=np.int32), 255),
        ("I", np.full((16, 16), 32896, dtype=np.int32), 128),
        ("F", np.full((16, 16), 0.5, dtype=np.float32), 128),
    ],
)
def test_wide_modes_from_tiff(tmp_path, mode, values, expected):
    path = tmp_path / "wide.tiff"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == mode
    assert np.all(np.asarray(load_image(path)) == expected)


def test_size_hint_decodes_jpeg_smaller_but_large_enough(bad_inputs):
    root, _ = bad_inputs
    full = load_image(root / "big_photo.jpg")
    small = load_image(root / "big_photo.jpg", size_hint=64)
    assert min(small.size) >= 64
    assert small.width < full.width
    assert small.width / small.height == pytest.approx(full.width / full.height, rel=0.02)


def test_check_image_reads_the_header_only(bad_inputs):
    root, _ = bad_inputs
    assert check_image(root / "png_named.jpg") == VALID_SIZE
    with pytest.raises(ImageError, match="too large"):
        check_image(root / "bomb_30000x30000.png")
    # Truncated pixel data is only found by a full decode.
    assert check_image(root / "truncated.png") == (256, 256)


# ----------------------------------------------------------------------------- list_images


def test_list_images_finds_candidates_and_terminates_on_loop(bad_inputs):
    root, kinds = bad_inputs
    images, skipped = list_images(root)
    rels = [p.relative_to(root).as_posix() for p in images]
    assert rels == sorted(rels)
    assert "a/x.png" in rels and "b/x.png" in rels
    assert "link_to_valid.png" in rels
    assert set(kinds["odd_valid"]) <= set(rels)
    not_listed = {"dir.jpg", "broken_link.png", "._resource_fork.jpg"}
    assert set(rels) == (set(kinds["odd_valid"]) | set(kinds["bad"])) - not_listed
    assert not any(r.startswith("loop/") for r in rels)
    reasons = {p.relative_to(root).as_posix(): r for p, r in skipped}
    assert "folder" in reasons["dir.jpg"]
    assert reasons["broken_link.png"] == "broken symlink"
    assert "loop" in reasons["loop"]
    assert "hidden" in reasons["._resource_fork.jpg"]


def test_list_images_order_is_by_relative_posix_path(tmp_path):
    names = ["b.png", "a/z.png", "a b.png", "A.PNG", "a/a/y.jpeg", "c.webp", "ab.bmp"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "readme.txt").write_text("not an image")
    images, skipped = list_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in images] == sorted(names)
    assert skipped == []


def test_list_images_follows_symlinked_folders_once(tmp_path):
    write_valid_faces(tmp_path / "real", 2, 16)
    (tmp_path / "real" / "up").symlink_to("..")
    (tmp_path / "alias").symlink_to("real")
    images, skipped = list_images(tmp_path)
    rels = [p.relative_to(tmp_path).as_posix() for p in images]
    # "alias" sorts first and is scanned first; "real" is then a folder already scanned.
    assert len(rels) == 2
    assert len(skipped) == 2


def test_list_images_single_file_and_missing_root(tmp_path):
    path = write_valid_faces(tmp_path, 1, 16)[0]
    assert list_images(path) == ([path], [])
    with pytest.raises(FileNotFoundError, match="nope"):
        list_images(tmp_path / "nope")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_list_images_reports_unreadable_files(tmp_path):
    path = write_valid_faces(tmp_path, 1, 16)[0]
    path.chmod(0)
    images, skipped = list_images(tmp_path)
    assert images == [] and skipped == [(path, "permission denied")]
    with pytest.raises(ImageError, match="permission denied"):
        load_image(path)


def test_permission_problems_are_reported_even_as_root(tmp_path, monkeypatch):
    # Root reads everything, so simulate the refusals the system would give another user.
    import net2fair.data.images as images

    path = write_valid_faces(tmp_path, 1, 16)[0]
    monkeypatch.setattr(images.os, "access", lambda p, mode: False)
    assert list_images(tmp_path) == ([], [(path, "permission denied")])

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(images.Image, "open", refuse)
    with pytest.raises(ImageError, match="permission denied"):
        load_image(path)


def test_extensions_are_matched_case_insensitively(tmp_path):
    for ext in IMAGE_EXTENSIONS:
        (tmp_path / f"x{ext.upper()}").write_bytes(b"x")
    assert len(list_images(tmp_path)[0]) == len(IMAGE_EXTENSIONS)


# ----------------------------------------------------------------------------- tensors


def _stripes(width: int, height: int) -> Image.Image:
    """Left third red, middle third green, right third blue."""
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    arr[:, : width // 3, 0] = 255
    arr[:, width // 3 : 2 * width // 3, 1] = 255
    arr[:, 2 * width // 3 :, 2] = 255
    return Image.fromarray(arr)


@pytest.mark.parametrize("size", [(90, 30), (30, 90), (17, 13)])
def test_to_tensor_shape_and_range(size):
    x = to_tensor(_stripes(*size), 12)
    assert x.shape == (3, 12, 12) and x.dtype == torch.float32
    assert x.min() >= -1.0 and x.max() <= 1.0


def test_to_tensor_crops_the_centre_of_wide_images():
    x = to_tensor(_stripes(90, 30), 16)
    # Only the green middle third survives a centre crop of a 3:1 image (the outermost
    # columns may blend with the neighbours through the bicubic kernel).
    assert torch.allclose(x[1, :, 1:-1], torch.ones(16, 14), atol=0.02)
    assert x[0, :, 2:-2].max() < -0.9 and x[2, :, 2:-2].max() < -0.9


def test_to_tensor_reaches_both_ends_of_the_range():
    arr = np.zeros((20, 20, 3), dtype=np.uint8)
    arr[:, 10:] = 255
    x = to_tensor(Image.fromarray(arr), 20)
    assert x.min().item() == -1.0 and x.max().item() == 1.0


def test_uint8_round_trip_is_exact():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    x = uint8_to_tensor(arr)
    assert x.shape == (3, 9, 7)
    assert np.array_equal(np.asarray(tensor_to_pil(x)), arr)
    batch = uint8_to_tensor(torch.from_numpy(np.stack([arr, arr])))
    assert batch.shape == (2, 3, 9, 7)
    assert torch.equal(batch[1], x)


def test_to_uint8_array_matches_to_tensor():
    img = _stripes(50, 40)
    arr = to_uint8_array(img, 24)
    assert arr.shape == (24, 24, 3) and arr.dtype == np.uint8
    assert torch.equal(uint8_to_tensor(arr), to_tensor(img, 24))


def test_uint8_to_tensor_rejects_wrong_input():
    with pytest.raises(TypeError, match="uint8"):
        uint8_to_tensor(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="H, W, 3"):
        uint8_to_tensor(np.zeros((4, 4), dtype=np.uint8))


def test_tensor_to_pil_clips_and_checks_shape():
    img = tensor_to_pil(torch.tensor([-3.0, 0.0, 3.0]).view(3, 1, 1).expand(3, 2, 2))
    assert img.getpixel((0, 0)) == (0, 128, 255)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        tensor_to_pil(torch.zeros(1, 3, 4, 4))


def test_save_image_atomic_leaves_only_the_file(tmp_path):
    out = tmp_path / "sub" / "img.png"
    x = torch.linspace(-1, 1, 3 * 8 * 8).view(3, 8, 8)
    assert save_image_atomic(x, out) == out
    assert os.listdir(out.parent) == ["img.png"]
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(tensor_to_pil(x)))
    save_image_atomic(Image.new("RGBA", (8, 8), (1, 2, 3, 0)), tmp_path / "a.jpg")
    assert Image.open(tmp_path / "a.jpg").mode == "RGB"


def test_save_image_atomic_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    out = tmp_path / "img.png"
    save_image_atomic(Image.new("RGB", (8, 8), (255, 0, 0)), out)
    before = out.read_bytes()

    def broken_save(self, fp, format=None, **kwargs):  # noqa: A002
        fp.write(b"half an image")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_image_atomic(Image.new("RGB", (8, 8)), out)
    assert out.read_bytes() == before
    assert os.listdir(tmp_path) == ["img.png"]


def test_save_image_atomic_needs_a_known_extension(tmp_path):
    with pytest.raises(ValueError, match="format"):
        save_image_atomic(Image.new("RGB", (8, 8)), tmp_path / "img.unknown")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------ the sweep (property-based)
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "YCbCr"]
_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP", "bmp": "BMP", "gif": "GIF"}


def _encode(mode: str, size: tuple[int, int], seed: int, fmt: str) -> bytes | None:
    import io

    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    try:
        im = base.convert(mode) if mode not in ("I;16", "I", "F") else base.convert("L")
        if mode in ("I;16", "I", "F"):
            im = im.convert(mode)
        buf = io.BytesIO()
        im.save(buf, format=fmt)
    except (OSError, ValueError, KeyError):
        return None  # this format cannot hold this mode: nothing to test
    return buf.getvalue()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    mode=st.sampled_from(_MODES),
    # smaller than 8 px or flatter than 8:1 is refused by design
    size=st.tuples(st.integers(12, 80), st.integers(12, 80)),
    seed=st.integers(0, 2**16),
    ext=st.sampled_from(sorted(_FORMATS)),
    cut=st.one_of(st.none(), st.floats(0.0, 1.0)),
    flip=st.one_of(st.none(), st.tuples(st.integers(0, 10_000), st.integers(0, 255))),
)
def test_any_image_file_loads_as_rgb_or_is_one_clear_error(
    tmp_path: Path, mode: str, size: tuple[int, int], seed: int, ext: str, cut, flip
) -> None:
    """Every mode in every format, whole, truncated or with a corrupted byte: the loader
    gives an RGB image of the stored size, or an ImageError of one line naming the file."""
    data = _encode(mode, size, seed, _FORMATS[ext])
    if data is None:
        return
    damaged = cut is not None or flip is not None
    if cut is not None:
        data = data[: int(len(data) * cut)]
    if flip is not None and data:
        b = bytearray(data)
        b[flip[0] % len(b)] = flip[1]
        data = bytes(b)
    path = tmp_path / f"sweep.{ext}"
    path.write_bytes(data)
    try:
        img = load_image(path)
    except ImageError as e:
        text = str(e)
        assert "\n" not in text and str(path) in text, text
        assert damaged, f"an intact {mode} {ext} was refused: {text}"
        return
    assert img.mode == "RGB"
    if not damaged:
        assert img.size == size
    arr = to_uint8_array(img, 32)
    assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=2048), st.sampled_from(sorted(_FORMATS)))
def test_random_bytes_never_crash_the_loader(tmp_path: Path, data: bytes, ext: str) -> None:
    path = tmp_path / f"noise.{ext}"
    path.write_bytes(data)
    try:
        img = load_image(path)
    except ImageError as e:
        assert "\n" not in str(e) and str(path) in str(e)
    else:
        assert img.mode == "RGB"


def test_tensor_to_uint8_inverts_uint8_to_tensor_and_clips():
    pixels = np.random.default_rng(0).integers(0, 256, (2, 5, 4, 3), dtype=np.uint8)
    x = uint8_to_tensor(pixels)
    out = tensor_to_uint8(x)
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.array_equal(out, pixels)
    assert np.array_equal(tensor_to_uint8(x[1]), pixels[1])  # one (3, H, W) image
    assert np.array_equal(np.asarray(tensor_to_pil(x[0])), pixels[0])
    edge = torch.tensor([-3.0, -1.0, 0.0, 1.0, 3.0]).view(1, 1, 5).expand(3, 1, 5)
    assert tensor_to_uint8(edge)[0, :, 0].tolist() == [0, 0, 128, 255, 255]
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        tensor_to_uint8(torch.zeros(2, 4, 4))
