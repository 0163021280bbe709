"""Building a report on the tiny trained model: rows, projections, bad arguments,
sampling."""

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
