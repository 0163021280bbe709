"""Crash-safe checkpoints and the run folder's CSV logs.

A checkpoint is written to a temporary file beside its target, flushed to disk, then
renamed over the target: a kill at any moment leaves either the old or the new file,
never half of one. Checkpoints hold only tensors and plain Python values, so they load
with ``torch.load(weights_only=True)``, which refuses pickled code.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import torch

from net2fair.fileio import atomic_write

logger = logging.getLogger(__name__)

__all__ = [
    "CheckpointError",
    "CsvLog",
    "atomic_write",
    "load_checkpoint",
    "restore",
    "save_checkpoint",
]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or read; the message names the file."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    try:
        atomic_write(path, lambda p: torch.save(state, p))
    except OSError as e:
        raise CheckpointError(
            f"{path}: could not write checkpoint ({e.strerror or e}); the previous one is intact"
        ) from None


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except Exception as e:  # corrupt zip, refused pickle, ...
        raise CheckpointError(f"{path}: unreadable checkpoint ({str(e).splitlines()[0]})") from None


def restore(module: Any, state: dict[str, Any], key: str, path: Path) -> None:
    """``module.load_state_dict(state[key])`` (a module or an optimiser), or a one-line
    :class:`CheckpointError` when the checkpoint does not fit (a changed config)."""
    try:
        module.load_state_dict(state[key])
    except (KeyError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path}: does not match the run's config.yaml ({key}: {first[:200]}); was "
            "config.yaml edited? Restore it, or start a new run with --out"
        ) from None


class CsvLog:
    """Append-only CSV with a fixed header; on resume, rows after ``resume_step`` are cut so
    the log matches the restored state (and columns an older version wrote are kept)."""

    def __init__(self, path: Path, columns: list[str], resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.columns = ["step", *columns]
        if resume_step is not None and self.path.exists():
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                rows = [r for r in reader if int(r["step"]) <= resume_step]
                self.columns += [c for c in reader.fieldnames or () if c not in self.columns]
            atomic_write(self.path, lambda p: self._write_rows(p, rows))
        elif not self.path.exists() or resume_step is None:
            atomic_write(self.path, lambda p: self._write_rows(p, []))

    def _write_rows(self, p: Path, rows: list[dict]) -> None:
        with open(p, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)

    def write(self, step: int, values: dict[str, float]) -> None:
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            w.writerow({"step": step, **{k: f"{v:.6g}" for k, v in values.items()}})
