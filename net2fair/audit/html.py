"""Writers for an :class:`~net2fair.audit.model.Audit`: one folder, written atomically.

* ``weights.csv``: one row per image: path (relative to the audited folder), weight,
  log-likelihood, bits/dim, posterior and log-likelihood per dataset, flag, the dataset
  that explains it better and the log Bayes factor (plus estimated attributes, if any);
* ``audit.json``: every figure, provenance, command line and seed;
* ``index.html``: self-contained, in the bias report's style, every user string escaped;
* ``charts/*.png`` and, with compared datasets, ``images/changes.png``.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from net2fair import htmlkit
from net2fair.audit.model import Audit, AuditImage
from net2fair.fileio import OutputError, staged_folder
from net2fair.htmlkit import esc
from net2fair.report.changes import write_change_figure

logger = logging.getLogger(__name__)

AUDIT_FILES = ("index.html", "audit.json", "weights.csv")


#: the writer's refusals (kept as a name of its own for callers that catch it)
AuditWriteError = OutputError


def write(audit: Audit, out_dir: str | Path, *, inputs: Sequence[str | Path] = ()) -> Path:
    """Write the audit folder atomically (built beside ``out_dir``, renamed at the end) and
    return its path. An existing ``out_dir`` is replaced only if it is empty or holds
    nothing but an earlier audit.

    Raises:
        AuditWriteError: ``out_dir`` is a file, lies inside one of ``inputs``, or holds
            anything but an earlier audit.
    """
    out = Path(out_dir).absolute()
    with staged_folder(out, "audit", inputs=inputs) as tmp:
        (tmp / "charts").mkdir()
        charts = write_charts(audit, tmp / "charts")
        changes = None
        if audit.change_maps:
            (tmp / "images").mkdir()
            changes = write_change_figure(audit.change_maps, tmp / "images" / "changes.png")
        write_weights_csv(audit, tmp / "weights.csv")
        htmlkit.write_json(audit.to_dict(), tmp / "audit.json")
        (tmp / "index.html").write_text(render_html(audit, charts, changes), encoding="utf-8")
    logger.info("wrote audit to %s", out)
    return out


def write_weights_csv(audit: Audit, path: Path) -> None:
    """``weights.csv``: one row per image, in folder order."""
    cell = htmlkit.csv_value
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=audit.columns, extrasaction="ignore")
        w.writeheader()
        for row in audit.rows:
            w.writerow({k: int(v) if isinstance(v, bool) else cell(v) for k, v in row.items()})


# ---------------------------------------------------------------------------- charts


def write_charts(audit: Audit, folder: Path) -> dict[str, Path]:
    """``loglik.png`` (histogram of log p(z | D), flagged images marked) and, when
    attributes were estimated, ``attributes.png`` (shares before and after weighting)."""
    out: dict[str, Path] = {}
    ll = audit.log_likelihood
    flags = np.array([r["flag"] for r in audit.rows], dtype=bool)
    fig = htmlkit.figure(7.0, 2.8)
    ax1, ax2 = fig.subplots(1, 2)
    bins = np.linspace(ll.min(), ll.max() + 1e-9, min(40, max(8, ll.size // 5)) + 1)
    ax1.hist(ll[~flags], bins=bins, color="#4c72b0", alpha=0.8, label="not flagged")
    if flags.any():
        ax1.hist(ll[flags], bins=bins, color="#c44e52", alpha=0.8, label="flagged")
    ax1.set_xlabel(f"log p(z | {audit.domain}) (nats)")
    ax1.set_ylabel("images")
    ax1.set_title("typicality", fontsize=10)
    ax1.legend(fontsize=8)
    order = np.argsort(ll)
    ax2.plot(ll[order], audit.weights[order], color="#dd8452")
    ax2.axhline(audit.clip, color="#999", ls="--", lw=0.8)
    ax2.set_xlabel(f"log p(z | {audit.domain}) (nats)")
    ax2.set_ylabel("weight")
    ax2.set_yscale("log")
    ax2.set_title(f"weights (alpha {audit.alpha:g}, clip {audit.clip:g})", fontsize=10)
    out["loglik"] = folder / "loglik.png"
    fig.savefig(out["loglik"])

    cat = [a for a in audit.attributes if a.kind == "categorical"]
    if cat:
        cols = 3
        nrows = (len(cat) + cols - 1) // cols
        fig = htmlkit.figure(10.0, 2.4 * nrows)
        axes = np.asarray(fig.subplots(nrows, cols, squeeze=False)).reshape(-1)
        for ax, a in zip(axes, cat):
            xs = np.arange(len(a.categories))
            ax.bar(xs - 0.2, a.before, 0.4, label="folder", color="#4c72b0")
            ax.bar(xs + 0.2, a.after, 0.4, label="reweighted", color="#dd8452")
            ax.axhline(1.0 / len(a.categories), color="#999", ls="--", lw=0.8)
            ax.set_xticks(xs, a.categories, rotation=45, ha="right", fontsize=7)
            ax.set_title(
                f"{a.attribute}: TV to uniform {a.tv_to_uniform_before:.2f} -> "
                f"{a.tv_to_uniform_after:.2f}",
                fontsize=8,
            )
        for ax in axes[len(cat) :]:
            ax.set_visible(False)
        axes[0].legend(fontsize=7)
        out["attributes"] = folder / "attributes.png"
        fig.savefig(out["attributes"])
    return out


# ------------------------------------------------------------------------------ html


def _cards(items: list[AuditImage], pixel: bool) -> str:
    if not items:
        return "<p class='note'>none</p>"
    cards = "".join(
        f'<div class="card"><img alt="{esc(g.name)}" src="{htmlkit.data_uri_png(g.pixels)}">'
        f'<div class="name">{esc(g.name)}</div>'
        f"<div>log p {g.log_likelihood:.1f}</div>"
        + (f"<div>w {g.weight:.2f}</div>" if g.weight is not None else "")
        + (f"<div>{esc(g.note)}</div>" if g.note else "")
        + "</div>"
        for g in items
    )
    return f'<div class="{"cards pixel" if pixel else "cards"}">{cards}</div>'


def _attribute_table(audit: Audit) -> str:
    if not audit.attributes:
        return (
            "<p class='note'>No attribute estimators for this model: the distributions before "
            "and after reweighting are shown on the synthetic benchmark's models only.</p>"
        )
    rows = []
    for a in audit.attributes:
        shares = "; ".join(
            f"{esc(c)} {b:.0%}&rarr;{f:.0%}" for c, b, f in zip(a.categories, a.before, a.after)
        )
        if a.kind == "categorical":
            figs = (
                f"<td>{a.tv_to_uniform_before:.3f}</td><td>{a.tv_to_uniform_after:.3f}</td>"
                f"<td>{a.tv_before_after:.3f}</td>"
            )
        else:
            figs = f"<td>n/a</td><td>n/a</td><td>{a.tv_before_after:.3f}</td>"
        rows.append(
            f"<tr><td class='l'>{esc(a.attribute)}</td><td class='l'>{esc(a.kind)}</td>"
            f"{figs}<td class='l'>{shares}</td></tr>"
        )
    return (
        "<table><tr><th class='l'>attribute</th><th class='l'>kind</th>"
        "<th>TV to uniform, folder</th><th>reweighted</th><th>TV moved</th>"
        "<th class='l'>shares: folder &rarr; reweighted</th></tr>" + "".join(rows) + "</table>"
        "<p class='note'>Attributes are read from the images by the benchmark's estimators. "
        "Rebalancing should bring the planted attributes closer to uniform and leave content "
        "(position, size, pose; binned into equal-width ranges) where it was.</p>"
    )


def _flag_table(audit: Audit, limit: int = 200) -> str:
    rows = audit.flagged()
    if not rows:
        return "<p>No image is explained better by another dataset.</p>"
    body = "".join(
        f"<tr><td class='l'><code>{esc(r['path'])}</code></td><td class='l'>"
        f"{esc(r['better_dataset'])}</td><td>{r['log_bayes_factor']:.2f}</td>"
        f"<td>{r[f'posterior_{audit.domain}']:.3f}</td><td>{r['weight']:.2f}</td></tr>"
        for r in rows[:limit]
    )
    more = (
        f"<p class='note'>... and {len(rows) - limit} more in weights.csv</p>"
        if len(rows) > limit
        else ""
    )
    return (
        "<table><tr><th class='l'>file</th><th class='l'>explained better by</th>"
        f"<th>log Bayes factor (nats)</th><th>p({esc(audit.domain)} | image)</th>"
        f"<th>weight</th></tr>{body}</table>{more}"
    )


def _provenance(audit: Audit) -> str:
    m, d = audit.model, audit.data
    items = [
        ("model", m.get("name")),
        ("model folder", m.get("path") or "(an object in memory)"),
        ("weights sha256", m.get("weights_sha256") or "(not recorded)"),
        (
            "datasets (priors)",
            ", ".join(f"{dn} ({p:.2f})" for dn, p in zip(m["domains"], m["priors"])),
        ),
        ("input", d["input"]),
        ("images found / used / skipped", f"{d['n_found']} / {d['n_used']} / {d['n_skipped']}"),
        ("sampled", "yes, at random with the seed" if d.get("sampled") else "no, all used"),
        (
            "alpha / clip / flag margin",
            f"{audit.alpha:.4g} ({audit.alpha_rule}) / {audit.clip:g} / {audit.flag_margin:g}",
        ),
        ("seed", audit.seed),
        ("command", audit.command or "(called from Python)"),
        ("versions", ", ".join(f"{k} {v}" for k, v in audit.versions.items())),
        ("created", audit.created),
    ]
    return htmlkit.provenance_section(items, d, "audit.json")


def render_html(audit: Audit, charts: dict[str, Path], changes: Path | None = None) -> str:
    """The self-contained audit page."""
    pixel = audit.model.get("resolution", 256) < 96
    headline = "".join(f"<li>{esc(s)}</li>" for s in audit.sentences())
    attr_chart = (
        f'<img class="chart" alt="attributes" src="{htmlkit.data_uri_png(charts["attributes"])}">'
        if "attributes" in charts
        else ""
    )
    title = f"Dataset audit: {audit.domain}"
    return f"""{htmlkit.page_start(title)}
<p class="meta">{audit.n} images of <code>{esc(audit.root)}</code> audited as
<b>{esc(audit.domain)}</b> with model <b>{esc(audit.model.get("name"))}</b>
(datasets: {esc(", ".join(audit.domains))}); seed {audit.seed}; {esc(audit.created)}.</p>
<p class="meta"><a href="#typical">typicality</a> · <a href="#flagged">flagged</a> ·
<a href="#balance">rebalancing</a> · <a href="#changes">where faces change</a> ·
<a href="#method">method</a> · <a href="#provenance">provenance</a></p>
<h2>In short</h2><ul class="headline">{headline}</ul>
<section id="typical"><h2>Typicality under {esc(audit.domain)}</h2>
<img class="chart" alt="log-likelihoods" src="{htmlkit.data_uri_png(charts["loglik"])}">
<h3>The {len(audit.least_typical)} least typical images (highest weights)</h3>
{_cards(audit.least_typical, pixel)}
<h3>The {len(audit.most_typical)} most typical images (lowest weights)</h3>
{_cards(audit.most_typical, pixel)}</section>
<section id="flagged"><h2>Images another dataset explains better</h2>
<p class="note">Flagged when max over the other datasets of log p(z | d) exceeds
log p(z | {esc(audit.domain)}) by more than {audit.flag_margin:g} nats: a possible mislabel, an
image of another style, or an outlier all datasets find unlikely (compare its log p with the
typical range above).</p>
{_cards(audit.flagged_examples, pixel)}
{_flag_table(audit)}</section>
<section id="balance"><h2>Rebalancing with the weights</h2>
<p>Weights w ∝ p(z | {esc(audit.domain)})<sup>-{audit.alpha:.3g}</sup>, mean 1, at most
{audit.clip:g}, are in <code>weights.csv</code>. Train with them through
<code>torch.utils.data.WeightedRandomSampler</code> (see the README).</p>
{attr_chart}
{_attribute_table(audit)}</section>
{htmlkit.changes_section(audit.change_maps, changes, audit.domain)}
<section id="method"><h2>Method and caveats</h2>
<ul>
<li>Each image is resized and centre-cropped to {audit.model.get("resolution")} px and encoded;
the density is the cINN's exact log p(z | d) of the encoder mean (change of variables,
no approximation), in nats; bits/dim divides by {audit.z_dim} ln 2.</li>
<li>The density is the model's view: a folder the model was trained on looks more typical
to it than fresh images, and an image can be rare because the autoencoder renders it
poorly. Weights rebalance what the model can see in z; they do not know about attributes
the latent code does not hold.</li>
<li>alpha 1 would undo the density completely (importance weights to a flat density): a
handful of images would carry the folder. The default alpha is chosen per folder as the
strongest one (at most 1) that keeps the reweighted folder worth half of its images
(Kish's effective sample size); here {audit.alpha:.3g} ({esc(audit.alpha_rule)}).</li>
</ul></section>
{_provenance(audit)}
{htmlkit.PAGE_END}"""


__all__ = ["AUDIT_FILES", "AuditWriteError", "render_html", "write", "write_weights_csv"]
