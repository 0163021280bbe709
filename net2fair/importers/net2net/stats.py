"""Per-dataset latent statistics of an imported model, computed from image folders (the
released checkpoints hold none)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from net2fair.models.translator import Translator

#: the package's name, as when the importer was one module: its warnings keep their logger
logger = logging.getLogger("net2fair.importers.net2net")


@torch.inference_mode()
def latent_statistics_from_folders(
    t: Translator,
    folders: Mapping[str, str | Path],
    *,
    batch_size: int = 8,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, int]:
    """Fill ``t``'s per-dataset latent statistics (mean, covariance, count of the encoder
    means) from image folders, the way training does from its training set.

    Arguments:
        t: a :class:`~net2fair.models.translator.Translator`.
        folders: dataset name -> image folder (recursive); unreadable images are skipped.
        batch_size: images per encoder call.
        progress: called with (dataset, done, total) after each batch.

    Returns:
        dataset -> number of images used.

    Raises:
        ValueError: an unknown dataset name, or a folder without a usable image.
    """
    from net2fair.data.images import ImageError, list_images, load_image, to_tensor

    counts: dict[str, int] = {}
    for name, folder in folders.items():
        k = t.domain_index(name)
        paths, skipped = list_images(Path(folder))
        for p, reason in skipped:
            logger.warning("skipped %s: %s", p, reason)
        mus = []
        for start in range(0, len(paths), batch_size):
            batch = []
            for p in paths[start : start + batch_size]:
                try:
                    batch.append(to_tensor(load_image(p), t.resolution))
                except ImageError as e:
                    logger.warning("skipped %s", e)
            if batch:
                mus.append(t.encode(torch.stack(batch)).double().cpu())
            if progress is not None:
                progress(name, min(start + batch_size, len(paths)), len(paths))
        if not mus or sum(m.shape[0] for m in mus) < 2:
            raise ValueError(
                f"{folder}: fewer than 2 usable images for '{name}'; latent statistics need a "
                "covariance"
            )
        mu = torch.cat(mus)
        t.stats_mean[k] = mu.mean(0).float()
        t.stats_cov[k] = torch.cov(mu.t()).float()
        t.stats_count[k] = float(mu.shape[0])
        counts[t.domains[k]] = int(mu.shape[0])
    return counts
