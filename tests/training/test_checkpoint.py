"""Checkpoints: atomic, readable like plain writes, and the previous one survives a full
disk or a process killed in the middle of a write."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from net2fair.training import checkpoint
from net2fair.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tests.conftest import REPO

ENOSPC = "No space left on device"


def _state(step: int) -> dict:
    g = torch.Generator().manual_seed(step)
    return {"model": {"w": torch.randn(64, 64, generator=g)}, "step": step}


def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "stage" / "last.ckpt"
    save_checkpoint(path, _state(1))
    before = path.read_bytes()
    real_save = torch.save

    def half_then_full_disk(obj: object, f: str | Path) -> None:
        real_save(obj, f)
        data = Path(f).read_bytes()
        Path(f).write_bytes(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, ENOSPC)

    monkeypatch.setattr(checkpoint.torch, "save", half_then_full_disk)
    with pytest.raises(CheckpointError) as e:
        save_checkpoint(path, _state(2))
    message = str(e.value)
    assert "\n" not in message and str(path) in message and ENOSPC in message
    assert "previous one is intact" in message
    assert path.read_bytes() == before
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


def test_atomic_writes_are_readable_like_plain_writes(tmp_path):
    import stat

    old = os.umask(0o022)
    try:
        checkpoint.atomic_write(tmp_path / "summary.json", lambda p: p.write_text("{}"))
        save_checkpoint(tmp_path / "last.ckpt", _state(1))
    finally:
        os.umask(old)
    for name in ("summary.json", "last.ckpt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "summary.json"]


def test_process_killed_inside_a_checkpoint_write_keeps_the_previous_one(tmp_path):
    path = tmp_path / "last.ckpt"
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        import torch
        from net2fair.training import checkpoint
        from tests.training.test_checkpoint import _state
        path = Path({str(path)!r})
        checkpoint.save_checkpoint(path, _state(1))
        real = torch.save
        def dies(obj, f):
            real(obj, f)
            data = Path(f).read_bytes()
            Path(f).write_bytes(data[: len(data) // 2])
            os._exit(9)  # like kill -9: no cleanup, no exception handler
        checkpoint.torch.save = dies
        checkpoint.save_checkpoint(path, _state(2))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 9, proc.stderr
    state = load_checkpoint(path)
    assert state["step"] == 1 and torch.equal(state["model"]["w"], _state(1)["model"]["w"])
    # the half-written file stays hidden beside it, under a name nothing reads
    others = [p.name for p in tmp_path.iterdir() if p.name != "last.ckpt"]
    assert len(others) == 1 and others[0].startswith(".last.ckpt.") and others[0].endswith(".tmp")


def test_a_resumed_log_cuts_later_rows_and_keeps_the_columns_an_older_version_wrote(tmp_path):
    path = tmp_path / "cinn_log.csv"
    path.write_text("step,nll,val_transport\n10,1.5,\n20,1.2,2.21\n30,1.1,\n")
    log = checkpoint.CsvLog(path, ["nll", "grad_norm"], resume_step=20)
    log.write(30, {"nll": 1.0, "grad_norm": 0.5})
    assert path.read_text().splitlines() == [
        "step,nll,grad_norm,val_transport",
        "10,1.5,,",
        "20,1.2,,2.21",
        "30,1,0.5,",
    ]
    checkpoint.CsvLog(path, ["nll"])  # a new run starts a fresh log
    assert path.read_text() == "step,nll\n"
