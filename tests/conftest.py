"""Shared fixtures: tiny two-domain image folders and a tiny trained model."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

# One math thread per process, for the test process and every command it starts (they
# inherit the environment), unless the caller chose a number. The models here are tiny, so
# a second thread gains little, and on a machine whose cores are busy with other work
# (a shared 2-core box next to a training) two threads per op wait on each other: the
# commands ran 4-6x slower. Set before numpy and torch are imported; the bench and DDP
# tests already run their processes this way.
if "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = "1"
    if "torch" in sys.modules:  # imported before this file: tell it too
        sys.modules["torch"].set_num_threads(1)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

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


def _exit_code(e: SystemExit) -> int:
    """The status ``raise SystemExit(e.code)`` gives a process (a message means 1)."""
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code
    print(e.code, file=sys.stderr)
    return 1


@pytest.fixture
def cli(capsys: pytest.CaptureFixture) -> Callable[..., subprocess.CompletedProcess]:
    """Run ``net2fair ARGS`` in-process through ``net2fair.cli.main`` (what the console
    script and ``python -m net2fair`` call) and return what :func:`run_cli` would: the exit
    status (argparse's ``SystemExit`` included), stdout and stderr. The log lines go to
    stderr as ``main`` sends them in a process of its own (``%(message)s`` at INFO), so
    "one line on stderr" means the same here. For argument and config checks, where
    starting Python and torch would cost seconds a call; an unexpected exception
    propagates and fails the test (a process would print a traceback)."""
    from net2fair.cli import main

    def run(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()  # what the test printed before is not the command's
        handler = logging.StreamHandler(sys.stderr)  # the captured stream, as a process'
        handler.setFormatter(logging.Formatter("%(message)s"))
        root = logging.getLogger()
        level = root.level
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:  # argparse: usage errors exit 2
                code = _exit_code(e)
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(["net2fair", *args], int(code), out, err)

    return run


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
