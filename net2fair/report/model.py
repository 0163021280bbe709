"""The bias projection report's data model: plain data objects that
:func:`net2fair.report.build` fills and the writers (:func:`net2fair.report.write`) read.

A :class:`Report` holds, per target dataset, a :class:`TargetReport` of :class:`Shift`
entries (one per measure: the means before and after, the paired shift and its bootstrap
interval), :class:`AttributeSummary` entries (estimated attributes) and galleries of
:class:`GalleryItem` thumbnails; besides them the per-image rows (per_image.csv), the
projection grid, the change maps and the provenance. :meth:`Report.to_dict` is report.json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from net2fair.htmlkit import json_safe
from net2fair.report.changes import ChangeMap


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
    ``grid_*`` the first inputs (:data:`net2fair.report.build.GRID_ROWS`) and their
    projections.
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
        """The entry of one target dataset."""
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
        return json_safe(d)


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


__all__ = [
    "AttributeSummary",
    "GalleryItem",
    "Report",
    "Shift",
    "TargetReport",
    "reconstruction_sentence",
]
