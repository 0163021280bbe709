"""The lean VAE: shapes at every supported resolution, the KL, and that it learns."""

from __future__ import annotations

import pytest
import torch

from net2fair.data.datasets import MultiDomainDataset
from net2fair.models.autoencoder import Autoencoder, DiagonalGaussian, ResBlock


@pytest.mark.parametrize("resolution", [32, 64, 128, 256])
def test_shapes_for_every_resolution(resolution):
    ae = Autoencoder(resolution=resolution, z_dim=8, channels=[4, 8], res_blocks=0)
    x = torch.rand(2, 3, resolution, resolution) * 2 - 1
    q = ae.encode(x)
    assert q.mean.shape == (2, 8) and q.logvar.shape == (2, 8)
    assert ae.decode(q.mean).shape == x.shape


def test_wrong_size_is_a_clear_error():
    ae = Autoencoder(resolution=32, z_dim=8, channels=[4], res_blocks=0)
    with pytest.raises(ValueError, match="expects 32x32"):
        ae.encode(torch.zeros(1, 3, 64, 64))


def _decoder_blocks(ae: Autoencoder) -> list[int]:
    """Widths of the decoder's residual blocks, in the order they run (coarse to fine)."""
    return [m.conv1.in_channels for m in ae.decoder.body if isinstance(m, ResBlock)]


def test_decoder_blocks_per_level_finest_first():
    kw = dict(resolution=64, z_dim=8, channels=[4, 8, 16, 32])
    # empty: res_blocks at every level, the layout (and weight names) of earlier models
    plain = Autoencoder(**kw, res_blocks=1)
    same = Autoencoder(**kw, res_blocks=1, decoder_res_blocks=[1, 1, 1, 1])
    assert _decoder_blocks(plain) == [32, 16, 8, 4]
    assert {k: v.shape for k, v in plain.state_dict().items()} == {
        k: v.shape for k, v in same.state_dict().items()
    }
    # listed like channels, finest first; a short list is extended with its last value
    ae = Autoencoder(**kw, res_blocks=1, decoder_res_blocks=[2, 0])
    assert _decoder_blocks(ae) == [4, 4]
    ae = Autoencoder(**kw, res_blocks=1, decoder_res_blocks=[2, 2, 2, 1])
    assert _decoder_blocks(ae) == [32, 16, 16, 8, 8, 4, 4]
    # the encoder keeps res_blocks
    assert sum(isinstance(m, ResBlock) for m in ae.encoder.body) == 4
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert ae.decode(ae.encode(x).mean).shape == x.shape


def test_kl_matches_closed_form_and_is_zero_at_the_prior():
    q = DiagonalGaussian(torch.zeros(3, 5), torch.zeros(3, 5))
    assert torch.allclose(q.kl(), torch.zeros(3))
    mean, logvar = torch.randn(2, 4), torch.randn(2, 4)
    q = DiagonalGaussian(mean, logvar)
    p = torch.distributions.Normal(torch.zeros(4), torch.ones(4))
    r = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    assert torch.allclose(q.kl(), torch.distributions.kl_divergence(r, p).sum(1), atol=1e-5)


def test_a_few_hundred_steps_lower_the_reconstruction_error(toy_folders):
    torch.manual_seed(0)
    data = MultiDomainDataset(list(toy_folders.items()), resolution=32, split="all")
    x = torch.stack([data[i][0] for i in range(len(data))])
    ae = Autoencoder(resolution=32, z_dim=16, channels=[16, 32, 64], res_blocks=0)
    opt = torch.optim.Adam(ae.parameters(), lr=2e-3)

    def error() -> float:
        with torch.no_grad():
            return (ae.decode(ae.encode(x).mean) - x).abs().mean().item()

    before = error()
    for _ in range(200):
        batch = x[torch.randint(0, len(x), (16,))]
        xrec, q = ae(batch)
        loss = (xrec - batch).abs().mean() + 1e-6 * q.kl().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = error()
    assert after < 0.5 * before, (before, after)
