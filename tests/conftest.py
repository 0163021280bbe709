"""Shared fixtures: tiny two-domain image folders and a tiny trained model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO.parent / "shared" / "fixtures" / "real-faces"


def write_toy_domain(folder: Path, kind: str, n: int, size: int = 48, seed: int = 0) -> Path:
    """Simple 'faces': a disc (kind 'disc') or a square ('square') of random colour and
    position on a background typical of the kind. Learnable in a few hundred steps."""
    rng = np.random.default_rng(seed + (0 if kind == "disc" else 1000))
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        bg = (30, 30, 60) if kind == "disc" else (220, 210, 180)
        im = Image.new("RGB", (size, size), bg)
        d = ImageDraw.Draw(im)
        r = int(rng.integers(size // 5, size // 3))
        cx, cy = (int(v) for v in rng.integers(r, size - r, size=2))
        colour = tuple(int(c) for c in rng.integers(40, 255, size=3))
        box = (cx - r, cy - r, cx + r, cy + r)
        (d.ellipse if kind == "disc" else d.rectangle)(box, fill=colour)
        im.save(folder / f"{kind}_{i:03d}.png")
    return folder


@pytest.fixture(scope="session")
def toy_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("toy")
    return {
        "discs": write_toy_domain(root / "discs", "disc", 24),
        "squares": write_toy_domain(root / "squares", "square", 24),
    }


def run_cli(
    *args: str,
    cwd: Path | None = None,
    check: bool = True,
    env: dict | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Run ``python -m net2fair ARGS`` the way a user would, in a subprocess."""
    full_env = {**os.environ, "PYTHONHASHSEED": "0", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "net2fair", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"net2fair {' '.join(args)} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n"
            f"--- stderr\n{proc.stderr}"
        )
    return proc


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, toy_folders: dict[str, Path]) -> Path:
    """A model trained for a few steps with configs/tiny.yaml (session-wide, ~10 s)."""
    run = tmp_path_factory.mktemp("run") / "tiny"
    run_cli(
        "train",
        str(REPO / "configs" / "tiny.yaml"),
        "--domain",
        f"discs={toy_folders['discs']}",
        "--domain",
        f"squares={toy_folders['squares']}",
        "--out",
        str(run),
        "--device",
        "cpu",
        "-q",
    )
    return run / "model"


@pytest.fixture(scope="session")
def synth_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model on the three synthetic datasets (photo, portrait, anime) at 32 px."""
    root = tmp_path_factory.mktemp("synth")
    run_cli("synth", str(root / "data"), "--n", "24", "--resolution", "32", "-q")
    run_cli(
        "train",
        str(REPO / "configs" / "tiny.yaml"),
        *[f"--domain={d}={root / 'data' / d}" for d in ("photo", "portrait", "anime")],
        "--out",
        str(root / "run"),
        "--device",
        "cpu",
        "-q",
    )
    return root / "run" / "model"
