"""Writing a report folder: every output, strict JSON, escaping, atomic replacement."""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
from pathlib import Path

import pytest
from PIL import Image

from net2fair import report
from net2fair.htmlkit import esc
from net2fair.models.translator import Translator
from net2fair.report import html as report_html

XSS_DIR = "<script>alert(1)<"
XSS_FILE = "script>.png"
XSS_IMG = "<img src=x onerror=alert(1)>.png"


def test_write_produces_every_output(built: report.Report, tmp_path: Path):
    out = report.write(built, tmp_path / "rep")
    assert out == tmp_path / "rep"
    for name in ("index.html", "report.json", "per_image.csv", "images/grid.png"):
        assert (out / name).is_file(), name
    charts = sorted(p.name for p in (out / "charts").glob("*.png"))
    assert charts == [
        f"target-{i}-{k}.png" for i in range(2) for k in ("distributions", "posterior")
    ]
    for png in (out / "charts").glob("*.png"):
        with Image.open(png) as im:
            assert im.width > 200
    data = json.loads((out / "report.json").read_text())
    assert data["seed"] == 0 and data["command"].startswith("net2fair report")
    assert data["data"]["n_used"] == 24
    assert data["model"]["name"] == "tiny" and len(data["model"]["weights_sha256"]) == 64
    assert set(data["versions"]) >= {"net2fair", "torch", "python"}
    assert data["change_measure"] == built.change_measure
    ita = next(m for m in data["per_target"][1]["measures"] if m["measure"] == "ita")
    assert {"before", "after", "shift", "low", "high", "n", "sentence"} <= set(ita)
    with open(out / "per_image.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 24 * 2
    assert {"in_ita", "out_ita", "change_l1", "in_posterior_squares"} <= set(rows[0])
    text = (out / "index.html").read_text()
    assert "Method and caveats" in text and "data:image/png;base64," in text
    assert built.target("squares").shift("ita").sentence.split(" (")[0] in text
    assert not list(tmp_path.glob(".rep*")), "temporary folders left behind"


def _write_xss_folder(root: Path, source: Path) -> Path:
    folder = root / "in"
    (folder / XSS_DIR).mkdir(parents=True)
    images = sorted(source.glob("*.png"))
    shutil.copy(images[0], folder / XSS_DIR / XSS_FILE)
    shutil.copy(images[1], folder / XSS_IMG)
    shutil.copy(images[2], folder / "ok.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


def test_user_strings_are_escaped_and_bad_files_skipped(
    model: Translator, toy_folders: dict[str, Path], tmp_path: Path, caplog
):
    folder = _write_xss_folder(tmp_path, toy_folders["discs"])
    with caplog.at_level(logging.WARNING, logger="net2fair.pipeline"):
        rep = report.build(
            model,
            folder,
            source="discs",
            change="l1",
            command='net2fair report m "<script>alert(1)</script>"',
        )
    assert rep.n == 3 and rep.data["n_skipped"] == 1
    assert rep.data["skipped"][0]["file"].endswith("broken.png")
    assert any("broken.png" in r.getMessage() for r in caplog.records)
    names = {r["file"] for r in rep.rows}
    assert f"{XSS_DIR}/{XSS_FILE}" in names and XSS_IMG in names
    text = (report.write(rep, tmp_path / "out") / "index.html").read_text()
    assert "<script>alert(1)</script>" not in text
    assert "<script>" not in text
    assert "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # the folder/file name
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in text


def test_interrupted_write_leaves_no_half_report(built: report.Report, tmp_path: Path, monkeypatch):
    out = tmp_path / "rep"

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_html, "write_csv", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        report.write(built, out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []

    # an earlier report stays whole when the new one fails ...
    monkeypatch.undo()
    report.write(built, out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    monkeypatch.setattr(report_html, "render_html", boom)
    with pytest.raises(RuntimeError):
        report.write(built, out)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["rep"]
    # ... and is replaced by a complete new one
    monkeypatch.undo()
    report.write(built, out)
    assert (out / "index.html").is_file()


def test_write_refuses_to_replace_a_folder_that_is_not_a_report(
    built: report.Report, tmp_path: Path
):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(report.ReportWriteError, match="holiday.jpg"):
        report.write(built, out)
    assert (out / "holiday.jpg").read_bytes() == b"precious"


def test_the_csv_has_every_column_and_empty_cells_for_nan(built: report.Report, tmp_path: Path):
    path = tmp_path / "per_image.csv"
    rows = [{**built.rows[0], "in_ita": math.nan}, *built.rows[1:]]
    report_html.write_csv(report.Report(**{**built.__dict__, "rows": rows}), path)
    with open(path, newline="") as fh:
        got = list(csv.DictReader(fh))
    assert list(got[0]) == built.columns
    assert got[0]["in_ita"] == "" and got[1]["in_ita"] != ""
    assert len(got) == len(built.rows)


def test_the_page_is_self_contained_and_links_every_section(built: report.Report, tmp_path: Path):
    charts = report_html.write_charts(built, tmp_path)
    page = report_html.render_html(built, charts)
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</main></body></html>\n")
    for anchor in ("grid", "method", "provenance", *(f"target-{i}" for i in range(2))):
        assert f'id="{anchor}"' in page and f'href="#{anchor}"' in page
    assert "http://" not in page and "https://" not in page  # opens offline
    assert all(esc(line) in page for line in built.sentences())
