"""Building and writing a report end to end on the tiny trained model."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from net2fair import report
from net2fair.models.translator import Translator, UnknownDomainError
from net2fair.report import html as report_html
from net2fair.report.build import GALLERY_SIZE, GRID_ROWS, resolve_layout

XSS_DIR = "<script>alert(1)<"
XSS_FILE = "script>.png"
XSS_IMG = "<img src=x onerror=alert(1)>.png"


@pytest.fixture(scope="module")
def model(tiny_model: Path) -> Translator:
    return Translator.load(tiny_model)


@pytest.fixture(scope="module")
def built(tiny_model: Path, toy_folders: dict[str, Path]) -> report.Report:
    # change="auto": LPIPS when its weights load, the default path users get
    return report.build(
        tiny_model,
        toy_folders["discs"],
        source="discs",
        batch_size=7,
        command="net2fair report tiny discs --from discs",
    )


def test_build_measures_every_image_in_every_target(built: report.Report):
    n = 24
    assert built.n == n and built.data["n_skipped"] == 0
    assert built.targets == ["discs", "squares"] and built.source == "discs"
    assert built.layout == "ffhq"  # toy dataset names are not the benchmark's
    assert len(built.rows) == n * 2
    assert {r["target"] for r in built.rows} == {"discs", "squares"}
    # batches of 7: every image keeps its own index, once per target
    assert sorted(r["index"] for r in built.rows) == sorted(list(range(n)) * 2)
    assert built.change_measure in ("lpips", "l1")
    assert built.change_measures[-2:] == ["l1", "ssim"]
    for t in built.per_target:
        assert t.n == n
        assert t.is_source == (t.target == "discs")
        ita = t.shift("ita")
        assert ita.n == n and ita.low <= ita.shift <= ita.high
        assert ita.sentence.startswith(f"Projected into {t.target}, skin tone")
        assert sum(t.ita_bands_before.values()) == n
        assert sum(t.posterior_after.values()) == pytest.approx(1.0, abs=1e-4)
        assert 0 < len(t.most_changed) <= GALLERY_SIZE
        changes = [g.change for g in t.most_changed]
        assert changes == sorted(changes, reverse=True)
        assert min(changes) >= max(g.change for g in t.least_changed)
        assert t.frechet is not None and t.frechet >= 0  # training stores the statistics
    assert len(built.grid_inputs) == min(GRID_ROWS, n)
    assert all(len(v) == len(built.grid_inputs) for v in built.grid_projections.values())


def test_projection_into_the_source_is_the_reconstruction(built: report.Report, model: Translator):
    x = model.prepare(built.grid_inputs[0])
    recon = model.decode(model.encode(x))
    expected = ((recon[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    got = built.grid_projections["discs"][0].astype(int)
    # the flow's forward and inverse pass cancel up to float round-off
    assert np.abs(got - expected.astype(int)).max() <= 1
    row = next(r for r in built.rows if r["target"] == "discs")
    assert 0.0 < row["change_l1"] < 1.0 and -1.0 <= row["change_ssim"] <= 1.0


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
    with caplog.at_level(logging.WARNING, logger="net2fair.report.build"):
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


def test_bad_arguments_fail_clearly(
    model: Translator, toy_folders: dict[str, Path], tmp_path: Path
):
    with pytest.raises(UnknownDomainError, match="discs"):
        report.build(model, toy_folders["discs"], source="faces", change="l1")
    with pytest.raises(UnknownDomainError):
        report.build(model, toy_folders["discs"], source="discs", targets=["nope"], change="l1")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "bad.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="no usable image"):
        report.build(model, empty, source="discs", change="l1")
    with pytest.raises(FileNotFoundError):
        report.build(model, tmp_path / "missing", source="discs", change="l1")


def test_max_images_sample_is_seeded_and_json_is_deterministic(
    model: Translator, toy_folders: dict[str, Path]
):
    kw = dict(source="discs", targets=["squares"], max_images=5, change="l1", batch_size=2)
    a = report.build(model, toy_folders["discs"], seed=3, **kw)
    b = report.build(model, toy_folders["discs"], seed=3, **kw)
    c = report.build(model, toy_folders["discs"], seed=4, **kw)
    assert a.n == 5 and a.targets == ["squares"] and len(a.rows) == 5
    assert a.data["sampled"]
    da, db = a.to_dict(), b.to_dict()
    da.pop("created")
    db.pop("created")
    assert da == db
    assert [r["file"] for r in a.rows] != [r["file"] for r in c.rows]
    json.dumps(da, allow_nan=False)


def test_layout_auto_follows_the_dataset_names():
    assert resolve_layout("auto", ["photo", "anime"]) == "synthetic"
    assert resolve_layout("auto", ["photo", "faces"]) == "ffhq"
    assert resolve_layout("ffhq", ["photo", "anime"]) == "ffhq"
    with pytest.raises(ValueError, match="layout"):
        resolve_layout("celeba", ["photo"])


def test_estimated_attributes_are_summarised(model: Translator, toy_folders: dict[str, Path]):
    class FakeEstimator:
        """Says 'yes' for glasses on every projection and 'no' on every input."""

        categories = {"glasses": ["no", "yes"]}

        def predict(self, pixels: np.ndarray) -> dict:
            import torch

            # inputs are the toy discs (dark blue background), projections are not exact
            exact = np.isin(pixels[:, 0, 0, 2], [60])
            return {"glasses": torch.tensor(np.where(exact, 0, 1)), "yaw": torch.zeros(len(pixels))}

    rep = report.build(
        model,
        toy_folders["discs"],
        source="discs",
        targets=["squares"],
        change="l1",
        estimators=FakeEstimator(),
    )
    t = rep.target("squares")
    assert rep.attributes_estimated
    [glasses] = t.attributes
    assert glasses.categories == ["no", "yes"]
    assert glasses.before == [1.0, 0.0]
    assert sum(glasses.after) == pytest.approx(1.0)
    yaw = t.shift("est_yaw")
    assert "no clear change" in yaw.sentence and yaw.n == 24
    assert any(r.get("in_est_glasses") == "no" for r in rep.rows)


def test_the_report_states_the_autoencoders_own_error(built: report.Report, tmp_path: Path):
    """Issue 17: readers must tell the model's damage from a dataset's bias."""
    r = built.reconstruction
    assert r["dataset"] == "discs" and r["n"] == built.n
    assert 0 < r["psnr"] < 60 and 0 <= r["colour_noise_ratio"] < 100
    assert built.sentences()[0].startswith("The autoencoder alone")
    out = report.write(built, tmp_path / "rep")
    saved = json.loads((out / "report.json").read_text())
    assert saved["reconstruction"]["psnr"] == pytest.approx(r["psnr"])
    assert "The autoencoder alone" in (out / "index.html").read_text()


def test_the_reconstruction_sentence_names_speckle_only_above_the_threshold():
    from net2fair.report.build import reconstruction_sentence

    base = {"dataset": "photo", "n": 10, "psnr": 25.0}
    assert "adds colour speckle" in reconstruction_sentence({**base, "colour_noise_ratio": 2.5})
    assert "adds no colour speckle" in reconstruction_sentence({**base, "colour_noise_ratio": 0.9})
