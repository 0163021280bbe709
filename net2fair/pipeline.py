"""A folder of images through a model: the one reader the report, the audit and the CLI share.

The steps, in the order a caller takes them::

    from net2fair import pipeline

    plan = pipeline.plan_inputs("faces/", max_images=500, seed=0)  # which files, which order
    t, folder = pipeline.open_model("demo", "cpu")  # a Translator and where it came from
    for batch in pipeline.iter_batches(plan, t.resolution, batch_size=32):
        enc = pipeline.encode(t, batch.tensor(t.device))  # z, log p(z | d), p(d | z)
    print(plan.used, "images used,", len(plan.skipped), "skipped")

A file that cannot be used (corrupt, truncated, too large, not an image) is logged and
recorded in ``plan.skipped`` as ``{"file", "reason"}``, and the next one is taken, so a
run never stops on a bad file. Besides the reader: bounded galleries (:class:`Gallery`),
attribute estimators (:func:`resolve_estimators`, :func:`estimate`), the face layout
(:func:`resolve_layout`) and what a report or audit records about its model and software
(:func:`model_provenance`, :func:`versions`).
"""

from __future__ import annotations

import heapq
import logging
import math
import platform
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch

from net2fair import __version__
from net2fair.data.images import (
    LAYOUTS,
    ImageError,
    list_images,
    load_image,
    to_uint8_array,
    uint8_to_tensor,
)
from net2fair.fileio import display_path
from net2fair.models.translator import Translator, resolve_model_path
from net2fair.synth.priors import DOMAINS

logger = logging.getLogger(__name__)

#: face geometries the skin and background measures know


# --------------------------------------------------------------------------------- inputs


@dataclass
class InputPlan:
    """Which files to read, in which order, and what was skipped so far.

    ``paths[i]`` is shown as ``names[i]`` (relative to the folder, printable); ``order``
    lists the indices to try, and reading stops once ``wanted`` images were used.
    :func:`iter_batches` appends the files it cannot use to ``skipped`` and counts the
    used ones in ``used``.
    """

    paths: list[Path]
    names: list[str]
    order: list[int]
    wanted: int
    described: str
    sampled: bool
    skipped: list[dict[str, str]]
    #: the folder names are relative to (a single file's parent)
    root: Path | None = None
    used: int = 0
    #: folders named like an image (``faces.jpg/``): scanned like any folder, not skipped
    scanned: list[Path] = field(default_factory=list)

    def data(self, max_images: int | None) -> dict[str, Any]:
        """The ``data`` record of a report or audit: input, counts, skipped files."""
        return {
            "input": self.described,
            "n_found": len(self.paths),
            "n_used": self.used,
            "n_skipped": len(self.skipped),
            "skipped": self.skipped,
            "max_images": max_images,
            "sampled": self.sampled,
        }

    def no_usable_image(self) -> ValueError:
        """The error for a plan that gave no usable image."""
        return ValueError(
            f"no usable image in {self.described} ({len(self.paths)} image files found, "
            f"{len(self.skipped)} skipped)"
        )


def plan_inputs(
    images: str | Path | Sequence[str | Path],
    max_images: int | None = None,
    seed: int = 0,
    *,
    folder_order: bool = False,
) -> InputPlan:
    """List the input images; with ``max_images`` below their number, a random sample drawn
    with ``seed`` (read in random order, or in folder order with ``folder_order``).

    Arguments:
        images: a folder (scanned recursively, sorted by relative path), one image file,
            or a list of files.
        max_images: use at most this many images; None for all.
        seed: the sample's seed.
        folder_order: read a sample in folder order rather than in random order.

    Raises:
        FileNotFoundError: ``images`` does not exist.
    """
    root: Path | None = None
    scanned: list[Path] = []
    if isinstance(images, (str, Path)):
        given = Path(images)
        paths, problems = list_images(given)
        # a folder named like an image is scanned, not skipped
        scanned = [p for p, r in problems if r.endswith("scanning it")]
        problems = [(p, r) for p, r in problems if not r.endswith("scanning it")]
        root = given if given.is_dir() else given.parent
        names = [display_path(p.relative_to(root).as_posix()) for p in paths]
        described = display_path(given)
    else:
        paths, problems = [Path(p) for p in images], []
        names = [display_path(p) for p in paths]
        described = f"{len(paths)} files"
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
    plan = InputPlan(paths, names, order, wanted, described, sampled, skipped, root)
    plan.scanned = scanned
    return plan


@dataclass
class ImageBatch:
    """Images read for one forward pass: ``pixels`` ``(B, R, R, 3)`` uint8, and for each
    its printable ``names`` entry and its ``paths`` entry."""

    pixels: np.ndarray
    names: list[str]
    paths: list[Path]

    def __len__(self) -> int:
        return len(self.names)

    def tensor(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """The pixels as ``(B, 3, R, R)`` float32 in [-1, 1] on ``device``."""
        return uint8_to_tensor(self.pixels).to(device)


def iter_batches(
    plan: InputPlan,
    resolution: int,
    batch_size: int,
    *,
    progress: Callable[[int], Any] | None = None,
    draft: bool = True,
) -> Iterator[ImageBatch]:
    """Read ``plan.paths[i]`` for i in ``plan.order`` at ``resolution`` (shorter side
    resized, centre crop) in batches of ``batch_size``, until ``plan.wanted`` images.

    A file that cannot be used is logged, appended to ``plan.skipped`` and replaced by the
    next one; ``plan.used`` counts the images yielded. ``progress(n)`` is called after each
    batch of n. ``draft`` decodes large JPEGs at a reduced DCT scale that still covers
    ``resolution`` (much faster; False decodes every file at full size).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pixels: list[np.ndarray] = []
    names: list[str] = []
    paths: list[Path] = []
    for idx in plan.order:
        if plan.used + len(pixels) >= plan.wanted:
            break
        try:
            img = load_image(plan.paths[idx], size_hint=resolution if draft else None)
            arr = to_uint8_array(img, resolution)
        except ImageError as e:
            logger.warning("skipped %s: %s", e.path, e.reason)
            plan.skipped.append({"file": display_path(e.path), "reason": display_path(e.reason)})
            continue
        pixels.append(arr)
        names.append(plan.names[idx])
        paths.append(plan.paths[idx])
        if len(pixels) == batch_size:
            yield _emit(plan, pixels, names, paths, progress)
            pixels, names, paths = [], [], []
    if pixels:
        yield _emit(plan, pixels, names, paths, progress)


def _emit(
    plan: InputPlan,
    pixels: list[np.ndarray],
    names: list[str],
    paths: list[Path],
    progress: Callable[[int], Any] | None,
) -> ImageBatch:
    plan.used += len(pixels)
    if progress is not None:
        progress(len(pixels))
    return ImageBatch(np.stack(pixels), names, paths)


# ---------------------------------------------------------------------------------- model


def open_model(
    model: Translator | str | Path, device: str | torch.device = "cpu"
) -> tuple[Translator, str | None]:
    """A Translator, loaded from a model folder or shipped name if needed, and that folder
    (None for a Translator given as an object)."""
    if isinstance(model, Translator):
        return model, None
    return Translator.load(model, device=device), str(resolve_model_path(model))


@dataclass
class Encoded:
    """A batch encoded and scored under every dataset, from one pass of the flow.

    ``z``: ``(B, z_dim)`` encoder means; ``log_likelihood``: ``(B, K)`` log p(z | d) in
    nats; ``posterior``: ``(B, K)`` p(d | z) with the training priors (rows sum to 1).
    """

    z: torch.Tensor
    log_likelihood: torch.Tensor
    posterior: torch.Tensor
    bits_per_dim: torch.Tensor = field(repr=False)


def encode(t: Translator, x: torch.Tensor) -> Encoded:
    """Encode images ``(B, 3, R, R)`` in [-1, 1] and score their latents: the flow runs
    once per dataset, and the posterior is Bayes' rule on those same log-likelihoods."""
    z = t.encode(x)
    ll = t.latent_log_likelihood(z)
    return Encoded(z, ll, t.posterior_from_log_likelihood(ll), t.bits_per_dim(ll))


# ------------------------------------------------------------------- layout, estimators


def resolve_layout(layout: str, domains: Sequence[str]) -> str:
    """``"auto"`` -> ``"synthetic"`` when every dataset is one of the benchmark's, else
    ``"ffhq"``; ``"ffhq"`` and ``"synthetic"`` pass through."""
    if layout == "auto":
        return "synthetic" if all(d in DOMAINS for d in domains) else "ffhq"
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected auto, ffhq or synthetic")
    return layout


def resolve_estimators(estimators: Any, layout: str, device: torch.device) -> Any:
    """``"auto"``: the shipped attribute estimators on synthetic-benchmark models, else
    None; None or an estimator object pass through."""
    if not isinstance(estimators, str):
        return estimators
    if estimators != "auto":
        raise ValueError(f"estimators must be 'auto', None or an estimator, got {estimators!r}")
    if layout != "synthetic":
        return None
    from net2fair.synth.estimators import load_estimators

    return load_estimators(device)


def estimator_categories(est: Any) -> dict[str, list[str]]:
    """``{attribute: category names}`` of an estimator's categorical attributes."""
    return {k: list(v) for k, v in (getattr(est, "categories", {}) or {}).items()}


def estimate(est: Any, pixels: np.ndarray) -> dict[str, tuple[np.ndarray, list[str] | None]]:
    """Estimator predictions on ``(B, H, W, 3)`` uint8 pixels as
    ``{attribute: (values (B,), category names or None for a continuous attribute)}``."""
    pred = est.predict(pixels)
    cats = estimator_categories(est)
    out = {}
    for key, v in pred.items():
        arr = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
        out[key] = (arr, cats.get(key))
    return out


# ------------------------------------------------------------------------------ galleries

T = TypeVar("T")


class Gallery(Generic[T]):
    """The ``k`` items with the largest (or smallest) value, in O(k) memory.

    :meth:`offer` takes the value and a function that makes the item, called only when the
    item enters the gallery (thumbnails are copied only then). NaN values are ignored;
    among equal values the earlier item wins.
    """

    def __init__(self, k: int, largest: bool) -> None:
        self.k, self.sign = k, 1.0 if largest else -1.0
        self._heap: list[tuple[tuple[float, int], T]] = []
        self._count = 0

    def offer(self, value: float, make: Callable[[], T]) -> None:
        """Consider an item of ``value``; ``make()`` builds it if it is kept."""
        if math.isnan(value):
            return
        key = (self.sign * value, -self._count)
        self._count += 1
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, (key, make()))
        elif key > self._heap[0][0]:
            heapq.heapreplace(self._heap, (key, make()))

    def items(self) -> list[T]:
        """The kept items, best first."""
        return [item for _, item in sorted(self._heap, key=lambda e: e[0], reverse=True)]


# ----------------------------------------------------------------------------- provenance


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
    """The versions of net2fair, torch, numpy and Python."""
    return {
        "net2fair": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


__all__ = [
    "LAYOUTS",
    "Encoded",
    "Gallery",
    "ImageBatch",
    "InputPlan",
    "encode",
    "estimate",
    "estimator_categories",
    "iter_batches",
    "model_provenance",
    "open_model",
    "plan_inputs",
    "resolve_estimators",
    "resolve_layout",
    "versions",
]
