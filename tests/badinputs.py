"""Bad and odd image files, written at test time (no binaries in the repository).

``write_bad_inputs(folder)`` fills a folder with every kind of file an image command must
survive; tests of ``load_image``, the datasets and the commands (project, report, audit,
the viewer's upload) all use it. ``write_valid_faces`` writes plain valid images.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, features

# Sizes of the odd-but-valid images, as (width, height) after loading. Tests check them.
VALID_SIZE = (40, 32)
EXIF_STORED_SIZE = (48, 24)  # stored landscape; orientation 6 makes it (24, 48)
GRAY16_VALUE = 40000  # -> 155 or 156 in 8 bits; 255 would mean it was clipped
RGB16_VALUE = (0x8000, 0x4000, 0xC000)  # -> about (128, 64, 192)
BIG_FACTOR = 40  # big_photo.jpg is VALID_SIZE times this


def expected_size(rel: str) -> tuple[int, int]:
    """(width, height) that an odd-but-valid file must load as, upright."""
    if rel == "exif_rotated.jpg":
        return EXIF_STORED_SIZE[1], EXIF_STORED_SIZE[0]
    if rel == "big_photo.jpg":
        return VALID_SIZE[0] * BIG_FACTOR, VALID_SIZE[1] * BIG_FACTOR
    return VALID_SIZE


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png(width: int, height: int, bit_depth: int, color_type: int, idat: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _rgb16_png(width: int, height: int, value: tuple[int, int, int]) -> bytes:
    # Pillow cannot write 16-bit RGB, so the file is built by hand: filter byte 0 then
    # big-endian 16-bit samples on each row.
    row = b"\x00" + struct.pack(">HHH", *value) * width
    return _png(width, height, 16, 2, zlib.compress(row * height))


def _bomb_png(side: int = 30000) -> bytes:
    # A valid header announcing side x side RGB with a tiny (incomplete) IDAT: a loader
    # that trusts the header would try to allocate side * side * 3 bytes.
    return _png(side, side, 8, 2, zlib.compress(b"\x00" * 64))


def _noise(size: tuple[int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _encoded(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def write_bad_inputs(folder: Path) -> dict[str, list[str]]:
    """Write bad and odd inputs into ``folder`` (created if missing).

    Returns:
        ``{"bad": [...], "odd_valid": [...], "ignored": [...]}``: POSIX paths relative to
        ``folder``. "bad" entries must be skipped with a reason; "odd_valid" ones are
        unusual but valid and must be converted to RGB and used, each loading with the size
        ``expected_size(rel)``;
        "ignored" entries are not image candidates at all (a symlink loop, a text file).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bad: list[str] = []
    odd: list[str] = []
    ignored: list[str] = []

    def write(rel: str, data: bytes, kind: list[str]) -> Path:
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        kind.append(rel)
        return path

    w, h = VALID_SIZE
    base = Image.new("RGB", VALID_SIZE, (200, 120, 60))
    ImageDraw.Draw(base).ellipse((8, 6, 32, 26), fill=(230, 190, 160))
    noisy_png = _encoded(_noise((256, 256), 1), "PNG")
    noisy_jpg = _encoded(_noise((256, 256), 2), "JPEG", quality=95)

    # ---- bad: must be skipped with a reason
    write("empty.jpg", b"", bad)
    write("truncated.png", noisy_png[: len(noisy_png) // 2], bad)
    write("truncated.jpg", noisy_jpg[: len(noisy_jpg) // 2], bad)
    write("text.jpg", b"this is not an image, just some text\n" * 20, bad)
    write("png_header_garbage.png", b"\x89PNG\r\n\x1a\n" + os.urandom(200), bad)
    write("tiny_1x1.png", _encoded(Image.new("RGB", (1, 1), (255, 0, 0)), "PNG"), bad)
    write("thin_4000x10.png", _encoded(Image.new("RGB", (4000, 10), (0, 0, 255)), "PNG"), bad)
    write("bomb_30000x30000.png", _bomb_png(), bad)
    write("._resource_fork.jpg", b"\x00\x05\x16\x07" + b"\x00" * 80, bad)
    (folder / "dir.jpg").mkdir()
    bad.append("dir.jpg")
    os.symlink("does-not-exist.png", folder / "broken_link.png")
    bad.append("broken_link.png")

    # ---- odd but valid: must be converted and used
    write("png_named.jpg", _encoded(base, "PNG"), odd)
    write("jpeg_named.png", _encoded(base, "JPEG"), odd)
    write("UPPER_CASE.JPG", _encoded(base, "JPEG"), odd)
    write("rgb16.png", _rgb16_png(w, h, RGB16_VALUE), odd)
    gray16 = Image.fromarray(np.full((h, w), GRAY16_VALUE, dtype=np.uint16))
    write("gray16.png", _encoded(gray16, "PNG"), odd)
    write("cmyk.jpg", _encoded(base.convert("CMYK"), "JPEG"), odd)
    write("gray.jpg", _encoded(base.convert("L"), "JPEG"), odd)
    write("bilevel.png", _encoded(base.convert("1"), "PNG"), odd)
    palette = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    write("palette_transparent.png", _encoded(palette, "PNG", transparency=0), odd)
    write("palette.bmp", _encoded(palette, "BMP"), odd)
    la = base.convert("L").convert("LA")
    la.putalpha(Image.linear_gradient("L").resize(VALID_SIZE))
    write("la.png", _encoded(la, "PNG"), odd)
    rgba = base.convert("RGBA")
    rgba.putalpha(0)  # fully transparent: must come out mid-grey
    write("rgba_transparent.png", _encoded(rgba, "PNG"), odd)
    frames = [Image.new("RGB", VALID_SIZE, c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    write(
        "animated.gif",
        _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50),
        odd,
    )
    # Left half red, right half blue, stored landscape; orientation 6 means "rotate 90
    # degrees clockwise to display": upright, red is on top and the image is portrait.
    stored = Image.new("RGB", EXIF_STORED_SIZE, (255, 0, 0))
    ImageDraw.Draw(stored).rectangle(
        (EXIF_STORED_SIZE[0] // 2, 0, EXIF_STORED_SIZE[0], EXIF_STORED_SIZE[1]), fill=(0, 0, 255)
    )
    exif = Image.Exif()
    exif[0x0112] = 6
    write("exif_rotated.jpg", _encoded(stored, "JPEG", exif=exif, quality=95), odd)
    if features.check("webp"):
        write("image.webp", _encoded(base, "WEBP"), odd)
    write("big_photo.jpg", _encoded(base.resize((w * BIG_FACTOR, h * BIG_FACTOR)), "JPEG"), odd)
    write("with spaces in name.png", _encoded(base, "PNG"), odd)
    write("visage é.png", _encoded(base, "PNG"), odd)
    write("<script>alert(1)<script>.png", _encoded(base, "PNG"), odd)
    write("a/x.png", _encoded(base, "PNG"), odd)
    write("b/x.png", _encoded(Image.new("RGB", VALID_SIZE, (10, 200, 30)), "PNG"), odd)
    os.symlink("a/x.png", folder / "link_to_valid.png")
    odd.append("link_to_valid.png")
    locked = write("unreadable.png", _encoded(base, "PNG"), [])
    locked.chmod(0)
    # Tests often run as root, which reads the file anyway: ask the system which it is.
    (odd if os.access(locked, os.R_OK) else bad).append("unreadable.png")

    # ---- not image candidates at all
    os.symlink(".", folder / "loop")
    ignored.append("loop")
    write("notes.txt", b"a text file next to the images\n", ignored)

    return {"bad": sorted(bad), "odd_valid": sorted(odd), "ignored": sorted(ignored)}


def write_valid_faces(
    folder: Path,
    n: int,
    size: int = 32,
    seed: int = 0,
    *,
    prefix: str = "face",
) -> list[Path]:
    """Write ``n`` simple, valid face-like PNGs (``size`` x ``size``) into ``folder``.

    Each has a random background, a skin-coloured ellipse and two eyes, so images differ
    from each other and flips change them. Returns the paths in sorted order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        bg = tuple(int(c) for c in rng.integers(0, 256, 3))
        skin = tuple(int(c) for c in rng.integers(80, 256, 3))
        img = Image.new("RGB", (size, size), bg)
        draw = ImageDraw.Draw(img)
        dx = int(rng.integers(-size // 8, size // 8 + 1))
        draw.ellipse((size // 4 + dx, size // 6, 3 * size // 4 + dx, 5 * size // 6), fill=skin)
        eye = max(1, size // 16)
        for ex in (size * 7 // 16 + dx, size * 9 // 16 + dx):
            draw.ellipse((ex - eye, size // 2 - eye, ex + eye, size // 2 + eye), fill=(0, 0, 0))
        # A mark on one side only: a horizontal flip always changes the image.
        draw.rectangle((0, 0, size // 8, size // 8), fill=(255, 255, 255))
        path = folder / f"{prefix}_{i:05d}.png"
        img.save(path)
        paths.append(path)
    return paths
