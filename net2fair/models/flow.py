"""Stage 2: the conditional invertible network (cINN) on the autoencoder's latent.

Every invertible layer here follows one contract::

    forward(x, c) -> (z, logdet)    x, z: (B, D); logdet: (B,) = log |det dz/dx| per sample
    inverse(z, c) -> x              exact inverse of forward for the same condition c

Layers that ignore the condition (``ActNorm``, ``InvLeakyReLU``, ``Shuffle``) take only ``x``
and ``z``. The return type never depends on a flag: ``forward`` always returns the pair,
``inverse`` always a single tensor.

``ConditionalFlow`` stacks ``n_flows`` blocks of
[ActNorm -> (optional) invertible leaky ReLU -> conditional double affine coupling ->
fixed permutation] and conditions every coupling on an embedding of the dataset label.
It is trained by maximum likelihood with a standard normal base density:
``log p(z | y) = log N(T(z | y); 0, I) + log |det dT/dz|``.

Module and parameter names follow CompVis/net2net (Rombach, Esser, Ommer, "Network-to-Network
Translation with Conditional Invertible Neural Networks", NeurIPS 2020) so its released
weights can be mapped onto these modules; the one difference in shape is ActNorm's ``loc``
and ``scale``, flat ``(C,)`` here and ``(1, C, 1, 1)`` there.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

ACTIVATIONS = ("none", "lrelu")

_Number = TypeVar("_Number", Tensor, float, "np.ndarray")


def bits_per_dim(nll_nats_per_sample: _Number, dim: int) -> _Number:
    """Convert a negative log-likelihood in nats per sample to bits per dimension.

    The one conversion of the package: training's logs and validation, the model's
    :meth:`~net2fair.models.translator.Translator.bits_per_dim`, audits and reports use it.

    Arguments:
        nll_nats_per_sample: a float, tensor or NumPy array of any shape, in nats per sample
            (pass ``-log_likelihood`` to convert a log-likelihood).
        dim: the dimension D of the modelled vector.

    Returns:
        ``nll / (D * ln 2)``, of the same type and shape as the input.
    """
    if dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim}")
    return nll_nats_per_sample / (dim * math.log(2.0))


class MLP(nn.Module):
    """Fully connected net; its layers live in ``.main`` as in net2net's BasicFullyConnectedNet.

    Layout: Linear(in_dim, hidden_dim), LeakyReLU, ``depth`` x [Linear(hidden_dim, hidden_dim),
    LeakyReLU], Linear(hidden_dim, out_dim), and a final Tanh when ``tanh`` is set.
    Maps (B, in_dim) to (B, out_dim).
    """

    def __init__(
        self, in_dim: int, out_dim: int, *, hidden_dim: int, depth: int, tanh: bool = False
    ) -> None:
        super().__init__()
        if depth < 0:
            raise ValueError(f"MLP depth must be >= 0, got {depth}")
        layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim), nn.LeakyReLU()]
        for _ in range(depth):
            layers += [nn.Linear(hidden_dim, hidden_dim), nn.LeakyReLU()]
        layers.append(nn.Linear(hidden_dim, out_dim))
        if tanh:
            layers.append(nn.Tanh())
        self.main = nn.Sequential(*layers)

    @property
    def last_linear(self) -> nn.Linear:
        """The output Linear layer (before the optional Tanh)."""
        return [m for m in self.main if isinstance(m, nn.Linear)][-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x)


class ActNorm(nn.Module):
    """Per-dimension affine normalisation ``y = scale * (x + loc)`` (Kingma & Dhariwal, Glow, 2018).

    Data-dependent initialisation: the first forward call in training mode sets
    ``loc = -mean`` and ``scale = 1 / (std + 1e-6)`` over the batch, so that batch leaves the
    layer with zero mean and unit variance per dimension; afterwards both are ordinary
    trainable parameters. The ``initialized`` buffer is saved in the state dict, so a loaded
    model never re-initialises. In eval mode an uninitialised layer is the identity.
    Call ``initialize(x)`` to initialise explicitly on chosen data.

    Shapes: x, y (B, C); logdet (B,).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.loc = nn.Parameter(torch.zeros(dim))
        self.scale = nn.Parameter(torch.ones(dim))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    @property
    def is_initialized(self) -> bool:
        return bool(self.initialized.item())

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set ``loc`` and ``scale`` from the statistics of a batch x: (B, C), B >= 2."""
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"ActNorm expects input of shape (B, {self.dim}), got {tuple(x.shape)}"
            )
        if x.shape[0] < 2:
            raise ValueError(
                f"ActNorm data-dependent init needs a batch of at least 2 samples, got {x.shape[0]}"
            )
        x = x.detach().to(self.loc.dtype)
        self.loc.copy_(-x.mean(dim=0))
        self.scale.copy_(1.0 / (x.std(dim=0) + 1e-6))
        self.initialized.fill_(1)
        logger.debug("ActNorm(%d) initialised from a batch of %d", self.dim, x.shape[0])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.training and not self.is_initialized:
            self.initialize(x)
        y = self.scale * (x + self.loc)
        logdet = torch.log(self.scale.abs()).sum().expand(x.shape[0])
        return y, logdet

    def inverse(self, y: Tensor) -> Tensor:
        return y / self.scale - self.loc

    def extra_repr(self) -> str:
        return f"{self.dim}"


class InvLeakyReLU(nn.Module):
    """Invertible leaky ReLU: ``y = x`` for x >= 0, ``alpha * x`` otherwise (alpha > 0).

    Unlike net2net's version (which reports a log-determinant of 0), the log-determinant
    here is exact: ``log(alpha)`` times the number of negative entries of each sample.
    Shapes: x, y (B, D); logdet (B,).
    """

    def __init__(self, alpha: float = 0.9) -> None:
        super().__init__()
        if not alpha > 0:
            raise ValueError(f"InvLeakyReLU alpha must be > 0 to be invertible, got {alpha}")
        self.alpha = alpha

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        negative = x < 0
        y = torch.where(negative, x * self.alpha, x)
        logdet = negative.to(x.dtype).sum(dim=1) * math.log(self.alpha)
        return y, logdet

    def inverse(self, y: Tensor) -> Tensor:
        # alpha > 0 keeps the sign, so the sign of y tells which branch produced it
        return torch.where(y < 0, y / self.alpha, y)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class IdentityActivation(nn.Module):
    """The ``activation="none"`` choice: identity with log-determinant 0. Shapes (B, D)."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x, x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor) -> Tensor:
        return y


class ConditionalDoubleCoupling(nn.Module):
    """Two conditional affine couplings, the second with the halves swapped (Dinh et al.,
    Real NVP, 2017; the double form as in net2net).

    Pass i (i = 0, 1; for i = 1 the halves are swapped first): split x into (x1, x2),
    ``h = cat(x1, c)``, ``x2' = x2 * exp(s_i(h)) + t_i(h)``, ``x = cat(x1, x2')``. The s-nets end
    in tanh, so every log-scale lies in (-1, 1). The output is ``cat(x2', x1')``: the halves
    stay swapped, as in net2net. The last Linear of every s- and t-net starts at zero, so both
    affine maps of a fresh block are identities and the block only swaps the halves (a stable,
    volume-preserving start for training).

    Arguments:
        dim: the (even) dimension D of x.
        cond_dim: the dimension E of the condition embedding c.
        hidden_dim: width of the s- and t-nets.
        depth: number of hidden-to-hidden layers of the s- and t-nets.

    Shapes: x, z (B, D); c (B, E); logdet (B,).
    """

    def __init__(self, dim: int, cond_dim: int, hidden_dim: int, depth: int) -> None:
        super().__init__()
        if dim < 2 or dim % 2 != 0:
            raise ValueError(
                f"ConditionalDoubleCoupling needs an even dim >= 2 to split into halves, got {dim}"
            )
        half = dim // 2
        self.dim = dim
        self.cond_dim = cond_dim
        self.s = nn.ModuleList(
            MLP(half + cond_dim, half, hidden_dim=hidden_dim, depth=depth, tanh=True)
            for _ in range(2)
        )
        self.t = nn.ModuleList(
            MLP(half + cond_dim, half, hidden_dim=hidden_dim, depth=depth) for _ in range(2)
        )
        for net in (*self.s, *self.t):
            nn.init.zeros_(net.last_linear.weight)
            nn.init.zeros_(net.last_linear.bias)

    @staticmethod
    def _swap(x: Tensor) -> Tensor:
        return torch.cat(torch.chunk(x, 2, dim=1)[::-1], dim=1)

    def forward(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        logdet = x.new_zeros(x.shape[0])
        for i in range(2):
            if i == 1:
                x = self._swap(x)
            x1, x2 = torch.chunk(x, 2, dim=1)
            h = torch.cat((x1, c), dim=1)
            log_scale = self.s[i](h)
            x2 = x2 * log_scale.exp() + self.t[i](h)
            x = torch.cat((x1, x2), dim=1)
            logdet = logdet + log_scale.sum(dim=1)
        return x, logdet

    def inverse(self, z: Tensor, c: Tensor) -> Tensor:
        for i in (1, 0):
            x1, x2 = torch.chunk(z, 2, dim=1)
            h = torch.cat((x1, c), dim=1)
            x2 = (x2 - self.t[i](h)) * torch.exp(-self.s[i](h))
            z = torch.cat((x1, x2), dim=1)
            if i == 1:
                z = self._swap(z)
        return z


class Shuffle(nn.Module):
    """A fixed random permutation of the dimensions; logdet 0.

    The permutation is drawn from ``generator`` (a seeded ``torch.Generator`` makes it
    reproducible) and stored as buffers, so it travels with the state dict.
    Shapes: x, y (B, D); logdet (B,).
    """

    def __init__(self, dim: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        idx = torch.randperm(dim, generator=generator)
        self.register_buffer("forward_shuffle_idx", idx)
        self.register_buffer("backward_shuffle_idx", torch.argsort(idx))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[:, self.forward_shuffle_idx], x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor) -> Tensor:
        return y[:, self.backward_shuffle_idx]


class FlowBlock(nn.Module):
    """ActNorm -> activation -> conditional double coupling -> permutation.

    Shapes: x, z (B, D); c (B, E); logdet (B,).
    """

    def __init__(
        self,
        dim: int,
        cond_dim: int,
        hidden_dim: int,
        hidden_depth: int,
        *,
        activation: str = "none",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.norm_layer = ActNorm(dim)
        self.activation = InvLeakyReLU() if activation == "lrelu" else IdentityActivation()
        self.coupling = ConditionalDoubleCoupling(dim, cond_dim, hidden_dim, hidden_depth)
        self.shuffle = Shuffle(dim, generator)

    def forward(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        x, logdet = self.norm_layer(x)
        x, ld = self.activation(x)
        logdet = logdet + ld
        x, ld = self.coupling(x, c)
        logdet = logdet + ld
        x, ld = self.shuffle(x)
        return x, logdet + ld

    def inverse(self, z: Tensor, c: Tensor) -> Tensor:
        z = self.shuffle.inverse(z)
        z = self.coupling.inverse(z, c)
        z = self.activation.inverse(z)
        return self.norm_layer.inverse(z)


class ConditionalFlow(nn.Module):
    """The cINN T(. | y): maps a latent z to a residual v = T(z | y) for dataset label y.

    Arguments:
        dim: latent dimension D (even).
        num_classes: number of datasets K; labels are integers in [0, K).
        n_flows: number of FlowBlocks.
        hidden_dim, hidden_depth: width and number of hidden-to-hidden layers of the s/t nets.
        embedding_dim: dimension E of the label embedding fed to every coupling.
        embedder_hidden_dim, embedder_depth: width and depth of the label embedder MLP.
        activation: "none" (identity, as in the paper's face models) or "lrelu".
        seed: seeds the permutations and the weight initialisation, so two flows built
            with the same arguments are identical; the global RNG is left untouched.

    Example::

        flow = ConditionalFlow(dim=64, num_classes=3)
        z, y = torch.randn(8, 64), torch.randint(0, 3, (8,))
        v, logdet = flow(z, y)                   # (8, 64), (8,)
        z_b = flow.inverse(v, 1)                 # project every sample to dataset 1
        loss = flow.nll_loss(z, y)               # nats per sample
    """

    def __init__(
        self,
        *,
        dim: int,
        num_classes: int,
        n_flows: int = 8,
        hidden_dim: int = 256,
        hidden_depth: int = 2,
        embedding_dim: int = 16,
        embedder_hidden_dim: int = 64,
        embedder_depth: int = 1,
        activation: str = "none",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if dim < 2 or dim % 2 != 0:
            raise ValueError(f"ConditionalFlow needs an even dim >= 2, got dim={dim}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if n_flows < 1:
            raise ValueError(f"n_flows must be >= 1, got {n_flows}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.dim = dim
        self.num_classes = num_classes
        self.n_flows = n_flows
        self.embedding_dim = embedding_dim

        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            # No BatchNorm in the embedder: the embedding of a label must not depend on
            # which other labels share the batch, or T(z | y) would not be a function of (z, y).
            self.embedder = MLP(
                num_classes, embedding_dim, hidden_dim=embedder_hidden_dim, depth=embedder_depth
            )
            self.sub_layers = nn.ModuleList(
                FlowBlock(
                    dim,
                    embedding_dim,
                    hidden_dim,
                    hidden_depth,
                    activation=activation,
                    generator=generator,
                )
                for _ in range(n_flows)
            )

    @property
    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _labels(self, y: Tensor | int, batch: int, device: torch.device) -> Tensor:
        """Validate labels and return them as a LongTensor (batch,) on ``device``."""
        if isinstance(y, int):
            y = torch.full((batch,), y, dtype=torch.long, device=device)
        if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
            raise TypeError(f"labels must be an integer tensor, got dtype {y.dtype}")
        if y.shape != (batch,):
            raise ValueError(f"labels must have shape ({batch},), got {tuple(y.shape)}")
        if batch > 0:
            low, high = int(y.min()), int(y.max())
            bad = low if low < 0 else high
            if low < 0 or high >= self.num_classes:
                raise ValueError(
                    f"label {bad} is out of range: labels must lie in [0, {self.num_classes})"
                    f" for num_classes={self.num_classes}"
                )
        return y.to(device=device, dtype=torch.long)

    def _check_input(self, x: Tensor, name: str) -> None:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"{name} must have shape (B, {self.dim}), got {tuple(x.shape)}")

    def embed(self, y: Tensor) -> Tensor:
        """Embed labels y: LongTensor (B,) with values in [0, K) -> (B, E)."""
        dtype = self.embedder.main[0].weight.dtype
        return self._embed(self._labels(y, y.shape[0], y.device), dtype)

    def _embed(self, y: Tensor, dtype: torch.dtype) -> Tensor:
        return self.embedder(F.one_hot(y, self.num_classes).to(dtype))

    def forward(self, z: Tensor, y: Tensor | int) -> tuple[Tensor, Tensor]:
        """v = T(z | y).

        Arguments:
            z: (B, D) latents.
            y: labels, LongTensor (B,) in [0, K), or one int for the whole batch.

        Returns:
            v: (B, D) and logdet: (B,) = log |det dv/dz|.
        """
        self._check_input(z, "z")
        c = self._embed(self._labels(y, z.shape[0], z.device), z.dtype)
        logdet = z.new_zeros(z.shape[0])
        for block in self.sub_layers:
            z, ld = block(z, c)
            logdet = logdet + ld
        return z, logdet

    def inverse(self, v: Tensor, y: Tensor | int) -> Tensor:
        """z = T^-1(v | y); v: (B, D), y as in ``forward``; returns (B, D)."""
        self._check_input(v, "v")
        c = self._embed(self._labels(y, v.shape[0], v.device), v.dtype)
        for block in reversed(self.sub_layers):
            v = block.inverse(v, c)
        return v

    def log_prob(self, z: Tensor, y: Tensor | int) -> Tensor:
        """log p(z | y) in nats: log N(T(z | y); 0, I) + log |det dT/dz|; returns (B,).

        The one definition of the flow's density: training, validation and every
        likelihood of :class:`~net2fair.models.translator.Translator` go through it."""
        v, logdet = self(z, y)
        log_base = -0.5 * v.pow(2).sum(dim=1) - 0.5 * self.dim * math.log(2.0 * math.pi)
        return log_base + logdet

    def nll_loss(self, z: Tensor, y: Tensor | int) -> Tensor:
        """Mean over the batch of -log p(z | y), in nats per sample (a scalar).

        ``bits_per_dim(loss, flow.dim)`` converts it to bits per dimension.
        """
        return -self.log_prob(z, y).mean()

    @torch.no_grad()
    def sample(
        self,
        y: Tensor | int,
        *,
        num_samples: int | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draw z = T^-1(temperature * v | y) with v ~ N(0, I).

        Arguments:
            y: labels, LongTensor (B,), or one int (then ``num_samples`` gives B).
            temperature: scales the base noise; below 1 trades diversity for typicality.
            generator: a CPU generator for reproducible noise.

        Returns:
            (B, D) latents on the flow's device and in its dtype.
        """
        ref = self.embedder.main[0].weight
        if isinstance(y, int):
            if num_samples is None:
                raise ValueError("num_samples is required when y is a single int label")
            batch = num_samples
        else:
            batch = y.shape[0]
        v = torch.randn((batch, self.dim), generator=generator, dtype=ref.dtype)
        return self.inverse(temperature * v.to(ref.device), y)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_classes={self.num_classes}, n_flows={self.n_flows}"
