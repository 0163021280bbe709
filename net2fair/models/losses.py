"""Stage-1 (autoencoder) losses: L1 + LPIPS + KL + a patch-GAN hinge loss.

The adversarial term is switched on after ``disc_start`` steps and balanced against the
reconstruction loss by the ratio of their gradient norms at the decoder's last layer, as
in VQGAN (Esser et al., "Taming Transformers for High-Resolution Image Synthesis",
CVPR 2021). The discriminator is a PatchGAN (Isola et al., "Image-to-Image Translation
with Conditional Adversarial Networks", CVPR 2017).

Training uses two optimizers: one for the autoencoder, stepped on
:meth:`AutoencoderLoss.generator_loss`, and one for :attr:`AutoencoderLoss.discriminator`,
stepped on :meth:`AutoencoderLoss.discriminator_loss`. The generator loss backpropagates
through the discriminator, so its parameters receive gradients there too; the trainer
must zero the discriminator's gradients before its own backward pass.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from net2fair.colour import rgb_to_cbcr
from net2fair.fidelity import eye_band
from net2fair.models.perceptual import try_load_lpips

logger = logging.getLogger(__name__)

__all__ = [
    "AutoencoderLoss",
    "PatchDiscriminator",
    "adaptive_weight",
    "chroma_detail_l1",
    "eye_band_l1",
    "hinge_d_loss",
    "hinge_g_loss",
]


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator: one real/fake logit per overlapping image patch.

    Layout: a 4x4 stride-2 conv + LeakyReLU(0.2); ``n_layers - 1`` more stride-2 convs,
    doubling the channels (capped at 8x ``base_channels``); a stride-1 conv; a 1-channel
    stride-1 output conv. GroupNorm (not BatchNorm) after every conv except the first and
    last, so a patch's logit does not depend on the rest of the batch.

    Arguments:
        in_channels: image channels.
        base_channels: channels of the first conv.
        n_layers: number of stride-2 convs (each halves the resolution).
        norm: ``"group"`` or ``"none"``.

    Input ``(B, in_channels, H, W)`` in [-1, 1]; output logits ``(B, 1, h, w)`` with
    ``h = H / 2**n_layers - 2`` (for ``H`` divisible by ``2**n_layers``).
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        base_channels: int = 32,
        n_layers: int = 2,
        norm: str = "group",
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        if norm not in ("group", "none"):
            raise ValueError(f"norm must be 'group' or 'none', got {norm!r}")
        use_norm = norm == "group"

        def block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
            # A conv followed by a norm needs no bias: the norm's shift replaces it.
            layers: list[nn.Module] = [
                nn.Conv2d(c_in, c_out, 4, stride=stride, padding=1, bias=not use_norm)
            ]
            if use_norm:
                layers.append(nn.GroupNorm(math.gcd(32, c_out), c_out))
            layers.append(nn.LeakyReLU(0.2))
            return layers

        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, base_channels, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        ]
        channels = base_channels
        for i in range(1, n_layers):
            out = base_channels * min(2**i, 8)
            layers += block(channels, out, stride=2)
            channels = out
        out = base_channels * min(2**n_layers, 8)
        layers += block(channels, out, stride=1)
        layers.append(nn.Conv2d(out, 1, 4, stride=1, padding=1))
        self.main = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """DCGAN init: conv weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.GroupNorm):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` images -> ``(B, 1, h, w)`` patch logits."""
        return self.main(x)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss ``0.5 * (mean(relu(1 - real)) + mean(relu(1 + fake)))``.

    Arguments:
        logits_real: discriminator logits on real images, any shape.
        logits_fake: discriminator logits on reconstructions, any shape.

    Returns a scalar; 0 once every real logit is >= 1 and every fake logit <= -1.
    """
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def hinge_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss ``-mean(logits_fake)`` (scalar)."""
    return -logits_fake.mean()


def adaptive_weight(
    rec_loss: torch.Tensor,
    g_loss: torch.Tensor,
    last_layer: torch.Tensor,
    *,
    max_weight: float = 1e4,
) -> torch.Tensor:
    """VQGAN's balance between reconstruction and adversarial loss.

    ``||d rec_loss / d last_layer|| / (||d g_loss / d last_layer|| + 1e-4)``, clamped to
    ``[0, max_weight]`` and detached: scaling ``g_loss`` by it gives the adversarial
    gradient at the decoder output the same size as the reconstruction gradient.

    Arguments:
        rec_loss: scalar reconstruction loss (L1 + LPIPS), with a graph to ``last_layer``.
        g_loss: scalar generator adversarial loss, with a graph to ``last_layer``.
        last_layer: the weight of the decoder's last layer.
        max_weight: upper clamp.

    Raises:
        RuntimeError: a loss has no graph (e.g. computed under ``torch.no_grad``), or
            ``last_layer`` does not take part in it. Call this only while training.
    """
    for name, loss in (("rec_loss", rec_loss), ("g_loss", g_loss)):
        if not loss.requires_grad:
            raise RuntimeError(
                f"adaptive_weight needs gradients, but {name} has no graph (computed under "
                "torch.no_grad or from frozen tensors?)"
            )
    grads = []
    for name, loss in (("rec_loss", rec_loss), ("g_loss", g_loss)):
        (grad,) = torch.autograd.grad(loss, last_layer, retain_graph=True, allow_unused=True)
        if grad is None:
            raise RuntimeError(f"adaptive_weight: last_layer is not part of the graph of {name}")
        grads.append(grad)
    weight = torch.linalg.vector_norm(grads[0]) / (torch.linalg.vector_norm(grads[1]) + 1e-4)
    return weight.clamp(0.0, max_weight).detach()


def chroma_detail_l1(x: torch.Tensor, xrec: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance between the fine chroma detail of ``x`` and ``xrec`` (scalar).

    Both ``(B, 3, H, W)`` batches in [-1, 1] are converted to the chroma channels Cb, Cr
    of YCbCr (ITU-R BT.601); each channel minus its Gaussian blur (sigma 1 px, 7 taps,
    borders reflected) is its fine detail. The loss charges the colour confetti that LPIPS
    on AlexNet does not see at 64 px (its first layer is an 11x11 stride-4 convolution):
    isolated pixels whose hue differs from their neighbours', the artifact that
    :func:`net2fair.fidelity.colour_noise` measures. Chroma edges the input has cost
    nothing when reproduced; luma detail is left to L1 and LPIPS.
    """
    diff = rgb_to_cbcr(xrec.float() - x.float())
    t = torch.arange(-3, 4, dtype=diff.dtype, device=diff.device)
    k = torch.exp(-0.5 * t**2)
    k = k / k.sum()
    h = F.pad(diff, (3, 3, 0, 0), mode="reflect")
    h = F.conv2d(h, k.view(1, 1, 1, 7).expand(2, 1, 1, 7), groups=2)
    h = F.pad(h, (0, 0, 3, 3), mode="reflect")
    blurred = F.conv2d(h, k.view(1, 1, 7, 1).expand(2, 1, 7, 1), groups=2)
    return (diff - blurred).abs().mean()


def eye_band_l1(x: torch.Tensor, xrec: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance between ``(B, 3, H, W)`` batches over the eye band only (scalar).

    The band (:func:`net2fair.fidelity.eye_band`: rows 33% to 58%, columns 20% to 80% of an
    aligned face) holds eyes, brows and glasses: a few pixels each at 64 px, so a plain mean
    L1 gives them a small share of the loss, and a decoder short of capacity spends it
    elsewhere and draws an average of the possible eyes (faint glasses on every face). A
    weight on this term is a facial-component loss for aligned faces.
    """
    rows, cols = eye_band(x.shape[-2], x.shape[-1])
    return (x[..., rows, cols].float() - xrec[..., rows, cols].float()).abs().mean()


class AutoencoderLoss(nn.Module):
    """The stage-1 objective and its patch discriminator.

    Generator (autoencoder) loss::

        rec   = l1_weight * mean|x - xrec| + perceptual_weight * mean LPIPS(x, xrec)
              + chroma_weight * chroma_detail_l1(x, xrec) + eye_weight * eye_band_l1(x, xrec)
        total = rec + kl_weight * mean(kl) + [step >= disc_start] * disc_weight * w * g
        g     = hinge_g_loss(D(xrec)),  w = adaptive_weight(rec, g, last_layer)

    LPIPS is loaded with :func:`~net2fair.models.perceptual.try_load_lpips`; when its
    backbone weights are missing, ``perceptual_weight`` becomes 0, ``perceptual_available``
    is False and one warning is logged. LPIPS is a fixed metric, not part of the model: it
    is kept out of ``parameters()`` and ``state_dict()`` (so checkpoints do not carry it),
    stays in eval mode, and follows the inputs' device.

    Arguments:
        l1_weight: weight of the per-pixel L1 loss.
        perceptual_weight: weight of LPIPS (0 skips loading it).
        kl_weight: weight of the KL divergence to N(0, I).
        disc_weight: weight of the adversarial loss (on top of the adaptive weight);
            0 disables the discriminator.
        disc_start: first step at which the adversarial losses are active.
        disc_channels: ``base_channels`` of the :class:`PatchDiscriminator`.
        disc_layers: ``n_layers`` of the :class:`PatchDiscriminator`.
        lpips_net: LPIPS backbone, ``"alex"`` or ``"vgg"``.
        chroma_weight: weight of :func:`chroma_detail_l1`, the L1 loss on fine chroma
            detail (0 = off, the loss before issue 17).
        eye_weight: weight of :func:`eye_band_l1`, an extra L1 loss on the eye band of
            aligned faces (0 = off).
    """

    def __init__(
        self,
        *,
        l1_weight: float = 1.0,
        perceptual_weight: float = 1.0,
        kl_weight: float = 1e-6,
        disc_weight: float = 0.5,
        disc_start: int = 2000,
        disc_channels: int = 32,
        disc_layers: int = 2,
        lpips_net: str = "alex",
        chroma_weight: float = 0.0,
        eye_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.l1_weight = float(l1_weight)
        self.chroma_weight = float(chroma_weight)
        self.eye_weight = float(eye_weight)
        self.kl_weight = float(kl_weight)
        self.disc_weight = float(disc_weight)
        self.disc_start = int(disc_start)
        self.disc = PatchDiscriminator(base_channels=disc_channels, n_layers=disc_layers)

        lpips_model = try_load_lpips(lpips_net) if perceptual_weight > 0 else None
        if lpips_model is not None:
            lpips_model.eval()  # lpips' heads hold dropout layers
        # object.__setattr__ bypasses nn.Module registration: see the class docstring.
        object.__setattr__(self, "_lpips", lpips_model)
        self.perceptual_available = lpips_model is not None
        self.perceptual_weight = float(perceptual_weight) if self.perceptual_available else 0.0

    @property
    def discriminator(self) -> PatchDiscriminator:
        """The patch discriminator (give its parameters to the discriminator optimizer)."""
        return self.disc

    def uses_discriminator(self, step: int) -> bool:
        """Whether the adversarial losses are active at ``step``."""
        return self.disc_weight > 0 and step >= self.disc_start

    def perceptual(self, x: torch.Tensor, xrec: torch.Tensor) -> torch.Tensor:
        """Mean LPIPS distance between ``(B, 3, H, W)`` batches in [-1, 1] (scalar).

        Raises:
            RuntimeError: LPIPS is not available (see ``perceptual_available``).
        """
        if self._lpips is None:
            raise RuntimeError("LPIPS is not available: perceptual_available is False")
        param = next(self._lpips.parameters())
        if param.device != xrec.device:
            self._lpips.to(xrec.device)
        return self._lpips(xrec, x).mean()

    def generator_loss(
        self,
        x: torch.Tensor,
        xrec: torch.Tensor,
        kl: torch.Tensor,
        *,
        step: int,
        last_layer: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Autoencoder loss for one batch.

        Arguments:
            x: ``(B, 3, H, W)`` inputs in [-1, 1].
            xrec: ``(B, 3, H, W)`` reconstructions in [-1, 1].
            kl: ``(B,)`` KL divergence of q(z|x) to N(0, I) per sample (nats).
            step: global training step (switches the adversarial term on).
            last_layer: weight of the decoder's last layer, for the adaptive weight.

        Returns:
            ``(total, logs)``: the scalar loss to backpropagate, and floats ``l1``,
            ``lpips`` (only when LPIPS is used), ``chroma`` (only when ``chroma_weight``
            is > 0), ``eye`` (only when ``eye_weight`` is > 0), ``rec``, ``kl``, ``g``,
            ``d_weight``, ``total``. ``g`` and ``d_weight`` are 0 before ``disc_start``.
            Under ``torch.no_grad`` (validation) the adaptive weight cannot be computed,
            so ``d_weight`` is 0 and ``g`` is logged but not added.
        """
        if x.shape != xrec.shape:
            raise ValueError(f"x and xrec must have the same shape, got {x.shape} and {xrec.shape}")
        if kl.shape != (x.shape[0],):
            raise ValueError(f"kl must have shape ({x.shape[0]},), got {tuple(kl.shape)}")

        # Logged values stay tensors until the end: one device sync per call, not one each.
        logs: dict[str, torch.Tensor] = {}
        l1 = (x - xrec).abs().mean()
        rec = self.l1_weight * l1
        logs["l1"] = l1
        if self.perceptual_weight > 0:
            p = self.perceptual(x, xrec)
            rec = rec + self.perceptual_weight * p
            logs["lpips"] = p
        if self.chroma_weight > 0:
            c = chroma_detail_l1(x, xrec)
            rec = rec + self.chroma_weight * c
            logs["chroma"] = c
        if self.eye_weight > 0:
            e = eye_band_l1(x, xrec)
            rec = rec + self.eye_weight * e
            logs["eye"] = e
        kl_mean = kl.mean()
        total = rec + self.kl_weight * kl_mean
        logs["rec"] = rec
        logs["kl"] = kl_mean

        zero = torch.zeros((), device=x.device)
        logs["g"] = logs["d_weight"] = zero
        if self.uses_discriminator(step):
            g = hinge_g_loss(self.disc(xrec))
            logs["g"] = g
            if torch.is_grad_enabled() and rec.requires_grad:
                d_weight = adaptive_weight(rec, g, last_layer) * self.disc_weight
                total = total + d_weight * g
                logs["d_weight"] = d_weight
        logs["total"] = total
        return total, _to_floats(logs)

    def discriminator_loss(
        self,
        x: torch.Tensor,
        xrec: torch.Tensor,
        *,
        step: int,
        discriminator: nn.Module | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Hinge loss of the discriminator on real ``x`` and (detached) ``xrec``.

        Arguments:
            x: ``(B, 3, H, W)`` inputs in [-1, 1].
            xrec: ``(B, 3, H, W)`` reconstructions in [-1, 1]; detached here.
            step: global training step.
            discriminator: the module to call instead of :attr:`discriminator`, e.g. its
                DistributedDataParallel wrapper so gradients are averaged across processes.

        Returns:
            ``(loss, logs)`` with floats ``d_loss``, ``logits_real``, ``logits_fake`` (mean
            logits) and ``d_active`` (1 or 0). Before ``disc_start`` the loss is a zero
            tensor without a graph and ``d_active`` is 0: skip the discriminator step
            (check :meth:`uses_discriminator`).
        """
        if not self.uses_discriminator(step):
            zero = torch.zeros((), device=x.device)
            return zero, {"d_loss": 0.0, "logits_real": 0.0, "logits_fake": 0.0, "d_active": 0.0}
        # One forward pass over real and fake together: under DDP the (wrapped)
        # discriminator then runs exactly once per backward, as the wrapper expects.
        disc = discriminator if discriminator is not None else self.disc
        logits = disc(torch.cat([x.detach(), xrec.detach()]))
        logits_real, logits_fake = logits.chunk(2)
        loss = hinge_d_loss(logits_real, logits_fake)
        logs = {
            "d_loss": loss,
            "logits_real": logits_real.mean(),
            "logits_fake": logits_fake.mean(),
        }
        return loss, {**_to_floats(logs), "d_active": 1.0}


def _to_floats(values: dict[str, torch.Tensor]) -> dict[str, float]:
    """Scalar tensors -> floats with a single device-to-host copy."""
    floats = torch.stack([v.detach().float().reshape(()) for v in values.values()]).tolist()
    return dict(zip(values, floats, strict=True))
