"""Build a bias projection report: project a folder of faces into every dataset and measure.

:func:`build` streams the images in batches through the model and keeps, besides the
per-image table, only a few thumbnails (the first rows of the grid and bounded galleries
of the images that change most and least), so memory does not grow with the number of
images beyond one row per image and target. The result is a :class:`Report`, a plain
data object that the writers (:func:`net2fair.report.write`) turn into files.
"""

from __future__ import annotations

import datetime as _dt
import heapq
import logging
import math
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from net2fair import __version__
from net2fair.data.images import (
    ImageError,
    list_images,
    load_image,
    to_uint8_array,
    uint8_to_tensor,
)
from net2fair.data.synthetic import DOMAINS
from net2fair.fidelity import colour_noise, psnr
from net2fair.fileio import display_path
from net2fair.models.translator import Translator, resolve_model_path
from net2fair.report.changes import ChangeAccumulator, ChangeMap
from net2fair.report.measures import (
    ITA_BAND_NAMES,
    MomentAccumulator,
    band_counts,
    bootstrap_mean_ci,
    describe_level,
    describe_shift,
    frechet_distance,
    image_measures,
    ita_band,
    l1_change,
    ssim,
)

logger = logging.getLogger(__name__)

GRID_ROWS = 8
GALLERY_SIZE = 12
N_RESAMPLES = 2000
CHANGE_MEASURES = ("auto", "lpips", "l1")

# Pixel measures: key, subject, group, unit, verb up, verb down, decimals.
_PIXEL_MEASURES: tuple[tuple[str, str, str, str, str, str, int], ...] = (
    ("ita", "skin tone", "skin and colour", "ITA degrees", "lightens", "darkens", 1),
    ("face_L", "face brightness", "skin and colour", "L* units", "brightens", "darkens", 1),
    ("face_r", "the face's mean red", "skin and colour", "levels (0-255)", "rises", "falls", 1),
    ("face_g", "the face's mean green", "skin and colour", "levels (0-255)", "rises", "falls", 1),
    ("face_b", "the face's mean blue", "skin and colour", "levels (0-255)", "rises", "falls", 1),
    ("bg_L", "background brightness", "background", "L* units", "brightens", "darkens", 1),
    ("bg_r", "the background's mean red", "background", "levels (0-255)", "rises", "falls", 1),
    ("bg_g", "the background's mean green", "background", "levels (0-255)", "rises", "falls", 1),
    ("bg_b", "the background's mean blue", "background", "levels (0-255)", "rises", "falls", 1),
)
_PIXEL_KEYS = tuple(m[0] for m in _PIXEL_MEASURES)


# ----------------------------------------------------------------------------- data model


@dataclass
class Shift:
    """One measure for one target: the means before and after and the mean paired shift.

    ``kind`` is ``"shift"`` (projection - input, paired) or ``"level"`` (a quantity of
    the pair itself, such as how much the image changed; ``before`` is then None).
    """

    measure: str
    #: short name for tables
    label: str
    #: what the sentence talks about
    subject: str
    group: str
    unit: str
    kind: str
    before: float | None
    after: float
    shift: float
    low: float
    high: float
    n: int
    sentence: str

    @property
    def clear(self) -> bool:
        """Whether the 95% interval excludes zero (always False for levels)."""
        return self.kind == "shift" and self.n > 0 and not (self.low <= 0.0 <= self.high)


@dataclass
class GalleryItem:
    """An input and its projection, as uint8 ``(R, R, 3)`` thumbnails."""

    name: str
    change: float
    input: np.ndarray = field(repr=False)
    projection: np.ndarray = field(repr=False)


@dataclass
class AttributeSummary:
    """Estimated distribution of one attribute among the inputs and the projections."""

    attribute: str
    categories: list[str]
    before: list[float]
    after: list[float]
    sentence: str


@dataclass
class TargetReport:
    """Everything measured for one target dataset."""

    target: str
    #: the source itself: the "projection" is the autoencoder's reconstruction, a baseline
    is_source: bool
    n: int
    shifts: list[Shift]
    ita_bands_before: dict[str, int]
    ita_bands_after: dict[str, int]
    #: mean p(dataset | image) of inputs and projections
    posterior_before: dict[str, float]
    posterior_after: dict[str, float]
    #: squared latent Frechet distance of the projected latents (and, for reference, of the
    #: input latents) to the target's stored training-latent statistics; None when unknown
    frechet: float | None
    frechet_inputs: float | None
    frechet_note: str
    attributes: list[AttributeSummary]
    most_changed: list[GalleryItem] = field(repr=False)
    least_changed: list[GalleryItem] = field(repr=False)

    def shift(self, measure: str) -> Shift:
        """The entry for a measure key (``"ita"``, ``"posterior_<dataset>"``, ...)."""
        for s in self.shifts:
            if s.measure == measure:
                return s
        raise KeyError(f"no measure {measure!r}; have {[s.measure for s in self.shifts]}")


@dataclass
class Report:
    """A bias projection report: all figures, per-image rows and the thumbnails to show.

    ``rows`` holds one dict per input image and target (the columns of per_image.csv);
    ``grid_*`` the first :data:`GRID_ROWS` inputs and their projections.
    """

    source: str
    targets: list[str]
    domains: list[str]
    resolution: int
    layout: str
    seed: int
    change_measure: str
    change_measures: list[str]
    n_resamples: int
    command: str | None
    created: str
    model: dict[str, Any]
    data: dict[str, Any]
    versions: dict[str, str]
    attributes_estimated: bool
    per_target: list[TargetReport]
    rows: list[dict[str, Any]] = field(repr=False)
    columns: list[str] = field(repr=False)
    grid_names: list[str] = field(repr=False)
    grid_inputs: list[np.ndarray] = field(repr=False)
    grid_projections: dict[str, list[np.ndarray]] = field(repr=False)
    #: where each (non-source) target changes faces: per-pixel maps, see report.changes
    change_maps: list[ChangeMap] = field(default_factory=list, repr=False)
    #: the autoencoder alone on these images (decoded under their own dataset): mean PSNR
    #: (dB) and eye-band colour-noise ratio (net2fair.fidelity), so what the model itself
    #: damages can be told apart from what a dataset's bias changes
    reconstruction: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of input images measured."""
        return int(self.data["n_used"])

    def target(self, name: str) -> TargetReport:
        for t in self.per_target:
            if t.target == name:
                return t
        raise KeyError(f"no target {name!r}; have {self.targets}")

    def sentences(self) -> list[str]:
        """The headline sentences: skin tone, brightness, background, target posterior,
        change and every attribute that clearly moves, for each non-source target."""
        out = []
        if self.reconstruction:
            out.append(reconstruction_sentence(self.reconstruction))
        for t in self.per_target:
            if t.is_source:
                continue
            for key in ("ita", "face_L", "bg_L", f"posterior_{t.target}", self.change_measure):
                out.append(t.shift(key).sentence)
            out.extend(a.sentence for a in t.attributes if "no clear change" not in a.sentence)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Everything but the thumbnails and the per-image rows, JSON-safe (NaN -> None)."""
        d: dict[str, Any] = {
            "format": "net2fair-report",
            "format_version": 1,
            **{
                k: getattr(self, k)
                for k in (
                    "source",
                    "targets",
                    "domains",
                    "resolution",
                    "layout",
                    "seed",
                    "change_measure",
                    "change_measures",
                    "n_resamples",
                    "command",
                    "created",
                    "model",
                    "data",
                    "versions",
                    "attributes_estimated",
                )
            },
            "reconstruction": self.reconstruction,
            "headline": self.sentences(),
            "grid_images": list(self.grid_names),
            "change_maps": [m.to_dict() for m in self.change_maps],
            "per_target": [],
        }
        for t in self.per_target:
            td = {
                k: v
                for k, v in asdict(t).items()
                if k not in ("most_changed", "least_changed", "shifts", "attributes")
            }
            td["measures"] = [{**asdict(s), "clear": s.clear} for s in t.shifts]
            td["attributes"] = [asdict(a) for a in t.attributes]
            for key in ("most_changed", "least_changed"):
                td[key] = [{"name": g.name, "change": g.change} for g in getattr(t, key)]
            d["per_target"].append(td)
        return _json_safe(d)


def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, Path):
        return str(x)
    return x


# ------------------------------------------------------------------------------- helpers


def resolve_layout(layout: str, domains: Sequence[str]) -> str:
    """``"auto"`` -> ``"synthetic"`` when every dataset is one of the benchmark's, else
    ``"ffhq"``; ``"ffhq"`` and ``"synthetic"`` pass through."""
    if layout == "auto":
        return "synthetic" if all(d in DOMAINS for d in domains) else "ffhq"
    if layout not in ("ffhq", "synthetic"):
        raise ValueError(f"unknown layout {layout!r}; expected auto, ffhq or synthetic")
    return layout


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    arr = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return arr.permute(0, 2, 3, 1).numpy()


@lru_cache(maxsize=2)
def _lpips_model(device: str) -> torch.nn.Module | None:
    # Cached: building LPIPS imports torchvision and reads the backbone (seconds).
    from net2fair.models.perceptual import try_load_lpips

    return try_load_lpips("alex", device=device)


def _lpips_change(model: torch.nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # LPIPS was calibrated on 64 px patches; tiny images would vanish in AlexNet's strides.
    if a.shape[-1] < 64:
        a = F.interpolate(a, size=(64, 64), mode="bilinear", align_corners=False)
        b = F.interpolate(b, size=(64, 64), mode="bilinear", align_corners=False)
    with torch.inference_mode():
        return model(a, b).flatten().float()


def _collect_paths(
    images: str | Path | Sequence[str | Path],
) -> tuple[list[Path], list[str], list[tuple[Path, str]], str]:
    """(paths, display names, scan problems, description of the input)."""
    if isinstance(images, (str, Path)):
        root = Path(images)
        paths, problems = list_images(root)
        problems = [(p, r) for p, r in problems if not r.endswith("scanning it")]
        if root.is_dir():
            names = [display_path(p.relative_to(root).as_posix()) for p in paths]
        else:
            names = [display_path(p.name) for p in paths]
        return paths, names, problems, display_path(root)
    paths = [Path(p) for p in images]
    return paths, [display_path(p) for p in paths], [], f"{len(paths)} files"


def resolve_estimators(estimators: Any, layout: str, device: torch.device) -> Any:
    """``"auto"``: the shipped attribute estimators on synthetic-benchmark models, else
    None; None or an estimator object pass through."""
    if not isinstance(estimators, str):
        return estimators
    if estimators != "auto":
        raise ValueError(f"estimators must be 'auto', None or an estimator, got {estimators!r}")
    if layout != "synthetic":
        return None
    from net2fair.benchmark import load_estimators

    return load_estimators(device)


@dataclass
class InputPlan:
    """Which files to read, in which order, and what was skipped while listing them."""

    paths: list[Path]
    names: list[str]
    order: list[int]
    wanted: int
    described: str
    sampled: bool
    skipped: list[dict[str, str]]


def plan_inputs(
    images: str | Path | Sequence[str | Path],
    max_images: int | None,
    seed: int,
    *,
    folder_order: bool = False,
) -> InputPlan:
    """List the input images; with ``max_images`` below their number, a random sample drawn
    with ``seed`` (read in random order, or in folder order with ``folder_order``)."""
    paths, names, problems, described = _collect_paths(images)
    skipped: list[dict[str, str]] = []
    for p, reason in problems:
        logger.warning("skipped %s: %s", p, reason)
        skipped.append({"file": display_path(p), "reason": display_path(reason)})
    order = list(range(len(paths)))
    sampled = max_images is not None and len(paths) > max_images
    if sampled:
        order = [int(i) for i in np.random.default_rng(seed).permutation(len(paths))]
        if folder_order:
            order.sort()
    wanted = len(order) if max_images is None else min(max_images, len(order))
    return InputPlan(paths, names, order, wanted, described, sampled, skipped)


def open_model(
    model: Translator | str | Path, device: str | torch.device
) -> tuple[Translator, str | None]:
    """A Translator, loaded from a folder or shipped name if needed, and that folder."""
    if isinstance(model, Translator):
        return model, None
    return Translator.load(model, device=device), str(resolve_model_path(model))


def model_provenance(t: Translator, model_path: str | None) -> dict[str, Any]:
    """What a report or audit records about the model it used."""
    cfg = t.cfg
    return {
        "name": str(cfg.name),
        "path": model_path,
        "provenance": str(cfg.model.provenance or ""),
        "package_version": str(cfg.model.package_version or ""),
        "weights_sha256": str(cfg.model.weights_sha256 or ""),
        "domains": list(t.domains),
        "priors": [float(p) for p in t.priors.tolist()],
        "resolution": t.resolution,
        "z_dim": t.z_dim,
    }


def versions() -> dict[str, str]:
    return {
        "net2fair": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


class _Gallery:
    """The ``k`` items with the largest (or smallest) change, in O(k) memory."""

    def __init__(self, k: int, largest: bool) -> None:
        self.k, self.sign, self._heap, self._count = k, 1.0 if largest else -1.0, [], 0

    def offer(self, change: float, make: Any) -> None:
        if math.isnan(change):
            return
        key = (self.sign * change, -self._count)  # ties: the earlier image wins
        self._count += 1
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, (key, make()))
        elif key > self._heap[0][0]:
            heapq.heapreplace(self._heap, (key, make()))

    def items(self) -> list[GalleryItem]:
        return [item for _, item in sorted(self._heap, key=lambda e: e[0], reverse=True)]


# --------------------------------------------------------------------------------- build


def stream_batches(
    paths: Sequence[Path],
    names: Sequence[str],
    order: Sequence[int],
    wanted: int,
    resolution: int,
    batch_size: int,
    skipped: list[dict[str, str]],
    run_batch: Any,
    progress: Any = None,
) -> int:
    """Load ``paths[i]`` for i in ``order`` at ``resolution`` until ``wanted`` images
    loaded, calling ``run_batch(uint8 arrays, names)`` every ``batch_size`` of them.

    A file that cannot be used is logged and appended to ``skipped`` as
    ``{"file", "reason"}``, and the next one is taken. ``progress(n)`` is called after each
    batch. Returns the number of images used (shared by the report and the audit).
    """
    used = 0
    batch: list[np.ndarray] = []
    batch_names: list[str] = []

    def flush() -> None:
        nonlocal used, batch, batch_names
        run_batch(batch, batch_names)
        used += len(batch)
        if progress is not None:
            progress(len(batch))
        batch, batch_names = [], []

    for idx in order:
        if used + len(batch) >= wanted:
            break
        try:
            arr = to_uint8_array(load_image(paths[idx], size_hint=resolution), resolution)
        except ImageError as e:
            logger.warning("skipped %s: %s", e.path, e.reason)
            skipped.append({"file": display_path(e.path), "reason": display_path(e.reason)})
            continue
        batch.append(arr)
        batch_names.append(names[idx])
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return used


def build(
    model: Translator | str | Path,
    images: str | Path | Sequence[str | Path],
    *,
    source: str,
    targets: str | Sequence[str] = "all",
    max_images: int | None = None,
    seed: int = 0,
    batch_size: int = 32,
    layout: str = "auto",
    change: str = "auto",
    estimators: Any = "auto",
    device: str | torch.device = "cpu",
    progress: bool = False,
    command: str | None = None,
) -> Report:
    """Project images of dataset ``source`` into ``targets`` and measure what changes.

    Arguments:
        model: a :class:`Translator`, a model folder, or a shipped model name (``demo``).
        images: a folder (scanned recursively), one image file, or a list of files.
        source: the dataset the images come from (one of the model's).
        targets: ``"all"`` (every dataset, the source included: its "projection" is the
            reconstruction, the baseline) or a list of dataset names.
        max_images: use at most this many images; when the folder holds more, a random
            sample drawn with ``seed``.
        seed: sampling of ``max_images`` and the bootstrap resamples.
        batch_size: images per forward pass.
        layout: face geometry for the skin and background regions: ``"ffhq"`` (aligned
            real faces), ``"synthetic"`` (the benchmark) or ``"auto"`` (synthetic when
            every dataset of the model is a benchmark dataset).
        change: ``"auto"`` (LPIPS when its weights load, else L1), ``"lpips"`` or
            ``"l1"``. L1 and SSIM are always measured as well.
        estimators: attribute estimators with ``predict(uint8 (B, H, W, 3))``; ``"auto"``
            loads the shipped ones for the synthetic layout; None disables them.
        device: where to run a model given by path.
        progress: show a progress bar over the images.
        command: the command line to record in the report.

    Raises:
        UnknownDomainError: ``source`` or a target is not one of the model's datasets.
        ValueError: no usable image, or a bad argument.
        FileNotFoundError: ``images`` does not exist.
    """
    if change not in CHANGE_MEASURES:
        raise ValueError(f"change must be one of {CHANGE_MEASURES}, got {change!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be >= 1, got {max_images}")
    t, model_path = open_model(model, device)
    src = t.domains[t.domain_index(source)]
    names_t = list(dict.fromkeys(t._targets(targets)))
    if not names_t:
        raise ValueError("no target datasets given")
    layout = resolve_layout(layout, t.domains)
    res = t.resolution

    lpips_model = None
    if change in ("auto", "lpips"):
        lpips_model = _lpips_model(str(t.device))
        if lpips_model is None and change == "lpips":
            raise ValueError("change='lpips' but the LPIPS backbone weights cannot be loaded")
    change_measure = "lpips" if lpips_model is not None else "l1"
    change_keys = (["lpips"] if lpips_model is not None else []) + ["l1", "ssim"]

    est = resolve_estimators(estimators, layout, t.device)
    plan = plan_inputs(images, max_images, seed)
    paths, names, order, wanted = plan.paths, plan.names, plan.order, plan.wanted
    described, skipped = plan.described, plan.skipped

    domains = t.domains
    rows: list[dict[str, Any]] = []
    acc_proj = {n: MomentAccumulator() for n in names_t}
    acc_in = MomentAccumulator()
    most = {n: _Gallery(GALLERY_SIZE, largest=True) for n in names_t}
    least = {n: _Gallery(GALLERY_SIZE, largest=False) for n in names_t}
    grid_names: list[str] = []
    grid_inputs: list[np.ndarray] = []
    grid_proj: dict[str, list[np.ndarray]] = {n: [] for n in names_t}
    change_acc = {n: ChangeAccumulator(src, n, layout) for n in names_t if n != src}

    recon_acc: dict[str, list[float]] = {"psnr": [], "noise_in": [], "noise_out": []}
    bar = tqdm(total=wanted, desc="report", unit="img", disable=not progress)

    def run_batch(batch: list[np.ndarray], batch_names: list[str]) -> None:
        base = len(rows) // len(names_t)  # images measured before this batch
        pixels = np.stack(batch)
        x = uint8_to_tensor(pixels).to(t.device)
        b = x.shape[0]
        with torch.inference_mode():
            z = t.encode(x)
            ll_in = t.latent_log_likelihood(z)
            post_in = t.latent_posterior(z)
            zs = t.project_latents(z, src, names_t)
            xp = t.decode(torch.cat([zs[n] for n in names_t]))
            zp = t.encode(xp)
            ll_out = t.latent_log_likelihood(zp)
            post_out = t.latent_posterior(zp)
            xp_parts = dict(zip(names_t, xp.split(b)))
            recon = xp_parts[src] if src in xp_parts else t.decode(z)
            for n, acc in change_acc.items():
                acc.update(recon, xp_parts[n])
        recon_pixels = _to_uint8(recon)
        recon_acc["psnr"].extend(psnr(recon_pixels, pixels).tolist())
        recon_acc["noise_in"].extend(colour_noise(pixels).tolist())
        recon_acc["noise_out"].extend(colour_noise(recon_pixels).tolist())
        acc_in.update(z)
        for n in names_t:
            acc_proj[n].update(zs[n])
        bpd_in, bpd_out = t.bits_per_dim(ll_in), t.bits_per_dim(ll_out)
        proj_pixels = _to_uint8(xp)
        m_in = image_measures(pixels, layout)
        m_out = image_measures(proj_pixels, layout)
        x_rep = x.repeat(len(names_t), 1, 1, 1)
        changes = {"l1": l1_change(x_rep, xp).cpu().numpy(), "ssim": ssim(x_rep, xp).cpu().numpy()}
        if lpips_model is not None:
            changes["lpips"] = _lpips_change(lpips_model, x_rep, xp).cpu().numpy()
        a_in = a_out = None
        if est is not None:
            a_in = _estimate(est, pixels)
            a_out = _estimate(est, proj_pixels)
        for i in range(b):
            if len(grid_inputs) < GRID_ROWS:
                grid_names.append(batch_names[i])
                grid_inputs.append(pixels[i].copy())
                for k, n in enumerate(names_t):
                    grid_proj[n].append(proj_pixels[k * b + i].copy())
        for k, n in enumerate(names_t):
            for i in range(b):
                j = k * b + i
                row: dict[str, Any] = {"file": batch_names[i], "index": base + i, "target": n}
                for key in _PIXEL_KEYS:
                    row[f"in_{key}"] = float(m_in[key][i])
                    row[f"out_{key}"] = float(m_out[key][j])
                row["in_ita_band"] = ita_band(m_in["ita"][i])
                row["out_ita_band"] = ita_band(m_out["ita"][j])
                for key in change_keys:
                    row[f"change_{key}"] = float(changes[key][j])
                for d_i, d in enumerate(domains):
                    row[f"in_posterior_{d}"] = float(post_in[i, d_i])
                    row[f"out_posterior_{d}"] = float(post_out[j, d_i])
                for d_i, d in enumerate(domains):
                    row[f"in_loglik_{d}"] = float(ll_in[i, d_i])
                    row[f"out_loglik_{d}"] = float(ll_out[j, d_i])
                for d_i, d in enumerate(domains):
                    row[f"in_bpd_{d}"] = float(bpd_in[i, d_i])
                    row[f"out_bpd_{d}"] = float(bpd_out[j, d_i])
                if a_in is not None and a_out is not None:
                    for key, (vals_in, cats) in a_in.items():
                        vals_out = a_out[key][0]
                        if cats is None:
                            row[f"in_est_{key}"] = float(vals_in[i])
                            row[f"out_est_{key}"] = float(vals_out[j])
                        else:
                            row[f"in_est_{key}"] = cats[int(vals_in[i])]
                            row[f"out_est_{key}"] = cats[int(vals_out[j])]
                rows.append(row)
                ch = float(changes[change_measure][j])
                pi, pp = pixels[i], proj_pixels[j]
                name = batch_names[i]
                for gal in (most[n], least[n]):
                    gal.offer(
                        ch,
                        lambda name=name, ch=ch, pi=pi, pp=pp: GalleryItem(
                            name, ch, pi.copy(), pp.copy()
                        ),
                    )

    try:
        used = stream_batches(
            paths, names, order, wanted, res, batch_size, skipped, run_batch, bar.update
        )
    finally:
        bar.close()
    if used == 0:
        raise ValueError(
            f"no usable image in {described} ({len(paths)} image files found, "
            f"{len(skipped)} skipped)"
        )
    logger.info("measured %d images x %d targets (%d skipped)", used, len(names_t), len(skipped))

    per_target = [
        _summarise_target(
            t,
            n,
            src,
            [r for r in rows if r["target"] == n],
            change_keys,
            _estimator_categories(est),
            acc_proj[n],
            acc_in,
            most[n].items(),
            least[n].items(),
            seed,
        )
        for n in names_t
    ]
    columns = list(rows[0].keys())
    return Report(
        source=src,
        targets=names_t,
        domains=domains,
        resolution=res,
        layout=layout,
        seed=seed,
        change_measure=change_measure,
        change_measures=change_keys,
        n_resamples=N_RESAMPLES,
        command=command,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        model=model_provenance(t, model_path),
        data={
            "input": described,
            "n_found": len(paths),
            "n_used": used,
            "n_skipped": len(skipped),
            "skipped": skipped,
            "max_images": max_images,
            "sampled": plan.sampled,
        },
        versions=versions(),
        attributes_estimated=est is not None,
        per_target=per_target,
        rows=rows,
        columns=columns,
        grid_names=grid_names,
        grid_inputs=grid_inputs,
        grid_projections=grid_proj,
        change_maps=[m for m in (acc.result() for acc in change_acc.values()) if m is not None],
        reconstruction=_reconstruction_summary(src, recon_acc),
    )


def _reconstruction_summary(source: str, acc: dict[str, list[float]]) -> dict[str, Any]:
    if not acc["psnr"]:
        return {}
    finite = [v for v in acc["psnr"] if math.isfinite(v)]
    noise_in = float(np.sum(acc["noise_in"]))
    noise_out = float(np.sum(acc["noise_out"]))
    ratio = noise_out / noise_in if noise_in > 0 else (1.0 if noise_out == 0 else math.inf)
    return {
        "dataset": source,
        "n": len(acc["psnr"]),
        "psnr": float(np.mean(finite)) if finite else math.inf,
        "colour_noise_ratio": ratio,
    }


def reconstruction_sentence(r: dict[str, Any]) -> str:
    """One plain sentence on what the autoencoder alone does to the report's images."""
    verdict = (
        "it adds colour speckle that is the model's, not a dataset's bias"
        if r["colour_noise_ratio"] > 1.2
        else "it adds no colour speckle"
    )
    return (
        f"The autoencoder alone (the {r['n']} images reconstructed in {r['dataset']}) reaches "
        f"a PSNR of {r['psnr']:.1f} dB and {r['colour_noise_ratio']:.2f}x the inputs' "
        f"eye-band colour noise: {verdict}; changes smaller than its error are not evidence "
        "of bias."
    )


def _estimate(est: Any, pixels: np.ndarray) -> dict[str, tuple[np.ndarray, list[str] | None]]:
    """Estimator predictions as ``{name: (values (B,), category names or None)}``."""
    pred = est.predict(pixels)
    cats = getattr(est, "categories", {}) or {}
    out = {}
    for key, v in pred.items():
        arr = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
        names = cats.get(key)
        out[key] = (arr, list(names) if names is not None else None)
    return out


# ------------------------------------------------------------------------- summarising


def _arrays(rows: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([r.get(key, math.nan) for r in rows], dtype=np.float64)


def _shift_entry(
    rows: list[dict[str, Any]],
    target: str,
    key: str,
    subject: str,
    group: str,
    unit: str,
    up: str,
    down: str,
    digits: int,
    seed: int,
    before: np.ndarray | None = None,
    after: np.ndarray | None = None,
) -> Shift:
    b = _arrays(rows, f"in_{key}") if before is None else before
    a = _arrays(rows, f"out_{key}") if after is None else after
    diff = a - b
    shift, low, high, n = bootstrap_mean_ci(diff, n_resamples=N_RESAMPLES, seed=seed)
    ok = ~np.isnan(diff)
    return Shift(
        measure=key,
        label=subject,
        subject=subject,
        group=group,
        unit=unit,
        kind="shift",
        before=float(b[ok].mean()) if n else math.nan,
        after=float(a[ok].mean()) if n else math.nan,
        shift=shift,
        low=low,
        high=high,
        n=n,
        sentence=describe_shift(
            target=target,
            subject=subject,
            shift=shift,
            low=low,
            high=high,
            n=n,
            up=up,
            down=down,
            unit=unit,
            digits=digits,
        ),
    )


def _summarise_target(
    t: Translator,
    target: str,
    source: str,
    rows: list[dict[str, Any]],
    change_keys: list[str],
    est_categories: dict[str, list[str]] | None,
    acc_proj: MomentAccumulator,
    acc_in: MomentAccumulator,
    most: list[GalleryItem],
    least: list[GalleryItem],
    seed: int,
) -> TargetReport:
    domains = t.domains
    shifts: list[Shift] = []
    for key, subject, group, unit, up, down, digits in _PIXEL_MEASURES:
        shifts.append(_shift_entry(rows, target, key, subject, group, unit, up, down, digits, seed))
    for d in domains:
        shifts.append(
            _shift_entry(
                rows,
                target,
                f"posterior_{d}",
                f"p({d} | image)",
                "model",
                "",
                "rises",
                "falls",
                3,
                seed,
            )
        )
    for d in domains:
        shifts.append(
            _shift_entry(
                rows,
                target,
                f"loglik_{d}",
                f"the log-likelihood under {d}",
                "model",
                "nats",
                "rises",
                "falls",
                1,
                seed,
            )
        )
    for d in domains:
        shifts.append(
            _shift_entry(
                rows,
                target,
                f"bpd_{d}",
                f"the negative log-likelihood under {d}",
                "model",
                "bits/dim",
                "rises",
                "falls",
                3,
                seed,
            )
        )
    change_subjects = {
        "lpips": ("LPIPS (0 = identical)", "images change by LPIPS", 3),
        "l1": (
            "L1, mean absolute pixel difference (0-1)",
            "images change by a mean absolute pixel difference (0-1) of",
            3,
        ),
        "ssim": (
            "SSIM (1 = identical)",
            "the structural similarity (SSIM) of input and projection is",
            3,
        ),
    }
    for key in change_keys:
        v = _arrays(rows, f"change_{key}")
        mean, low, high, n = bootstrap_mean_ci(v, n_resamples=N_RESAMPLES, seed=seed)
        label, subject, digits = change_subjects[key]
        shifts.append(
            Shift(
                measure=key,
                label=label,
                subject=subject,
                group="change",
                unit="",
                kind="level",
                before=None,
                after=mean,
                shift=mean,
                low=low,
                high=high,
                n=n,
                sentence=describe_level(
                    target=target,
                    subject=subject,
                    mean=mean,
                    low=low,
                    high=high,
                    n=n,
                    digits=digits,
                ),
            )
        )

    attributes: list[AttributeSummary] = []
    if est_categories is not None and rows:
        attributes, est_shifts = _attribute_summaries(rows, target, est_categories, seed)
        shifts.extend(est_shifts)

    ita_in = _arrays(rows, "in_ita")
    ita_out = _arrays(rows, "out_ita")
    post_before = {d: float(_arrays(rows, f"in_posterior_{d}").mean()) for d in domains}
    post_after = {d: float(_arrays(rows, f"out_posterior_{d}").mean()) for d in domains}

    k = t.domain_index(target)
    fd = fd_in = None
    count = float(t.stats_count[k])
    if count <= 0:
        note = f"the model stores no latent statistics for {target}; Frechet distance skipped"
    elif acc_proj.n < 2:
        note = "fewer than 2 images; Frechet distance needs a covariance"
    else:
        mu_t, cov_t = t.stats_mean[k].cpu(), t.stats_cov[k].cpu()
        mu_p, cov_p = acc_proj.mean_cov()
        mu_i, cov_i = acc_in.mean_cov()
        fd = frechet_distance(mu_p, cov_p, mu_t, cov_t)
        fd_in = frechet_distance(mu_i, cov_i, mu_t, cov_t)
        note = (
            f"squared Frechet distance in the {t.z_dim}-d latent space between the projected "
            f"latents (n = {acc_proj.n}) and {target}'s training latents (n = {int(count)}); "
            f"the inputs' own latents give {fd_in:.3g} for reference"
        )
        if acc_proj.n < 10 * t.z_dim:
            note += "; with n below 10x the latent dimension it is biased upward"
    return TargetReport(
        target=target,
        is_source=target == source,
        n=len(rows),
        shifts=shifts,
        ita_bands_before=band_counts(ita_in),
        ita_bands_after=band_counts(ita_out),
        posterior_before=post_before,
        posterior_after=post_after,
        frechet=fd,
        frechet_inputs=fd_in,
        frechet_note=note,
        attributes=attributes,
        most_changed=most,
        least_changed=least,
    )


def _estimator_categories(est: Any) -> dict[str, list[str]] | None:
    if est is None:
        return None
    return {k: list(v) for k, v in (getattr(est, "categories", {}) or {}).items()}


def _attribute_summaries(
    rows: list[dict[str, Any]], target: str, categories: dict[str, list[str]], seed: int
) -> tuple[list[AttributeSummary], list[Shift]]:
    summaries: list[AttributeSummary] = []
    shifts: list[Shift] = []
    for attr, cats in categories.items():
        key = f"est_{attr}"
        if f"in_{key}" not in rows[0]:
            continue
        label = "style" if attr == "domain" else attr.replace("_", " ")
        before = np.array([r[f"in_{key}"] for r in rows], dtype=object)
        after = np.array([r[f"out_{key}"] for r in rows], dtype=object)
        cat_shifts = []
        for cat in cats:
            ind_b = (before == cat).astype(np.float64) * 100.0
            ind_a = (after == cat).astype(np.float64) * 100.0
            s = _shift_entry(
                rows,
                target,
                f"{key}={cat}",
                f"the share of {label} '{cat}'",
                "attributes (estimated)",
                "percentage points",
                "rises",
                "falls",
                1,
                seed,
                before=ind_b,
                after=ind_a,
            )
            cat_shifts.append(s)
        clear = [s for s in cat_shifts if s.clear]
        pick = max(clear or cat_shifts, key=lambda s: abs(s.shift))
        if clear:
            sentence = pick.sentence
        else:
            cat = pick.measure.split("=", 1)[1]
            sentence = (
                f"Projected into {target}, the estimated {label} shows no clear change "
                f"(largest shift: '{cat}' {pick.shift:+.1f} percentage points, 95% CI "
                f"{pick.low:.1f} to {pick.high:.1f}, n = {pick.n})."
            )
        summaries.append(
            AttributeSummary(
                attribute=label,
                categories=list(cats),
                before=[float(s.before) / 100.0 for s in cat_shifts],
                after=[float(s.after) / 100.0 for s in cat_shifts],
                sentence=sentence,
            )
        )
        shifts.extend(cat_shifts)
    continuous = [
        k[len("in_est_") :]
        for k in rows[0]
        if k.startswith("in_est_") and k[len("in_est_") :] not in categories
    ]
    for attr in continuous:
        shifts.append(
            _shift_entry(
                rows,
                target,
                f"est_{attr}",
                f"the estimated head {attr}",
                "content (estimated)",
                "",
                "rises",
                "falls",
                3,
                seed,
            )
        )
    return summaries, shifts


__all__ = [
    "AttributeSummary",
    "GalleryItem",
    "ITA_BAND_NAMES",
    "Report",
    "Shift",
    "TargetReport",
    "build",
    "resolve_layout",
]
