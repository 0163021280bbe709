"""Attribute estimators: shapes, storage, augmentation, and that a short training learns."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from net2fair.synth.estimators import (
    CATEGORICAL_ATTRIBUTES,
    CONTINUOUS_ATTRIBUTES,
    AttributeEstimator,
    EstimatorLoadError,
)
from net2fair.synth.priors import DOMAINS, PLANTED_ATTRIBUTES
from net2fair.synth.render import render_batch
from net2fair.synth.train_estimators import (
    augment,
    evaluate_estimators,
    gaussian_blur,
    metrics_table,
    train_estimators,
)


def _randomised(resolution: int = 32) -> AttributeEstimator:
    """An untrained estimator whose buffers are not at their defaults, so a round trip
    that forgot BatchNorm statistics or the target scaling would show."""
    torch.manual_seed(0)
    est = AttributeEstimator(resolution=resolution, widths=(8, 16, 16, 16), hidden=32)
    for m in est.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    est.set_target_stats(torch.randn(len(est.continuous)), torch.rand(len(est.continuous)) + 0.1)
    est.metrics = {"accuracy": {"domain": 0.5}}
    return est.eval()


@pytest.fixture(scope="module")
def trained() -> tuple[AttributeEstimator, dict]:
    # Tensors this small gain nothing from a second thread, and lose a lot when the cores
    # are busy with other work.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_tiny()
    finally:
        torch.set_num_threads(threads)


def _train_tiny() -> tuple[AttributeEstimator, dict]:
    torch.manual_seed(0)
    return train_estimators(
        resolution=32,
        n_train_per_domain=120,
        n_val_per_domain=40,
        steps=200,
        batch_size=32,
        widths=(16, 32, 32, 32),
        hidden=64,
        seed=0,
    )


def test_every_attribute_has_a_head():
    assert set(CATEGORICAL_ATTRIBUTES) == {*PLANTED_ATTRIBUTES, "mouth_open", "domain"}
    assert CATEGORICAL_ATTRIBUTES["domain"] == DOMAINS
    assert CONTINUOUS_ATTRIBUTES == ("x", "y", "size", "yaw", "roll")


@pytest.mark.parametrize("side", [32, 48, 64, 128])
def test_forward_and_predict_shapes(side):
    est = _randomised()
    x = torch.rand(3, 3, side, side) * 2 - 1
    out = est(x)
    assert set(out) == {*CATEGORICAL_ATTRIBUTES, "continuous"}
    for name, names in CATEGORICAL_ATTRIBUTES.items():
        assert out[name].shape == (3, len(names))
    assert out["continuous"].shape == (3, len(CONTINUOUS_ATTRIBUTES))

    pred = est.predict(x)
    assert set(pred) == {*CATEGORICAL_ATTRIBUTES, *CONTINUOUS_ATTRIBUTES}
    for name, names in CATEGORICAL_ATTRIBUTES.items():
        assert pred[name].shape == (3,) and pred[name].dtype == torch.int64
        assert 0 <= int(pred[name].min()) and int(pred[name].max()) < len(names)
    for name in CONTINUOUS_ATTRIBUTES:
        assert pred[name].shape == (3,) and pred[name].dtype == torch.float32

    proba = est.predict_proba(x)
    assert set(proba) == set(CATEGORICAL_ATTRIBUTES)
    for name, p in proba.items():
        torch.testing.assert_close(p.sum(dim=1), torch.ones(3))
        assert torch.equal(p.argmax(dim=1), pred[name])


def test_predict_accepts_uint8_pixels_and_single_images():
    est = _randomised()
    images, _ = render_batch("photo", 2, 32, seed=0)
    from_uint8 = est.predict(images)
    from_float = est.predict(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1)
    for name in from_uint8:
        torch.testing.assert_close(from_uint8[name], from_float[name])
    one = est.predict(images[0])
    assert one["domain"].shape == (1,)


def test_continuous_outputs_are_in_natural_units():
    est = _randomised()
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    raw = est(x)["continuous"]
    pred = est.predict(x)
    for i, name in enumerate(est.continuous):
        expected = raw[:, i] * est.cont_std[i] + est.cont_mean[i]
        torch.testing.assert_close(pred[name], expected)


def test_save_load_round_trip_is_identical(tmp_path):
    est = _randomised()
    folder = est.save(tmp_path / "estimators")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["estimators"]
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["resolution"] == 32 and cfg["format_version"] == 1
    assert cfg["categories"]["skin_tone"] == list(PLANTED_ATTRIBUTES["skin_tone"])
    assert cfg["metrics"] == {"accuracy": {"domain": 0.5}}

    loaded = AttributeEstimator.load(folder)
    assert not loaded.training
    assert loaded.metrics == est.metrics
    x = torch.rand(5, 3, 32, 32) * 2 - 1
    a, b = est.predict(x), loaded.predict(x)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    pa, pb = est.predict_proba(x), loaded.predict_proba(x)
    for name in pa:
        assert torch.equal(pa[name], pb[name]), name

    est.save(folder)  # overwriting leaves one folder and no temporaries
    assert sorted(p.name for p in tmp_path.iterdir()) == ["estimators"]


def test_saved_folder_is_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        folder = _randomised().save(tmp_path / "estimators")
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    for name in ("config.json", "model.safetensors"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o644


def _flip_a_byte(folder):
    path = folder / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))


def _drop_config(folder):
    (folder / "config.json").unlink()


def _break_json(folder):
    (folder / "config.json").write_text("{not json")


def _wrong_version(folder):
    cfg = json.loads((folder / "config.json").read_text())
    cfg["format_version"] = 99
    (folder / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_flip_a_byte, "checksum does not match"),
        (_drop_config, "missing config.json"),
        (_break_json, "unreadable config"),
        (_wrong_version, "format version 99"),
    ],
)
def test_broken_folders_are_one_line_errors(tmp_path, damage, message):
    folder = _randomised().save(tmp_path / "estimators")
    damage(folder)
    with pytest.raises(EstimatorLoadError, match=message) as err:
        AttributeEstimator.load(folder)
    assert "\n" not in str(err.value)
    assert str(folder) in str(err.value)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(EstimatorLoadError, match="no such folder"):
        AttributeEstimator.load(tmp_path / "nope")


def test_gaussian_blur_matches_a_convolution_and_keeps_sharp_images():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 16, 16)
    sigma = torch.tensor([0.0, 0.5, 1.0])
    y = gaussian_blur(x, sigma)
    torch.testing.assert_close(y[0], x[0])
    k = torch.exp(-0.5 * (torch.arange(-2, 3.0) / 1.0) ** 2)
    k = k / k.sum()
    ref = F.pad(x[2:], (2, 2, 2, 2), mode="reflect")
    ref = F.conv2d(ref, k.view(1, 1, 1, 5).repeat(3, 1, 1, 1), groups=3)
    ref = F.conv2d(ref, k.view(1, 1, 5, 1).repeat(3, 1, 1, 1), groups=3)
    torch.testing.assert_close(y[2:], ref)
    assert y[1].std() < x[1].std()


def test_augment_never_moves_colours_far():
    # A flat skin-coloured patch must stay within a few percent: the skin tone levels are
    # 6% or more apart, so a larger jitter would make labels ambiguous.
    g = torch.Generator().manual_seed(0)
    skin = torch.tensor([210, 158, 119]) / 127.5 - 1
    x = skin.view(1, 3, 1, 1).expand(256, 3, 32, 32).contiguous()
    y = augment(x, g)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    pixels = (y + 1) / 2
    rel = pixels.mean(dim=(2, 3)) / ((skin + 1) / 2)
    assert float((rel - 1).abs().max()) < 0.032
    assert float((rel - 1).abs().max()) > 0.005  # it does jitter


def test_short_training_learns_the_domain_and_beards(trained):
    est, metrics = trained
    # Chance is 1/3 for the domain and 1/2 for a beard (uniform priors); a broken loss,
    # label or augmentation leaves them there. (Thin glasses frames at 32 px take a
    # longer training than a test can afford.)
    assert metrics["accuracy"]["domain"] >= 0.85, metrics["accuracy"]
    assert metrics["accuracy"]["beard"] >= 0.75, metrics["accuracy"]
    assert metrics["n_val"] == 3 * 40 and metrics["steps"] == 200
    assert set(metrics["accuracy"]) == set(CATEGORICAL_ATTRIBUTES)
    assert set(metrics["rmse_over_std"]) == set(CONTINUOUS_ATTRIBUTES)
    assert set(metrics["blurred"]) == {"accuracy", "rmse_over_std"}
    assert est.metrics is metrics
    assert "| domain | accuracy |" in metrics_table(metrics)


def test_evaluate_estimators_reports_the_documented_keys(trained):
    est, _ = trained
    images, attrs = render_batch("anime", 12, 32, seed=1)
    named = [{**a, "glasses": PLANTED_ATTRIBUTES["glasses"][a["glasses"]]} for a in attrs]
    res = evaluate_estimators(est, images, named, domain="anime")
    assert set(res) == {
        "n",
        "accuracy",
        "rmse",
        "rmse_over_std",
        "accuracy_by_domain",
        "predictions",
    }
    assert res["n"] == 12
    assert set(res["accuracy"]) == set(CATEGORICAL_ATTRIBUTES)
    assert list(res["accuracy_by_domain"]) == ["anime"]
    acc = float(
        (res["predictions"]["glasses"] == torch.tensor([a["glasses"] for a in attrs]))
        .float()
        .mean()
    )
    assert res["accuracy"]["glasses"] == pytest.approx(acc)
    for name in CONTINUOUS_ATTRIBUTES:
        assert res["rmse_over_std"][name] == pytest.approx(
            res["rmse"][name] / float(est.cont_std[est.continuous.index(name)])
        )

    # Without domain labels the domain is not scored; float input in [-1, 1] works too.
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    res = evaluate_estimators(est, x, attrs)
    assert "domain" not in res["accuracy"] and "accuracy_by_domain" not in res
    with pytest.raises(ValueError, match="12 images"):
        evaluate_estimators(est, images, attrs[:5])


def test_evaluate_estimators_scores_perfect_labels_as_perfect():
    est = _randomised()
    images, attrs = render_batch("photo", 6, 32, seed=2)
    pred = est.predict(images)
    # Labels equal to the predictions: accuracy 1 and RMSE 0, whatever the weights.
    fake = [
        {k: (int(v[i]) if v.dtype == torch.int64 else float(v[i])) for k, v in pred.items()}
        for i in range(6)
    ]
    res = evaluate_estimators(est, images, fake)
    assert all(v == 1.0 for v in res["accuracy"].values())
    assert all(v == pytest.approx(0.0, abs=1e-6) for v in res["rmse"].values())
    assert np.isfinite(list(res["rmse_over_std"].values())).all()
