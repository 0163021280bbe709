"""Everything the comparison viewer (``viewer_page.py``) needs besides the page itself.

The page only lays out widgets and calls these functions, which hold no Streamlit code
and take and return plain values (uint8 arrays ``(R, R, 3)`` or ``(N, R, R, 3)``, PIL
images, bytes), so they are easy to cache with ``st.cache_data`` and to test without a
browser. Model work goes through :class:`net2fair.Translator`.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from net2fair.data.images import (
    ImageError,
    is_image_name,
    list_images,
    load_image,
    tensor_to_uint8,
    to_uint8_array,
)
from net2fair.models.translator import MODEL_FILES, Translator, resolve_model_path, shipped_models

logger = logging.getLogger(__name__)

#: the Streamlit page, shipped inside the package (``net2fair view`` runs it)
PAGE = Path(__file__).resolve().parent / "viewer_page.py"
UPLOAD_TYPES = ("jpg", "jpeg", "png", "webp")
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_PIXELS = 40_000_000
DISPLAY_MIN = 192
"""Images are shown upscaled (nearest neighbour, so pixels stay honest) to at least this."""
BENCHMARK_SEED = 1000
"""Seed of the benchmark example faces: not the training seed (0), so they are new faces."""
MAX_FOLDER_IMAGES = 2000


# ------------------------------------------------------------------------- page arguments


@dataclass(frozen=True)
class ViewerArgs:
    """Arguments given after ``--`` to ``streamlit run streamlit_app.py``."""

    model: str = "demo"
    models_dir: Path | None = None
    examples: Path | None = None


def parse_args(argv: Sequence[str]) -> ViewerArgs:
    """Read ``--model``, ``--models-dir`` and ``--examples``; anything else is ignored
    (Streamlit and test runners put their own arguments in ``sys.argv``)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--examples", type=Path, default=None)
    args, _ = parser.parse_known_args(list(argv))
    return ViewerArgs(args.model, args.models_dir, args.examples)


# --------------------------------------------------------------------------------- models


def is_model_folder(path: Path) -> bool:
    return all((path / f).is_file() for f in MODEL_FILES)


def find_models(root: str | Path, *, max_depth: int = 4, limit: int = 200) -> list[Path]:
    """Model folders (config.yaml + model.safetensors) under ``root``, sorted.

    Hidden folders are skipped and a model folder is not searched further. A missing or
    unreadable ``root`` gives an empty list.
    """
    root = Path(root)
    found: list[Path] = []
    pending = [(root, 0)]
    while pending and len(found) < limit:
        folder, depth = pending.pop()
        if is_model_folder(folder):
            found.append(folder)
            continue
        if depth >= max_depth:
            continue
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir())
        except OSError:
            continue
        pending.extend((c, depth + 1) for c in reversed(children) if not c.name.startswith("."))
    return sorted(found)


def model_choices(current: str, models_dir: str | Path | None = None) -> list[str]:
    """The model menu: ``current`` first, then the shipped models, then the folders found
    under ``models_dir``; no duplicates."""
    names = [current, *shipped_models()]
    if models_dir is not None:
        names += [str(p) for p in find_models(models_dir)]
    out: list[str] = []
    for name in names:
        if name and name not in out:
            out.append(name)
    return out


def model_stamp(model: str | Path) -> tuple[str, str]:
    """``(folder, stamp)`` for a model name or folder: a cache key that changes when the
    weights file is rewritten. Raises :class:`ModelLoadError` for a bad name."""
    folder = resolve_model_path(model).resolve()
    weights = folder / "model.safetensors"
    try:
        st = weights.stat()
        stamp = f"{st.st_mtime_ns}-{st.st_size}"
    except OSError:
        stamp = "missing"
    return str(folder), stamp


# ---------------------------------------------------------------------------------- input


def read_upload(
    data: bytes,
    name: str,
    *,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_UPLOAD_PIXELS,
) -> Image.Image:
    """Check and decode an uploaded file like any image file (:func:`load_image`).

    Raises:
        ImageError: with ``path`` = ``name`` and a one-line ``reason`` (wrong type, too
            large, empty, not an image, truncated, ...).
    """
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix not in UPLOAD_TYPES:
        raise ImageError(name, f"unsupported file type '.{suffix}' (use {', '.join(UPLOAD_TYPES)})")
    if len(data) > max_bytes:
        raise ImageError(
            name, f"file too large ({len(data) / 2**20:.1f} MiB, limit {max_bytes / 2**20:.0f} MiB)"
        )
    fd, tmp = tempfile.mkstemp(suffix=f".{suffix}", prefix="net2fair-upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            return load_image(tmp, max_pixels=max_pixels)
        except ImageError as e:
            raise ImageError(name, e.reason) from None
    finally:
        os.unlink(tmp)


@dataclass(frozen=True)
class Example:
    """One example face: rendered pixels or a file."""

    label: str
    pixels: np.ndarray | None = None
    path: Path | None = None

    def image(self) -> Image.Image:
        """The example as an RGB image (raises :class:`ImageError` for a bad file)."""
        if self.pixels is not None:
            return Image.fromarray(self.pixels)
        assert self.path is not None
        return load_image(self.path)


def is_synthetic(domains: Sequence[str]) -> bool:
    """Whether every dataset is one of the synthetic benchmark's (so it can render
    examples)."""
    from net2fair.synth.priors import DOMAINS

    return bool(domains) and all(d in DOMAINS for d in domains)


def benchmark_examples(
    domains: Sequence[str], resolution: int, n: int = 8, seed: int = BENCHMARK_SEED
) -> dict[str, list[Example]]:
    """New benchmark faces of each synthetic dataset, rendered at ``resolution``."""
    from net2fair.synth.render import render_batch

    res = min(max(resolution, 32), 256)
    out = {}
    for d in domains:
        pixels, _ = render_batch(d, n, res, seed)
        out[f"benchmark: {d}"] = [Example(f"{d} #{i}", pixels=p) for i, p in enumerate(pixels)]
    return out


def folder_examples(root: str | Path, limit: int = 64) -> dict[str, list[Example]]:
    """Images under ``root`` grouped by their folder (e.g. ``real-faces/photo``)."""
    root = Path(root)
    try:
        paths, _ = list_images(root)
    except FileNotFoundError:
        return {}
    groups: dict[str, list[Example]] = {}
    for p in paths:
        rel = p.parent.relative_to(root) if root.is_dir() else Path(".")
        key = f"{root.name}/{rel}" if str(rel) != "." else root.name
        items = groups.setdefault(key, [])
        if len(items) < limit:
            items.append(Example(p.name, path=p))
    return groups


def sample_examples(t: Translator, n: int = 4, seed: int = 0) -> dict[str, list[Example]]:
    """Faces the model draws itself, for models whose data is not at hand."""
    out = {}
    for d, pixels in shared_samples(t, n, 0.8, seed).items():
        out[f"model samples: {d}"] = [
            Example(f"{d} sample {i}", pixels=p) for i, p in enumerate(pixels)
        ]
    return out


def training_examples(t: Translator, limit: int = 16) -> dict[str, list[Example]]:
    """Images from the model's own dataset folders, where those folders exist here."""
    out: dict[str, list[Example]] = {}
    for name, folder in dict(t.cfg.data.domains).items():
        if not folder or not Path(str(folder)).is_dir():
            continue
        try:
            paths, _ = list_images(Path(str(folder)))
        except FileNotFoundError:
            continue
        if paths:
            out[f"training data: {name}"] = [Example(p.name, path=p) for p in paths[:limit]]
    return out


def folder_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (or the file itself), at most
    :data:`MAX_FOLDER_IMAGES`. Raises FileNotFoundError with a readable message."""
    folder = Path(folder).expanduser()
    if folder.is_file() and not is_image_name(folder.name):
        raise FileNotFoundError(f"{folder}: not an image file")
    paths, _ = list_images(folder)
    return paths[:MAX_FOLDER_IMAGES]


def model_input(image: Image.Image, resolution: int) -> np.ndarray:
    """What the model sees: shorter side to ``resolution``, centre crop; ``(R, R, 3)``
    uint8."""
    return to_uint8_array(image.convert("RGB"), resolution)


# ------------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class Analysis:
    """One input face under a model.

    Attributes:
        latent: ``(z_dim,)`` float32 encoder mean.
        reconstruction: ``(R, R, 3)`` uint8 decoded latent.
        log_likelihood: ``(K,)`` log p(z | dataset) in nats.
        bits_per_dim: ``(K,)`` the same as negative bits per latent dimension.
        posterior: ``(K,)`` p(dataset | z) with the training priors; sums to 1.
    """

    latent: np.ndarray
    reconstruction: np.ndarray
    log_likelihood: np.ndarray
    bits_per_dim: np.ndarray
    posterior: np.ndarray

    def most_probable(self, domains: Sequence[str]) -> str:
        return domains[int(np.argmax(self.posterior))]


def analyse(t: Translator, pixels: np.ndarray) -> Analysis:
    """Encode one ``(R, R, 3)`` uint8 image; reconstruct it; score it under each dataset."""
    z = t.encode(pixels)
    ll = t.latent_log_likelihood(z)  # one flow pass gives the likelihoods and the posterior
    return Analysis(
        latent=z[0].cpu().numpy().astype(np.float32),
        reconstruction=tensor_to_uint8(t.decode(z))[0],
        log_likelihood=ll[0].cpu().numpy(),
        bits_per_dim=t.bits_per_dim(ll)[0].cpu().numpy(),
        posterior=t.posterior_from_log_likelihood(ll)[0].cpu().numpy(),
    )


@dataclass(frozen=True)
class TypicalityReference:
    """Per dataset, the sorted log-likelihoods of reference faces of that dataset under
    that dataset, and a few words saying what the faces are."""

    log_likelihoods: list[np.ndarray]
    what: str


def typicality_reference(
    t: Translator,
    faces: Mapping[str, np.ndarray | Sequence[str | Path]] | None = None,
    *,
    what: str = "reference faces",
    n: int = 512,
    seed: int = 0,
) -> TypicalityReference:
    """Reference log-likelihoods for :func:`typicality`.

    Arguments:
        t: the model.
        faces: ``{dataset: (N, R, R, 3) uint8 or image paths}``: faces known to come from
            each dataset, scored under it. Without them, ``n`` of the model's own samples
            per dataset (temperature 1). A flow that fits its training set more tightly
            than new data rates new faces of a dataset below its own samples, so real
            faces, held out from training, make the better reference.
        what: how the page should name ``faces``.
    """
    rows = []
    if faces:
        for k, d in enumerate(t.domains):
            items = faces.get(d)
            if items is None or len(items) == 0:
                raise ValueError(f"no reference faces for dataset {d}")
            imgs = list(items) if isinstance(items, np.ndarray) else [Path(p) for p in items]
            ll = t.log_likelihood(imgs)[:, k]
            rows.append(np.sort(ll.cpu().numpy()))
        return TypicalityReference(rows, what)
    zs = t.sample_latents("all", n=n, temperature=1.0, seed=seed)
    for k, d in enumerate(t.domains):
        rows.append(np.sort(t.latent_log_likelihood(zs[d])[:, k].cpu().numpy()))
    return TypicalityReference(rows, "of the model's own samples")


def reference_faces(
    t: Translator, n: int = 48
) -> tuple[dict[str, np.ndarray | list[Path]] | None, str]:
    """Faces to judge typicality against, and what they are: new benchmark faces for a
    synthetic model (not the examples', not the training seed), else up to ``n`` images
    of each training folder where all of them are here, else None (model samples)."""
    if is_synthetic(t.domains):
        from net2fair.synth.render import render_batch

        res = min(max(t.resolution, 32), 256)
        faces = {d: render_batch(d, n, res, BENCHMARK_SEED + 1)[0] for d in t.domains}
        return faces, f"of {n} new benchmark faces"
    training = training_examples(t, limit=n)
    if len(training) == len(t.domains):
        faces = {
            d: [e.path for e in training[f"training data: {d}"] if e.path is not None]
            for d in t.domains
        }
        return faces, f"of up to {n} training images"
    return None, "of the model's own samples"


def typicality(log_likelihood: np.ndarray, reference: TypicalityReference) -> np.ndarray:
    """Share of each dataset's reference faces that are less likely than the input:
    ``(K,)`` in [0, 1]. About 0.5 is a typical face of that dataset; near 0, an outlier."""
    ll = np.asarray(log_likelihood, dtype=np.float64)
    rows = reference.log_likelihoods
    return np.array([np.searchsorted(r, v) / len(r) for r, v in zip(rows, ll)], dtype=np.float64)


def _latent(t: Translator, latent: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(latent, dtype=np.float32)).reshape(1, -1).to(t.device)


def project_row(
    t: Translator, latent: np.ndarray, source: str, alpha: float = 1.0
) -> dict[str, np.ndarray]:
    """The input (given by its latent) projected from ``source`` onto every dataset:
    ``{dataset: (R, R, 3) uint8}``; the source's own entry is the reconstruction.

    Each distinct code is decoded once, alone, as the reconstruction is: a decoder's float
    rounding depends on the batch it runs in, and at strength 0 every dataset's code is
    the input's, so every image must be the reconstruction byte for byte."""
    zs = t.project_latents(_latent(t, latent), source, "all", alpha)
    codes: list[torch.Tensor] = []
    which: dict[str, int] = {}
    for name, z in zs.items():
        same = [i for i, c in enumerate(codes) if torch.equal(c, z)]
        which[name] = same[0] if same else len(codes)
        if not same:
            codes.append(z)
    images = [tensor_to_uint8(t.decode(z))[0] for z in codes]
    return {name: images[i] for name, i in which.items()}


def translation_frames(
    t: Translator, latent: np.ndarray, source: str, target: str, n_frames: int = 16
) -> np.ndarray:
    """Frames of the input turning from ``source`` into ``target``: the projection at
    strength alpha = 0 .. 1 in ``n_frames`` steps; ``(n_frames, R, R, 3)`` uint8."""
    if n_frames < 2:
        raise ValueError(f"an animation needs at least 2 frames, got {n_frames}")
    z = _latent(t, latent)
    alphas = np.linspace(0.0, 1.0, n_frames)
    zs = [t.project_latents(z, source, target, float(a))[target] for a in alphas]
    return tensor_to_uint8(t.decode(torch.cat(zs)))


def shared_samples(t: Translator, n: int, temperature: float, seed: int) -> dict[str, np.ndarray]:
    """``n`` residuals decoded under every dataset: ``{dataset: (n, R, R, 3) uint8}``;
    row i of every dataset is the same residual."""
    x = t.sample_shared("all", n=n, temperature=temperature, seed=seed)
    return {d: tensor_to_uint8(v) for d, v in x.items()}


# ------------------------------------------------------------------------------- pictures


def display_size(resolution: int, at_least: int = DISPLAY_MIN) -> int:
    """The side at which to show a model image: the smallest integer multiple of
    ``resolution`` that is at least ``at_least`` pixels."""
    return resolution * max(1, -(-at_least // resolution))


def enlarge(pixels: np.ndarray | Image.Image, size: int) -> Image.Image:
    """Nearest-neighbour upscale to ``(size, size)``: shows the model's pixels as they are."""
    img = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    if img.size == (size, size):
        return img
    return img.resize((size, size), Image.Resampling.NEAREST)


def png_bytes(img: np.ndarray | Image.Image) -> bytes:
    img = img if isinstance(img, Image.Image) else Image.fromarray(img)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def labelled_strip(images: Mapping[str, np.ndarray], size: int | None = None) -> Image.Image:
    """Images side by side with their names above: ``{label: (R, R, 3) uint8}``."""
    from net2fair.viz import image_grid

    cells = [enlarge(v, size) if size else Image.fromarray(v) for v in images.values()]
    return image_grid([cells], col_labels=list(images), label_height=14)


def sample_sheet(samples: Mapping[str, np.ndarray], size: int | None = None) -> Image.Image:
    """Shared-residual samples as a grid: one row per residual, one column per dataset."""
    from net2fair.viz import image_grid

    names = list(samples)
    n = len(samples[names[0]])

    def cell(v: np.ndarray) -> Image.Image:
        return enlarge(v, size) if size else Image.fromarray(v)

    rows = [[cell(samples[d][i]) for d in names] for i in range(n)]
    return image_grid(rows, col_labels=names)


def make_gif(
    frames: np.ndarray, *, size: int | None = None, duration_ms: int = 80, bounce: bool = True
) -> bytes:
    """An endlessly looping GIF of ``(F, R, R, 3)`` uint8 frames; ``bounce`` plays it
    forward then backward, holding each end a little."""
    imgs = [enlarge(f, size) if size else Image.fromarray(f) for f in frames]
    durations = [duration_ms] * len(imgs)
    durations[0] = durations[-1] = duration_ms * 6
    if bounce and len(imgs) > 2:
        back = imgs[-2:0:-1]
        imgs = imgs + back
        durations = durations + [duration_ms] * len(back)
    buf = io.BytesIO()
    imgs[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=imgs[1:],
        duration=durations,
        loop=0,
        disposal=1,
        optimize=False,
    )
    return buf.getvalue()


def ffmpeg_executable() -> str | None:
    """An ffmpeg program, if one is installed (on PATH, or from imageio-ffmpeg)."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    if importlib.util.find_spec("imageio_ffmpeg") is not None:
        try:
            import imageio_ffmpeg

            return imageio_ffmpeg.get_ffmpeg_exe()
        except Exception as e:  # a broken optional install just means no MP4
            logger.debug("imageio-ffmpeg unusable: %s", e)
    return None


def make_mp4(
    frames: np.ndarray, *, size: int | None = None, fps: int = 12, bounce: bool = True
) -> bytes:
    """An H.264 MP4 of ``(F, R, R, 3)`` uint8 frames through ffmpeg.

    Raises:
        RuntimeError: no ffmpeg, or ffmpeg failed (the message has its last line).
    """
    exe = ffmpeg_executable()
    if exe is None:
        raise RuntimeError("no ffmpeg found (install ffmpeg for MP4 animations)")
    imgs = [np.asarray(enlarge(f, size) if size else Image.fromarray(f)) for f in frames]
    if bounce and len(imgs) > 2:
        imgs = imgs + imgs[-2:0:-1]
    h, w = imgs[0].shape[:2]
    # yuv420p needs even sides.
    h2, w2 = h + h % 2, w + w % 2
    with tempfile.TemporaryDirectory(prefix="net2fair-mp4-") as tmp:
        out = Path(tmp) / "anim.mp4"
        raw_in = f"-f rawvideo -pix_fmt rgb24 -s {w}x{h} -r {fps} -i -".split()
        h264 = f"-vf pad={w2}:{h2} -c:v libx264 -pix_fmt yuv420p -movflags +faststart".split()
        cmd = [exe, "-hide_banner", "-loglevel", "error", "-y", *raw_in, *h264, str(out)]
        proc = subprocess.run(
            cmd, input=b"".join(i.tobytes() for i in imgs), capture_output=True, timeout=120
        )
        if proc.returncode != 0 or not out.is_file():
            lines = proc.stderr.decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"ffmpeg failed: {lines[-1] if lines else proc.returncode}")
        return out.read_bytes()


# --------------------------------------------------------------------------------- report


def report_available() -> bool:
    """Whether the bias report package (``net2fair.report``) is installed."""
    try:
        return importlib.util.find_spec("net2fair.report") is not None
    except ImportError:
        return False


def run_report(
    t: Translator,
    images: str | Path,
    *,
    source: str,
    out_dir: str | Path,
    max_images: int | None = 200,
    change: str = "auto",
) -> Path:
    """Run the bias report on ``images`` (as dataset ``source``) and write it to
    ``out_dir``; returns the path of its ``index.html``. ``change`` as in
    :func:`net2fair.report.build`.

    The rules of ``net2fair report --out`` hold (``~`` is the home folder, as in a shell):
    ``out_dir`` is checked before the work, and may not lie inside ``images``, hold it, or
    hold anything but an earlier report.

    Raises:
        net2fair.fileio.OutputError: ``out_dir`` may not be written (one line).
    """
    from net2fair import report
    from net2fair.fileio import check_output_folder

    images = Path(images).expanduser()
    out_dir = Path(out_dir).expanduser()
    check_output_folder(out_dir, "report", inputs=[images])
    rep = report.build(
        t,
        images,
        source=source,
        max_images=max_images,
        change=change,
        command="net2fair view (report)",
    )
    folder = report.write(rep, out_dir, inputs=[images])
    return Path(folder) / "index.html"
