"""Crash-safe checkpoints and the run folder's CSV logs.

A checkpoint is written to a temporary file beside its target, flushed to disk, then
renamed over the target: a kill at any moment leaves either the old or the new file,
never half of one. Checkpoints hold only tensors and plain Python values, so they load
with ``torch.load(weights_only=True)``, which refuses pickled code.
"""

from __future__ import annotations

import csv
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from net2fair.fileio import current_umask

logger = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or read; the message names the file."""


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then atomically rename ``tmp_path`` to ``path``.

    The file gets the permissions a plain ``open(path, "w")`` would give (mkstemp makes it
    owner-only), so outputs stay readable to whoever could read the folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~current_umask())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


class CsvLog:
    """Append-only CSV with a fixed header; on resume, rows after ``resume_step`` are cut so
    the log matches the restored state."""

    def __init__(self, path: Path, columns: list[str], resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.columns = ["step", *columns]
        if resume_step is not None and self.path.exists():
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
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
