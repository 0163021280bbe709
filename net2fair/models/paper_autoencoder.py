"""Stage 1, the paper's architecture: a ResNet encoder and a BigGAN decoder over a flat latent.

This is the autoencoder of Rombach, Esser, Ommer, "Network-to-Network Translation with
Conditional Invertible Neural Networks" (NeurIPS 2020), the one behind their released
dataset-translation models, written for net2fair (``autoencoder.arch: net2net``):

- **Encoder**: a torchvision ResNet (18, 34, 50 or 101) with every BatchNorm replaced by an
  :class:`ActNorm2d`, global average pooling, then a 1x1 convolution to the mean and
  log-variance of q(z | x) (log-variance clamped to [-30, 10]). The input in [-1, 1] is mapped
  to [0, 1] and normalised with the ImageNet mean and standard deviation
  ``imagenet_normalize`` times: the paper's code does it twice (once in ``forward``, once in
  ``features``), and its released weights expect that.
- **Decoder**: z -> softmax(MLP(z)), a 1000-way "class" distribution, embedded to 128-d by
  a bias-free Linear; z is split into ``[z_dim - 20 n, 20, ..., 20]`` for the n generator
  blocks. A Linear maps the first part to a 4x4 map of 16 chn channels; each block
  (conditional BatchNorm, ReLU, 2x nearest upsampling, 3x3 convolutions, a 1x1 shortcut)
  is conditioned on its 20-d chunk and the 128-d embedding; self-attention runs before the
  last block; then ActNorm, ReLU, a 3x3 convolution to RGB and tanh.

The paper's decoder wraps its weights in a spectral norm whose power-iteration vector is
never updated; :mod:`net2fair.importers.net2net` folds that normalisation into plain
weights, so the modules here hold ordinary weights and train without spectral norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from net2fair.models.autoencoder import GaussianAutoencoder

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")
#: resolution -> channel multipliers of the generator (input of block 0, then each output),
#: as in the paper's BigGAN-256 and BigGAN-128
GENERATOR_WIDTHS = {256: (16, 16, 8, 8, 4, 2, 1), 128: (16, 16, 8, 4, 2, 1)}
#: latent dimensions fed to each generator block, and the size of the class embeddings
CHUNK = 20
CLASS_DIM = 1000
CLASS_HIDDEN = 2000
CLASS_EMBED = 128
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ActNorm2d(nn.Module):
    """Per-channel affine ``y = scale * (x + loc)`` with data-dependent initialisation.

    The first forward call in training mode sets ``loc`` and ``scale`` so that the batch
    leaves with zero mean and unit standard deviation per channel; ``initialized`` travels
    with the state dict. Parameters have the paper's shape ``(1, C, 1, 1)``.
    Shapes: x, y ``(B, C, H, W)``.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(1, num_features, 1, 1))
        self.scale = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    @torch.no_grad()
    def _initialize(self, x: torch.Tensor) -> None:
        flat = x.detach().transpose(0, 1).reshape(x.shape[1], -1)
        self.loc.copy_(-flat.mean(1).view_as(self.loc))
        self.scale.copy_(1.0 / (flat.std(1).view_as(self.scale) + 1e-6))
        self.initialized.fill_(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not bool(self.initialized.item()):
            self._initialize(x)
        return self.scale * (x + self.loc)


def resnet_backbone(kind: str) -> tuple[nn.Module, int]:
    """A torchvision ResNet with ActNorm instead of BatchNorm and no classifier; its width."""
    if kind not in RESNETS:
        raise ValueError(f"unknown ResNet {kind!r}; choose from {', '.join(RESNETS)}")
    net = getattr(torchvision.models, kind)(weights=None, norm_layer=ActNorm2d)
    width = net.fc.in_features
    net.fc = nn.Identity()
    return net, width


class ResNetEncoder(nn.Module):
    """``(B, 3, R, R)`` in [-1, 1] -> ``(B, 2 z_dim)``: mean and (unclamped) log-variance."""

    def __init__(self, *, z_dim: int, resnet: str = "resnet101", imagenet_normalize: int = 2):
        super().__init__()
        self.resnet, width = resnet_backbone(resnet)
        self.head = nn.Conv2d(width, 2 * z_dim, 1)
        self.imagenet_normalize = imagenet_normalize
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.imagenet_normalize):
            x = (0.5 * (x + 1.0) - self.mean) / self.std
        r = self.resnet
        h = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        h = r.layer4(r.layer3(r.layer2(r.layer1(h))))
        h = r.avgpool(h)
        return self.head(h).flatten(1)


class ClassEmbedding(nn.Module):
    """z ``(B, z_dim)`` -> a distribution over the generator's 1000 classes ``(B, 1000)``."""

    def __init__(self, z_dim: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Linear(z_dim, CLASS_HIDDEN),
            nn.LeakyReLU(),
            nn.Linear(CLASS_HIDDEN, CLASS_HIDDEN),
            nn.LeakyReLU(),
            nn.Linear(CLASS_HIDDEN, CLASS_HIDDEN),
            nn.LeakyReLU(),
            nn.Linear(CLASS_HIDDEN, CLASS_DIM),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.main(z), dim=1)


class ConditionalBatchNorm2d(nn.Module):
    """``(1 + gamma(c)) * bn(x) + beta(c)`` with an affine-free BatchNorm (eps 1e-4).

    Shapes: x ``(B, C, H, W)``, c ``(B, cond_dim)``.
    """

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False, eps=1e-4)
        self.gamma = nn.Linear(cond_dim, channels, bias=False)
        self.beta = nn.Linear(cond_dim, channels, bias=False)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        gamma = self.gamma(c)[:, :, None, None] + 1.0
        return gamma * self.bn(x) + self.beta(c)[:, :, None, None]


class GBlock(nn.Module):
    """BigGAN up-block: CBN, ReLU, 2x up, conv 3x3, CBN, ReLU, conv 3x3; plus up + conv 1x1."""

    def __init__(self, cin: int, cout: int, cond_dim: int) -> None:
        super().__init__()
        self.norm0 = ConditionalBatchNorm2d(cin, cond_dim)
        self.conv0 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm1 = ConditionalBatchNorm2d(cout, cond_dim)
        self.conv1 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_sc = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.norm0(x, c)), scale_factor=2)
        h = self.conv1(F.relu(self.norm1(self.conv0(h), c)))
        return h + self.conv_sc(F.interpolate(x, scale_factor=2))


class SelfAttention(nn.Module):
    """SAGAN self-attention with 2x max-pooled keys and values; ``gamma`` starts at 0.

    Its attention matrix holds ``H W x H W / 4`` floats per image (256 MiB at 128 x 128),
    which is why the translator decodes in micro-batches.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.theta = nn.Conv2d(channels, channels // 8, 1, bias=False)
        self.phi = nn.Conv2d(channels, channels // 8, 1, bias=False)
        self.g = nn.Conv2d(channels, channels // 2, 1, bias=False)
        self.o_conv = nn.Conv2d(channels // 2, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        n = h * w
        theta = self.theta(x).reshape(b, -1, n).permute(0, 2, 1)
        phi = F.max_pool2d(self.phi(x), 2).reshape(b, -1, n // 4)
        attention = torch.softmax(torch.bmm(theta, phi), dim=-1)
        g = F.max_pool2d(self.g(x), 2).reshape(b, -1, n // 4)
        out = torch.bmm(g, attention.permute(0, 2, 1)).reshape(b, -1, h, w)
        return self.gamma * self.o_conv(out) + x


def generator_blocks(resolution: int) -> int:
    """Number of generator blocks at ``resolution`` (128 or 256)."""
    if resolution not in GENERATOR_WIDTHS:
        raise ValueError(
            f"the net2net decoder is a BigGAN-128 or BigGAN-256: resolution must be 128 or 256, "
            f"got {resolution}"
        )
    return len(GENERATOR_WIDTHS[resolution]) - 1


class BigGANDecoder(nn.Module):
    """``(B, z_dim)`` -> ``(B, 3, R, R)`` in (-1, 1) (tanh)."""

    def __init__(self, *, z_dim: int, resolution: int = 256, chn: int = 96) -> None:
        super().__init__()
        widths = [m * chn for m in GENERATOR_WIDTHS.get(resolution, ())]
        n = generator_blocks(resolution)
        first = z_dim - CHUNK * n
        if first < 1:
            raise ValueError(
                f"the net2net decoder at {resolution} px splits z into {CHUNK} dimensions for "
                f"each of its {n} blocks and at least 1 more: z_dim must be > {CHUNK * n}, "
                f"got {z_dim}"
            )
        self.split = [first] + [CHUNK] * n
        self.first_view = widths[0]
        cond = CHUNK + CLASS_EMBED
        self.class_embedding = ClassEmbedding(z_dim)
        self.class_linear = nn.Linear(CLASS_DIM, CLASS_EMBED, bias=False)
        self.z_linear = nn.Linear(first, 16 * widths[0])
        self.blocks = nn.ModuleList(GBlock(a, b, cond) for a, b in zip(widths[:-1], widths[1:]))
        self.attention = SelfAttention(widths[-2])
        self.out_norm = ActNorm2d(widths[-1])
        self.colorize = nn.Conv2d(widths[-1], 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        class_emb = self.class_linear(self.class_embedding(z))
        codes = torch.split(z, self.split, dim=1)
        h = self.z_linear(codes[0]).view(-1, 4, 4, self.first_view).permute(0, 3, 1, 2)
        last = len(self.blocks) - 1
        for i, (code, block) in enumerate(zip(codes[1:], self.blocks)):
            if i == last:
                h = self.attention(h)
            h = block(h, torch.cat([code, class_emb], dim=1))
        h = F.relu(self.out_norm(h))
        return torch.tanh(self.colorize(h))


class PaperAutoencoder(GaussianAutoencoder):
    """ResNet encoder + BigGAN decoder with a diagonal Gaussian posterior over a flat latent.

    Same interface as :class:`net2fair.models.autoencoder.Autoencoder`: ``encode`` gives
    q(z | x), ``decode`` images, ``forward`` both, ``last_layer`` the weight the adaptive
    adversarial weight is computed at.

    Example::

        ae = PaperAutoencoder(resolution=256, z_dim=128, resnet="resnet18", chn=8).eval()
        q = ae.encode(torch.rand(2, 3, 256, 256) * 2 - 1)    # q.mean: (2, 128)
        x = ae.decode(q.mean)                                 # (2, 3, 256, 256)
    """

    #: images per decoder call when the translator decodes (the attention matrix alone is
    #: 256 MiB per image at 256 px)
    max_decode_batch = 4
    #: as the original's posterior
    logvar_max = 10.0

    def __init__(
        self,
        *,
        resolution: int = 256,
        z_dim: int = 128,
        resnet: str = "resnet101",
        chn: int = 96,
        imagenet_normalize: int = 2,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.z_dim = z_dim
        self.encoder = ResNetEncoder(
            z_dim=z_dim, resnet=resnet, imagenet_normalize=imagenet_normalize
        )
        self.decoder = BigGANDecoder(z_dim=z_dim, resolution=resolution, chn=chn)

    @property
    def last_layer(self) -> torch.Tensor:
        """Weight the adaptive adversarial weight is computed at."""
        return self.decoder.colorize.weight
