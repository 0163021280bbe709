"""Reading image files safely and turning them into tensors.

Every image that enters net2fair goes through :func:`load_image`: it applies the EXIF
orientation, converts any Pillow mode to 8-bit RGB and turns every file problem (empty,
truncated, not an image, decompression bomb, too small, extreme aspect ratio, permission
denied) into an :class:`ImageError` with a short reason, so a run can skip the file, say
why in one line, and go on.

Tensors follow one convention everywhere: ``(3, H, W)`` (or ``(B, 3, H, W)``) float in
[-1, 1]; compact caches hold ``(H, W, 3)`` uint8.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from net2fair.fileio import atomic_write

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
"""File name endings treated as images when scanning folders (matched case-insensitively)."""

DEFAULT_MAX_PIXELS = 50_000_000
MIN_SIDE = 8
#: how faces sit in the images: "ffhq" (aligned photos, FFHQ crop) or "synthetic" (the
#: renderer's faces); fixes where the skin and background are measured
LAYOUTS = ("ffhq", "synthetic")
"""Images with a side shorter than this many pixels are rejected."""
MAX_ASPECT = 8.0
"""Images longer than this many times their width (or the reverse) are rejected."""

# Mid-grey rather than white or black: a transparent background should not read as a
# skin-tone or brightness signal in the bias measures.
_ALPHA_BACKGROUND = (128, 128, 128, 255)

_EXIF_ORIENTATION = 0x0112


class ImageError(ValueError):
    """A file that cannot be used as an image.

    Attributes:
        path: the offending file.
        reason: a short, one-line explanation (``"empty file"``, ``"truncated or corrupt
            data (...)"``, ...).
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = _one_line(reason)
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self) -> tuple[type[ImageError], tuple[Path, str]]:
        # Keeps the two attributes when the error crosses a DataLoader worker boundary.
        return (type(self), (self.path, self.reason))


def _one_line(text: object, limit: int = 200) -> str:
    lines = str(text).strip().splitlines()
    line = lines[0].strip() if lines else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _describe(exc: BaseException) -> str:
    message = _one_line(exc)
    return message or type(exc).__name__


def is_image_name(name: str) -> bool:
    """Whether a file name ends in one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


# ----------------------------------------------------------------------------- scanning


def list_images(root: str | Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Find the image files under a folder, or accept a single file.

    The scan is recursive and follows symlinked folders, but never enters the same real
    folder twice, so symlink loops terminate. Hidden entries (names starting with ``.``)
    are ignored, as are files whose names do not end in :data:`IMAGE_EXTENSIONS`.
    Contents are not decoded here: :func:`load_image` decides whether a file is usable.

    Arguments:
        root: a folder, or one file (returned as is, whatever its name, so commands can
            take IMAGE_OR_DIR).

    Returns:
        ``(images, skipped)``: image paths (``root`` joined with the relative path),
        sorted by their relative POSIX path; and ``(path, reason)`` for entries that look
        like images or folders but were left out (a folder named like an image, a broken
        symlink, a permission problem, a symlink loop, a hidden image file).

    Raises:
        FileNotFoundError: ``root`` does not exist.
    """
    root = Path(root)
    if not root.exists():
        if root.is_symlink():
            raise FileNotFoundError(f"broken symlink, target does not exist: {root}")
        raise FileNotFoundError(f"no such file or folder: {root}")
    if not root.is_dir():
        return [root], []

    images: list[tuple[str, Path]] = []
    skipped: list[tuple[str, Path, str]] = []
    try:
        visited = {_dir_key(root)}
    except OSError as exc:
        raise FileNotFoundError(f"cannot read folder {root}: {_describe(exc)}") from exc
    pending: list[tuple[Path, str]] = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except PermissionError:
            skipped.append((prefix, folder, "permission denied (folder)"))
            continue
        except OSError as exc:
            skipped.append((prefix, folder, f"cannot read folder ({_describe(exc)})"))
            continue
        for entry in entries:
            rel = f"{prefix}{entry.name}"
            path = folder / entry.name
            looks_like_image = is_image_name(entry.name)
            if entry.name.startswith("."):
                if looks_like_image:
                    skipped.append((rel, path, "hidden file"))
                continue
            try:
                is_dir = entry.is_dir()  # follows symlinks
                is_file = not is_dir and entry.is_file()
            except OSError as exc:
                skipped.append((rel, path, f"cannot access ({_describe(exc)})"))
                continue
            if is_dir:
                try:
                    key = _dir_key(path)
                except OSError as exc:
                    skipped.append((rel, path, f"cannot access folder ({_describe(exc)})"))
                    continue
                if key in visited:
                    skipped.append((rel, path, "symlink to a folder already scanned (loop?)"))
                    continue
                visited.add(key)
                if looks_like_image:
                    skipped.append((rel, path, "is a folder named like an image; scanning it"))
                pending.append((path, rel + "/"))
            elif not looks_like_image:
                continue
            elif is_file:
                if not os.access(path, os.R_OK):
                    skipped.append((rel, path, "permission denied"))
                else:
                    images.append((rel, path))
            elif entry.is_symlink() and not path.exists():
                skipped.append((rel, path, "broken symlink"))
            else:
                skipped.append((rel, path, "not a regular file"))
    images.sort(key=lambda item: item[0])
    skipped.sort(key=lambda item: item[0])
    return [p for _, p in images], [(p, reason) for _, p, reason in skipped]


def _dir_key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return (st.st_dev, st.st_ino)


# ----------------------------------------------------------------------------- loading


def _check_geometry(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageError(path, f"image too large ({width}x{height} pixels, limit {max_pixels})")
    if min(width, height) < MIN_SIDE:
        raise ImageError(
            path, f"image too small ({width}x{height} pixels, minimum {MIN_SIDE} on a side)"
        )
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageError(
            path, f"extreme aspect ratio ({width}x{height} pixels, limit {MAX_ASPECT:g}:1)"
        )


def _open(path: Path, max_pixels: int) -> Image.Image:
    """Open the header of an image file, raising ImageError for every file problem."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageError(
            path, "broken symlink" if path.is_symlink() else "file not found"
        ) from None
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except OSError as exc:
        raise ImageError(path, f"cannot access file ({_describe(exc)})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(path, "is a folder, not an image")
    if not stat.S_ISREG(st.st_mode):
        # Opening a FIFO or a device would block or read forever.
        raise ImageError(path, "not a regular file")
    if st.st_size == 0:
        raise ImageError(path, "empty file")
    try:
        with warnings.catch_warnings():
            # We apply our own, lower, pixel limit right after opening.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except UnidentifiedImageError:
        raise ImageError(path, "not an image, or an unknown format") from None
    except Image.DecompressionBombError as exc:
        # Pillow's own hard limit fired before we could see the size.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{found.group(1)} pixels" if found else "over Pillow's limit"
        raise ImageError(path, f"image too large ({size}, limit {max_pixels})") from None
    except Exception as exc:  # any parser failure on a bad file is a file problem
        raise ImageError(path, f"unreadable image header ({_describe(exc)})") from None
    try:
        _check_geometry(path, im.width, im.height, max_pixels)
    except ImageError:
        im.close()
        raise
    return im


def check_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """Cheap check of a file from its header only (no pixel decoding).

    Catches everything :func:`load_image` does except truncated or corrupt pixel data.

    Returns:
        ``(width, height)`` as stored (before EXIF orientation).

    Raises:
        ImageError: the file is unusable; ``reason`` says why.
    """
    with _open(Path(path), max_pixels) as im:
        return im.size


def load_image(
    path: str | Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    size_hint: int | None = None,
) -> Image.Image:
    """Read an image file as an upright 8-bit RGB image.

    EXIF orientation is applied; any mode (1, L, LA, P with transparency, RGBA, CMYK,
    I;16, I, F, ...) becomes RGB, with alpha composited on mid-grey and 16-bit data scaled
    to 8 bits (not clipped); animated files give their first frame. The whole file is
    decoded, so truncated data is caught here rather than later.

    Arguments:
        path: the file.
        max_pixels: width * height above which the file is refused before decoding
            (decompression bombs).
        size_hint: the shorter side the caller will resize to, if known. JPEGs are then
            decoded at the smallest DCT scale that keeps at least this many pixels on each
            side, which is several times faster for large photos.

    Raises:
        ImageError: the file is unusable; ``reason`` says why in one line.
    """
    path = Path(path)
    with _open(path, max_pixels) as im:
        try:
            if size_hint is not None and im.format == "JPEG":
                im.draft(None, (size_hint, size_hint))
            im.load()
        except Image.DecompressionBombError:
            raise ImageError(
                path, f"image too large ({im.width}x{im.height} pixels, limit {max_pixels})"
            ) from None
        except Exception as exc:  # decoder failures on bad data are file problems
            raise ImageError(path, f"truncated or corrupt data ({_describe(exc)})") from None
        im = _exif_transpose(im)
        try:
            return _to_rgb(im)
        except ImageError as exc:
            raise ImageError(path, exc.reason) from None
        except Exception as exc:  # odd palettes or modes from a bad file
            raise ImageError(path, f"cannot convert to RGB ({_describe(exc)})") from None


def _exif_transpose(im: Image.Image) -> Image.Image:
    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # broken EXIF must not cost a valid image
        return im
    if orientation in (None, 1):
        return im
    try:
        return ImageOps.exif_transpose(im)
    except Exception as exc:  # broken EXIF again
        logger.debug("ignored EXIF orientation of %s: %s", im, exc)
        return im


def _to_rgb(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        return _gray_array_to_rgb(_scale_int_to_uint8(np.asarray(im)))
    if mode == "F":
        return _gray_array_to_rgb(_scale_float_to_uint8(np.asarray(im)))
    if mode in ("LA", "La", "PA", "RGBA", "RGBa") or im.has_transparency_data:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _ALPHA_BACKGROUND)
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "RGB":
        return im
    try:
        return im.convert("RGB")
    except ValueError:
        raise ImageError("", f"unsupported colour mode {mode}") from None


def _scale_int_to_uint8(arr: np.ndarray) -> np.ndarray:
    arr = arr.astype(np.int64)
    lo, hi = int(arr.min()), int(arr.max())
    if lo >= 0 and hi <= 65535:
        # 16-bit range: 65535 -> 255 with rounding.
        return ((arr * 255 + 32767) // 65535).astype(np.uint8)
    return _stretch(arr.astype(np.float64))


def _scale_float_to_uint8(arr: np.ndarray) -> np.ndarray:
    arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= 0.0 and hi <= 1.0:
        return np.round(arr * 255.0).astype(np.uint8)
    if lo >= 0.0 and hi <= 255.0:
        return np.round(arr).astype(np.uint8)
    return _stretch(arr)


def _stretch(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.round((arr - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _gray_array_to_rgb(gray: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2)))


# ----------------------------------------------------------------------------- tensors


def _resize_center_crop(img: Image.Image, resolution: int) -> Image.Image:
    if resolution <= 0:
        raise ValueError(f"resolution must be a positive number of pixels, got {resolution}")
    if img.mode != "RGB":
        img = _to_rgb(img)
    width, height = img.size
    side = min(width, height)
    left = (width - side) / 2
    top = (height - side) / 2
    # Cropping through the resize box is the same geometry as "shorter side to R, then
    # centre crop", without resampling pixels that are thrown away. reducing_gap lets
    # Pillow reduce() large images by an integer factor first, which is much faster.
    return img.resize(
        (resolution, resolution),
        Image.Resampling.BICUBIC,
        box=(left, top, left + side, top + side),
        reducing_gap=3.0,
    )


def to_uint8_array(img: Image.Image, resolution: int) -> np.ndarray:
    """Resize the shorter side to ``resolution`` (bicubic, antialiased), centre crop.

    Returns:
        ``(R, R, 3)`` uint8 array.
    """
    return np.array(_resize_center_crop(img, resolution), dtype=np.uint8)


def uint8_to_tensor(arr: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Turn ``(..., H, W, 3)`` uint8 pixels into ``(..., 3, H, W)`` float32 in [-1, 1]."""
    if isinstance(arr, np.ndarray):
        if not arr.flags.writeable:
            arr = arr.copy()
        arr = torch.from_numpy(arr)
    if arr.dtype != torch.uint8:
        raise TypeError(f"expected uint8 pixels, got {arr.dtype}")
    if arr.ndim < 3 or arr.shape[-1] != 3:
        raise ValueError(f"expected pixels shaped (..., H, W, 3), got {tuple(arr.shape)}")
    return (arr.movedim(-1, -3).to(torch.float32) / 127.5 - 1.0).contiguous()


def to_tensor(img: Image.Image, resolution: int) -> torch.Tensor:
    """Resize the shorter side to ``resolution``, centre crop, scale to [-1, 1].

    Returns:
        ``(3, R, R)`` float32 tensor in [-1, 1].
    """
    return uint8_to_tensor(to_uint8_array(img, resolution))


def tensor_to_uint8(x: torch.Tensor) -> np.ndarray:
    """Turn images in [-1, 1] into 8-bit pixels: the inverse of :func:`uint8_to_tensor`.

    Arguments:
        x: ``(B, 3, H, W)`` or ``(3, H, W)`` float tensor in [-1, 1], on any device;
            values outside are clipped.

    Returns:
        ``(B, H, W, 3)`` or ``(H, W, 3)`` uint8 array (C-contiguous), each value
        ``round((x + 1) * 127.5)``.
    """
    if x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"expected images shaped (3, H, W) or (B, 3, H, W), got {tuple(x.shape)}")
    x = x.detach().to("cpu", torch.float32).clamp(-1.0, 1.0)
    pixels = ((x + 1.0) * 127.5).round().to(torch.uint8)
    return pixels.movedim(-3, -1).contiguous().numpy()


def tensor_to_pil(x: torch.Tensor) -> Image.Image:
    """Turn a ``(3, H, W)`` tensor in [-1, 1] into an RGB image (values outside are clipped)."""
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected an image tensor shaped (3, H, W), got {tuple(x.shape)}")
    return Image.fromarray(tensor_to_uint8(x))


def save_image_atomic(img: Image.Image | torch.Tensor, path: str | Path) -> Path:
    """Write an image so that ``path`` is either the old file or the complete new one.

    Written with :func:`net2fair.fileio.atomic_write` (a hidden temporary file in the same
    folder, flushed, then moved over ``path``). The format follows the file name ending.
    Missing parent folders are created.

    Arguments:
        img: a PIL image, or a ``(3, H, W)`` tensor in [-1, 1].
        path: where to write, e.g. ``out/grid.png``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    if isinstance(img, torch.Tensor):
        img = tensor_to_pil(img)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the image format from the file name: {path}")
    if fmt == "JPEG" and img.mode not in ("RGB", "L", "CMYK"):
        img = _to_rgb(img)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            img.save(f, format=fmt)

    return atomic_write(path, write)
