"""The audit end to end: API and command on the tiny model, outputs, escaping, flags."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from net2fair import audit
from net2fair.audit.core import _fit_weights
from net2fair.models.translator import Translator, UnknownDomainError
from tests.conftest import run_cli

XSS_IMG = "<img src=x onerror=alert(1)>.png"


@pytest.fixture(scope="module")
def model(tiny_model: Path) -> Translator:
    return Translator.load(tiny_model)


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory, toy_folders) -> Path:
    """The discs folder with 4 squares moved in (mislabelled), a hostile name and a bad file."""
    root = tmp_path_factory.mktemp("mixed") / "discs"
    shutil.copytree(toy_folders["discs"], root)
    for p in sorted(toy_folders["squares"].glob("*.png"))[:4]:
        shutil.copy(p, root / f"moved_{p.name}")
    shutil.copy(sorted(root.glob("disc_*.png"))[0], root / XSS_IMG)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


@pytest.fixture(scope="module")
def done(model: Translator, mixed_folder: Path) -> audit.Audit:
    return audit.run(model, mixed_folder, domain="discs", compare="all", batch_size=7)


def test_run_measures_every_usable_image(done: audit.Audit, model: Translator):
    assert done.n == 24 + 4 + 1
    assert done.data["n_skipped"] == 1 and "broken.png" in done.data["skipped"][0]["file"]
    assert done.weights.mean() == pytest.approx(1.0)
    assert done.weights.max() <= 10.0 + 1e-9
    for r in done.rows:
        assert r["posterior_discs"] + r["posterior_squares"] == pytest.approx(1.0, abs=1e-6)
        assert r["flag"] == (r["loglik_squares"] > r["loglik_discs"])
        assert r["bits_per_dim"] == pytest.approx(
            -r["log_likelihood"] / (model.z_dim * np.log(2)), rel=1e-6
        )
    # flagged images get weight 0 (unless too many are flagged for the clip, see
    # test_too_many_flags_weight_every_image); the others follow the likelihood down. The
    # tiny model's flags themselves are close to chance: the audit benchmark
    # (tests/test_audit_benchmark.py) checks that real models flag mislabelled images.
    flags = np.array([r["flag"] for r in done.rows])
    assert done.weight_flagged == (flags.sum() * 1.0 > len(flags) * (1 - 1 / 10.0))
    zeroed = flags if not done.weight_flagged else np.zeros_like(flags)
    assert np.all(done.weights[zeroed] == 0)
    ll, w = done.log_likelihood[~zeroed], done.weights[~zeroed]
    assert np.all(w > 0)
    assert np.all(np.diff(w[np.argsort(ll)]) <= 1e-12)
    # the galleries hold the extremes
    assert done.least_typical[0].log_likelihood == pytest.approx(done.log_likelihood.min())
    assert done.most_typical[0].log_likelihood == pytest.approx(done.log_likelihood.max())
    assert [m.target for m in done.change_maps] == ["squares"]


@pytest.mark.parametrize("n_flagged", [0, 5, 17, 18, 20])
def test_too_many_flags_weight_every_image(n_flagged: int):
    # 20 images, clip 10: 2 unflagged images can carry the folder (mean 10 each), 1 cannot
    ll = np.linspace(-30.0, -10.0, 20)
    flags = np.zeros(20, dtype=bool)
    flags[:n_flagged] = True
    alpha, w, weighted_all = _fit_weights(ll, flags, 0.5, 10.0, 0.5, False)
    assert alpha == 0.5 and w.mean() == pytest.approx(1.0) and w.max() <= 10.0 + 1e-9
    assert weighted_all == (n_flagged > 18)
    if not weighted_all:
        assert np.all(w[flags] == 0) and np.all(w[~flags] > 0)
    else:
        assert np.all(w > 0)


def test_log_likelihoods_match_the_model(done: audit.Audit, model: Translator, mixed_folder: Path):
    row = next(r for r in done.rows if r["path"] == "disc_003.png")
    ll = model.log_likelihood(mixed_folder / "disc_003.png")
    assert row["loglik_discs"] == pytest.approx(float(ll[0, 0]), abs=1e-3)
    assert row["loglik_squares"] == pytest.approx(float(ll[0, 1]), abs=1e-3)


def test_write_produces_every_output_and_escapes(done: audit.Audit, tmp_path: Path):
    out = audit.write(done, tmp_path / "audit")
    for name in ("index.html", "audit.json", "weights.csv", "charts/loglik.png"):
        assert (out / name).is_file(), name
    with open(out / "weights.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == done.n
    assert {"path", "weight", "log_likelihood", "posterior_discs", "flag"} <= set(rows[0])
    assert np.mean([float(r["weight"]) for r in rows]) == pytest.approx(1.0, abs=1e-4)
    assert sum(int(r["flag"]) for r in rows) == done.n_flagged
    meta = json.loads((out / "audit.json").read_text())
    assert meta["format"] == "net2fair-audit" and meta["summary"]["n"] == done.n
    assert meta["alpha_rule"] == "auto" and 0 <= meta["alpha"] <= 1 and meta["clip"] == 10.0
    n_kept = done.n - done.n_flagged
    assert meta["summary"]["weights"]["effective_sample_size"] >= 0.5 * n_kept - 1e-6
    page = (out / "index.html").read_text()
    assert XSS_IMG not in page and "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in page
    assert "Where each dataset changes faces" in page
    # an existing folder that is not an audit is never replaced
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(audit.AuditWriteError, match="notes.txt"):
        audit.write(done, other)
    assert (other / "notes.txt").read_text() == "keep me"
    # an earlier audit is replaced
    audit.write(done, out)
    assert (out / "audit.json").is_file()


def test_flagged_images_can_be_weighted_too(model: Translator, mixed_folder: Path):
    a = audit.run(model, mixed_folder, domain="discs", alpha=0.2, weight_flagged=True)
    # some images must be flagged for the test to mean anything; how many is close to chance
    # on the tiny model (see test_run_measures_every_usable_image)
    assert a.weight_flagged and a.n_flagged >= 1
    assert a.weights.mean() == pytest.approx(1.0) and np.all(a.weights > 0)
    order = np.argsort(a.log_likelihood)
    assert np.all(np.diff(a.weights[order]) <= 1e-12)


def test_bad_arguments_fail_clearly(model: Translator, toy_folders):
    with pytest.raises(UnknownDomainError):
        audit.run(model, toy_folders["discs"], domain="nope")
    with pytest.raises(ValueError, match="clip"):
        audit.run(model, toy_folders["discs"], domain="discs", clip=0.5)
    with pytest.raises(ValueError, match="max_images"):
        audit.run(model, toy_folders["discs"], domain="discs", max_images=0)


@pytest.mark.slow
def test_audit_command_end_to_end(tiny_model, mixed_folder, tmp_path, cli):
    out = tmp_path / "a"
    proc = run_cli(
        "audit",
        str(tiny_model),
        str(mixed_folder),
        "--domain",
        "discs",
        "--to",
        "squares",
        "--alpha",
        "0.3",
        "--clip",
        "5",
        "--out",
        str(out),
        "--device",
        "cpu",
        "-q",
    )
    assert "audit of 29 image(s) written to" in proc.stdout
    assert "broken.png" in proc.stderr  # the bad file is named, then skipped
    assert "Traceback" not in proc.stderr
    with open(out / "weights.csv", newline="") as fh:
        w = [float(r["weight"]) for r in csv.DictReader(fh)]
    assert len(w) == 29 and max(w) <= 5 + 1e-6
    meta = json.loads((out / "audit.json").read_text())
    assert meta["alpha"] == 0.3 and meta["alpha_rule"] == "given" and meta["clip"] == 5.0
    assert meta["command"].startswith("net2fair audit")
    assert (out / "images" / "changes.png").is_file()
    # the refusals in-process (tests/conftest.py's cli), with a process' exit code and stderr
    bad = cli("audit", tiny_model, mixed_folder, "--domain", "cats", "--out", tmp_path / "b")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "cats" in bad.stderr
    bad = cli(
        "audit",
        tiny_model,
        mixed_folder,
        "--domain",
        "discs",
        "--clip",
        "0.5",
        "--out",
        tmp_path / "b",
    )
    assert bad.returncode == 2 and "--clip" in bad.stderr
