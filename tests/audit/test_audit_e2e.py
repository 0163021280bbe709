"""The audit end to end: API and command on the tiny model, outputs, escaping, flags."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from net2fair import audit
from net2fair.models.translator import Translator, UnknownDomainError
from net2fair.report.changes import ChangeAccumulator, write_change_figure
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
    # the moved squares are flagged and get weight 0; the others follow the likelihood down
    flags = np.array([r["flag"] for r in done.rows])
    moved = np.array([r["path"].startswith("moved_") for r in done.rows])
    assert flags[moved].any()  # the tiny model spots some of the moved squares
    assert np.all(done.weights[flags] == 0)
    ll, w = done.log_likelihood[~flags], done.weights[~flags]
    assert np.all(w > 0)
    assert np.all(np.diff(w[np.argsort(ll)]) <= 1e-12)
    # the galleries hold the extremes
    assert done.least_typical[0].log_likelihood == pytest.approx(done.log_likelihood.min())
    assert done.most_typical[0].log_likelihood == pytest.approx(done.log_likelihood.max())
    assert [m.target for m in done.change_maps] == ["squares"]


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
    assert a.weight_flagged and a.n_flagged >= 4
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


def test_projection_onto_its_own_dataset_changes_nothing():
    from net2fair.data.synthetic import render_batch

    t = Translator.load("demo")
    images, _ = render_batch("photo", 6, t.resolution, seed=123_457)
    z = t.encode(images)
    recon = t.decode(z)
    own = t.decode(t.project_latents(z, "photo", ["photo"])["photo"])
    other = t.decode(t.project_latents(z, "photo", ["anime"])["anime"])
    same = ChangeAccumulator("photo", "photo", "synthetic")
    same.update(recon, own)
    moved = ChangeAccumulator("photo", "anime", "synthetic")
    moved.update(recon, other)
    m_same, m_moved = same.result(), moved.result()
    assert m_same.mean_abs.max() < 2e-3
    assert np.abs(m_same.mean_dlab).max() < 0.5
    assert m_moved.mean_abs.mean() > 0.05  # anime really changes these faces
    assert m_moved.mean_abs.mean() > 100 * m_same.mean_abs.mean()


def test_change_maps_average_exactly(tmp_path: Path):
    a = torch.zeros(2, 3, 8, 8)
    b = torch.zeros(2, 3, 8, 8)
    b[0, :, :4] = 1.0  # first image: the top half turns from grey to white
    acc = ChangeAccumulator("x", "y", "ffhq")
    acc.update(a, b)
    m = acc.result()
    assert m.n == 2
    assert np.allclose(m.mean_abs[:4], 0.25)
    assert m.mean_abs[4:].max() == 0.0
    assert m.mean_dlab[:4, :, 0].min() > 10  # lighter where it changed
    assert m.mean_source.max() == 128 and m.mean_target[:4].min() == 191
    assert write_change_figure([m], tmp_path / "c.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="shapes differ"):
        acc.update(a, b[:1])


@pytest.mark.slow
def test_audit_command_end_to_end(tiny_model, mixed_folder, tmp_path):
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
    bad = run_cli(
        "audit",
        str(tiny_model),
        str(mixed_folder),
        "--domain",
        "cats",
        "--out",
        str(tmp_path / "b"),
        check=False,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "cats" in bad.stderr
    bad = run_cli(
        "audit",
        str(tiny_model),
        str(mixed_folder),
        "--domain",
        "discs",
        "--clip",
        "0.5",
        "--out",
        str(tmp_path / "b"),
        check=False,
    )
    assert bad.returncode == 2 and "--clip" in bad.stderr
