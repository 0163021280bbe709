"""The kit the report and the audit write their folders with: one page style, escaping,
embedded images, headless figures, the shared sections, and JSON- and CSV-safe values.

Every page is self-contained (inline CSS, images as ``data:`` URIs) and shows user strings
(file, folder and dataset names, the command line) only through :func:`esc`.

Example::

    from net2fair import htmlkit

    page = htmlkit.page_start("Dataset audit: photo") + "<p>...</p>" + htmlkit.PAGE_END
    fig = htmlkit.figure(6.0, 3.0)  # matplotlib Figure, Agg, no pyplot state
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;
background:#fafafa;line-height:1.45}
main{max-width:1180px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:1.6em;margin:.4em 0}
h2{font-size:1.3em;margin-top:1.8em;border-bottom:2px solid #ddd;padding-bottom:.2em}
h3{font-size:1.08em;margin-top:1.3em}
.meta{color:#555;font-size:.92em}
.headline li{margin:.25em 0}
table{border-collapse:collapse;font-size:.88em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#f0f0f0}
td.l,th.l{text-align:left}
tr.clear td{background:#fff4e0}
.cards{display:flex;flex-wrap:wrap;gap:8px}
.card{background:#fff;border:1px solid #ddd;padding:4px;font-size:.75em;text-align:center;
width:min-content}
.card img{width:80px;height:80px;display:block}
.grid img{width:96px;height:96px;display:block}
.pixel img{image-rendering:pixelated}
.card .name{max-width:80px;overflow-wrap:anywhere}
.grid td{padding:2px}
.grid td.name{font-size:.75em;max-width:180px;overflow-wrap:anywhere;text-align:left}
.charts{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start}
img.chart{max-width:100%;height:auto;border:1px solid #eee;background:#fff}
.note{color:#555;font-size:.9em}
details{margin:.6em 0}
code{background:#eee;padding:1px 4px;overflow-wrap:anywhere}
"""

#: the end of a page begun with :func:`page_start`
PAGE_END = "</main></body></html>\n"


def esc(value: object) -> str:
    """HTML-escape any value shown in the page (quotes included)."""
    return html.escape(str(value), quote=True)


def page_start(title: str) -> str:
    """The opening of a self-contained page in the shared style, up to its ``<h1>``."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title><style>{CSS}</style></head>
<body><main>
<h1>{esc(title)}</h1>"""


def data_uri_png(img: np.ndarray | Image.Image | Path) -> str:
    """A PNG as a ``data:`` URI: from ``(H, W, 3)`` uint8 pixels, a PIL image, or a PNG
    file (embedded byte for byte)."""
    if isinstance(img, Path):
        data = img.read_bytes()
    else:
        pil = img if isinstance(img, Image.Image) else Image.fromarray(img)
        buf = io.BytesIO()
        pil.save(buf, format="PNG")
        data = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` of ``width`` x ``height`` inches at 100 dpi, constrained
    layout.

    The object-oriented API draws with Agg and never touches pyplot's global backend, so
    writing a report works headless and does not disturb a notebook's plots.
    """
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def provenance_section(rows: Sequence[tuple[str, object]], data: dict, json_name: str) -> str:
    """The provenance table (``(label, value)`` rows, values shown as code) and the list of
    skipped files (the first 200; all of them are in ``json_name``)."""
    skipped = "".join(
        f"<li><code>{esc(s['file'])}</code>: {esc(s['reason'])}</li>" for s in data["skipped"][:200]
    )
    more = len(data["skipped"]) - 200
    skipped_html = (
        f"<details><summary>{data['n_skipped']} files skipped</summary><ul>{skipped}"
        + (f"<li>... and {more} more (see {esc(json_name)})</li>" if more > 0 else "")
        + "</ul></details>"
        if data["skipped"]
        else "<p>No file was skipped.</p>"
    )
    table = "".join(
        f"<tr><th class='l'>{esc(k)}</th><td class='l'><code>{esc(val)}</code></td></tr>"
        for k, val in rows
    )
    return (
        f'<section id="provenance"><h2>Provenance</h2><table>{table}</table>'
        f"{skipped_html}</section>"
    )


def changes_section(maps: Sequence[Any], figure_png: Path | None, source: str) -> str:
    """The "where each dataset changes faces" section of the report and the audit, from
    :class:`net2fair.report.changes.ChangeMap` objects and their figure."""
    if not maps or figure_png is None:
        return ""
    sentences = "".join(f"<li>{esc(m.sentence())}</li>" for m in maps)
    return (
        '<section id="changes"><h2>Where each dataset changes faces</h2>'
        f"<p class='note'>Each image's residual is decoded under <b>{esc(source)}</b> (its "
        "reconstruction) and under each target; the maps average the difference over all "
        "images, so what the autoencoder alone changes is left out. Left to right: the "
        "average of the images decoded under the source and under the target (the average "
        "change), the mean absolute change per pixel (one colour scale for all rows), the "
        "lightness shift (red: lighter, blue: darker) and the colour shift (grey: none; the "
        "hue shows the direction, the saturation its size).</p>"
        f"<ul>{sentences}</ul>"
        f'<img class="chart" alt="change maps" src="{data_uri_png(figure_png)}"></section>'
    )


# ------------------------------------------------------------------------- json / csv


def json_safe(x: Any) -> Any:
    """``x`` with numpy scalars made Python numbers, paths made strings, tuples made lists
    and non-finite floats made None: strict JSON (``allow_nan=False``) accepts it."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, Path):
        return str(x)
    return x


def write_json(obj: dict[str, Any], path: Path) -> None:
    """``obj`` (already :func:`json_safe`) as indented strict JSON, UTF-8, newline at the end."""
    text = json.dumps(obj, indent=2, allow_nan=False, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")


def csv_value(v: Any) -> Any:
    """A CSV cell: floats with 6 significant digits, NaN as empty, the rest as is."""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v


__all__ = [
    "CSS",
    "PAGE_END",
    "changes_section",
    "csv_value",
    "data_uri_png",
    "esc",
    "figure",
    "json_safe",
    "page_start",
    "provenance_section",
    "write_json",
]
