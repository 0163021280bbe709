"""Audit one dataset folder with the cINN's exact density: which images are rare, which look
like another dataset, and resampling weights that rebalance the folder.

Every image's latent code z (the encoder mean) gets its exact log-density log p(z | d)
under every dataset d of the model. From these:

* **typicality**: log p(z | D) under the folder's own dataset D (and bits/dim);
* **posterior** p(d | z) with the model's training priors, and a **flag** when another
  dataset explains the image better: max over d != D of log p(z | d) - log p(z | D) (a log
  Bayes factor, prior-free: the folder's label is the claim under test) above a margin;
* **resampling weight** w ∝ p(z | D)^(-alpha), scaled to mean 1 over the folder and
  clipped at ``clip`` (see :func:`resampling_weights`).

:func:`run` streams the folder in batches and keeps only bounded galleries, so memory
grows by one small row per image. The result is an :class:`Audit`; :func:`net2fair.audit.write`
turns it into ``weights.csv``, ``audit.json`` and ``index.html``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from net2fair import pipeline
from net2fair.audit.model import AttributeBalance, Audit, AuditImage, binned_balance
from net2fair.audit.weights import (
    DEFAULT_ALPHA,
    DEFAULT_CLIP,
    DEFAULT_MIN_ESS,
    auto_alpha,
    effective_sample_size,
    resampling_weights,
    weighted_distribution,
)
from net2fair.models.flow import bits_per_dim
from net2fair.models.translator import Translator
from net2fair.report.changes import ChangeAccumulator

logger = logging.getLogger(__name__)

GALLERY_SIZE = 16
FLAGGED_GALLERY_SIZE = 24


def run(
    model: Translator | str | Path,
    images: str | Path,
    *,
    domain: str,
    alpha: float | str = DEFAULT_ALPHA,
    clip: float = DEFAULT_CLIP,
    min_ess: float = DEFAULT_MIN_ESS,
    flag_margin: float = 0.0,
    weight_flagged: bool = False,
    compare: str | Sequence[str] | None = None,
    max_images: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
    estimators: Any = "auto",
    layout: str = "auto",
    device: str | torch.device = "cpu",
    progress: bool = False,
    command: str | None = None,
) -> Audit:
    """Audit the images of ``domain`` in ``images`` with the model's exact densities.

    Arguments:
        model: a :class:`Translator`, a model folder or a shipped model name.
        images: a folder (scanned recursively) or one image file.
        domain: the dataset these images claim to belong to (one of the model's).
        alpha, clip: resampling weights w ∝ p(z | domain)^(-alpha), mean 1, at most clip;
            ``alpha="auto"`` picks the strongest alpha <= 1 that keeps the effective sample
            size at ``min_ess`` of the folder or more (see :func:`auto_alpha`).
        min_ess: the share of the folder the weighted folder must stay worth (auto alpha).
        flag_margin: flag an image when another dataset's log-density beats its own by
            more than this many nats (0: whenever another dataset explains it better).
        weight_flagged: give flagged images a weight too. By default they get weight 0 and
            the weights (mean 1 over the folder) are fitted to the other images: a
            mislabelled image is the least likely of all under the folder's dataset, so
            inverse-density weights would otherwise hand it the largest share. When more
            than ``1 - 1/clip`` of the folder is flagged every image is weighted anyway
            (see :func:`_fit_weights`); the returned audit's ``weight_flagged`` says which.
        compare: other datasets (or ``"all"``) to map this folder into for the "where each
            dataset changes faces" maps; None for none.
        max_images: at most this many images, a random sample drawn with ``seed`` when the
            folder holds more.
        batch_size: images per forward pass.
        estimators: attribute estimators (``predict(uint8 (B, H, W, 3))`` and
            ``categories``); ``"auto"`` loads the shipped ones on synthetic-benchmark models;
            None disables the before/after attribute distributions.
        layout: face geometry for the change maps' regions (see :func:`report.build`).
        device: where to run a model given by path.
        progress: show a progress bar.
        command: the command line to record.

    Raises:
        UnknownDomainError: ``domain`` or a compared dataset is not one of the model's.
        ValueError: no usable image, or a bad argument.
    """
    if isinstance(alpha, str):
        if alpha != "auto":
            raise ValueError(f"alpha must be a number >= 0 or 'auto', got {alpha!r}")
    elif not alpha >= 0.0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if not clip >= 1.0:
        raise ValueError(f"clip must be >= 1 (the weights have mean 1), got {clip}")
    if not 0.0 < min_ess <= 1.0:
        raise ValueError(f"min_ess must be in (0, 1], got {min_ess}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be >= 1, got {max_images}")
    t, model_path = pipeline.open_model(model, device)
    own = t.domains[t.domain_index(domain)]
    layout = pipeline.resolve_layout(layout, t.domains)
    compare_to: list[str] = []
    if compare is not None:
        compare_to = [d for d in dict.fromkeys(t._targets(compare)) if d != own]
    est = pipeline.resolve_estimators(estimators, layout, t.device)
    plan = pipeline.plan_inputs(images, max_images, seed, folder_order=True)

    col = _Collector(t, own, compare_to, layout, est, flag_margin)
    bar = tqdm(total=plan.wanted, desc="audit", unit="img", disable=not progress)
    try:
        for batch in pipeline.iter_batches(plan, t.resolution, batch_size, progress=bar.update):
            col.add(batch)
    finally:
        bar.close()
    if plan.used == 0:
        raise plan.no_usable_image()

    rows = col.rows
    ll_arr = np.asarray(col.lls, dtype=np.float64)
    flags = np.array([r["flag"] for r in rows], dtype=bool)
    alpha_rule = "auto" if alpha == "auto" else "given"
    alpha, weights, weight_flagged = _fit_weights(
        ll_arr, flags, alpha, clip, min_ess, weight_flagged
    )
    for row, w in zip(rows, weights):
        row["weight"] = float(w)
    by_name = {r["path"]: r["weight"] for r in rows}
    galleries = [col.least.items(), col.most.items(), col.flagged.items()]
    for gal in galleries:
        for g in gal:
            g.weight = by_name.get(g.name)
    return Audit(
        domain=own,
        domains=list(t.domains),
        root=plan.described,
        alpha=float(alpha),
        alpha_rule=alpha_rule,
        min_ess=float(min_ess),
        weight_flagged=bool(weight_flagged),
        clip=float(clip),
        flag_margin=float(flag_margin),
        seed=seed,
        command=command,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        model=pipeline.model_provenance(t, model_path),
        data=plan.data(max_images),
        versions=pipeline.versions(),
        rows=rows,
        columns=list(rows[0].keys()),
        weights=weights,
        log_likelihood=ll_arr,
        least_typical=galleries[0],
        most_typical=galleries[1],
        flagged_examples=galleries[2],
        attributes=col.balances(weights),
        change_maps=[m for m in (a.result() for a in col.change_acc.values()) if m is not None],
        z_dim=t.z_dim,
    )


def _fit_weights(
    ll: np.ndarray,
    flags: np.ndarray,
    alpha: float | str,
    clip: float,
    min_ess: float,
    weight_flagged: bool,
) -> tuple[float, np.ndarray, bool]:
    """The alpha used, the folder's weights, and whether the flagged images were weighted.

    Flagged images get 0 unless ``weight_flagged``, and the others are fitted so the
    folder's mean is 1. When fewer than ``n / clip`` images are left unflagged, zeroing the
    flagged ones would push the others above ``clip`` (each carries ``n / n_kept`` on
    average); then every image is weighted, with a warning, so both promises (mean 1, no
    weight above ``clip``) hold. Such a folder is mostly "another dataset" by the model's
    own densities: it is more likely mislabelled as a whole than image by image.
    """
    n_all = len(ll)
    keep = np.ones(n_all, dtype=bool) if weight_flagged else ~flags
    n_keep = int(keep.sum())
    if n_keep * clip < n_all:
        if n_keep == 0:
            logger.warning("every image is flagged: weighting all of them")
        else:
            logger.warning(
                "%d of %d images are flagged: too many to give weight 0 with no weight above "
                "%g; weighting all of them",
                n_all - n_keep,
                n_all,
                clip,
            )
        keep[:] = True
        n_keep = n_all
        weight_flagged = True
    # kept images get mean n_all / n_keep, so the folder's mean is 1 and none exceeds clip
    clip_kept = clip * n_keep / n_all
    alpha = auto_alpha(ll[keep], clip_kept, min_ess) if alpha == "auto" else float(alpha)
    weights = np.zeros(n_all)
    weights[keep] = resampling_weights(ll[keep], alpha, clip_kept) * (n_all / n_keep)
    return alpha, weights, weight_flagged


class _Collector:
    """What :func:`run` keeps while the folder streams past: one row per image, the
    log-likelihoods under the folder's own dataset, bounded galleries, the estimated
    attributes and the change maps."""

    def __init__(
        self,
        t: Translator,
        own: str,
        compare_to: list[str],
        layout: str,
        est: Any,
        flag_margin: float,
    ) -> None:
        self.t, self.own, self.own_i = t, own, t.domain_index(own)
        self.compare_to, self.est, self.flag_margin = compare_to, est, flag_margin
        self.rows: list[dict[str, Any]] = []
        self.lls: list[float] = []
        self.least = pipeline.Gallery[AuditImage](GALLERY_SIZE, largest=False)  # by log-likelihood
        self.most = pipeline.Gallery[AuditImage](GALLERY_SIZE, largest=True)
        self.flagged = pipeline.Gallery[AuditImage](FLAGGED_GALLERY_SIZE, largest=True)  # by log BF
        self.change_acc = {d: ChangeAccumulator(own, d, layout) for d in compare_to}
        self.est_labels: dict[str, list[str]] = {}
        self.est_values: dict[str, list[float]] = {}

    def add(self, batch: pipeline.ImageBatch) -> None:
        """Score one batch under every dataset and keep its rows and thumbnails."""
        t = self.t
        pixels = batch.pixels
        with torch.inference_mode():
            z = t.encode(batch.tensor(t.device))
            ll = t.latent_log_likelihood(z).double().cpu()
            post = t.posterior_from_log_likelihood(ll)
            if self.change_acc:  # the residual decoded under its own dataset is z itself
                zs = t.project_latents(z, self.own, self.compare_to)
                xp = t.decode(torch.cat([z, *zs.values()])).split(len(batch))
                for a, x_d in zip(self.change_acc.values(), xp[1:]):
                    a.update(xp[0], x_d)
        a_est = pipeline.estimate(self.est, pixels) if self.est is not None else None
        for i in range(len(batch)):
            self._add_image(batch.names[i], pixels[i], ll[i], post[i], a_est, i)

    def _add_image(
        self,
        name: str,
        px: np.ndarray,
        ll: torch.Tensor,
        post: torch.Tensor,
        a_est: dict[str, tuple[np.ndarray, list[str] | None]] | None,
        i: int,
    ) -> None:
        domains, own_i = self.t.domains, self.own_i
        ll_own = float(ll[own_i])
        others = [(float(ll[j]), d) for j, d in enumerate(domains) if j != own_i]
        best_ll, best = max(others) if others else (-math.inf, "")
        lbf = best_ll - ll_own
        flag = bool(others) and lbf > self.flag_margin
        row: dict[str, Any] = {
            "path": name,
            "weight": math.nan,  # filled in once every likelihood is known
            "log_likelihood": ll_own,
            "bits_per_dim": bits_per_dim(-ll_own, self.t.z_dim),
        }
        for j, d in enumerate(domains):
            row[f"posterior_{d}"] = float(post[j])
        for j, d in enumerate(domains):
            row[f"loglik_{d}"] = float(ll[j])
        row["flag"] = flag
        row["better_dataset"] = best if flag else ""
        row["log_bayes_factor"] = lbf
        if a_est is not None:
            for key, (vals, cats) in a_est.items():
                v = cats[int(vals[i])] if cats is not None else float(vals[i])
                row[f"est_{key}"] = v
                if cats is not None:
                    self.est_labels.setdefault(key, []).append(v)
                else:
                    self.est_values.setdefault(key, []).append(v)
        self.rows.append(row)
        self.lls.append(ll_own)
        self.least.offer(ll_own, lambda: AuditImage(name, px.copy(), ll_own))
        self.most.offer(ll_own, lambda: AuditImage(name, px.copy(), ll_own))
        if flag:
            note = f"{best} by {lbf:.1f} nats"
            self.flagged.offer(lbf, lambda: AuditImage(name, px.copy(), ll_own, note=note))

    def balances(self, weights: np.ndarray) -> list[AttributeBalance]:
        """Each estimated attribute's distribution over the folder, before and after
        ``weights`` (the style itself, ``domain``, is left out)."""
        cats = pipeline.estimator_categories(self.est)
        out = [
            AttributeBalance(
                attribute=key,
                categories=cats[key],
                before=weighted_distribution(labels, cats[key], np.ones(len(labels))).tolist(),
                after=weighted_distribution(labels, cats[key], weights).tolist(),
            )
            for key, labels in self.est_labels.items()
            if key in cats and key != "domain"
        ]
        return out + [
            binned_balance(key, np.asarray(v), weights) for key, v in self.est_values.items()
        ]


__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_CLIP",
    "DEFAULT_MIN_ESS",
    "FLAGGED_GALLERY_SIZE",
    "GALLERY_SIZE",
    "AttributeBalance",
    "Audit",
    "AuditImage",
    "auto_alpha",
    "effective_sample_size",
    "resampling_weights",
    "run",
    "weighted_distribution",
]
