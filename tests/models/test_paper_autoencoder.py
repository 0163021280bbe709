"""The paper's ResNet + BigGAN autoencoder (autoencoder.arch: net2net)."""

from __future__ import annotations

import pytest
import torch

from net2fair.config import ConfigError, config_from_yaml_text, load_config
from net2fair.models.autoencoder import Autoencoder
from net2fair.models.paper_autoencoder import ActNorm2d, PaperAutoencoder
from net2fair.models.translator import build_autoencoder

SMALL = [
    "autoencoder.arch=net2net",
    "autoencoder.z_dim=128",
    "autoencoder.resnet=resnet18",
    "autoencoder.biggan_chn=4",
]


@pytest.mark.parametrize("resolution", [128, 256])
def test_shapes_and_posterior(resolution: int) -> None:
    torch.manual_seed(0)
    ae = PaperAutoencoder(resolution=resolution, z_dim=128, resnet="resnet18", chn=4).eval()
    x = torch.rand(2, 3, resolution, resolution) * 2 - 1
    with torch.no_grad():
        q = ae.encode(x)
        y = ae.decode(q.mean)
    assert q.mean.shape == (2, 128) and q.logvar.max() <= 10.0
    assert y.shape == (2, 3, resolution, resolution) and y.abs().max() < 1
    with pytest.raises(ValueError, match="expects"):
        ae.encode(torch.zeros(1, 3, 64, 64))


def test_actnorm_initialises_from_the_first_training_batch() -> None:
    norm = ActNorm2d(3)
    x = torch.randn(4, 3, 5, 5) * 3 + 2
    y = norm(x).detach()
    assert bool(norm.initialized) and abs(float(y.mean())) < 1e-5
    assert torch.allclose(y.transpose(0, 1).reshape(3, -1).std(1), torch.ones(3), atol=1e-4)
    norm.eval()
    assert torch.equal(norm(x), y)


def test_config_selects_the_architecture() -> None:
    assert isinstance(build_autoencoder(load_config()), Autoencoder)
    cfg = load_config(overrides=[*SMALL, "data.resolution=128"])
    assert isinstance(build_autoencoder(cfg), PaperAutoencoder)
    # a config.yaml written before the arch keys existed reads as the conv autoencoder
    old = "autoencoder:\n  z_dim: 8\n  channels: [8, 16]\n  res_blocks: 0\n"
    assert config_from_yaml_text(old, "old").autoencoder.arch == "conv"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["autoencoder.arch=vqgan"], "autoencoder.arch must be one of"),
        (["autoencoder.resnet=resnet152"], "autoencoder.resnet"),
        ([*SMALL, "data.resolution=64"], "128 or 256"),
        ([*SMALL, "data.resolution=256", "autoencoder.z_dim=120"], "z_dim must be > 120"),
        (["autoencoder.imagenet_normalize=3"], "imagenet_normalize"),
    ],
)
def test_bad_architecture_settings_are_config_errors(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)


def test_net2fair_train_takes_steps_with_the_paper_architecture(toy_folders, tmp_path, cli) -> None:  # noqa: ANN001
    # in-process (tests/conftest.py's cli): `train` runs in subprocesses in commands/test_train.py
    run = tmp_path / "paper"
    proc = cli(
        "train",
        "--domain",
        f"discs={toy_folders['discs']}",
        "--domain",
        f"squares={toy_folders['squares']}",
        "--resolution",
        "128",
        *SMALL,
        "train.autoencoder.batch_size=2",
        "train.cinn.batch_size=8",
        "loss.perceptual_weight=0",
        "loss.disc_start=0",
        "flow.n_flows=1",
        "flow.hidden_dim=16",
        "--ae-steps",
        "2",
        "--cinn-steps",
        "2",
        "--out",
        str(run),
        "--device",
        "cpu",
        "-q",
    )
    assert proc.returncode == 0, proc.stderr
    from net2fair.models.translator import Translator

    t = Translator.load(run / "model")
    assert isinstance(t.autoencoder, PaperAutoencoder)
    assert t.autoencoder.encoder.resnet.bn1.initialized.item() == 1
    assert t.sample("discs", n=1, seed=0).shape == (1, 3, 128, 128)
