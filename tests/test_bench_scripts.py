"""The performance scripts in bench/ run end to end at tiny sizes and print sound tables.

They are run the way the lead runs them, in a subprocess; their figures are timings on a
shared machine, so only the table's structure and the relations that hold on any
machine are asserted (the baseline's own ratio is 1, the goal column follows its rule,
the kept bits/dim is the best validation, the run folder is left alone).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from net2fair.models.flow import ConditionalFlow
from net2fair.models.translator import shipped_models
from tests.conftest import REPO

BENCH = REPO / "bench"


def _module(name: str):
    # run as `python bench/NAME.py`, a script sees its own folder on sys.path (bench/timing.py)
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while being built
    spec.loader.exec_module(mod)
    return mod


def _run(script: str, *args: str, timeout: float = 600) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )
    assert proc.returncode == 0, f"{script} exited {proc.returncode}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _table(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """The markdown table in ``text``: its header and one dict per row."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    assert len(lines) >= 3, text
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert set(lines[1].replace("|", "")) == {"-"}
    rows = []
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        assert len(cells) == len(header), ln
        rows.append(dict(zip(header, cells)))
    return header, rows


def _number(cell: str) -> float:
    """The first number in a cell: '1,234.5 ms' -> 1234.5, '+0.0031' -> 0.0031."""
    m = re.search(r"[-+]?\d[\d,]*(?:\.\d+)?", cell)
    assert m, f"no number in {cell!r}"
    return float(m.group().replace(",", ""))


# ---------------------------------------------------------------------------- cinn sweep
def _fake_run(folder: Path, dim: int = 8, k: int = 3) -> Path:
    """A latent cache in the format train_cinn's run writes (posterior parameters, flips)."""
    g = torch.Generator().manual_seed(0)
    folder.mkdir(parents=True)

    def cache(n: int, flips: bool) -> dict[str, torch.Tensor]:
        y = torch.arange(n) % k
        mu = torch.randn(n, dim, generator=g) + 2.0 * y[:, None].float()
        out = {"mu": mu, "logvar": torch.full((n, dim), -4.0), "labels": y}
        if flips:
            out["mu_flip"] = mu + 0.1 * torch.randn(n, dim, generator=g)
            out["logvar_flip"] = torch.full((n, dim), -4.0)
        return out

    save_file(cache(192, True), str(folder / "latents_train.safetensors"))
    save_file(cache(48, False), str(folder / "latents_val.safetensors"))
    return folder


def test_parse_grid_expands_the_product_and_rejects_nonsense():
    sweep = _module("cinn_sweep")
    assert sweep.parse_grid(["4,8x128"]) == [(4, 128, 2), (8, 128, 2)]
    assert sweep.parse_grid(["2x16,32x1,3", "2x16x1"]) == [
        (2, 16, 1),
        (2, 16, 3),
        (2, 32, 1),
        (2, 32, 3),
    ]
    for bad in ("4", "4xax2", "0x16", "4x16x-1", "4x16x2x1"):
        with pytest.raises(ValueError, match="grid spec"):
            sweep.parse_grid([bad])


@pytest.mark.slow
def test_cinn_sweep_tiny(tmp_path: Path):
    run = _fake_run(tmp_path / "run")
    before = sorted(p.name for p in run.iterdir())
    out = tmp_path / "sweep.json"
    text = _run(
        "cinn_sweep.py",
        *("--run", str(run), "--grid", "1,2x16x1", "--baseline", "2x32x1"),
        *("--steps", "4", "--baseline-steps", "3", "--val-every", "2", "--batch-size", "32"),
        *("--warmup", "1", "--repeats", "2", "--infer-batch", "8", "--threads", "1"),
        *("--json", str(out)),
    )
    sweep = _module("cinn_sweep")
    header, rows = _table(text)
    assert header == sweep.COLUMNS
    assert [r["config"] for r in rows] == ["baseline 2x32x1", "1x16x1", "2x16x1"]
    assert sorted(p.name for p in run.iterdir()) == before  # scratch files went elsewhere
    assert "the baseline trained 3 steps, the others 4" in text

    base = rows[0]
    assert base["goal"] == "baseline" and base["speed-up"] == "1.00x"
    assert _number(base["Δ bits/dim"]) == 0.0
    for r in rows:
        blocks, width, depth = (int(r[c]) for c in ("blocks", "width", "depth"))
        expected = ConditionalFlow(
            dim=8,
            num_classes=3,
            n_flows=blocks,
            hidden_dim=width,
            hidden_depth=depth,
            embedding_dim=10,
        ).num_parameters
        assert _number(r["params"]) == expected
        assert math.isfinite(_number(r["best val bits/dim"]))
        assert _number(r["latents/s (fwd+inv)"]) > 0 and _number(r["ms (1 latent)"]) > 0
        assert _number(r["train s"]) >= 0  # (a tiny run can round to 0.00)
        steps = int(r["steps"])
        assert int(r["best step"]) in ({2, steps} if steps > 2 else {steps})
        assert r["goal"] in ("yes", "no", "baseline")

    data = json.loads(out.read_text())
    assert [d["name"] for d in data] == [r["config"] for r in rows]
    for d, r in zip(data, rows):
        # The kept figure is the best validation of the curve, at the step it was reached.
        _, best = min(d["val_curve"], key=lambda sv: sv[1])
        assert d["best_val_bpd"] == pytest.approx(best, abs=1e-4)
        assert d["best_step"] in [s for s, v in d["val_curve"] if v <= best + 1e-4]
        assert d["train_s"] > 0 and d["params"] == _number(r["params"])
        assert d["speedup"] == pytest.approx(d["latents_per_s"] / data[0]["latents_per_s"])
        assert d["delta_bpd"] == pytest.approx(d["best_val_bpd"] - data[0]["best_val_bpd"])
        goal = d["speedup"] >= 10 and d["delta_bpd"] <= 0.02 and not d["baseline"]
        assert d["meets_goal"] == goal
        assert r["goal"] == ("baseline" if d["baseline"] else "yes" if goal else "no")


# --------------------------------------------------------------------------- performance
def test_a_failing_projection_variant_is_reported_not_raised():
    perf = _module("performance")
    cfg_res = 32
    t = perf.random_translator(perf.DEFAULT_CONFIG, cfg_res)
    x = torch.zeros(1, 3, cfg_res, cfg_res)
    sec, note = perf.measure_variant(t, x, "batched", 1)
    assert sec > 0 and note == ""
    sec, note = perf.measure_variant(t, x, "no-such-variant", 1)
    assert sec is None and note.startswith("failed: ValueError: unknown variant")


@pytest.mark.slow
@pytest.mark.skipif("demo" not in shipped_models(), reason="the demo model is not shipped")
def test_performance_tiny():
    text = _run(
        "performance.py",
        *("--threads", "1", "--data-n", "8"),
        *("--cache-batches", "2", "--cache-batch", "16", "--cache-resolutions", "32,64"),
        *("--resolutions", "64,32", "--variants", "loop,batched,contiguous,threads1"),
        *("--proj-repeats", "2"),
        *("--s1-batch", "4", "--s1-steps", "1", "--s1-data-batches", "2"),
        *("--profile", "--profile-steps", "1"),
        *("--report-sizes", "4,8"),
        "--viewer-repeats",
        "1",
    )
    perf = _module("performance")
    header, rows = _table(text.split("### stage-1 profile")[0])
    assert header == perf.COLUMNS
    by = {}
    for r in rows:
        by.setdefault(r["section"], []).append(r)
    assert list(by) == ["a cache", "b projection", "c stage1", "d report", "e viewer"]
    assert "failed" not in text

    rows_a = by["a cache"]
    assert len(rows_a) == 6
    for res, (cache, files, build) in zip((32, 64), (rows_a[:3], rows_a[3:]), strict=True):
        assert all(r["measure"].startswith(f"{res} px:") for r in (cache, files, build))
        for r in (cache, files):
            assert re.fullmatch(r"[\d.]+x faster", r["ratio"]), r
            assert _number(r["figure"]) > 0
        assert "encoding each batch (images in memory)" in cache["baseline (same run)"]
        assert "decoding + encoding each batch" in files["baseline (same run)"]
        assert "24 images" in build["measure"] and _number(build["figure"]) > 0

    proj = by["b projection"]
    assert len(proj) == 2 * 4 + 1
    for r in proj[:-1]:
        assert _number(r["figure"]) > 0 and re.fullmatch(r"[\d.]+x vs loop", r["ratio"]), r
    assert "64 px (model 'demo')" in proj[0]["measure"]
    assert "32 px (default.yaml, random)" in proj[4]["measure"]
    assert proj[0]["ratio"] == "1.00x vs loop" and proj[-1]["figure"] == "1"

    s1 = by["c stage1"]
    assert "full loss" in s1[0]["measure"] and s1[0]["figure"].endswith("images/s")
    assert any("without the discriminator" in r["measure"] for r in s1)
    for variant in ("channels_last (every", "bf16 autocast of", "channels_last + bf16"):
        (row,) = [r for r in s1 if variant in r["measure"]]
        assert row["figure"].endswith("images/s") and re.fullmatch(r"[\d.]+x", row["ratio"])
    assert [r for r in s1 if "preloaded" in r["measure"]][0]["ratio"].endswith("of a step")
    assert "top 15 ops by self CPU time" in text and "Self CPU" in text

    rep = by["d report"]
    assert len(rep) == 4 and "4 faces" in rep[0]["measure"] and "8 faces" in rep[1]["measure"]
    (floor_row,) = [r for r in rep if r["measure"].startswith("peak RSS floor")]
    (marginal,) = [r for r in rep if r["measure"].startswith("marginal rate")]
    assert marginal["figure"].endswith(("images/s", "(timing noise)"))
    floor = _number(floor_row["figure"])
    for r in rep[:2]:
        peak = float(re.search(r"peak RSS ([\d,]+) MiB", r["figure"]).group(1).replace(",", ""))
        assert peak >= floor > 10 and _number(r["figure"]) > 0
    assert re.fullmatch(r"[\d.]+x memory", rep[1]["ratio"])

    viewer = by["e viewer"]
    assert len(viewer) == 4
    assert all(r["figure"].endswith(("ms", " s")) and _number(r["figure"]) > 0 for r in viewer)
    # the first projections come before the end of the whole first page
    assert _number(viewer[1]["ratio"]) >= 1.0


# ------------------------------------------------------------------------- content probe
def test_content_probe_reads_shared_and_dataset_specific_coordinates():
    """Two 'datasets' code the same three attributes: one plainly, one rotated. A readout
    fitted on either is exact at home and wrong on the other; the table says so."""
    probe = _module("content_probe")
    g = torch.Generator().manual_seed(0)
    a = torch.randn(600, 3, generator=g).double().numpy()
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g).double())
    mix = torch.randn(3, 5, generator=g).double().numpy()
    plain = a @ mix
    rotated = plain @ q.numpy()
    w = probe.fit_readout(plain, a, ridge=1e-9)
    assert probe.readout_error(w, plain, a, a.std(0)).max() < 1e-6
    names = ("x", "y", "size")
    result = probe.probe({"plain": (plain, a), "rotated": (rotated, a)}, 1e-9, names)
    err = result["error"]
    assert err["plain"]["plain"] < 1e-6 and err["rotated"]["rotated"] < 1e-6
    assert err["plain"]["rotated"] > 0.2 and err["rotated"]["plain"] > 0.2
    # the same code in both datasets: a readout carries over exactly
    same = probe.probe({"one": (plain, a), "two": (plain.copy(), a)}, 1e-9, names)
    assert same["error"]["one"]["two"] < 1e-6
    per = result["per_attribute"]["plain"]["rotated"]
    assert list(per) == list(names)
    assert sum(per.values()) / 3 == pytest.approx(err["plain"]["rotated"])


@pytest.mark.skipif("demo" not in shipped_models(), reason="the demo model is not shipped")
def test_content_probe_tiny(tmp_path):
    out = tmp_path / "probe.json"
    text = _run("content_probe.py", "--n", "12", "--json", str(out))
    raw, rest = text.split("The same after standardising")
    header, rows = _table(raw)
    assert _table(rest)[0] == header
    assert "Gelbrich lower bound" in rest and "photo -> anime" in rest
    assert header == ["readout fitted on"] + [
        f"error on {d}" for d in ("photo", "portrait", "anime")
    ]
    assert [r["readout fitted on"] for r in rows] == ["photo", "portrait", "anime"]
    saved = json.loads(out.read_text())
    for r in rows:
        for col in header[1:]:
            got = _number(r[col])
            want = saved["error"][r["readout fitted on"]][col.removeprefix("error on ")]
            assert got == pytest.approx(want, abs=0.006)


def test_content_probe_gelbrich_bound_and_standardising_on_known_gaussians():
    probe = _module("content_probe")
    g = torch.Generator().manual_seed(1)
    a = torch.randn(4000, 2, generator=g).double().numpy()
    z = torch.randn(4000, 4, generator=g).double().numpy()
    shift = torch.tensor([2.0, 0.0, 0.0, 0.0]).double().numpy()
    codes = {"one": (z, a), "two": (z + shift, a)}
    bound = probe.gelbrich(codes)
    pooled = np.concatenate([z, z + shift]).var(0).mean()
    # equal covariances: the bound is the squared distance of the means
    assert bound["one"]["two"] == pytest.approx(4.0 / 4 / pooled, rel=1e-6)
    assert bound["one"]["one"] == pytest.approx(0.0, abs=1e-9)
    # a dataset that is another one shifted and scaled is the same after standardising
    scaled = {"one": (z, a), "two": (3.0 * z + shift, a)}
    std = probe.standardised(scaled)
    assert np.allclose(std["one"][0], std["two"][0])


# ------------------------------------------------------------------------ stage-1 fidelity
@pytest.mark.skipif("demo" not in shipped_models(), reason="the demo model is not shipped")
def test_stage1_fidelity_tiny():
    text = _run("stage1_fidelity.py", "--n", "4", timeout=120)
    datasets = ["photo", "portrait", "anime"]
    part1, part2 = text.split("### 2.")
    part2a, part2b = part2.split("Each loss divided by the L1")
    losses = ["L1", "LPIPS alex 64 px", "LPIPS alex 224 px", "chroma_detail_l1"]
    lpips_na = "LPIPS-alex weights are missing" in text

    def finite(cell: str, lpips: bool) -> None:
        if lpips and lpips_na:
            assert cell == "n/a"
        else:
            assert all(math.isfinite(float(v)) for v in re.findall(r"[-+]?\d+\.\d+", cell)), cell

    header, rows = _table(part1)
    assert header == ["dataset", "PSNR (dB)", "colour-noise ratio", *losses]
    assert [r["dataset"] for r in rows] == datasets
    for r in rows:
        for col in header[1:]:
            finite(r[col], "LPIPS" in col)
            if r[col] != "n/a":
                assert " -> " in r[col]
        # cleaning the eye-band chroma removes colour noise: the ratio falls
        before, after = (float(v) for v in r["colour-noise ratio"].split(" -> "))
        assert after < before

    header, rows = _table(part2a)
    assert header == ["dataset", "distortion", "colour-noise ratio", "PSNR (dB)", *losses]
    assert [(r["dataset"], r["distortion"]) for r in rows] == [
        (d, k) for d in datasets for k in ("confetti", "blur")
    ]
    for r in rows:
        for col in header[2:]:
            finite(r[col], "LPIPS" in col)
        if r["distortion"] == "confetti":
            assert _number(r["colour-noise ratio"]) == pytest.approx(2.5, abs=0.01)

    header, rows = _table(part2b)
    assert header == ["dataset"] + [f"{k} per L1: confetti / blur" for k in losses[1:]]
    assert [r["dataset"] for r in rows] == datasets
    for r in rows:
        for col in header[1:]:
            finite(r[col], "LPIPS" in col)
