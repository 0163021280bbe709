"""The kit of the report and audit folders: escaping, pages, embedded images, JSON, CSV."""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from net2fair import htmlkit


def test_esc_escapes_markup_and_quotes():
    assert htmlkit.esc('<a href="x">\'&') == "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;"
    assert htmlkit.esc(3.5) == "3.5"


def test_a_page_starts_with_its_escaped_title_and_inline_style():
    page = htmlkit.page_start("<b>audit</b>") + htmlkit.PAGE_END
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>&lt;b&gt;audit&lt;/b&gt;</title>" in page
    assert f"<style>{htmlkit.CSS}</style>" in page and "<link" not in page
    assert page.endswith("</main></body></html>\n")


@pytest.mark.parametrize("kind", ["array", "pil", "file"])
def test_data_uris_hold_the_png(kind: str, tmp_path: Path):
    pixels = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    img: object = pixels
    if kind == "pil":
        img = Image.fromarray(pixels)
    elif kind == "file":
        img = tmp_path / "x.png"
        Image.fromarray(pixels).save(img)
    uri = htmlkit.data_uri_png(img)  # type: ignore[arg-type]
    assert uri.startswith("data:image/png;base64,")
    data = base64.b64decode(uri.split(",", 1)[1])
    if kind == "file":
        assert data == (tmp_path / "x.png").read_bytes()  # embedded byte for byte
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)


def test_figure_draws_headless(tmp_path: Path):
    fig = htmlkit.figure(2.0, 1.0)
    fig.subplots().plot([0, 1], [1, 0])
    fig.savefig(tmp_path / "f.png")
    with Image.open(tmp_path / "f.png") as im:
        assert im.size == (200, 100)


def test_provenance_lists_at_most_200_skipped_files():
    skipped = [{"file": f"<f{i}>", "reason": "empty file"} for i in range(203)]
    data = {"skipped": skipped, "n_skipped": 203}
    html = htmlkit.provenance_section([("seed", 3)], data, "a.json")
    assert "<code>3</code>" in html and "203 files skipped" in html
    assert "&lt;f199&gt;" in html and "&lt;f200&gt;" not in html
    assert "and 3 more (see a.json)" in html
    none = htmlkit.provenance_section([], {"skipped": [], "n_skipped": 0}, "a.json")
    assert "No file was skipped." in none


def test_the_changes_section_needs_maps_and_a_figure(tmp_path: Path):
    class Map:
        def sentence(self) -> str:
            return "<x> changes the background most"

    png = tmp_path / "c.png"
    Image.new("RGB", (4, 4)).save(png)
    assert htmlkit.changes_section([], png, "photo") == ""
    assert htmlkit.changes_section([Map()], None, "photo") == ""
    html = htmlkit.changes_section([Map()], png, "<photo>")
    assert 'id="changes"' in html and "&lt;x&gt; changes" in html and "&lt;photo&gt;" in html


def test_json_safe_makes_strict_json(tmp_path: Path):
    value = {
        1: np.float32(0.5),
        "nan": math.nan,
        "inf": np.float64(math.inf),
        "i": np.int64(3),
        "b": np.bool_(True),
        "p": Path("a/b"),
        "t": (1, [np.float64(2.0)]),
    }
    safe = htmlkit.json_safe(value)
    assert safe == {
        **{"1": 0.5, "nan": None, "inf": None, "i": 3},
        **{"b": True, "p": "a/b", "t": [1, [2.0]]},
    }
    htmlkit.write_json(safe, tmp_path / "x.json")
    text = (tmp_path / "x.json").read_text(encoding="utf-8")
    assert text.endswith("}\n") and json.loads(text) == safe
    with pytest.raises(ValueError):
        htmlkit.write_json({"x": math.nan}, tmp_path / "y.json")


def test_csv_cells():
    assert htmlkit.csv_value(math.nan) == ""
    assert htmlkit.csv_value(1 / 3) == "0.333333"
    assert htmlkit.csv_value(1234567.0) == "1.23457e+06"
    assert htmlkit.csv_value("a") == "a" and htmlkit.csv_value(3) == 3
