"""Training scales past one process on PyTorch DDP: torchrun with two CPU processes (gloo)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from net2fair import Translator
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_trains_and_the_model_loads(toy_folders, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun is installed with torch"
    out = tmp_path / "ddp"
    proc = subprocess.run(
        [
            torchrun,
            "--nproc_per_node=2",
            "--master_addr=127.0.0.1",
            f"--master_port={_free_port()}",
            "-m",
            "net2fair",
            "train",
            str(REPO / "configs" / "tiny.yaml"),
            # the equivariance prior's two-view forward pass, before and after it starts
            "loss.equivariance_weight=0.5",
            "loss.equivariance_start=4",
            "loss.equivariance_ramp=2",
            "--domain",
            f"discs={toy_folders['discs']}",
            "--domain",
            f"squares={toy_folders['squares']}",
            "--out",
            str(out),
            "--device",
            "cpu",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "process 0 of 2" in proc.stderr and proc.stdout.count("model written to") == 1
    t = Translator.load(out / "model")
    x = t.sample("squares", n=2, seed=0)
    assert x.shape == (2, 3, 32, 32)
    ae_log = (out / "autoencoder_log.csv").read_text().splitlines()
    assert len(ae_log) > 2
    column = ae_log[0].split(",").index("equivariance")
    # logged every 2 steps (tiny.yaml): steps 2 and 4 before the start, 6 and 8 after
    assert [row.split(",")[column] != "" for row in ae_log[1:] if row.split(",")[1]] == [
        False,
        False,
        True,
        True,
    ]
    log = (out / "cinn_log.csv").read_text().splitlines()
    column = log[0].split(",").index("nll")
    assert any(row.split(",")[column] not in ("", "0") for row in log[1:])
