"""Writers for a :class:`~net2fair.report.model.Report`: one folder, written atomically.

``write(report, out_dir)`` builds the whole folder under a temporary name beside
``out_dir`` and renames it into place at the end, so an interrupted run leaves either the
previous report or nothing, never half of one. The folder holds:

* ``index.html``: self-contained (images embedded as data URIs, inline CSS), every
  user-provided string (file, folder and dataset names, the command line) escaped;
* ``report.json``: every figure, provenance, versions, command line and seed;
* ``per_image.csv``: one row per input image and target;
* ``charts/*.png``: before/after distributions of skin tone and brightness, posteriors;
* ``images/*.png``: the projection grid and the most/least-changed galleries.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from net2fair import htmlkit
from net2fair.fileio import OutputError, staged_folder
from net2fair.htmlkit import (
    PAGE_END,
    changes_section,
    csv_value,
    data_uri_png,
    esc,
    figure,
    page_start,
    provenance_section,
)
from net2fair.report.changes import write_change_figure
from net2fair.report.measures import ITA_BAND_NAMES, number_formatter
from net2fair.report.model import GalleryItem, Report, Shift, TargetReport
from net2fair.viz import image_grid

logger = logging.getLogger(__name__)

REPORT_FILES = ("index.html", "report.json", "per_image.csv")


#: the writer's refusals (kept as a name of its own for callers that catch it)
ReportWriteError = OutputError


def write(report: Report, out_dir: str | Path, *, inputs: Sequence[str | Path] = ()) -> Path:
    """Write the report folder atomically and return its path.

    The folder is built as a hidden staging folder beside ``out_dir`` and renamed into
    place at the end; an existing ``out_dir`` is replaced only then, and only if it is
    empty or holds nothing but an earlier report (the files its manifest lists).

    Raises:
        ReportWriteError: ``out_dir`` is a file, lies inside one of ``inputs``, or is a
            folder holding anything but an earlier report.
    """
    out = Path(out_dir).absolute()
    with staged_folder(out, "report", inputs=inputs) as tmp:
        _write_all(report, tmp)
    logger.info("wrote report to %s", out)
    return out


def _write_all(report: Report, folder: Path) -> None:
    (folder / "charts").mkdir()
    (folder / "images").mkdir()
    charts = write_charts(report, folder / "charts")
    images = write_image_files(report, folder / "images")
    write_json(report, folder / "report.json")
    write_csv(report, folder / "per_image.csv")
    (folder / "index.html").write_text(render_html(report, charts, images), encoding="utf-8")


# ------------------------------------------------------------------------- json / csv


def write_json(report: Report, path: Path) -> None:
    """``report.json``: :meth:`Report.to_dict`, strict JSON (no NaN)."""
    htmlkit.write_json(report.to_dict(), path)


def write_csv(report: Report, path: Path) -> None:
    """``per_image.csv``: one row per input image and target, every measure."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=report.columns, extrasaction="ignore")
        w.writeheader()
        for row in report.rows:
            w.writerow({k: csv_value(v) for k, v in row.items()})


# ---------------------------------------------------------------------------- charts


def _hist_panel(ax: Any, before: np.ndarray, after: np.ndarray, title: str, xlabel: str) -> None:
    values = np.concatenate([before, after])
    values = values[np.isfinite(values)]
    if values.size == 0:
        ax.set_title(f"{title}: no data")
        return
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-6:
        lo, hi = lo - 1.0, hi + 1.0
    bins = np.linspace(lo, hi, min(30, max(8, values.size // 4)) + 1)
    ax.hist(before[np.isfinite(before)], bins=bins, alpha=0.55, label="inputs", color="#4c72b0")
    ax.hist(after[np.isfinite(after)], bins=bins, alpha=0.55, label="projections", color="#dd8452")
    for v, c in ((np.nanmean(before), "#4c72b0"), (np.nanmean(after), "#dd8452")):
        ax.axvline(v, color=c, lw=2, ls="--")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images")
    ax.legend(fontsize=8)


def write_charts(report: Report, folder: Path) -> dict[str, dict[str, Path]]:
    """PNG charts per target: ``distributions`` (ITA and face brightness before/after)
    and ``posterior`` (mean p(dataset | image) of inputs and projections).

    Returns:
        ``{target: {"distributions": path, "posterior": path}}``. File names use the
        target's position, not its (user-chosen) name.
    """
    out: dict[str, dict[str, Path]] = {}
    for i, t in enumerate(report.per_target):
        rows = [r for r in report.rows if r["target"] == t.target]
        fig = figure(6.6, 2.7)
        axes = fig.subplots(1, 2)

        def get(key: str, rows: list[dict] = rows) -> np.ndarray:
            return np.array([r[key] for r in rows], dtype=np.float64)

        _hist_panel(axes[0], get("in_ita"), get("out_ita"), "skin tone", "ITA (degrees)")
        for edge in (55, 41, 28, 10, -30):
            axes[0].axvline(edge, color="#999", lw=0.6)
        _hist_panel(axes[1], get("in_face_L"), get("out_face_L"), "face brightness", "mean L*")
        fig.suptitle(f"{report.source} -> {t.target}", fontsize=10)
        dist = folder / f"target-{i}-distributions.png"
        fig.savefig(dist)

        fig = figure(min(7.0, max(3.4, 0.8 * len(report.domains) + 1.4)), 2.7)
        ax = fig.subplots()
        xs = np.arange(len(report.domains))
        ax.bar(
            xs - 0.2,
            [t.posterior_before[d] for d in report.domains],
            0.4,
            label="inputs",
            color="#4c72b0",
        )
        ax.bar(
            xs + 0.2,
            [t.posterior_after[d] for d in report.domains],
            0.4,
            label="projections",
            color="#dd8452",
        )
        ax.set_xticks(xs, [_short(d) for d in report.domains])
        ax.set_ylim(0, 1)
        ax.set_ylabel("mean p(dataset | image)")
        ax.set_title(f"posterior: {report.source} -> {t.target}", fontsize=10)
        ax.legend(fontsize=8)
        post = folder / f"target-{i}-posterior.png"
        fig.savefig(post)
        out[t.target] = {"distributions": dist, "posterior": post}
    return out


def _short(name: str, limit: int = 18) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


# ---------------------------------------------------------------------------- images


def write_image_files(report: Report, folder: Path) -> dict[str, Path]:
    """``grid.png`` (inputs and all projections) and per-target gallery sheets."""
    out: dict[str, Path] = {}
    if report.grid_inputs:
        rows = [
            [report.grid_inputs[i], *(report.grid_projections[t][i] for t in report.targets)]
            for i in range(len(report.grid_inputs))
        ]
        grid = image_grid(
            [[Image.fromarray(c) for c in r] for r in rows],
            col_labels=["input", *report.targets],
        )
        out["grid"] = folder / "grid.png"
        grid.save(out["grid"])
    for i, t in enumerate(report.per_target):
        for kind in ("most", "least"):
            items: list[GalleryItem] = getattr(t, f"{kind}_changed")
            if not items:
                continue
            sheet = image_grid(
                [
                    [Image.fromarray(g.input) for g in items],
                    [Image.fromarray(g.projection) for g in items],
                ],
                row_labels=["input", "projected"],
            )
            path = folder / f"target-{i}-{kind}-changed.png"
            sheet.save(path)
            out[f"{t.target}/{kind}"] = path
    if report.change_maps:
        out["changes"] = write_change_figure(report.change_maps, folder / "changes.png")
    return out


# ------------------------------------------------------------------------------ html


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _num(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def _digits(s: Shift) -> int:
    return 3 if s.group in ("change",) or s.measure.startswith(("posterior_", "bpd_")) else 1


def _shift_table(shifts: Sequence[Shift]) -> str:
    rows = []
    group = None
    for s in shifts:
        if s.group != group:
            group = s.group
            rows.append(f'<tr><th class="l" colspan="6">{esc(group)}</th></tr>')
        d = _digits(s)
        unit = f" ({esc(s.unit)})" if s.unit else ""
        f = number_formatter([v for v in (s.shift, s.low, s.high) if _finite(v)], d)

        def num(x: float | None, f=f) -> str:  # noqa: ANN001
            return f(x) if _finite(x) else "n/a"

        if s.kind == "level":
            cells = ["", "", num(s.after), f"{num(s.low)} to {num(s.high)}"]
        else:
            cells = [
                _num(s.before, d),
                _num(s.after, d),
                num(s.shift),
                f"{num(s.low)} to {num(s.high)}",
            ]
        cls = ' class="clear"' if s.clear else ""
        rows.append(
            f'<tr{cls}><td class="l">{esc(s.label)}{unit}</td>'
            + "".join(f"<td>{c}</td>" for c in cells)
            + f"<td>{s.n}</td></tr>"
        )
    head = (
        '<tr><th class="l">measure</th><th>inputs</th><th>projections</th>'
        "<th>mean shift</th><th>95% CI</th><th>n</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _bands_table(t: TargetReport) -> str:
    head = "".join(f"<th>{esc(b)}</th>" for b in ITA_BAND_NAMES)
    before = "".join(f"<td>{t.ita_bands_before[b]}</td>" for b in ITA_BAND_NAMES)
    after = "".join(f"<td>{t.ita_bands_after[b]}</td>" for b in ITA_BAND_NAMES)
    return (
        f'<table><tr><th class="l">ITA band</th>{head}</tr>'
        f'<tr><td class="l">inputs</td>{before}</tr>'
        f'<tr><td class="l">projections</td>{after}</tr></table>'
    )


def _attributes_table(t: TargetReport) -> str:
    parts = []
    for a in t.attributes:
        cells = "".join(
            f"<tr><td class='l'>{esc(c)}</td><td>{100 * b:.1f}%</td><td>{100 * f:.1f}%</td></tr>"
            for c, b, f in zip(a.categories, a.before, a.after)
        )
        parts.append(
            f"<details><summary>{esc(a.attribute)}: {esc(a.sentence)}</summary>"
            f"<table><tr><th class='l'>category</th><th>inputs</th><th>projections</th></tr>"
            f"{cells}</table></details>"
        )
    return "".join(parts)


def _gallery(items: Sequence[GalleryItem], measure: str, pixel: bool) -> str:
    if not items:
        return "<p class='note'>none</p>"
    cards = []
    for g in items:
        cards.append(
            f'<div class="card"><img alt="input" src="{data_uri_png(g.input)}">'
            f'<img alt="projection" src="{data_uri_png(g.projection)}">'
            f'<div class="name">{esc(g.name)}</div><div>{esc(measure)} {g.change:.3f}</div></div>'
        )
    cls = "cards pixel" if pixel else "cards"
    return f'<div class="{cls}">{"".join(cards)}</div>'


def _grid(report: Report, pixel: bool) -> str:
    if not report.grid_inputs:
        return ""
    head = (
        "<tr><th class='l'>file</th><th>input</th>"
        + "".join(
            f"<th>{esc(t)}{' (reconstruction)' if t == report.source else ''}</th>"
            for t in report.targets
        )
        + "</tr>"
    )
    rows = []
    for i, name in enumerate(report.grid_names):
        cells = [
            f'<td class="name">{esc(name)}</td>',
            f'<td><img alt="input" src="{data_uri_png(report.grid_inputs[i])}"></td>',
        ]
        for t in report.targets:
            uri = data_uri_png(report.grid_projections[t][i])
            cells.append(f'<td><img alt="{esc(t)}" src="{uri}"></td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    cls = "grid pixel" if pixel else "grid"
    return f'<table class="{cls}">{head}{"".join(rows)}</table>'


def _target_section(
    report: Report, i: int, t: TargetReport, charts: dict[str, Path], pixel: bool
) -> str:
    title = f"{esc(report.source)} &rarr; {esc(t.target)}" + (
        " (reconstruction baseline)" if t.is_source else ""
    )
    key = [s for s in t.shifts if s.group != "model" or s.measure == f"posterior_{t.target}"]
    sentences = "".join(
        f"<li>{esc(s.sentence)}</li>"
        for s in key
        if s.group in ("skin and colour", "background", "change", "model")
        and (
            s.kind == "level"
            or s.measure in ("ita", "face_L", "bg_L")
            or s.clear
            or s.measure.startswith("posterior_")
        )
    )
    sentences += "".join(f"<li>{esc(a.sentence)}</li>" for a in t.attributes)
    fd = (
        f"<p><b>Latent Frechet distance</b> to {esc(t.target)}: {_num(t.frechet, 2)}. "
        f"<span class='note'>{esc(t.frechet_note)}.</span></p>"
    )
    baseline = (
        "<p class='note'>Projecting into the source dataset itself gives the autoencoder's "
        "reconstruction: changes here come from the autoencoder, not from a dataset's "
        "bias. Compare the other targets against it.</p>"
        if t.is_source
        else ""
    )
    parts = [
        f'<section id="target-{i}"><h2>{title}</h2>',
        baseline,
        f"<ul>{sentences}</ul>",
        fd,
        '<div class="charts">',
        f'<img class="chart" alt="distributions" src="{data_uri_png(charts["distributions"])}">',
        f'<img class="chart" alt="posterior" src="{data_uri_png(charts["posterior"])}">',
        "</div>",
        "<h3>Skin tone bands (ITA)</h3>",
        _bands_table(t),
    ]
    if t.attributes:
        parts += ["<h3>Attributes read by the benchmark's estimators</h3>", _attributes_table(t)]
    parts += [
        "<h3>All measures</h3>",
        "<p class='note'>Rows with a 95% interval that excludes zero are highlighted.</p>",
        _shift_table(t.shifts),
        f"<h3>The {len(t.most_changed)} images that change most ({esc(report.change_measure)})"
        "</h3><p class='note'>top: input; below: projection</p>",
        _gallery(t.most_changed, report.change_measure, pixel),
        f"<h3>The {len(t.least_changed)} images that change least</h3>",
        _gallery(t.least_changed, report.change_measure, pixel),
        "</section>",
    ]
    return "".join(parts)


def _method(report: Report) -> str:
    change = {
        "lpips": "LPIPS (AlexNet, Zhang et al. 2018; 0 = identical)",
        "l1": "the mean absolute pixel difference on a 0-1 scale (LPIPS weights were not "
        "available)",
    }[report.change_measure]
    layout = {
        "ffhq": "the FFHQ alignment (two cheek ellipses below the eyes and a band of the lower "
        "forehead)",
        "synthetic": "the synthetic benchmark's average head (the cheeks)",
    }[report.layout]
    return f"""
<section id="method"><h2>Method and caveats</h2>
<p>Each input is resized and centre-cropped to the model's {report.resolution} px, encoded,
mapped to the dataset-independent residual by the conditional INN with the label
<b>{esc(report.source)}</b>, mapped back with each target's label and decoded. Every measure
is taken on the input (at model resolution) and on each projection; shifts are means of the
per-image differences (projection minus input) with a paired percentile bootstrap 95%
interval ({report.n_resamples} resamples, seed {report.seed}). "No clear change" means the
interval covers zero.</p>
<ul>
<li><b>Skin tone</b>: the Individual Typology Angle ITA = arctan((L* - 50) / b*) in degrees
(CIELAB, D65), median over the face-skin region from {layout}; bands: very light &gt; 55,
light 41-55, intermediate 28-41, tan 10-28, brown -30 to 10, dark &le; -30.
Brightness is the mean L* of that region; the background is the two top corners.</li>
<li><b>Change</b> between input and projection: {change}; L1 and SSIM are also listed.</li>
<li><b>Posterior</b> p(dataset | image) and log-likelihoods come from the model's own exact
density of the (re-encoded) latent code under each dataset, with the training priors.</li>
<li><b>Latent Frechet distance</b>: between a Gaussian fit to the projected latents and the
target's training latents stored with the model (squared, as in FID).</li>
</ul>
<h3>Caveats</h3>
<ul>
<li>Lighting, white balance and make-up confound ITA: it measures the colour of pixels, not
a person's skin. A shift in ITA can come from a dataset's lighting or colour grading, and a
style changes measured colour too (a yellowed varnish lowers the ITA of the same skin), so
compare projections into one target with each other rather than with the input's band.</li>
<li>The region is fixed by the alignment; faces that are not aligned the same way (turned,
cropped differently, covered by hair or hands) are measured partly off the skin.</li>
<li>Posteriors and likelihoods are only as good as the model: a poorly trained model
gives confident but wrong numbers. They describe the model's view of the datasets.</li>
<li>With small n the intervals are wide and the bootstrap itself is rough; the Frechet
distance is biased upward when n is small compared with the latent dimension.</li>
<li>The projection into the source dataset is the reconstruction baseline: what the
autoencoder alone changes. Differences beyond it are what the target dataset adds.</li>
<li>Synthetic versus real: on the synthetic benchmark every attribute is known and the
priors were planted; on real photos no ground truth exists, and the model's datasets
define what "bias" means here.</li>
</ul></section>"""


def _provenance(report: Report) -> str:
    m, d, v = report.model, report.data, report.versions
    cmd = report.command if report.command else "(called from Python)"
    rows = [
        ("model", m.get("name")),
        ("model folder", m.get("path") or "(an object in memory)"),
        ("model provenance", m.get("provenance") or "(not recorded)"),
        (
            "datasets (priors)",
            ", ".join(
                f"{dn} ({p:.2f})" for dn, p in zip(m.get("domains", []), m.get("priors", []))
            ),
        ),
        ("weights sha256", m.get("weights_sha256") or "(not recorded)"),
        ("trained with net2fair", m.get("package_version") or "(not recorded)"),
        ("input", d["input"]),
        ("images found / used / skipped", f"{d['n_found']} / {d['n_used']} / {d['n_skipped']}"),
        ("sampled", "yes, at random with the seed" if d.get("sampled") else "no, all used"),
        ("seed", report.seed),
        ("command", cmd),
        ("versions", ", ".join(f"{k} {val}" for k, val in v.items())),
        ("created", report.created),
    ]
    return provenance_section(rows, d, "report.json")


def render_html(
    report: Report,
    charts: dict[str, dict[str, Path]],
    images: dict[str, Path] | None = None,
) -> str:
    """The self-contained page. Thumbnails are embedded from the report itself; of
    ``images`` only the change-map figure (key ``"changes"``) is used."""
    pixel = report.resolution < 96
    headline = "".join(f"<li>{esc(s)}</li>" for s in report.sentences())
    nav = " · ".join(
        f'<a href="#target-{i}">{esc(t.target)}</a>' for i, t in enumerate(report.per_target)
    )
    sections = "".join(
        _target_section(report, i, t, charts[t.target], pixel)
        for i, t in enumerate(report.per_target)
    )
    title = f"Bias projection report: {report.source}"
    return f"""{page_start(title)}
<p class="meta">{report.n} images from <b>{esc(report.source)}</b>
(<code>{esc(report.data["input"])}</code>) projected into {len(report.targets)} datasets with
model <b>{esc(report.model.get("name"))}</b>. Change measured by {esc(report.change_measure)};
face layout {esc(report.layout)}; seed {report.seed}; {esc(report.created)}.</p>
<p class="meta">Targets: {nav} · <a href="#grid">grid</a> ·
<a href="#changes">where faces change</a> · <a href="#method">method and
caveats</a> · <a href="#provenance">provenance</a></p>
<h2>In short</h2><ul class="headline">{headline or "<li>No target besides the source.</li>"}</ul>
<section id="grid"><h2>Inputs and their projections</h2>{_grid(report, pixel)}</section>
{changes_section(report.change_maps, (images or {}).get("changes"), report.source)}
{sections}
{_method(report)}
{_provenance(report)}
{PAGE_END}"""


__all__ = [
    "ReportWriteError",
    "render_html",
    "write",
    "write_charts",
    "write_csv",
    "write_image_files",
    "write_json",
]
