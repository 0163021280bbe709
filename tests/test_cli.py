"""The ``net2fair`` entry point (net2fair/cli.py): every known failure becomes one line
on stderr and exit status 2 (usage, config) or 1 (the work failed). In-process through
``net2fair.cli.main`` (the ``cli`` fixture of tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_bad_arguments_exit_nonzero_with_one_line(tiny_model, toy_folders, tmp_path, cli):
    proc = cli(
        "project",
        str(tiny_model),
        str(toy_folders["discs"]),
        "--from",
        "cats",
        "--out",
        str(tmp_path / "x"),
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip().splitlines()[-1].startswith("net2fair: error: unknown dataset 'cats'")
    )
    assert "Traceback" not in proc.stderr
    proc = cli(
        "train",
        "--domain",
        f"only={toy_folders['discs']}",
        "--out",
        str(tmp_path / "r"),
    )
    assert proc.returncode == 2 and "at least two datasets" in proc.stderr
    proc = cli("train", "data.resoltion=64")
    assert proc.returncode == 2 and "did you mean data.resolution" in proc.stderr
    proc = cli("project", str(tmp_path / "nope"), "x.png", "--from", "a", "--out", "o")
    assert proc.returncode == 1 and "no such model folder" in proc.stderr
    assert "Traceback" not in proc.stderr
