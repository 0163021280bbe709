"""Build a bias projection report: project a folder of faces into every dataset and measure.

:func:`build` reads the images through :mod:`net2fair.pipeline` in batches and keeps,
besides the per-image table, only a few thumbnails (the first rows of the grid and bounded
galleries of the images that change most and least), so memory does not grow with the
number of images beyond one row per image and target. The steps:

1. check the arguments, open the model, resolve the targets, the face layout, the change
   measure and the attribute estimators;
2. stream the images; for each batch a :class:`_Collector` encodes, projects into every
   target, decodes, re-encodes and measures, and keeps rows, latent moments, galleries,
   the grid, the change maps and the reconstruction's own error;
3. summarise each target (:mod:`net2fair.report.summary`) into a
   :class:`~net2fair.report.model.Report`, the plain data object the writers
   (:func:`net2fair.report.write`) turn into files.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from net2fair.data.images import tensor_to_uint8
from net2fair.fidelity import colour_noise, psnr
from net2fair.models.translator import Translator
from net2fair.pipeline import (
    Encoded,
    Gallery,
    ImageBatch,
    encode,
    estimate,
    estimator_categories,
    iter_batches,
    model_provenance,
    open_model,
    plan_inputs,
    resolve_estimators,
    resolve_layout,
    versions,
)
from net2fair.report.changes import ChangeAccumulator
from net2fair.report.measures import (
    ITA_BAND_NAMES,
    MomentAccumulator,
    image_measures,
    ita_band,
    l1_change,
    ssim,
)
from net2fair.report.model import (
    AttributeSummary,
    GalleryItem,
    Report,
    Shift,
    TargetReport,
    reconstruction_sentence,
)
from net2fair.report.summary import (
    N_RESAMPLES,
    PIXEL_KEYS,
    reconstruction_summary,
    summarise_target,
)

logger = logging.getLogger(__name__)

#: inputs shown in the projection grid
GRID_ROWS = 8
#: images in each most- and least-changed gallery
GALLERY_SIZE = 12
CHANGE_MEASURES = ("auto", "lpips", "l1")


# ---------------------------------------------------------------------- change measures


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


@dataclass
class _ChangeMeasure:
    """The headline change measure, every change measure taken, and LPIPS if loaded."""

    headline: str
    keys: list[str]
    lpips: torch.nn.Module | None

    @classmethod
    def resolve(cls, change: str, device: torch.device) -> _ChangeMeasure:
        lpips_model = None
        if change in ("auto", "lpips"):
            lpips_model = _lpips_model(str(device))
            if lpips_model is None and change == "lpips":
                raise ValueError("change='lpips' but the LPIPS backbone weights cannot be loaded")
        headline = "lpips" if lpips_model is not None else "l1"
        keys = (["lpips"] if lpips_model is not None else []) + ["l1", "ssim"]
        return cls(headline, keys, lpips_model)

    def measure(self, x: torch.Tensor, xp: torch.Tensor) -> dict[str, np.ndarray]:
        """Per pair of ``x`` and ``xp`` (both ``(N, 3, R, R)``), every change measure."""
        out = {"l1": l1_change(x, xp).cpu().numpy(), "ssim": ssim(x, xp).cpu().numpy()}
        if self.lpips is not None:
            out["lpips"] = _lpips_change(self.lpips, x, xp).cpu().numpy()
        return out


# ----------------------------------------------------------------------------- collector


class _Collector:
    """What :func:`build` keeps while the images stream past: one row per image and
    target, the latent moments, the galleries, the grid, the change maps and the
    reconstruction's own error.

    Projections of a batch of B images into the T targets are handled stacked target by
    target, ``(T * B, ...)``: entry ``k * B + i`` is image i projected into target k.
    """

    def __init__(
        self,
        t: Translator,
        source: str,
        targets: list[str],
        layout: str,
        change: _ChangeMeasure,
        est: Any,
    ) -> None:
        self.t, self.source, self.targets, self.layout = t, source, targets, layout
        self.change, self.est = change, est
        self.rows: list[dict[str, Any]] = []
        self.acc_in = MomentAccumulator()
        self.acc_proj = {n: MomentAccumulator() for n in targets}
        self.most = {n: Gallery[GalleryItem](GALLERY_SIZE, largest=True) for n in targets}
        self.least = {n: Gallery[GalleryItem](GALLERY_SIZE, largest=False) for n in targets}
        self.grid_names: list[str] = []
        self.grid_inputs: list[np.ndarray] = []
        self.grid_proj: dict[str, list[np.ndarray]] = {n: [] for n in targets}
        self.change_acc = {n: ChangeAccumulator(source, n, layout) for n in targets if n != source}
        self.recon: dict[str, list[float]] = {"psnr": [], "noise_in": [], "noise_out": []}

    def add(self, batch: ImageBatch) -> None:
        """Project one batch into every target and keep what the report needs of it."""
        t, src, names_t = self.t, self.source, self.targets
        pixels = batch.pixels
        x = batch.tensor(t.device)
        b = x.shape[0]
        with torch.inference_mode():
            enc_in = encode(t, x)
            zs = t.project_latents(enc_in.z, src, names_t)
            xp = t.decode(torch.cat([zs[n] for n in names_t]))
            enc_out = encode(t, xp)
            xp_parts = dict(zip(names_t, xp.split(b)))
            recon = xp_parts[src] if src in xp_parts else t.decode(enc_in.z)
            for n, acc in self.change_acc.items():
                acc.update(recon, xp_parts[n])
        self._add_reconstruction(pixels, tensor_to_uint8(recon))
        self.acc_in.update(enc_in.z)
        for n in names_t:
            self.acc_proj[n].update(zs[n])
        proj_pixels = tensor_to_uint8(xp)
        changes = self.change.measure(x.repeat(len(names_t), 1, 1, 1), xp)
        self._add_grid(batch.names, pixels, proj_pixels)
        self._add_rows(batch.names, pixels, proj_pixels, enc_in, enc_out, changes)

    def _add_reconstruction(self, pixels: np.ndarray, recon_pixels: np.ndarray) -> None:
        self.recon["psnr"].extend(psnr(recon_pixels, pixels).tolist())
        self.recon["noise_in"].extend(colour_noise(pixels).tolist())
        self.recon["noise_out"].extend(colour_noise(recon_pixels).tolist())

    def _add_grid(self, names: list[str], pixels: np.ndarray, proj_pixels: np.ndarray) -> None:
        b = len(names)
        for i in range(b):
            if len(self.grid_inputs) >= GRID_ROWS:
                return
            self.grid_names.append(names[i])
            self.grid_inputs.append(pixels[i].copy())
            for k, n in enumerate(self.targets):
                self.grid_proj[n].append(proj_pixels[k * b + i].copy())

    def _add_rows(
        self,
        names: list[str],
        pixels: np.ndarray,
        proj_pixels: np.ndarray,
        enc_in: Encoded,
        enc_out: Encoded,
        changes: dict[str, np.ndarray],
    ) -> None:
        b = len(names)
        base = len(self.rows) // len(self.targets)  # images measured before this batch
        domains = self.t.domains
        m_in = image_measures(pixels, self.layout)
        m_out = image_measures(proj_pixels, self.layout)
        a_in = a_out = None
        if self.est is not None:
            a_in, a_out = estimate(self.est, pixels), estimate(self.est, proj_pixels)
        scores = (
            ("posterior", enc_in.posterior, enc_out.posterior),
            ("loglik", enc_in.log_likelihood, enc_out.log_likelihood),
            ("bpd", enc_in.bits_per_dim, enc_out.bits_per_dim),
        )
        for k, n in enumerate(self.targets):
            for i in range(b):
                j = k * b + i
                row: dict[str, Any] = {"file": names[i], "index": base + i, "target": n}
                for key in PIXEL_KEYS:
                    row[f"in_{key}"] = float(m_in[key][i])
                    row[f"out_{key}"] = float(m_out[key][j])
                row["in_ita_band"] = ita_band(m_in["ita"][i])
                row["out_ita_band"] = ita_band(m_out["ita"][j])
                for key in self.change.keys:
                    row[f"change_{key}"] = float(changes[key][j])
                for prefix, s_in, s_out in scores:
                    for d_i, d in enumerate(domains):
                        row[f"in_{prefix}_{d}"] = float(s_in[i, d_i])
                        row[f"out_{prefix}_{d}"] = float(s_out[j, d_i])
                if a_in is not None and a_out is not None:
                    for key, (vals_in, cats) in a_in.items():
                        vals_out = a_out[key][0]
                        if cats is None:
                            row[f"in_est_{key}"] = float(vals_in[i])
                            row[f"out_est_{key}"] = float(vals_out[j])
                        else:
                            row[f"in_est_{key}"] = cats[int(vals_in[i])]
                            row[f"out_est_{key}"] = cats[int(vals_out[j])]
                self.rows.append(row)
                ch = float(changes[self.change.headline][j])
                self._offer(n, names[i], ch, pixels[i], proj_pixels[j])

    def _offer(self, target: str, name: str, ch: float, pi: np.ndarray, pp: np.ndarray) -> None:
        for gal in (self.most[target], self.least[target]):
            gal.offer(ch, lambda: GalleryItem(name, ch, pi.copy(), pp.copy()))

    def summarise(self, seed: int) -> list[TargetReport]:
        """One :class:`TargetReport` per target, in the order of the targets."""
        cats = estimator_categories(self.est) if self.est is not None else None
        return [
            summarise_target(
                self.t,
                n,
                self.source,
                [r for r in self.rows if r["target"] == n],
                self.change.keys,
                cats,
                self.acc_proj[n],
                self.acc_in,
                self.most[n].items(),
                self.least[n].items(),
                seed,
            )
            for n in self.targets
        ]


# --------------------------------------------------------------------------------- build


def _check_arguments(change: str, batch_size: int, max_images: int | None) -> None:
    if change not in CHANGE_MEASURES:
        raise ValueError(f"change must be one of {CHANGE_MEASURES}, got {change!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be >= 1, got {max_images}")


def _source_and_targets(
    t: Translator, source: str, targets: str | Sequence[str]
) -> tuple[str, list[str]]:
    src = t.domains[t.domain_index(source)]
    names = list(dict.fromkeys(t._targets(targets)))
    if not names:
        raise ValueError("no target datasets given")
    return src, names


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
    _check_arguments(change, batch_size, max_images)
    t, model_path = open_model(model, device)
    src, names_t = _source_and_targets(t, source, targets)
    layout = resolve_layout(layout, t.domains)
    measure = _ChangeMeasure.resolve(change, t.device)
    est = resolve_estimators(estimators, layout, t.device)
    plan = plan_inputs(images, max_images, seed)

    col = _Collector(t, src, names_t, layout, measure, est)
    bar = tqdm(total=plan.wanted, desc="report", unit="img", disable=not progress)
    try:
        for batch in iter_batches(plan, t.resolution, batch_size, progress=bar.update):
            col.add(batch)
    finally:
        bar.close()
    if plan.used == 0:
        raise plan.no_usable_image()
    logger.info(
        "measured %d images x %d targets (%d skipped)", plan.used, len(names_t), len(plan.skipped)
    )

    return Report(
        source=src,
        targets=names_t,
        domains=t.domains,
        resolution=t.resolution,
        layout=layout,
        seed=seed,
        change_measure=measure.headline,
        change_measures=measure.keys,
        n_resamples=N_RESAMPLES,
        command=command,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        model=model_provenance(t, model_path),
        data=plan.data(max_images),
        versions=versions(),
        attributes_estimated=est is not None,
        per_target=col.summarise(seed),
        rows=col.rows,
        columns=list(col.rows[0].keys()),
        grid_names=col.grid_names,
        grid_inputs=col.grid_inputs,
        grid_projections=col.grid_proj,
        change_maps=[m for m in (a.result() for a in col.change_acc.values()) if m is not None],
        reconstruction=reconstruction_summary(src, col.recon),
    )


__all__ = [
    "CHANGE_MEASURES",
    "GALLERY_SIZE",
    "GRID_ROWS",
    "ITA_BAND_NAMES",
    "AttributeSummary",
    "GalleryItem",
    "Report",
    "Shift",
    "TargetReport",
    "build",
    "reconstruction_sentence",
    "resolve_layout",
]
