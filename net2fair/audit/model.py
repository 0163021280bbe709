"""The audit's data model: :class:`Audit` (per-image rows, weights, galleries, provenance;
:meth:`Audit.to_dict` is audit.json), :class:`AuditImage` thumbnails and
:class:`AttributeBalance` (an estimated attribute before and after weighting)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from net2fair.audit.weights import effective_sample_size
from net2fair.htmlkit import json_safe
from net2fair.models.flow import bits_per_dim
from net2fair.report.changes import ChangeMap


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
        bpd = bits_per_dim(-ll, max(self.z_dim, 1))
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
        return json_safe(d)


def _img_dict(g: AuditImage) -> dict[str, Any]:
    return {"path": g.name, "log_likelihood": g.log_likelihood, "weight": g.weight}


def binned_balance(
    key: str, values: np.ndarray, weights: np.ndarray, bins: int = 6
) -> AttributeBalance:
    """A continuous attribute as a balance over ``bins`` equal-width value ranges."""
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-9:
        hi = lo + 1e-9
    edges = np.linspace(lo, hi, bins + 1)
    idx = np.clip(np.digitize(values, edges[1:-1]), 0, bins - 1)
    cats = [f"{edges[i]:.3g} to {edges[i + 1]:.3g}" for i in range(bins)]
    before = np.bincount(idx, minlength=bins) / len(values)
    after = np.bincount(idx, weights=weights, minlength=bins) / weights.sum()
    return AttributeBalance(key, cats, before.tolist(), after.tolist(), kind="continuous")


__all__ = ["AttributeBalance", "Audit", "AuditImage", "binned_balance"]
