"""Building a report on the tiny trained model: rows, summaries, sampling, estimators."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from net2fair import report
from net2fair.models.translator import Translator, UnknownDomainError
from net2fair.report.build import GALLERY_SIZE, GRID_ROWS


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


def test_a_model_without_latent_statistics_says_how_to_get_them(
    tiny_model: Path, toy_folders: dict[str, Path]
):
    # what an imported net2net model looks like until --stats is given
    t = Translator.load(tiny_model)
    t.stats_count.zero_()
    r = report.build(t, toy_folders["discs"], source="discs", change="l1", max_images=8)
    for pt in r.per_target:
        assert pt.frechet is None
        assert "no latent statistics" in pt.frechet_note
        assert f"--stats {pt.target}=FOLDER" in pt.frechet_note
