"""Shared by the command tests: the in-process run of a command that returns its exit
code and last line of stderr, the one-line error it must give, the owner tag of a dead
process, and a small folder of faces."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from net2fair.cli import main
from net2fair.fileio import owner_tag
from tests.conftest import REPO, write_toy_domain

TINY = str(REPO / "configs" / "tiny.yaml")


def _cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    """Run the command in-process; return (exit code, last line of stderr)."""
    code = main([*args, "-q"] if args[0] != "view" else list(args))
    err = capsys.readouterr().err.strip().splitlines()
    return code, (err[-1] if err else "")


def _one_line_error(capsys: pytest.CaptureFixture, code: int, *args: str) -> str:
    got, line = _cli(capsys, *args)
    assert got == code, (got, line)
    assert line.startswith("net2fair: error: "), line
    return line


def _dead_tag() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return owner_tag().rsplit("-", 1)[0] + f"-{proc.pid}"


@pytest.fixture()
def faces(tmp_path: Path) -> Path:
    return write_toy_domain(tmp_path / "faces", "disc", 5)
