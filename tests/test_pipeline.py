"""A folder of images through a model: planning, streaming, skipping, scoring, galleries."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from net2fair import pipeline
from net2fair.models.translator import Translator


def _folder(root: Path, n: int = 7, size: int = 20) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        pixels = rng.integers(0, 256, size=(size, size + 4, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"img_{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def demo() -> Translator:
    return Translator.load("demo")


# ---------------------------------------------------------------------------- planning


def test_plan_lists_a_folder_in_order_and_records_listing_problems(tmp_path: Path):
    root = _folder(tmp_path / "in")
    (root / "sub").mkdir()
    Image.new("RGB", (8, 8)).save(root / "sub" / "deep.png")
    (root / "dir.jpg").mkdir()  # a folder named like an image: scanned, not skipped
    Image.new("RGB", (8, 8)).save(root / "dir.jpg" / "inner.png")
    (root / ".hidden.png").write_bytes(b"x")
    plan = pipeline.plan_inputs(root)
    images = [f"img_{i:02d}.png" for i in range(7)]
    assert plan.names == ["dir.jpg/inner.png", *images, "sub/deep.png"]  # by relative path
    assert plan.order == list(range(9)) and plan.wanted == 9 and not plan.sampled
    assert plan.root == root and plan.described == str(root)
    assert [s["reason"] for s in plan.skipped] == ["hidden file"]
    assert plan.scanned == [root / "dir.jpg"]


def test_plan_of_one_file_and_of_a_list(tmp_path: Path):
    root = _folder(tmp_path / "in", n=3)
    one = pipeline.plan_inputs(root / "img_01.png")
    assert one.names == ["img_01.png"] and one.root == root
    files = [root / "img_02.png", root / "img_00.png"]
    listed = pipeline.plan_inputs(files)
    assert listed.paths == files and listed.described == "2 files" and listed.root is None
    with pytest.raises(FileNotFoundError):
        pipeline.plan_inputs(tmp_path / "missing")


def test_a_sample_is_seeded_and_folder_order_sorts_it(tmp_path: Path):
    root = _folder(tmp_path / "in", n=7)
    a = pipeline.plan_inputs(root, max_images=3, seed=1)
    b = pipeline.plan_inputs(root, max_images=3, seed=1)
    c = pipeline.plan_inputs(root, max_images=3, seed=1, folder_order=True)
    assert a.sampled and a.wanted == 3 and a.order == b.order
    assert sorted(a.order) == c.order and len(a.order) == 7  # the rest replace bad files
    assert not pipeline.plan_inputs(root, max_images=7).sampled


# --------------------------------------------------------------------------- streaming


def test_batches_skip_bad_files_and_stop_at_the_wanted_number(tmp_path: Path, caplog):
    root = _folder(tmp_path / "in", n=6)
    (root / "img_01.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "img_03.png").write_bytes(b"")
    plan = pipeline.plan_inputs(root, max_images=3, seed=0, folder_order=True)
    plan.order = list(range(6))  # every file, in folder order
    seen: list[int] = []
    with caplog.at_level(logging.WARNING, logger="net2fair.pipeline"):
        batches = list(pipeline.iter_batches(plan, 16, batch_size=2, progress=seen.append))
    assert [b.names for b in batches] == [["img_00.png", "img_02.png"], ["img_04.png"]]
    assert plan.used == 3 and seen == [2, 1]
    assert [s["file"].rsplit("/", 1)[-1] for s in plan.skipped] == ["img_01.png", "img_03.png"]
    assert sum("skipped" in r.getMessage() for r in caplog.records) == 2
    b = batches[0]
    assert b.pixels.shape == (2, 16, 16, 3) and b.pixels.dtype == np.uint8 and len(b) == 2
    x = b.tensor()
    assert x.shape == (2, 3, 16, 16) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    data = plan.data(3)
    assert data["n_used"] == 3 and data["n_skipped"] == 2 and data["max_images"] == 3


def test_an_empty_plan_explains_itself(tmp_path: Path):
    root = tmp_path / "in"
    root.mkdir()
    (root / "bad.png").write_bytes(b"")
    plan = pipeline.plan_inputs(root)
    assert list(pipeline.iter_batches(plan, 16, 4)) == []
    with pytest.raises(ValueError, match=r"no usable image in .* \(1 image files found, 1 skip"):
        raise plan.no_usable_image()
    with pytest.raises(ValueError, match="batch_size"):
        next(pipeline.iter_batches(plan, 16, 0))


def test_draft_decoding_only_changes_large_jpegs(tmp_path: Path):
    rng = np.random.default_rng(1)
    big = rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=90)
    Image.fromarray(big).save(tmp_path / "big.png")
    for name, same in (("big.png", True), ("big.jpg", False)):
        fast = next(pipeline.iter_batches(pipeline.plan_inputs(tmp_path / name), 32, 1))
        again = pipeline.plan_inputs(tmp_path / name)
        full = next(pipeline.iter_batches(again, 32, 1, draft=False))
        assert np.array_equal(fast.pixels, full.pixels) == same
        assert np.abs(fast.pixels.astype(int) - full.pixels).mean() < 8  # close either way


# ----------------------------------------------------------------------------- scoring


def test_one_flow_pass_gives_the_same_likelihoods_and_posteriors(demo: Translator):
    """Issue 19: the report and the viewer no longer run the flow twice; the numbers are
    those of the two separate passes, bit for bit."""
    x = torch.rand(5, 3, demo.resolution, demo.resolution) * 2 - 1
    enc = pipeline.encode(demo, x)
    z = demo.encode(x)
    assert torch.equal(enc.z, z)
    assert torch.equal(enc.log_likelihood, demo.latent_log_likelihood(z))
    assert torch.equal(enc.posterior, demo.latent_posterior(z))
    assert torch.equal(enc.bits_per_dim, demo.bits_per_dim(demo.latent_log_likelihood(z)))
    assert torch.allclose(enc.posterior.sum(1), torch.ones(5))
    # in double precision on the CPU, as the audit takes it
    ll64 = enc.log_likelihood.double().cpu()
    expected = torch.softmax(ll64 + demo.priors.double().cpu().log(), dim=1)
    assert torch.equal(demo.posterior_from_log_likelihood(ll64), expected)


def test_open_model_takes_an_object_or_a_name(demo: Translator):
    assert pipeline.open_model(demo) == (demo, None)
    t, folder = pipeline.open_model("demo")
    assert folder is not None and Path(folder, "model.safetensors").is_file()
    info = pipeline.model_provenance(t, folder)
    assert info["domains"] == t.domains and info["z_dim"] == t.z_dim and info["path"] == folder
    assert set(pipeline.versions()) == {"net2fair", "torch", "numpy", "python"}


# ------------------------------------------------------------------- layout, estimators


def test_layout_auto_follows_the_dataset_names():
    assert pipeline.resolve_layout("auto", ["photo", "anime"]) == "synthetic"
    assert pipeline.resolve_layout("auto", ["photo", "faces"]) == "ffhq"
    assert pipeline.resolve_layout("ffhq", ["photo", "anime"]) == "ffhq"
    with pytest.raises(ValueError, match="layout"):
        pipeline.resolve_layout("celeba", ["photo"])


def test_estimates_name_their_categories():
    class Est:
        categories = {"glasses": ("no", "yes")}

        def predict(self, pixels: np.ndarray) -> dict:
            return {"glasses": torch.tensor([1, 0]), "yaw": np.array([0.5, -0.5])}

    out = pipeline.estimate(Est(), np.zeros((2, 4, 4, 3), np.uint8))
    assert out["glasses"][1] == ["no", "yes"] and out["glasses"][0].tolist() == [1, 0]
    assert out["yaw"][1] is None and out["yaw"][0].tolist() == [0.5, -0.5]
    assert pipeline.estimator_categories(None) == {}
    assert pipeline.resolve_estimators(None, "synthetic", torch.device("cpu")) is None
    assert pipeline.resolve_estimators("auto", "ffhq", torch.device("cpu")) is None
    with pytest.raises(ValueError, match="estimators"):
        pipeline.resolve_estimators("shipped", "ffhq", torch.device("cpu"))


# ---------------------------------------------------------------------------- galleries


@pytest.mark.parametrize("largest", [True, False])
def test_a_gallery_keeps_the_k_extremes_and_makes_only_what_it_keeps(largest: bool):
    made: list[float] = []
    gal = pipeline.Gallery[float](3, largest=largest)
    values = [5.0, 1.0, float("nan"), 9.0, 3.0, 9.0, 7.0, 0.0]
    for v in values:
        gal.offer(v, lambda v=v: made.append(v) or v)
    finite = [v for v in values if v == v]
    assert gal.items() == sorted(finite, reverse=largest)[:3]
    assert float("nan") not in made and len(made) < len(values)


def test_among_equal_values_the_earlier_item_wins():
    gal = pipeline.Gallery[str](1, largest=True)
    gal.offer(1.0, lambda: "first")
    gal.offer(1.0, lambda: "second")
    assert gal.items() == ["first"]
