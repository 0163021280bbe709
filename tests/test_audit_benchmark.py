"""bench/audit_benchmark.py: the histogram baseline weights rare latents up, and the script
runs end to end at tiny sizes, printing both tables with sound numbers.

The figures themselves belong to whichever model ships, so only relations that hold for
any model are asserted (the 'before' row has uniform weights, shares and TVs lie in their
ranges, every planted intruder is counted, the JSON matches the printed tables).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from net2fair.synth.priors import PLANTED_ATTRIBUTES
from tests.conftest import REPO

SCRIPT = REPO / "bench" / "audit_benchmark.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_audit_benchmark", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _tables(text: str) -> list[tuple[list[str], list[dict[str, str]]]]:
    """Every markdown table in ``text``: (header, one dict per row)."""
    blocks, cur = [], []
    for ln in [*text.splitlines(), ""]:
        if ln.startswith("|"):
            cur.append(ln)
        elif cur:
            blocks.append(cur)
            cur = []
    out = []
    for lines in blocks:
        header = [c.strip() for c in lines[0].strip("|").split("|")]
        assert set(lines[1].replace("|", "")) == {"-"}, lines[1]
        rows = []
        for ln in lines[2:]:
            cells = [c.strip() for c in ln.strip("|").split("|")]
            assert len(cells) == len(header), ln
            rows.append(dict(zip(header, cells)))
        out.append((header, rows))
    return out


def _num(cell: str) -> float:
    if cell == "n/a":
        return math.nan
    m = re.fullmatch(r"([-+]?\d+(?:\.\d+)?)(%?)", cell)
    assert m, f"not a number: {cell!r}"
    return float(m.group(1)) / (100.0 if m.group(2) else 1.0)


# ------------------------------------------------------------------------ the baseline
def test_histogram_baseline_weights_the_rare_cluster_up(bench):
    # Uniform in the unit cube has no tails (a Gaussian's tails would be "rare" too); the
    # rare cluster sits apart along ONE dimension only: the max over dimensions must see it.
    rng = np.random.default_rng(0)
    common = rng.uniform(0.0, 1.0, size=(190, 4))
    rare = rng.uniform(0.0, 1.0, size=(10, 4))
    rare[:, 2] += 5.0
    w = bench.histogram_weights(np.concatenate([common, rare]))
    assert w.shape == (200,)
    assert w.mean() == pytest.approx(1.0)
    assert np.all(w > 0)
    assert w[190:].min() > w[:190].max()  # every rare point outweighs every common one
    assert w[190:].mean() > 5 * w[:190].mean()


def test_histogram_baseline_follows_its_definition(bench):
    # one dimension, 10 bins over [0, 10): counts 6, 1, 0 x 7, 3 -> densities count / (n * 1)
    x = np.array([0.0] * 6 + [1.5] + [9.5, 9.7, 10.0])[:, None]
    w = bench.histogram_weights(x)
    density = np.array([6, 1, 0, 0, 0, 0, 0, 0, 0, 3]) / 10.0
    smoothed = (density + 1e-3) / (density + 1e-3).sum()
    per_image = 1.0 / smoothed[[0] * 6 + [1] + [9, 9, 9]]
    np.testing.assert_allclose(w, per_image / per_image.mean())


def test_clipped_baseline_keeps_mean_one_and_the_cap(bench):
    w = np.r_[np.full(99, 1.0), 500.0]
    c = bench.clip_weights(w / w.mean(), 10.0)
    assert c.mean() == pytest.approx(1.0)
    assert c.max() == pytest.approx(10.0)
    assert np.all(np.diff(c[:99]) == 0)  # the unclipped ones keep their ratios


# ------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit_bench") / "figures.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    args = ["--n", "40", "--n-mislabel", "40", "--alphas", "0.1,1", "--bootstrap", "10"]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def test_rebalancing_table(tiny_run):
    text, figures = tiny_run
    tables = _tables(text)
    assert len(tables) == 2, text
    header, rows = tables[0]
    planted = [h.removesuffix(" (control)") for h in header[1 : 1 + len(PLANTED_ATTRIBUTES)]]
    assert planted == list(PLANTED_ATTRIBUTES)
    assert header[0] == "weighting"
    for col in ("mean planted", "content TV moved", "content TV, shuffled w", "ESS share"):
        assert col in header
    names = [r["weighting"] for r in rows]
    # --alpha auto (the audit's default) joins the --alphas sweep as the last cINN row
    assert names[:-1] == [
        "before (uniform weights)",
        "histogram baseline",
        "histogram baseline, clip 10",
        "cINN alpha=0.1",
        "cINN alpha=1",
        "cINN alpha=auto",
    ]
    assert re.fullmatch(r"cINN ESS-matched to baseline, alpha=[\d.e+-]+", names[-1])
    for r in rows:
        vals = {h: _num(r[h]) for h in header[1:]}
        assert all(0.0 <= v <= 1.0 for h, v in vals.items() if h != "max w"), r
    before = rows[0]
    assert _num(before["content TV moved"]) == 0.0
    assert _num(before["content TV, shuffled w"]) == 0.0
    assert _num(before["ESS share"]) == 1.0
    assert _num(before["max w"]) == 1.0
    for r in rows[2:]:  # every clipped weighting respects the clip
        assert _num(r["max w"]) <= 10.0 + 1e-9
    # matched means matched: the ESS-matched cINN row keeps the baseline's effective size
    # (reachable whenever it is above n / clip, the least ESS mean-1 weights under 10 have)
    if _num(rows[1]["ESS share"]) > 0.11:
        assert _num(rows[-1]["ESS share"]) == pytest.approx(_num(rows[1]["ESS share"]), abs=2e-3)
    # the dataset chosen is the most skewed one, and the JSON holds the printed figures
    reb = figures["rebalance"]
    skew = {d: v["mean"] for d, v in reb["prior_skew"].items()}
    assert reb["dataset"] == max(skew, key=skew.get)
    assert f"auditing {reb['dataset']}" in text
    got = reb["rows"]["cINN alpha=auto"]["mean_tv_uniform"]
    assert _num(rows[5]["mean planted"]) == pytest.approx(got, abs=6e-4)
    assert re.search(r"^Goal at alpha auto \([\d.e+-]+\) .*(HOLDS|DOES NOT HOLD)\.$", text, re.M)
    assert set(figures["goal"]) == {"histogram baseline", "histogram baseline, clip 10"}


def test_mislabel_table(tiny_run):
    text, figures = tiny_run
    header, rows = _tables(text)[1]
    assert header[:2] == ["folder", "mislabelled from"]
    for col in ("planted", "flagged", "precision", "recall", "via"):
        assert col in header
    domains = ["photo", "portrait", "anime"]
    pairs = [(r["folder"], r["mislabelled from"]) for r in rows]
    assert pairs == [(a, b) for a in domains for b in domains if a != b]
    assert [r["via"] for r in rows].count("audit.run") == 1
    for r in rows:
        assert int(r["n"]) == 40 and int(r["planted"]) == 2  # 5% of 40
        flagged, false = int(r["flagged"]), int(r["false flags"])
        assert 0 <= false <= flagged <= 40
        p, rec = _num(r["precision"]), _num(r["recall"])
        if flagged:
            assert p == pytest.approx((flagged - false) / flagged, abs=1e-3)
        else:
            assert math.isnan(p)
        assert rec == pytest.approx((flagged - false) / 2, abs=1e-3)
    checked = [p for p in figures["mislabels"]["pairs"] if p["via"] == "audit.run"]
    assert len(checked) == 1 and 0.0 <= checked[0]["agreement_with_latent_rule"] <= 1.0
