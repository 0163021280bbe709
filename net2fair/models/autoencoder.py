"""Stage 1: a lean convolutional VAE with a flat latent code.

Lean because it must train on two CPU cores: the first convolution already halves the
resolution, so no layer works at full resolution except the decoder's last two
convolutions, and widths grow only as the feature maps shrink. The spatial size is
reduced by stride-2 steps down to 4x4, then a linear layer gives the parameters of a
diagonal Gaussian q(z | x) over a flat z in R^d (Esser, Rombach, Ommer 2020 use the same
flat-latent interface with a much larger BigGAN-style decoder).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def _groups(channels: int) -> int:
    for g in (8, 4, 2):
        if channels % g == 0:
            return g
    return 1


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(channels), channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(_groups(channels), channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return x + h


@dataclass
class DiagonalGaussian:
    """q(z | x) = N(mean, exp(logvar)); shapes (B, D)."""

    mean: torch.Tensor
    logvar: torch.Tensor

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        eps = torch.randn(
            self.mean.shape, generator=generator, dtype=self.mean.dtype, device="cpu"
        ).to(self.mean.device)
        return self.mean + self.std * eps

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) per sample, shape (B,), in nats."""
        return 0.5 * torch.sum(self.mean**2 + self.logvar.exp() - 1.0 - self.logvar, dim=1)


def level_channels(channels: list[int], resolution: int) -> list[int]:
    """Widths for each of the log2(resolution / 4) stride-2 steps."""
    return level_values(channels, int(math.log2(resolution // 4)))


def level_values(values: list[int], levels: int) -> list[int]:
    """One value per level, finest first: ``values`` cut to ``levels`` or extended with its
    last entry (the rule ``channels`` follows)."""
    out = list(values[:levels])
    while len(out) < levels:
        out.append(out[-1])
    return out


class Encoder(nn.Module):
    """(B, 3, R, R) in [-1, 1] -> (B, 2 * z_dim): mean and log-variance."""

    def __init__(self, *, resolution: int, channels: list[int], z_dim: int, res_blocks: int):
        super().__init__()
        widths = level_channels(channels, resolution)
        self.stem = nn.Conv2d(3, widths[0], 4, stride=2, padding=1)
        layers: list[nn.Module] = []
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [ResBlock(cin) for _ in range(res_blocks)]
            layers.append(nn.Conv2d(cin, cout, 4, stride=2, padding=1))
        layers += [ResBlock(widths[-1]) for _ in range(res_blocks)]
        layers += [nn.GroupNorm(_groups(widths[-1]), widths[-1]), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1] * 16, 2 * z_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(self.stem(x))
        return self.head(h.flatten(1))


class Decoder(nn.Module):
    """(B, z_dim) -> (B, 3, R, R), roughly in [-1, 1] (not clamped: the loss sees raw values).

    ``res_blocks`` gives the residual blocks per level, finest first like ``channels``."""

    def __init__(self, *, resolution: int, channels: list[int], z_dim: int, res_blocks: list[int]):
        super().__init__()
        widths = level_channels(channels, resolution)
        blocks = level_values(res_blocks, len(widths))
        self.top = widths[-1]
        self.fc = nn.Linear(z_dim, widths[-1] * 16)
        layers: list[nn.Module] = []
        rev, rev_blocks = widths[::-1], blocks[::-1]
        for cin, cout, n in zip(rev[:-1], rev[1:], rev_blocks):
            layers += [ResBlock(cin) for _ in range(n)]
            layers += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(cin, cout, 3, padding=1),
            ]
        layers += [ResBlock(widths[0]) for _ in range(blocks[0])]
        layers += [
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(widths[0], widths[0], 3, padding=1),
            nn.GroupNorm(_groups(widths[0]), widths[0]),
            nn.SiLU(),
        ]
        self.body = nn.Sequential(*layers)
        self.conv_out = nn.Conv2d(widths[0], 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(z.shape[0], self.top, 4, 4)
        return self.conv_out(self.body(h))


class GaussianAutoencoder(nn.Module):
    """What every stage 1 shares: ``self.encoder`` gives the posterior's mean and log-variance
    stacked on dim 1, ``self.decoder`` maps codes to images. Subclasses build both and name
    ``last_layer``; ``logvar_max`` bounds the log-variance."""

    resolution: int
    z_dim: int
    logvar_max: float = 20.0

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        """(B, 3, R, R) in [-1, 1] -> q(z | x) with (B, z_dim) parameters."""
        if x.shape[-1] != self.resolution or x.shape[-2] != self.resolution:
            raise ValueError(
                f"autoencoder expects {self.resolution}x{self.resolution} images, "
                f"got {tuple(x.shape[-2:])}"
            )
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return DiagonalGaussian(mean, logvar.clamp(-30.0, self.logvar_max))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, z_dim) -> (B, 3, R, R) images (unclamped)."""
        return self.decoder(z)

    def forward(
        self, x: torch.Tensor, *, sample: bool = True, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, DiagonalGaussian]:
        q = self.encode(x)
        z = q.sample(generator) if sample else q.mode()
        return self.decode(z), q


class Autoencoder(GaussianAutoencoder):
    """Encoder + decoder with a diagonal Gaussian posterior over a flat latent."""

    def __init__(
        self,
        *,
        resolution: int,
        z_dim: int = 64,
        channels: list[int] | None = None,
        res_blocks: int = 1,
        decoder_res_blocks: list[int] | None = None,
    ) -> None:
        """``decoder_res_blocks``: blocks per decoder level, finest first (default:
        ``res_blocks`` at every level)."""
        super().__init__()
        channels = list(channels or [32, 64, 128, 256])
        self.resolution = resolution
        self.z_dim = z_dim
        kw = dict(resolution=resolution, channels=channels, z_dim=z_dim)
        self.encoder = Encoder(**kw, res_blocks=res_blocks)
        self.decoder = Decoder(**kw, res_blocks=list(decoder_res_blocks or [res_blocks]))

    @property
    def last_layer(self) -> torch.Tensor:
        """Weight the adaptive adversarial weight is computed at."""
        return self.decoder.conv_out.weight
