"""``net2fair report`` and ``net2fair audit`` (net2fair/commands/report.py): every
output written with file names escaped, a user's folder kept, a re-run replacing only its
own output, what a killed run left removed.

The runs marked slow or using ``run_cli`` start the command in a subprocess as a user
would; the others run in-process through ``net2fair.cli.main``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.commands.conftest import _cli, _dead_tag, _one_line_error
from tests.conftest import run_cli


@pytest.mark.slow
def test_report_command_writes_every_output_and_escapes_names(
    tiny_model, toy_folders, tmp_path, cli
):
    images = tmp_path / "faces"
    images.mkdir()
    for i, src in enumerate(sorted(toy_folders["discs"].glob("*.png"))[:5]):
        (images / f"{i}.png").write_bytes(src.read_bytes())
    hostile = "<img src=x onerror=alert(1)>.png"
    (images / hostile).write_bytes(src.read_bytes())
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "rep"
    proc = run_cli(
        "report",
        str(tiny_model),
        str(images),
        "--from",
        "discs",
        "--out",
        str(out),
        "--device",
        "cpu",
        "-q",
        "--seed",
        "1",
    )
    assert "report on 6 image(s)" in proc.stdout
    assert "broken.png" in proc.stderr and "Traceback" not in proc.stderr
    for name in ("index.html", "report.json", "per_image.csv"):
        assert (out / name).is_file()
    page = (out / "index.html").read_text()
    assert "<img src=x onerror" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert json.loads((out / "report.json").read_text())["seed"] == 1
    proc = cli("report", str(tiny_model), str(images), "--from", "nope", "--out", tmp_path / "r2")
    assert proc.returncode == 2 and "unknown dataset 'nope'" in proc.stderr


# ------------------------------------------------- 1-4: nothing of the user's replaced


def test_report_keeps_a_user_folder_holding_report_json(
    capsys: pytest.CaptureFixture, tiny_model: Path, faces: Path, tmp_path: Path
) -> None:
    mywork = tmp_path / "mywork"
    (mywork / "sub").mkdir(parents=True)
    (mywork / "report.json").write_text("{}")
    (mywork / "thesis.tex").write_text("chapter 1")
    args = ("report", str(tiny_model), str(faces), "--from", "discs", "--out", str(mywork))
    line = _one_line_error(capsys, 2, *args)
    assert "mywork" in line
    assert (mywork / "thesis.tex").read_text() == "chapter 1" and (mywork / "sub").is_dir()


def test_audit_keeps_a_user_folder_holding_audit_json(
    capsys: pytest.CaptureFixture, tiny_model: Path, faces: Path, tmp_path: Path
) -> None:
    mywork = tmp_path / "mywork"
    mywork.mkdir()
    (mywork / "audit.json").write_text("{}")
    (mywork / "notes.md").write_text("mine")
    args = ("audit", str(tiny_model), str(faces), "--domain", "discs", "--out", str(mywork))
    _one_line_error(capsys, 2, *args)
    assert (mywork / "notes.md").read_text() == "mine"


def test_report_rerun_replaces_its_own_output(
    capsys: pytest.CaptureFixture, tiny_model: Path, faces: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rep"
    args = ("report", str(tiny_model), str(faces), "--from", "discs", "--out", str(out))
    assert _cli(capsys, *args)[0] == 0
    assert _cli(capsys, *args)[0] == 0
    assert (out / "index.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces", "rep"]


# ------------------------------------------------------- 8: odd file names, no traceback


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse non-UTF-8 names")
@pytest.mark.parametrize("command", ["report", "audit"])
def test_a_non_utf8_file_name_is_shown_escaped(
    tiny_model: Path, faces: Path, tmp_path: Path, command: str
) -> None:
    shutil.copy(next(faces.glob("*.png")), os.path.join(os.fsencode(faces), b"caf\xe9.png"))
    out = tmp_path / "out"
    opt = "--from" if command == "report" else "--domain"
    proc = run_cli(command, str(tiny_model), str(faces), opt, "discs", "--out", str(out), "-q")
    assert "Traceback" not in proc.stderr
    table = out / ("per_image.csv" if command == "report" else "weights.csv")
    assert "caf\\xe9.png" in table.read_text(encoding="utf-8")


# --------------------------------------------- 12: what a killed run left is removed


def test_a_killed_reports_staging_folder_is_removed_by_the_next_run(
    capsys: pytest.CaptureFixture, tiny_model: Path, faces: Path, tmp_path: Path
) -> None:
    # what `kill -9` during the write leaves: a staging folder named after a dead process
    stale = tmp_path / f".rep.net2fair-tmp-{_dead_tag()}-0123abcd"
    (stale / "charts").mkdir(parents=True)
    (stale / "index.html").write_text("half a report")
    out = tmp_path / "rep"
    args = ("report", str(tiny_model), str(faces), "--from", "discs", "--out", str(out))
    assert _cli(capsys, *args)[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces", "rep"]
