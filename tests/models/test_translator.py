"""The trained pair as users call it: project, sample, likelihoods, save and load."""

from __future__ import annotations

import shutil

import pytest
import torch
from PIL import Image

from net2fair import Translator
from net2fair.config import load_config
from net2fair.models.translator import ModelLoadError, UnknownDomainError


@pytest.fixture(scope="module")
def model() -> Translator:
    cfg = load_config(
        overrides=[
            "data.resolution=32",
            "autoencoder.z_dim=8",
            "autoencoder.channels=[8,16]",
            "autoencoder.res_blocks=0",
            "flow.n_flows=2",
            "flow.hidden_dim=16",
            "flow.hidden_depth=1",
        ]
    )
    cfg.model.domains = ["a", "b", "c"]
    cfg.model.priors = [0.5, 0.3, 0.2]
    torch.manual_seed(0)
    t = Translator(cfg)
    with torch.no_grad():  # non-trivial couplings and an initialised ActNorm
        for block in t.flow.sub_layers:
            for net in [*block.coupling.s, *block.coupling.t]:
                net.main[-2 if isinstance(net.main[-1], torch.nn.Tanh) else -1].weight.normal_(
                    0, 0.2
                )
        t.flow.train()
        t.flow(torch.randn(64, 8), torch.randint(0, 3, (64,)))
    return t.freeze()


def images(n: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 32, 32, generator=g) * 2 - 1


def test_project_to_own_dataset_reconstructs(model):
    x = images()
    out = model.project(x, source="a", targets=["a"])
    assert torch.allclose(out["a"], model.decode(model.encode(x)), atol=1e-4)


def test_batched_projection_equals_one_target_at_a_time(model):
    x = images()
    batched = model.project(x, source="a", targets="all")
    assert list(batched) == ["a", "b", "c"]
    for name in ("b", "c"):
        single = model.project(x, source="a", targets=name)[name]
        assert torch.allclose(batched[name], single, atol=1e-5)


def test_alpha_interpolates_latents(model):
    x = images()
    z = model.encode(x)
    zb = model.project_latents(z, "a", ["b"], alpha=1.0)["b"]
    half = model.project_latents(z, "a", ["b"], alpha=0.5)["b"]
    assert torch.allclose(half, 0.5 * z + 0.5 * zb, atol=1e-5)
    assert torch.allclose(model.project_latents(z, "a", ["b"], alpha=0.0)["b"], z, atol=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        model.project(x, "a", "b", alpha=1.5)


def test_accepts_pil_paths_and_other_sizes(model, tmp_path):
    pil = Image.new("RGB", (80, 50), (200, 120, 90))
    pil.save(tmp_path / "f.png")
    a = model.encode(pil)
    b = model.encode(tmp_path / "f.png")
    c = model.encode([pil, pil])
    assert a.shape == (1, 8) and torch.allclose(a, b) and c.shape == (2, 8)


def test_posterior_normalises_and_follows_bayes(model):
    x = images(4)
    ll = model.log_likelihood(x)
    post = model.posterior(x)
    assert post.shape == (4, 3)
    assert torch.allclose(post.sum(1), torch.ones(4), atol=1e-6)
    manual = torch.softmax(ll + torch.tensor([0.5, 0.3, 0.2]).log(), dim=1)
    assert torch.allclose(post, manual, atol=1e-6)
    assert torch.allclose(model.log_likelihood(x, domain="b"), ll[:, 1])


def test_samples_share_the_residual_and_are_seeded(model):
    s1 = model.sample_shared("all", n=2, seed=5)
    s2 = model.sample_shared("all", n=2, seed=5)
    assert torch.equal(s1["a"], s2["a"]) and not torch.equal(s1["a"], s1["b"])
    zs = model.sample_latents("all", n=2, seed=5)
    va, _ = model.flow(zs["a"], torch.zeros(2, dtype=torch.long))
    vb, _ = model.flow(zs["b"], torch.ones(2, dtype=torch.long))
    assert torch.allclose(va, vb, atol=1e-4)
    assert model.sample("c", n=3, seed=0).shape == (3, 3, 32, 32)


def test_unknown_domain_lists_the_known_ones(model):
    with pytest.raises(UnknownDomainError, match="this model knows: a, b, c"):
        model.project(images(), source="zzz")


def test_save_load_round_trip_is_identical(model, tmp_path):
    folder = model.save(tmp_path / "m", metrics={"x": 1})
    loaded = Translator.load(folder)
    # load() switches the autoencoder to channels_last (faster on CPU); same layout here so
    # that the comparison is exact
    model.autoencoder.to(memory_format=torch.channels_last)
    x = images()
    for name in ("a", "b", "c"):
        assert torch.equal(model.project(x, "a", name)[name], loaded.project(x, "a", name)[name])
    assert loaded.domains == ["a", "b", "c"]
    # saving over an existing folder replaces it and leaves no temporary folders behind
    model.save(tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_fp16_storage_halves_the_file_and_loads_as_float32(model, tmp_path):
    full = model.save(tmp_path / "f32")
    half = model.save(tmp_path / "f16", dtype=torch.float16)
    s32 = (full / "model.safetensors").stat().st_size
    s16 = (half / "model.safetensors").stat().st_size
    assert s16 < 0.75 * s32
    loaded = Translator.load(half)
    assert loaded.autoencoder.decoder.conv_out.weight.dtype == torch.float32


@pytest.mark.parametrize("damage", ["missing", "truncated", "tampered", "mismatch", "newer"])
def test_broken_model_folders_are_clear_errors(model, tmp_path, damage):
    folder = model.save(tmp_path / "m")
    weights = folder / "model.safetensors"
    if damage == "missing":
        weights.unlink()
        match = "missing model.safetensors"
    elif damage == "truncated":
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2])
        match = "checksum does not match"
    elif damage == "tampered":
        data = bytearray(weights.read_bytes())
        data[-10] ^= 0xFF
        weights.write_bytes(bytes(data))
        match = "checksum does not match"
    elif damage == "mismatch":
        text = (folder / "config.yaml").read_text().replace("z_dim: 8", "z_dim: 10")
        (folder / "config.yaml").write_text(
            text.replace("weights_sha256:", "weights_sha256: ''\n  old_sha:")
        )
        match = None
    else:
        text = (
            (folder / "config.yaml").read_text().replace("format_version: 1", "format_version: 7")
        )
        (folder / "config.yaml").write_text(text)
        match = "newer than this net2fair"
    with pytest.raises(ModelLoadError) as err:
        Translator.load(folder)
    if match:
        assert match in str(err.value)
    assert str(folder) in str(err.value)
    shutil.rmtree(folder)


def test_truncated_weights_without_checksum(model, tmp_path):
    folder = model.save(tmp_path / "m")
    cfg = (folder / "config.yaml").read_text()
    import re

    (folder / "config.yaml").write_text(re.sub(r"weights_sha256: \S+", "weights_sha256: ''", cfg))
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="unreadable weights"):
        Translator.load(folder)
