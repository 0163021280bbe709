"""Writing folders that are either complete or absent, and checksums of files."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def current_umask() -> int:
    """The process umask (reading it means setting it, so it is set back at once)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def write_folder_atomically(path: str | Path, fill: Callable[[Path], None]) -> Path:
    """Call ``fill(tmp)`` on a fresh folder beside ``path``, then put it in place.

    An existing ``path`` is replaced only once the new folder is complete; any error in
    ``fill`` leaves ``path`` untouched and removes the temporary folder. Files get the
    permissions a plain mkdir and write would give (mkdtemp makes them owner-only).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        fill(tmp)
        umask = current_umask()
        tmp.chmod(0o777 & ~umask)
        for f in tmp.iterdir():
            if f.is_file():
                f.chmod(0o666 & ~umask)
                with open(f, "rb") as handle:
                    os.fsync(handle.fileno())
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old"
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path
