"""Finding a run folder's checkpoint and project yaml files, and reading the checkpoint.

The checkpoint is read without running any code from it: ``torch.load(weights_only=True)``
unpickles only tensors, storages and plain containers; anything else is refused, never
retried with plain pickle.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from net2fair.importers.net2net.errors import Net2NetImportError, _one_line


def locate(source: str | Path) -> tuple[Path, list[Path]]:
    """The checkpoint file and the project yaml files of a run folder or checkpoint.

    A run folder holds ``checkpoints/*.ckpt`` (``last.ckpt`` is preferred; otherwise there
    must be exactly one) and ``configs/*-project.yaml`` (merged in name order, as the
    paper's demo does). A checkpoint inside a run folder's ``checkpoints/`` gets that run's
    yaml files too; any other file is read alone.

    Raises:
        Net2NetImportError: no such file or folder, or no (or an ambiguous) checkpoint.
    """
    path = Path(source)
    if path.is_dir():
        ckpts = sorted((path / "checkpoints").glob("*.ckpt"))
        if not ckpts:
            raise Net2NetImportError(
                f"{path}: no checkpoints/*.ckpt in this folder; give a net2net run folder or "
                "its checkpoint file"
            )
        last = path / "checkpoints" / "last.ckpt"
        if last in ckpts:
            ckpt = last
        elif len(ckpts) == 1:
            ckpt = ckpts[0]
        else:
            names = ", ".join(p.name for p in ckpts[:4])
            raise Net2NetImportError(
                f"{path}: several checkpoints ({names}) and no last.ckpt; give the file to import"
            )
        run = path
    elif path.is_file():
        ckpt = path
        run = path.parent.parent if path.parent.name == "checkpoints" else None
    else:
        raise Net2NetImportError(f"{path}: no such file or folder")
    yamls = sorted((run / "configs").glob("*-project.yaml")) if run is not None else []
    return ckpt, yamls


def load_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The ``state_dict`` of a PyTorch Lightning checkpoint, and its small metadata
    (epoch, global_step, Lightning version).

    Read with ``torch.load(weights_only=True, map_location="cpu")``: both torch formats
    (the legacy one of torch 1.6, and zip), and nothing but tensors, storages and plain
    containers; any other object in the pickle (a class, a function call) is refused.

    Raises:
        Net2NetImportError: unreadable, truncated, not a checkpoint, or a pickle that
            would run code.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise Net2NetImportError(f"{path}: unreadable ({e.strerror or e})") from None
    if not head:
        raise Net2NetImportError(f"{path}: empty file, not a checkpoint")
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4": the refusal says more
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = _one_line(e)
        if "weights only" in msg.lower() or "unsupported global" in msg.lower():
            found = re.search(r"GLOBAL ([\w.]+)", str(e))
            what = f" ({found.group(1)})" if found else ""
            raise Net2NetImportError(
                f"{path}: refused: the pickle asks for an object other than tensors{what}, "
                "which could run code; it was not loaded"
            ) from None
        raise Net2NetImportError(f"{path}: not a torch checkpoint ({msg})") from None
    except (EOFError, RuntimeError, ValueError, OSError, KeyError, AttributeError) as e:
        why = _one_line(e)
        raise Net2NetImportError(
            f"{path}: not a readable torch checkpoint (truncated or another format: {why})"
        ) from None
    if not isinstance(obj, Mapping):
        raise Net2NetImportError(f"{path}: not a checkpoint (a {type(obj).__name__}, no dict)")
    state = obj.get("state_dict", obj)
    if not isinstance(state, Mapping) or not state:
        raise Net2NetImportError(f"{path}: not a net2net checkpoint (no state_dict)")
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise Net2NetImportError(
                f"{path}: not a net2net checkpoint (state_dict entry {ascii(k)[:60]} is not "
                "a named tensor)"
            )
        out[k] = v
    meta = {
        k: obj[k]
        for k in ("epoch", "global_step", "pytorch-lightning_version")
        if k in obj and isinstance(obj[k], (int, str))
    }
    return out, meta
