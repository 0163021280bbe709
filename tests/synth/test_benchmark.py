"""The bias benchmark and `net2fair demo` on a tiny synthetic-data model, and the shipped model."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from net2fair import Translator
from net2fair.models.translator import shipped_models
from net2fair.synth.benchmark import (
    EVAL_SEED_OFFSET,
    PROJECTIONS,
    format_table,
    histogram,
    linear_projection,
    prior_vector,
    run_benchmark,
    skin_ita,
    total_variation,
)
from net2fair.synth.priors import PLANTED_ATTRIBUTES, load_priors
from net2fair.synth.render import render_batch
from tests.conftest import REPO, run_cli


def test_total_variation_and_histograms():
    assert total_variation([0.5, 0.5], [0.5, 0.5]) == 0
    assert total_variation([1, 0], [0, 1]) == 1
    assert np.allclose(histogram(np.array([0, 0, 2]), 3), [2 / 3, 0, 1 / 3])
    p = prior_vector(load_priors(), "anime", "hair_length")
    assert p.shape == (3,) and math.isclose(p.sum(), 1.0)


def test_skin_ita_orders_rendered_skin_tones():
    images, attrs = render_batch("photo", 60, 64, seed=5)
    ita = skin_ita(images, attrs)
    tones = np.array([a["skin_tone"] for a in attrs])
    means = [ita[tones == k].mean() for k in range(6) if (tones == k).any()]
    assert all(a > b for a, b in zip(means, means[1:])), means


class FakeEstimators(torch.nn.Module):
    """Reads nothing off the image: always predicts category 0 and the prior's centre.
    Lets the benchmark's bookkeeping be checked exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))

    def predict(self, x):
        b = x.shape[0]
        out = {a: torch.zeros(b, dtype=torch.long) for a in PLANTED_ATTRIBUTES}
        out["domain"] = torch.zeros(b, dtype=torch.long)
        out["mouth_open"] = torch.zeros(b, dtype=torch.long)
        for k in ("x", "y", "size", "yaw", "roll"):
            out[k] = torch.zeros(b)
        return out


@pytest.mark.slow
def test_benchmark_bookkeeping(synth_tiny_model):
    t = Translator.load(synth_tiny_model)
    result = run_benchmark(t, estimators=FakeEstimators(), n=6, seed=0)
    assert len(result.pairs) == 9
    priors = load_priors()
    for p in result.pairs:
        assert p.target_accuracy == (1.0 if p.target == "photo" else 0.0)
        # a constant prediction of category 0: TV to the target prior is 1 - prior[0]
        expected = 1 - prior_vector(priors, p.target, "glasses")[0]
        assert math.isclose(p.bias_tv["glasses"], expected, abs_tol=1e-9)
        assert math.isnan(p.bias_ratio["eye_size"])  # equal priors everywhere: no baseline
        assert 0 <= p.posterior_target <= 1
        # kept = share of source faces whose true category is the constant prediction, 0
        _, attrs = render_batch(p.source, 6, t.resolution, seed=EVAL_SEED_OFFSET)
        for attr in PLANTED_ATTRIBUTES:
            share = float(np.mean([int(a[attr]) == 0 for a in attrs]))
            assert math.isclose(p.attribute_kept[attr], share, abs_tol=1e-9), attr
    table = format_table(result)
    assert "photo -> anime" in table and "glasses ratio" in table and "(TV" in table
    assert "read back as the input's (a -> a): photo skin_tone" in table
    assert result.reconstruction_psnr == pytest.approx(
        np.mean([r["psnr"] for r in result.reconstruction.values()])
    )


@pytest.mark.slow
def test_demo_command_end_to_end(tmp_path):
    # the real user path: the model shipped in the package, a few faces
    out = tmp_path / "demo"
    proc = run_cli(
        "demo",
        "--out",
        str(out),
        "--n",
        "6",
        "--device",
        "cpu",
        "-q",
    )
    assert "photo -> anime: skin tone" in proc.stdout
    for name in (
        "projections.png",
        "samples.png",
        "summary.md",
        "summary.json",
        "report/index.html",
        "report/report.json",
        "report/per_image.csv",
    ):
        assert (out / name).is_file(), name
    assert "Projected into anime, skin tone" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["pairs"]) == 9 and summary["n_per_domain"] == 6


@pytest.mark.skipif(
    "demo" not in shipped_models(), reason="demo model not built into this checkout"
)
def test_shipped_demo_model_loads_and_projects():
    t = Translator.load("demo")
    assert t.domains == ["photo", "portrait", "anime"] and t.resolution == 64
    images, _ = render_batch("photo", 2, 64, seed=1)
    out = t.project(images[0], source="photo", targets="all")
    assert set(out) == {"photo", "portrait", "anime"}
    assert out["anime"].shape == (1, 3, 64, 64)
    assert torch.isfinite(out["anime"]).all()


def _with_statistics(t: Translator, seed: int = 0) -> Translator:
    """Give a model random, well-conditioned latent statistics for each dataset."""
    g = torch.Generator().manual_seed(seed)
    k, d = t.stats_mean.shape
    for i in range(k):
        a = torch.randn(d, d, generator=g, dtype=torch.float64)
        t.stats_mean[i] = torch.randn(d, generator=g)
        t.stats_cov[i] = (a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)).float()
    t.stats_count.fill_(100)
    return t


def test_linear_baselines_carry_the_mean_and_covariance(tiny_model):
    t = _with_statistics(Translator.load(tiny_model))
    a, b = t.domains
    ca, cb = t.stats_cov[0].double(), t.stats_cov[1].double()
    shift = linear_projection(t, "mean-shift")
    ot = linear_projection(t, "gaussian-ot")
    for maps in (shift, ot):
        ma, m, mb = maps[a, a]
        torch.testing.assert_close(m, torch.eye(len(m), dtype=torch.float64))
        ma, m, mb = maps[a, b]
        # the map sends a's mean to b's mean
        torch.testing.assert_close(mb + (ma - ma) @ m.T, t.stats_mean[1].double())
    _, m, _ = shift[a, b]
    torch.testing.assert_close(m, torch.eye(len(m), dtype=torch.float64))
    # Gaussian optimal transport: symmetric positive definite, carries C_a onto C_b, and
    # the maps a -> b and b -> a are inverses
    _, m, _ = ot[a, b]
    torch.testing.assert_close(m, m.T)
    assert float(torch.linalg.eigvalsh(m).min()) > 0
    torch.testing.assert_close(m @ ca @ m.T, cb, atol=1e-8, rtol=1e-6)
    torch.testing.assert_close(ot[b, a][1] @ m, torch.eye(len(m), dtype=torch.float64))
    with pytest.raises(ValueError, match="unknown linear projection"):
        linear_projection(t, "flow")


@pytest.mark.slow
def test_bias_benchmark_script_runs_every_projection(synth_tiny_model, tmp_path, cli):
    import subprocess
    import sys

    for projection in PROJECTIONS:
        out = tmp_path / f"{projection}.json"
        args = ["--n", "6", "--projection", projection, "--json", str(out)]
        if projection == PROJECTIONS[-1]:
            # the script as the lead runs it, in a process of its own, once
            proc = subprocess.run(
                [
                    sys.executable,
                    str(REPO / "bench" / "bias_benchmark.py"),
                    *("--model", str(synth_tiny_model)),
                    *args,
                ],
                capture_output=True,
                text=True,
                timeout=300,
            )
        else:
            # the script is `net2fair benchmark MODEL ARGS`: the same call, in-process
            proc = cli("benchmark", str(synth_tiny_model), *args)
        assert proc.returncode == 0, proc.stderr
        assert f"--projection {projection}" in proc.stdout or projection == "flow"
        assert "photo -> anime" in proc.stdout and "content err" in proc.stdout
        pairs = json.loads(out.read_text())["pairs"]
        assert len(pairs) == 9 and all(0 <= p["target_accuracy"] <= 1 for p in pairs)


@pytest.mark.slow
def test_benchmark_command_end_to_end(synth_tiny_model, tmp_path, cli):
    out = tmp_path / "figures" / "bias.json"
    proc = run_cli("benchmark", str(synth_tiny_model), "--n", "5", "--json", str(out), "-q")
    assert f"$ net2fair benchmark {synth_tiny_model} --n 5 --seed 0" in proc.stdout
    rows = [r for r in proc.stdout.splitlines() if r.startswith("|") and " -> " in r.split("|")[1]]
    assert len(rows) == 9  # every ordered pair of the three datasets
    assert "content err (max, sd)" in proc.stdout and "Reconstruction PSNR" in proc.stdout
    figures = json.loads(out.read_text())
    assert figures["n_per_domain"] == 5 and len(figures["pairs"]) == 9
    # the autoencoder's own damage per dataset, and colour noise per pair (issue 17)
    assert "colour noise" in proc.stdout and "The autoencoder alone" in proc.stdout
    assert set(figures["reconstruction"]) == {"photo", "portrait", "anime"}
    for r in figures["reconstruction"].values():
        assert 0 < r["psnr"] < 60 and 0 <= r["colour_noise_ratio"] < 100
    assert all(0 <= p["colour_noise_ratio"] < 100 for p in figures["pairs"])
    assert [p.name for p in out.parent.iterdir()] == ["bias.json"]  # no temp file left
    # the same seed gives the same figures (in-process: the command ran as a user's above)
    again = cli("benchmark", str(synth_tiny_model), "--n", "5", "-q")
    assert again.returncode == 0, again.stderr
    assert again.stdout.split("\n\n")[1] == proc.stdout.split("\n\n")[1]


def test_benchmark_command_refuses_models_of_other_datasets(tiny_model, tmp_path, cli):
    # in-process (tests/conftest.py's cli): exit codes and stderr lines as a process has them
    out = tmp_path / "bias.json"
    proc = cli("benchmark", str(tiny_model), "--json", str(out))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tiny_model) in lines[0] and "discs" in lines[0]
    assert "synthetic datasets" in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists()
    proc = cli("benchmark", "demo", "--n", "0")
    assert proc.returncode == 2 and "--n must be in [1, 10000], got 0" in proc.stderr
    # an unusable --json destination is refused before the benchmark runs
    proc = cli("benchmark", str(tiny_model), "--json", str(tmp_path))
    assert proc.returncode == 2 and "names a folder" in proc.stderr
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = cli("benchmark", "demo", "--json", str(blocker / "b.json"))
    assert proc.returncode == 1 and "not a writable folder" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""


def test_benchmark_command_offers_every_projection():
    from net2fair.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["benchmark"]
    choices = next(a for a in sub._actions if a.dest == "projection").choices
    assert tuple(choices) == PROJECTIONS
