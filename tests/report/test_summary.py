"""The summaries of a report on the tiny trained model (net2fair/report/summary.py):
estimated attributes, the autoencoder's own error, the latent Frechet distance's note."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from net2fair import report
from net2fair.models.translator import Translator


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
