"""Several image folders, one per dataset ("domain"), as one labelled torch dataset.

Each folder is a dataset whose bias we want to see (e.g. ``photo=data/ffhq``,
``anime=data/anime``). Items are ``(image, domain_index)`` with the image ``(3, R, R)``
float32 in [-1, 1]. The train/val split is a stable hash of each file's path inside its
folder, so adding files never moves existing ones to the other split.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from net2fair.data.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageError,
    check_image,
    list_images,
    load_image,
    to_uint8_array,
    uint8_to_tensor,
)

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "all")
PRELOAD_LIMIT_BYTES = 2 * 1024**3
"""With ``preload=None`` the images are decoded into memory when they take less than this."""

_T = TypeVar("_T")
_CHUNK = 256  # images decoded per batch of thread-pool work; bounds memory held in flight


def split_of(relative_path: str, val_fraction: float) -> str:
    """Assign a file to ``"train"`` or ``"val"`` from a hash of its relative path.

    The SHA-1 of the POSIX path (relative to its dataset folder) is read as a number in
    [0, 1); the file is in "val" when that number is below ``val_fraction``. The answer
    depends on nothing else, so adding or removing files never moves other files.

    Example:
        >>> split_of("images/00001.png", 0.0)
        'train'
    """
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    digest = hashlib.sha1(relative_path.encode("utf-8")).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2.0**64
    return "val" if fraction < val_fraction else "train"


@dataclass(frozen=True)
class DomainFolder:
    """A dataset given as an image folder, under the name used in reports and the CLI."""

    name: str
    root: Path


class MultiDomainDataset(Dataset):
    """Images from several folders, labelled with the index of their folder.

    Domains keep the order given; files within a domain are sorted by relative path.
    Unusable files are found up front and skipped with a warning
    (``skipped <path>: <reason>``); they are listed in :attr:`skipped`.

    With preloading (the default when ``N * R * R * 3`` bytes stay under 2 GiB) every image
    is decoded once into one ``(N, R, R, 3)`` uint8 tensor, so epochs cost no file I/O.
    Without it, headers are checked up front and pixels are decoded in ``__getitem__``; a
    file that only then turns out corrupt is logged once and replaced by the next usable
    file of the same domain (deterministic, and the domain balance is kept).

    Arguments:
        domains: ``(name, folder)`` pairs, at least two.
        resolution: side R of the square images (shorter side resized to R, centre crop).
        split: ``"train"``, ``"val"`` or ``"all"`` (see :func:`split_of`).
        val_fraction: share of each folder's files in the "val" split.
        flip: random horizontal flip with probability 0.5, drawn from torch's global RNG
            (so ``torch.manual_seed`` and DataLoader worker seeding control it).
        preload: True, False, or None to decide from the memory needed.
        progress: show a tqdm bar while checking or decoding files.

    Items:
        ``(image, domain_index)``: ``(3, R, R)`` float32 in [-1, 1], and an int.

    Attributes:
        domain_names: names in label order.
        domains: the :class:`DomainFolder` of each label.
        paths: image files, ``(N,)``, in item order.
        labels: ``(N,)`` int64 domain index of each item.
        counts: items per domain name in this split.
        priors: share of each domain in this split (sums to 1).
        skipped: ``(path, reason)`` of every file left out.
        preloaded: whether pixels are held in memory.
    """

    def __init__(
        self,
        domains: Sequence[tuple[str, str | Path]],
        *,
        resolution: int,
        split: str = "train",
        val_fraction: float = 0.05,
        flip: bool = False,
        preload: bool | None = None,
        progress: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__()
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
        if not isinstance(resolution, int) or resolution <= 0:
            raise ValueError(f"resolution must be a positive int, got {resolution!r}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        folders = [DomainFolder(str(name), Path(root)) for name, root in domains]
        names = [d.name for d in folders]
        if len(folders) < 2:
            raise ValueError(
                f"need at least two datasets, got {len(folders)}: {', '.join(names) or '-'}"
            )
        for name in names:
            if not name or names.count(name) > 1:
                raise ValueError(
                    f"dataset names must be non-empty and distinct, got {', '.join(names)}"
                )

        self.domains = folders
        self.domain_names = names
        self.resolution = resolution
        self.split = split
        self.val_fraction = val_fraction
        self.flip = flip
        self.max_pixels = max_pixels
        self.skipped: list[tuple[Path, str]] = []

        candidates: list[tuple[Path, int]] = []
        for label, domain in enumerate(folders):
            files = self._scan(domain)
            chosen = [
                p
                for p in files
                if split == "all"
                or split_of(p.relative_to(domain.root).as_posix(), val_fraction) == split
            ]
            if not chosen:
                logger.warning(
                    "dataset %r has no image in the %r split (%d files in %s, val_fraction=%g)",
                    domain.name,
                    split,
                    len(files),
                    domain.root,
                    val_fraction,
                )
            candidates.extend((p, label) for p in chosen)

        needed = len(candidates) * resolution * resolution * 3
        self.preloaded = needed < PRELOAD_LIMIT_BYTES if preload is None else bool(preload)
        keep: list[bool]
        if self.preloaded:
            self._pixels, keep = self._decode_all([p for p, _ in candidates], progress)
        else:
            self._pixels = None
            keep = self._check_all([p for p, _ in candidates], progress)
        kept = [c for c, ok in zip(candidates, keep, strict=True) if ok]

        self.paths: list[Path] = [p for p, _ in kept]
        self.labels = torch.tensor([label for _, label in kept], dtype=torch.long)
        self.counts: dict[str, int] = {
            name: int((self.labels == i).sum()) for i, name in enumerate(names)
        }
        for label, domain in enumerate(folders):
            had = sum(1 for _, lab in candidates if lab == label)
            if had and not self.counts[domain.name]:
                raise ValueError(
                    f"dataset {domain.name!r}: no usable image in {domain.root} "
                    f"({had} files of the {split!r} split skipped, see the log)"
                )
            if split == "train" and not self.counts[domain.name]:
                # its prior would be 0: a model that cannot be saved or loaded
                raise ValueError(
                    f"dataset {domain.name!r}: no image of {domain.root} falls in the training "
                    f"split (val_fraction={val_fraction}); add images or lower data.val_fraction"
                )
        total = len(self.paths)
        if total == 0:
            raise ValueError(
                f"no image in the {split!r} split of any dataset "
                f"(val_fraction={val_fraction}); use split='all' or another val_fraction"
            )
        self.priors: dict[str, float] = {name: self.counts[name] / total for name in names}
        # Items of one domain are contiguous: [start, stop) per label, for lazy fallback.
        self._ranges: list[tuple[int, int]] = []
        start = 0
        for name in names:
            self._ranges.append((start, start + self.counts[name]))
            start += self.counts[name]
        self._bad: set[int] = set()
        logger.info(
            "%s split: %d images (%s)%s",
            split,
            total,
            ", ".join(f"{n}={self.counts[n]}" for n in names),
            f", {len(self.skipped)} skipped" if self.skipped else "",
        )

    # ------------------------------------------------------------------ construction

    def _skip(self, path: Path, reason: str) -> None:
        logger.warning("skipped %s: %s", path, reason)
        self.skipped.append((path, reason))

    def _scan(self, domain: DomainFolder) -> list[Path]:
        if not domain.root.is_dir():
            what = "is not a folder" if domain.root.exists() else "folder not found"
            raise ValueError(f"dataset {domain.name!r}: {what}: {domain.root}")
        files, skipped = list_images(domain.root)
        for path, reason in skipped:
            self._skip(path, reason)
        if not files:
            raise ValueError(
                f"dataset {domain.name!r}: no image files ({', '.join(IMAGE_EXTENSIONS)}) "
                f"in {domain.root}"
            )
        return files

    def _decode(self, path: Path) -> np.ndarray:
        img = load_image(path, max_pixels=self.max_pixels, size_hint=self.resolution)
        return to_uint8_array(img, self.resolution)

    def _try_decode(self, path: Path) -> np.ndarray | ImageError:
        try:
            return self._decode(path)
        except ImageError as exc:
            return exc

    def _try_check(self, path: Path) -> ImageError | None:
        try:
            check_image(path, max_pixels=self.max_pixels)
        except ImageError as exc:
            return exc
        return None

    def _decode_all(self, paths: list[Path], progress: bool) -> tuple[torch.Tensor, list[bool]]:
        r = self.resolution
        pixels = torch.empty((len(paths), r, r, 3), dtype=torch.uint8)
        keep = [False] * len(paths)
        n = 0
        bar = tqdm(total=len(paths), desc="decoding images", unit="img", disable=not progress)
        with bar:
            for i, result in enumerate(_ordered_map(self._try_decode, paths)):
                if isinstance(result, ImageError):
                    self._skip(result.path, result.reason)
                else:
                    pixels[n] = torch.from_numpy(result)
                    keep[i] = True
                    n += 1
                bar.update(1)
        if n < len(paths):
            pixels = pixels[:n].clone()
        return pixels, keep

    def _check_all(self, paths: list[Path], progress: bool) -> list[bool]:
        keep = []
        bar = tqdm(total=len(paths), desc="checking images", unit="img", disable=not progress)
        with bar:
            for error in _ordered_map(self._try_check, paths):
                if error is not None:
                    self._skip(error.path, error.reason)
                keep.append(error is None)
                bar.update(1)
        return keep

    # ------------------------------------------------------------------ access

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index = range(len(self.paths))[index]
        if self._pixels is not None:
            image = uint8_to_tensor(self._pixels[index])
        else:
            image = uint8_to_tensor(self._load_lazy(index))
        if self.flip and torch.rand(()) < 0.5:
            image = image.flip(-1)
        return image, int(self.labels[index])

    def get_uint8(self, index: int) -> np.ndarray:
        """The un-normalised pixels of item ``index``: ``(R, R, 3)`` uint8, never flipped."""
        index = range(len(self.paths))[index]
        if self._pixels is not None:
            return self._pixels[index].numpy().copy()
        return self._load_lazy(index)

    def _load_lazy(self, index: int) -> np.ndarray:
        label = int(self.labels[index])
        start, stop = self._ranges[label]
        j = index
        for _ in range(stop - start):
            if j not in self._bad:
                try:
                    return self._decode(self.paths[j])
                except ImageError as exc:
                    # Once per process: DataLoader workers each keep their own set.
                    self._bad.add(j)
                    self._skip(exc.path, exc.reason)
            j = start + (j - start + 1) % (stop - start)
        raise RuntimeError(
            f"dataset {self.domain_names[label]!r}: every image failed to decode, see the log"
        )

    def relative_paths(self) -> list[str]:
        """Each item's POSIX path relative to its dataset folder, in item order."""
        roots = [d.root for d in self.domains]
        return [
            p.relative_to(roots[int(label)]).as_posix()
            for p, label in zip(self.paths, self.labels, strict=True)
        ]

    def indices_of(self, domain: str) -> range:
        """Item indices of one domain (they are contiguous)."""
        try:
            label = self.domain_names.index(domain)
        except ValueError:
            raise KeyError(
                f"unknown dataset {domain!r}; known: {', '.join(self.domain_names)}"
            ) from None
        return range(*self._ranges[label])

    def __repr__(self) -> str:
        counts = ", ".join(f"{n}={c}" for n, c in self.counts.items())
        return (
            f"{type(self).__name__}({counts}, resolution={self.resolution}, "
            f"split={self.split!r}, preloaded={self.preloaded})"
        )


def _ordered_map(fn: Callable[[Path], _T], items: list[Path]) -> Iterator[_T]:
    """``map(fn, items)`` on a few threads, in order, with bounded work in flight.

    Pillow releases the GIL while decoding and resizing, so threads give real speed-up.
    """
    workers = min(8, os.cpu_count() or 1)
    if workers == 1 or len(items) < 2 * workers:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(items), _CHUNK):
            yield from pool.map(fn, items[start : start + _CHUNK])
