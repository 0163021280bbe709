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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from net2fair.data.images import uint8_to_tensor
from net2fair.models.translator import Translator
from net2fair.report.build import (
    _estimate,
    _Gallery,
    _json_safe,
    model_provenance,
    open_model,
    plan_inputs,
    resolve_estimators,
    resolve_layout,
    stream_batches,
    versions,
)
from net2fair.report.changes import ChangeAccumulator, ChangeMap

logger = logging.getLogger(__name__)

GALLERY_SIZE = 16
FLAGGED_GALLERY_SIZE = 24
#: "auto": the strongest alpha <= 1 that keeps the reweighted folder worth half its images
DEFAULT_ALPHA = "auto"
DEFAULT_CLIP = 10.0
DEFAULT_MIN_ESS = 0.5


# ----------------------------------------------------------------------------- weights


def resampling_weights(
    log_likelihood: Sequence[float] | np.ndarray,
    alpha: float = DEFAULT_ALPHA,
    clip: float = DEFAULT_CLIP,
) -> np.ndarray:
    """Weights w_i ∝ p(z_i)^(-alpha) with mean exactly 1 and no weight above ``clip``.

    Clipping and rescaling are solved together: w_i = min(clip, c * p_i^(-alpha)) with the
    one c that makes the mean 1, so the mass cut from the rarest images is spread over the
    others in proportion to their own weights and both promises hold at once. The order
    is kept: a more likely image never gets a larger weight.

    Arguments:
        log_likelihood: ``(N,)`` log-densities (nats); must be finite.
        alpha: 0 gives uniform weights, 1 full inverse-density weights.
        clip: the largest weight allowed, >= 1 (``math.inf`` for none).

    Returns:
        ``(N,)`` float64 weights.
    """
    ll = np.asarray(log_likelihood, dtype=np.float64).reshape(-1)
    if ll.size == 0:
        raise ValueError("no log-likelihoods given")
    if not np.all(np.isfinite(ll)):
        raise ValueError("log-likelihoods must be finite")
    if not alpha >= 0.0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if not clip >= 1.0:
        raise ValueError(f"clip must be >= 1 (the weights have mean 1), got {clip}")
    logw = -alpha * ll
    u = np.exp(logw - logw.max())  # in (0, 1]; the rarest image has 1
    n = u.size
    if not math.isfinite(clip) or u.sum() * clip >= n:  # scaling to mean 1 stays under clip
        w = u * (n / u.sum())
        if np.all(w <= clip):
            return w
    # k images sit at the clip: c = (n - k * clip) / sum of the rest; the first k for which
    # the (k+1)-th largest stays below the clip is the solution (mean(min(clip, c u)) is
    # increasing in c, so it is unique).
    order = np.argsort(-u, kind="stable")
    us = u[order]
    rest = np.cumsum(us[::-1])[::-1]  # rest[k] = sum(us[k:])
    ks = np.arange(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = (n - ks * clip) / rest
    ok = (c > 0) & (c * us <= clip * (1 + 1e-12))
    k = int(np.argmax(ok))
    w = np.minimum(clip, c[k] * u)
    return w * (n / w.sum())  # remove rounding drift; the clipped ones move by < 1e-12


def auto_alpha(
    log_likelihood: Sequence[float] | np.ndarray,
    clip: float = DEFAULT_CLIP,
    min_ess_share: float = DEFAULT_MIN_ESS,
    max_alpha: float = 1.0,
) -> float:
    """The largest alpha in [0, max_alpha] whose weights keep an effective sample size of
    at least ``min_ess_share`` of the folder.

    Why not a fixed alpha: the spread of log p(z) grows with the latent dimension and
    differs between models (sd 17 nats on the demo's 64-d latents), so a fixed alpha of 0.5
    lets a few images carry the whole folder on one model and does nothing on another.
    Fixing how much information the reweighting may spend (the effective sample size) gives
    the same strength everywhere. Found by bisection (the ESS falls as alpha grows).
    """
    if not 0.0 < min_ess_share <= 1.0:
        raise ValueError(f"min_ess_share must be in (0, 1], got {min_ess_share}")
    ll = np.asarray(log_likelihood, dtype=np.float64).reshape(-1)
    n = ll.size

    def share(a: float) -> float:
        return effective_sample_size(resampling_weights(ll, a, clip)) / n

    if share(max_alpha) >= min_ess_share:
        return float(max_alpha)
    lo, hi = 0.0, float(max_alpha)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if share(mid) >= min_ess_share:
            lo = mid
        else:
            hi = mid
    return lo


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2: how many images the reweighted
    folder is worth."""
    w = np.asarray(weights, dtype=np.float64)
    return float(w.sum() ** 2 / max((w**2).sum(), 1e-300))


def weighted_distribution(labels: Sequence[str], categories: Sequence[str], weights: np.ndarray):  # noqa: ANN201
    """Shares of each category under ``weights`` (uniform weights: plain frequencies)."""
    w = np.asarray(weights, dtype=np.float64)
    index = {c: i for i, c in enumerate(categories)}
    out = np.zeros(len(categories))
    for lab, wi in zip(labels, w):
        out[index[lab]] += wi
    total = out.sum()
    return out / total if total > 0 else out


# ---------------------------------------------------------------------------- data model


@dataclass
class AuditImage:
    """A thumbnail for a gallery."""

    name: str
    pixels: np.ndarray = field(repr=False)
    log_likelihood: float
    weight: float | None = None
    note: str = ""


@dataclass
class AttributeBalance:
    """One estimated attribute's distribution over the folder, before and after weighting."""

    attribute: str
    categories: list[str]
    before: list[float]
    after: list[float]
    #: "categorical", or "continuous" (then the categories are equal-width value bins)
    kind: str = "categorical"

    @property
    def tv_before_after(self) -> float:
        """How far the weighting moves this attribute's distribution."""
        return float(0.5 * np.abs(np.asarray(self.before) - np.asarray(self.after)).sum())

    @property
    def tv_to_uniform_before(self) -> float:
        return _tv_uniform(self.before)

    @property
    def tv_to_uniform_after(self) -> float:
        return _tv_uniform(self.after)


def _tv_uniform(p: Sequence[float]) -> float:
    p = np.asarray(p, dtype=np.float64)
    return float(0.5 * np.abs(p - 1.0 / p.size).sum())


@dataclass
class Audit:
    """An audit of one folder: per-image figures, weights, galleries and provenance.

    ``rows`` holds one dict per usable image (the columns of ``weights.csv``), in folder
    order; ``weights`` and ``log_likelihood`` are the same numbers as arrays.
    """

    domain: str
    domains: list[str]
    root: str
    alpha: float
    #: "auto" (chosen for the effective sample size) or "given"
    alpha_rule: str
    min_ess: float
    #: False: flagged images got weight 0 and the weights were fitted to the others
    weight_flagged: bool
    clip: float
    flag_margin: float
    seed: int
    command: str | None
    created: str
    model: dict[str, Any]
    data: dict[str, Any]
    versions: dict[str, str]
    rows: list[dict[str, Any]] = field(repr=False)
    columns: list[str] = field(repr=False)
    weights: np.ndarray = field(repr=False)
    log_likelihood: np.ndarray = field(repr=False)
    least_typical: list[AuditImage] = field(repr=False)
    most_typical: list[AuditImage] = field(repr=False)
    flagged_examples: list[AuditImage] = field(repr=False)
    attributes: list[AttributeBalance] = field(default_factory=list)
    change_maps: list[ChangeMap] = field(default_factory=list, repr=False)
    z_dim: int = 0

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def n_flagged(self) -> int:
        return sum(1 for r in self.rows if r["flag"])

    @property
    def n_clipped(self) -> int:
        return int(np.sum(self.weights >= self.clip * (1 - 1e-9)))

    def flagged(self) -> list[dict[str, Any]]:
        """Rows of the flagged images, strongest evidence first."""
        rows = [r for r in self.rows if r["flag"]]
        return sorted(rows, key=lambda r: -r["log_bayes_factor"])

    def summary(self) -> dict[str, Any]:
        w, ll = self.weights, self.log_likelihood
        bpd = -ll / (max(self.z_dim, 1) * math.log(2.0))
        return {
            "n": self.n,
            "n_flagged": self.n_flagged,
            "flagged_share": self.n_flagged / self.n if self.n else 0.0,
            "flagged_by_dataset": {
                d: sum(1 for r in self.rows if r["flag"] and r["better_dataset"] == d)
                for d in self.domains
                if d != self.domain
            },
            "weights": {
                "min": float(w.min()),
                "median": float(np.median(w)),
                "max": float(w.max()),
                "n_clipped": self.n_clipped,
                "effective_sample_size": effective_sample_size(w),
                "effective_share": effective_sample_size(w) / self.n,
            },
            "log_likelihood": {
                "mean": float(ll.mean()),
                "sd": float(ll.std()),
                "min": float(ll.min()),
                "max": float(ll.max()),
            },
            "bits_per_dim": {"mean": float(bpd.mean()), "median": float(np.median(bpd))},
        }

    def sentences(self) -> list[str]:
        s = self.summary()
        wsum = s["weights"]
        out = [
            f"{self.n} images of {self.domain}: log p(z | {self.domain}) ranges from "
            f"{s['log_likelihood']['min']:.1f} to {s['log_likelihood']['max']:.1f} nats "
            f"(mean {s['log_likelihood']['mean']:.1f}, {s['bits_per_dim']['mean']:.3f} bits/dim).",
            f"Resampling weights (alpha {self.alpha:.3g}"
            + (
                f", chosen to keep {self.min_ess:.0%} of the sample"
                if self.alpha_rule == "auto"
                else ""
            )
            + f", clip {self.clip:g}) range from "
            f"{wsum['min']:.2f} to {wsum['max']:.2f}; {wsum['n_clipped']} at the clip; the "
            f"reweighted folder is worth {wsum['effective_sample_size']:.0f} images "
            f"({wsum['effective_share']:.0%}).",
        ]
        others = ", ".join(f"{k}: {v}" for k, v in s["flagged_by_dataset"].items() if v)
        out.append(
            f"{self.n_flagged} images ({s['flagged_share']:.1%}) are explained better by "
            f"another dataset"
            + (f" ({others})" if others else "")
            + (
                "; they get weight 0 (review them; --weight-flagged weights them too)."
                if self.n_flagged and not self.weight_flagged
                else "."
            )
        )
        for a in self.attributes:
            if a.kind == "categorical" and a.tv_to_uniform_before > 0:
                out.append(
                    f"{a.attribute}: distance to uniform {a.tv_to_uniform_before:.2f} -> "
                    f"{a.tv_to_uniform_after:.2f} after reweighting."
                )
        out.extend(m.sentence() for m in self.change_maps)
        return out

    def to_dict(self) -> dict[str, Any]:
        """All figures and provenance (no thumbnails, no per-image rows), JSON-safe."""
        d = {
            "format": "net2fair-audit",
            "format_version": 1,
            "domain": self.domain,
            "domains": self.domains,
            "root": self.root,
            "alpha": self.alpha,
            "alpha_rule": self.alpha_rule,
            "min_ess": self.min_ess,
            "weight_flagged": self.weight_flagged,
            "clip": self.clip,
            "flag_margin": self.flag_margin,
            "seed": self.seed,
            "command": self.command,
            "created": self.created,
            "model": self.model,
            "data": self.data,
            "versions": self.versions,
            "summary": self.summary(),
            "headline": self.sentences(),
            "attributes": [
                {
                    "attribute": a.attribute,
                    "categories": a.categories,
                    "before": a.before,
                    "after": a.after,
                    "tv_to_uniform_before": a.tv_to_uniform_before,
                    "tv_to_uniform_after": a.tv_to_uniform_after,
                    "tv_before_after": a.tv_before_after,
                    "kind": a.kind,
                }
                for a in self.attributes
            ],
            "least_typical": [_img_dict(g) for g in self.least_typical],
            "most_typical": [_img_dict(g) for g in self.most_typical],
            "flagged": [
                {k: r[k] for k in ("path", "better_dataset", "log_bayes_factor", "weight")}
                for r in self.flagged()
            ],
            "change_maps": [m.to_dict() for m in self.change_maps],
        }
        return _json_safe(d)


def _img_dict(g: AuditImage) -> dict[str, Any]:
    return {"path": g.name, "log_likelihood": g.log_likelihood, "weight": g.weight}


def _binned_balance(key: str, values: np.ndarray, weights: np.ndarray, bins: int = 6):  # noqa: ANN202
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-9:
        hi = lo + 1e-9
    edges = np.linspace(lo, hi, bins + 1)
    idx = np.clip(np.digitize(values, edges[1:-1]), 0, bins - 1)
    cats = [f"{edges[i]:.3g} to {edges[i + 1]:.3g}" for i in range(bins)]
    before = np.bincount(idx, minlength=bins) / len(values)
    after = np.bincount(idx, weights=weights, minlength=bins) / weights.sum()
    return AttributeBalance(key, cats, before.tolist(), after.tolist(), kind="continuous")


# ---------------------------------------------------------------------------------- run


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
            inverse-density weights would otherwise hand it the largest share.
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
    t, model_path = open_model(model, device)
    own = t.domains[t.domain_index(domain)]
    own_i = t.domain_index(own)
    layout = resolve_layout(layout, t.domains)
    if compare is None:
        compare_to: list[str] = []
    else:
        compare_to = [d for d in dict.fromkeys(t._targets(compare)) if d != own]

    est = resolve_estimators(estimators, layout, t.device)
    plan = plan_inputs(images, max_images, seed, folder_order=True)
    skipped = plan.skipped

    domains = t.domains
    rows: list[dict[str, Any]] = []
    lls: list[float] = []
    least = _Gallery(GALLERY_SIZE, largest=False)  # by log-likelihood
    most = _Gallery(GALLERY_SIZE, largest=True)
    flagged = _Gallery(FLAGGED_GALLERY_SIZE, largest=True)  # by log Bayes factor
    acc = {d: ChangeAccumulator(own, d, layout) for d in compare_to}
    est_labels: dict[str, list[str]] = {}
    est_values: dict[str, list[float]] = {}
    est_cats = {k: list(v) for k, v in (getattr(est, "categories", {}) or {}).items()}
    ln2d = t.z_dim * math.log(2.0)

    def run_batch(batch: list[np.ndarray], batch_names: list[str]) -> None:
        pixels = np.stack(batch)
        x = uint8_to_tensor(pixels).to(t.device)
        with torch.inference_mode():
            z = t.encode(x)
            ll = t.latent_log_likelihood(z).double().cpu()
            post = torch.softmax(ll + t.priors.double().cpu().log(), dim=1)
            if acc:  # the residual decoded under its own dataset is z itself
                zs = t.project_latents(z, own, compare_to)
                xp = t.decode(torch.cat([z, *zs.values()])).split(len(batch))
                for a, x_d in zip(acc.values(), xp[1:]):
                    a.update(xp[0], x_d)
        a_est = _estimate(est, pixels) if est is not None else None
        for i in range(len(batch)):
            ll_own = float(ll[i, own_i])
            others = [(float(ll[i, j]), d) for j, d in enumerate(domains) if j != own_i]
            best_ll, best = max(others) if others else (-math.inf, "")
            lbf = best_ll - ll_own
            flag = bool(others) and lbf > flag_margin
            row: dict[str, Any] = {
                "path": batch_names[i],
                "weight": math.nan,  # filled in once every likelihood is known
                "log_likelihood": ll_own,
                "bits_per_dim": -ll_own / ln2d,
            }
            for j, d in enumerate(domains):
                row[f"posterior_{d}"] = float(post[i, j])
            for j, d in enumerate(domains):
                row[f"loglik_{d}"] = float(ll[i, j])
            row["flag"] = flag
            row["better_dataset"] = best if flag else ""
            row["log_bayes_factor"] = lbf
            if a_est is not None:
                for key, (vals, cats) in a_est.items():
                    v = cats[int(vals[i])] if cats is not None else float(vals[i])
                    row[f"est_{key}"] = v
                    if cats is not None:
                        est_labels.setdefault(key, []).append(v)
                    else:
                        est_values.setdefault(key, []).append(v)
            rows.append(row)
            lls.append(ll_own)
            px, name = pixels[i], batch_names[i]
            least.offer(ll_own, lambda px=px, name=name, v=ll_own: AuditImage(name, px.copy(), v))
            most.offer(ll_own, lambda px=px, name=name, v=ll_own: AuditImage(name, px.copy(), v))
            if flag:
                note = f"{best} by {lbf:.1f} nats"
                flagged.offer(
                    lbf,
                    lambda px=px, name=name, v=ll_own, note=note: AuditImage(
                        name, px.copy(), v, note=note
                    ),
                )

    bar = tqdm(total=plan.wanted, desc="audit", unit="img", disable=not progress)
    try:
        used = stream_batches(
            plan.paths,
            plan.names,
            plan.order,
            plan.wanted,
            t.resolution,
            batch_size,
            skipped,
            run_batch,
            bar.update,
        )
    finally:
        bar.close()
    if used == 0:
        raise ValueError(
            f"no usable image in {plan.described} ({len(plan.paths)} image files found, "
            f"{len(skipped)} skipped)"
        )

    ll_arr = np.asarray(lls, dtype=np.float64)
    flags = np.array([r["flag"] for r in rows], dtype=bool)
    keep = np.ones(len(rows), dtype=bool) if weight_flagged else ~flags
    if not keep.any():
        logger.warning("every image is flagged: weighting all of them")
        keep[:] = True
    n_keep, n_all = int(keep.sum()), len(rows)
    # kept images get mean n_all / n_keep, so the folder's mean is 1 and none exceeds clip
    clip_kept = max(1.0, clip * n_keep / n_all)
    alpha_rule = "auto" if alpha == "auto" else "given"
    alpha = auto_alpha(ll_arr[keep], clip_kept, min_ess) if alpha == "auto" else float(alpha)
    weights = np.zeros(n_all)
    weights[keep] = resampling_weights(ll_arr[keep], alpha, clip_kept) * (n_all / n_keep)
    for row, w in zip(rows, weights):
        row["weight"] = float(w)
    by_name = {r["path"]: r["weight"] for r in rows}
    galleries = [least.items(), most.items(), flagged.items()]
    for gal in galleries:
        for g in gal:
            g.weight = by_name.get(g.name)
    attributes = [
        AttributeBalance(
            attribute=key,
            categories=est_cats[key],
            before=weighted_distribution(labels, est_cats[key], np.ones(len(labels))).tolist(),
            after=weighted_distribution(labels, est_cats[key], weights).tolist(),
        )
        for key, labels in est_labels.items()
        if key in est_cats and key != "domain"
    ]
    attributes += [_binned_balance(key, np.asarray(v), weights) for key, v in est_values.items()]
    return Audit(
        domain=own,
        domains=list(domains),
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
        model=model_provenance(t, model_path),
        data={
            "input": plan.described,
            "n_found": len(plan.paths),
            "n_used": used,
            "n_skipped": len(skipped),
            "skipped": skipped,
            "max_images": max_images,
            "sampled": plan.sampled,
        },
        versions=versions(),
        rows=rows,
        columns=list(rows[0].keys()),
        weights=weights,
        log_likelihood=ll_arr,
        least_typical=galleries[0],
        most_typical=galleries[1],
        flagged_examples=galleries[2],
        attributes=attributes,
        change_maps=[m for m in (a.result() for a in acc.values()) if m is not None],
        z_dim=t.z_dim,
    )
