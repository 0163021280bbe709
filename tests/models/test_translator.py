"""The trained pair as users call it: project, sample, likelihoods, save and load."""

from __future__ import annotations

import math
import re
import shutil
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from net2fair import Translator
from net2fair.config import ConfigError, config_from_yaml_text, load_config
from net2fair.fileio import sha256_file
from net2fair.models.translator import (
    ModelLoadError,
    UnknownDomainError,
    resolve_model_path,
    shipped_models,
)


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
    elif damage == "mismatch":  # config.yaml is outside the checksum: the header catches it
        text = (folder / "config.yaml").read_text().replace("z_dim: 8", "z_dim: 10")
        (folder / "config.yaml").write_text(text)
        match = "has shape (3, 8), config.yaml implies (3, 10)"
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


def test_a_missing_checksum_line_is_refused(model, tmp_path):
    folder = model.save(tmp_path / "m")
    cfg = (folder / "config.yaml").read_text()
    for text in (
        re.sub(r"weights_sha256: \S+", "weights_sha256: ''", cfg),
        re.sub(r"\n  weights_sha256: \S+", "", cfg),
    ):
        assert text != cfg
        (folder / "config.yaml").write_text(text)
        with pytest.raises(ModelLoadError) as err:
            Translator.load(folder)
        assert str(err.value).startswith(str(folder / "config.yaml"))
        assert "checksum line (model.weights_sha256) is missing" in str(err.value)


def set_checksum(folder: Path) -> None:
    """Rewrite config.yaml's checksum to the weights' (damage behind the checksum's back)."""
    cfg = (folder / "config.yaml").read_text()
    sha = sha256_file(folder / "model.safetensors")
    (folder / "config.yaml").write_text(
        re.sub(r"weights_sha256: \S+", f"weights_sha256: {sha}", cfg)
    )


def test_unreadable_weights_with_a_matching_checksum(model, tmp_path):
    folder = model.save(tmp_path / "m")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    set_checksum(folder)
    with pytest.raises(ModelLoadError, match="unreadable weights") as err:
        Translator.load(folder)
    assert len(str(err.value).splitlines()) == 1


def rewrite_weights(folder: Path, change) -> None:
    state = load_file(str(folder / "model.safetensors"))
    change(state)
    save_file(state, str(folder / "model.safetensors"))
    set_checksum(folder)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.pop("stats_mean"), "missing 1 e.g. ['stats_mean'], unexpected 0"),
        (
            lambda s: s.update(extra=torch.zeros(2)),
            "missing 0 e.g. [], unexpected 1 e.g. ['extra']",
        ),
        (lambda s: s.update(stats_count=torch.zeros(4)), "'stats_count' has shape (4,)"),
        (
            lambda s: s.update(stats_count=torch.zeros(3, dtype=torch.int64)),
            "'stats_count' is stored as I64",
        ),
        (
            lambda s: s["flow.sub_layers.0.coupling.s.0.main.0.weight"].fill_(math.nan),
            "'flow.sub_layers.0.coupling.s.0.main.0.weight' holds NaN or infinite values",
        ),
        (
            lambda s: s["flow.sub_layers.1.shuffle.forward_shuffle_idx"].fill_(99),
            "'flow.sub_layers.1.shuffle.forward_shuffle_idx' is not a permutation",
        ),
    ],
    ids=["missing", "unexpected", "shape", "dtype", "nan", "permutation"],
)
def test_weights_are_checked_against_the_config(model, tmp_path, change, message):
    folder = model.save(tmp_path / "m")
    rewrite_weights(folder, change)
    with pytest.raises(ModelLoadError) as err:
        Translator.load(folder)
    assert str(err.value).startswith(str(folder / "model.safetensors"))
    assert message in str(err.value) and len(str(err.value).splitlines()) == 1


def edit_config(folder: Path, old: str, new: str) -> None:
    text = (folder / "config.yaml").read_text()
    assert old in text, old
    (folder / "config.yaml").write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("  - a\n", "  - ../../x\n", "model.domains: dataset name '../../x' is not usable"),
        ("  - a\n", "  - /abs\n", "model.domains: dataset name '/abs' is not usable"),
        ("  - a\n", "  - b\n", "model.domains: dataset name 'b' is given twice"),
        ("  - a\n", "  - ALL\n", "dataset name 'ALL' is reserved"),
        ("  - 0.2\n", "", "model.priors must be empty or hold one weight per dataset"),
        ("z_dim: 8", "z_dim: 4000000", "autoencoder.z_dim must be in [2, 1024], got 4000000"),
        ("n_flows: 2", "n_flows: 100000", "flow.n_flows must be in [1, 64], got 100000"),
        ("n_flows: 2", "n_flows: ${nope}", "interpolation is not allowed in a model's config.yaml"),
        ("name: net2fair", "name: ${oc.env:HOME}", "'name' holds '${oc.env:HOME}'"),
        ("name: net2fair", "name: ${oc.env:N2F_UNSET}", "interpolation is not allowed"),
    ],
)
def test_hostile_model_configs_fail_fast_with_one_line(model, tmp_path, old, new, message):
    folder = model.save(tmp_path / "m")
    edit_config(folder, old, new)
    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as err:
        Translator.load(folder)
    assert time.perf_counter() - start < 1.0
    msg = str(err.value)
    assert msg.startswith(str(folder / "config.yaml")) and message in msg
    assert len(msg.splitlines()) == 1


def test_huge_but_bounded_config_is_refused_by_the_header_without_allocating(model, tmp_path):
    # 64 flows of width 8192: ~50 G parameters (200 GB) if they were allocated
    folder = model.save(tmp_path / "m")
    edit_config(folder, "n_flows: 2", "n_flows: 64")
    edit_config(folder, "hidden_dim: 16", "hidden_dim: 8192")
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="weights do not match config.yaml"):
        Translator.load(folder)
    assert time.perf_counter() - start < 10.0


def test_expected_shapes_come_from_a_meta_model_equal_to_the_real_one(model):
    from net2fair.models.translator import _expected_tensors

    rng = torch.random.get_rng_state()
    expected = _expected_tensors(Translator, model.cfg, Path("c"))
    assert torch.equal(rng, torch.random.get_rng_state())
    own = model.state_dict()
    assert list(expected) == list(own)
    assert all(expected[k] == (tuple(v.shape), v.dtype) for k, v in own.items())


@pytest.mark.parametrize("name", shipped_models())
def test_shipped_models_carry_a_checksum(name):
    text = (resolve_model_path(name) / "config.yaml").read_text()
    assert re.search(r"\n  weights_sha256: [0-9a-f]{64}\n", text)


def test_the_shipped_demo_loads_with_identical_outputs():
    loaded = Translator.load("demo")
    folder = resolve_model_path("demo")
    cfg = config_from_yaml_text((folder / "config.yaml").read_text(), "demo")
    plain = Translator(cfg)
    plain.load_state_dict(load_file(str(folder / "model.safetensors")))
    plain.freeze().autoencoder.to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    a, b = loaded.project(x, "photo"), plain.project(x, "photo")
    assert list(a) == ["photo", "portrait", "anime"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(loaded.sample("anime", n=2, seed=1), plain.sample("anime", n=2, seed=1))


def test_save_refuses_a_config_that_load_would_refuse(model, tmp_path):
    good = list(model.cfg.model.domains)
    model.cfg.model.domains = ["a", "..", "c"]
    try:
        with pytest.raises(ConfigError, match="dataset name '..' is not usable"):
            model.save(tmp_path / "m")
    finally:
        model.cfg.model.domains = good
    assert not (tmp_path / "m").exists()
