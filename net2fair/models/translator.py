"""The trained pair: a frozen autoencoder and a conditional INN over its latent space.

Projection of an image from dataset a onto dataset b (Esser, Rombach, Ommer 2020,
"A Note on Data Biases in Generative Models"):

    z_a = E(x)           v = T(z_a | a)           z_b = T^-1(v | b)           x_b = D(z_b)

The residual v is what the datasets share; what changes from z_a to z_b is what dataset b
"believes" a face looks like. A trained model is a folder (see :meth:`Translator.save`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from net2fair import __version__
from net2fair.config import Config, ConfigError, config_from_yaml_text, to_yaml
from net2fair.data.images import load_image, tensor_to_pil, to_tensor
from net2fair.fileio import sha256_file, write_folder_atomically
from net2fair.models.autoencoder import Autoencoder
from net2fair.models.flow import ConditionalFlow

logger = logging.getLogger(__name__)

ImageLike = torch.Tensor | Image.Image | np.ndarray | str | Path
Images = ImageLike | Sequence[ImageLike]

MODEL_FILES = ("config.yaml", "model.safetensors")


class ModelLoadError(RuntimeError):
    """A model folder that cannot be used; the message names the file and the problem."""


class UnknownDomainError(ValueError):
    """A dataset name the model does not know; the message lists the known ones."""


def resolve_model_path(model: str | Path) -> Path:
    """A model folder path, or the name of a model shipped with the package (``demo``)."""
    path = Path(model)
    if path.is_dir():
        return path
    if str(model) in shipped_models():
        return Path(str(resources.files("net2fair") / "assets" / str(model)))
    if path.exists():
        raise ModelLoadError(f"{path}: not a model folder (expected a directory with config.yaml)")
    names = ", ".join(shipped_models()) or "none"
    raise ModelLoadError(f"{model}: no such model folder (shipped models: {names})")


def shipped_models() -> list[str]:
    """Names of the model folders inside the package."""
    root = resources.files("net2fair") / "assets"
    try:
        return sorted(
            p.name for p in root.iterdir() if p.is_dir() and (p / "config.yaml").is_file()
        )
    except (FileNotFoundError, NotADirectoryError):
        return []


def build_autoencoder(cfg: Config) -> Autoencoder:
    """The autoencoder a config describes (untrained)."""
    return Autoencoder(
        resolution=cfg.data.resolution,
        z_dim=cfg.autoencoder.z_dim,
        channels=list(cfg.autoencoder.channels),
        res_blocks=cfg.autoencoder.res_blocks,
    )


def build_flow(cfg: Config, num_classes: int) -> ConditionalFlow:
    """The conditional INN a config describes (untrained)."""
    f = cfg.flow
    return ConditionalFlow(
        dim=cfg.autoencoder.z_dim,
        num_classes=num_classes,
        n_flows=f.n_flows,
        hidden_dim=f.hidden_dim,
        hidden_depth=f.hidden_depth,
        embedding_dim=f.embedding_dim,
        embedder_hidden_dim=f.embedder_hidden_dim,
        embedder_depth=f.embedder_depth,
        activation=f.activation,
        seed=cfg.seed,
    )


class Translator(nn.Module):
    """Frozen autoencoder + conditional INN + dataset names and priors.

    Every method takes images as a tensor ``(B, 3, H, W)`` or ``(3, H, W)`` in [-1, 1],
    a PIL image, a uint8 array ``(H, W, 3)``, a path, or a list of those; images not at the
    model's resolution are resized (shorter side) and centre-cropped. Outputs are tensors
    ``(B, 3, R, R)`` in [-1, 1] on the model's device.
    """

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        if len(cfg.model.domains) < 2:
            raise ConfigError("a translator needs at least two datasets in model.domains")
        self.cfg = cfg
        self.autoencoder = build_autoencoder(cfg)
        self.flow = build_flow(cfg, len(cfg.model.domains))
        k, d = len(cfg.model.domains), cfg.autoencoder.z_dim
        # Latent statistics of each training set (mean and covariance of the encoder means),
        # kept for Frechet distances in reports; zero until training fills them.
        self.register_buffer("stats_mean", torch.zeros(k, d))
        self.register_buffer("stats_cov", torch.zeros(k, d, d))
        self.register_buffer("stats_count", torch.zeros(k))

    # ----------------------------------------------------------------------------- basics
    @property
    def domains(self) -> list[str]:
        return list(self.cfg.model.domains)

    @property
    def priors(self) -> torch.Tensor:
        p = self.cfg.model.priors or [1.0 / len(self.domains)] * len(self.domains)
        return torch.tensor(p, dtype=torch.float32, device=self.device)

    @property
    def resolution(self) -> int:
        return self.cfg.data.resolution

    @property
    def z_dim(self) -> int:
        return self.cfg.autoencoder.z_dim

    @property
    def device(self) -> torch.device:
        return self.stats_mean.device

    def domain_index(self, name: str | int) -> int:
        """Index of a dataset by name (or a valid index)."""
        if isinstance(name, int) and 0 <= name < len(self.domains):
            return name
        if name in self.domains:
            return self.domains.index(name)  # type: ignore[arg-type]
        raise UnknownDomainError(
            f"unknown dataset '{name}'; this model knows: {', '.join(self.domains)}"
        )

    def _targets(self, targets: str | Sequence[str] | None) -> list[str]:
        if targets is None or targets == "all":
            return self.domains
        if isinstance(targets, str):
            targets = [targets]
        return [self.domains[self.domain_index(t)] for t in targets]

    def freeze(self) -> Translator:
        """Inference mode for good: no gradients, eval-mode layers."""
        self.requires_grad_(False)
        return self.eval()

    # ------------------------------------------------------------------------ image input
    def prepare(self, images: Images) -> torch.Tensor:
        """Any accepted image input -> ``(B, 3, R, R)`` float tensor in [-1, 1] on the device."""
        if isinstance(images, torch.Tensor):
            x = images.unsqueeze(0) if images.dim() == 3 else images
            if x.dim() != 4 or x.shape[1] != 3:
                raise ValueError(
                    f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}"
                )
            if x.shape[-2:] != (self.resolution, self.resolution):
                x = torch.stack([to_tensor(tensor_to_pil(im), self.resolution) for im in x.cpu()])
            return x.to(self.device, torch.float32)
        if isinstance(images, np.ndarray) and images.ndim == 4:  # a (B, H, W, 3) batch
            images = list(images)
        items = [images] if isinstance(images, (Image.Image, np.ndarray, str, Path)) else images
        out = []
        for item in items:
            if isinstance(item, (str, Path)):
                item = load_image(item)
            elif isinstance(item, np.ndarray):
                item = Image.fromarray(item)
            elif isinstance(item, torch.Tensor):
                item = tensor_to_pil(item)
            out.append(to_tensor(item.convert("RGB"), self.resolution))
        if not out:
            raise ValueError("no images given")
        return torch.stack(out).to(self.device)

    # --------------------------------------------------------------------------- latents
    @torch.inference_mode()
    def encode(self, images: Images) -> torch.Tensor:
        """Images -> encoder means ``(B, z_dim)`` (the posterior's mode)."""
        return self.autoencoder.encode(self.prepare(images)).mean

    @torch.inference_mode()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, z_dim)`` -> images ``(B, 3, R, R)`` clamped to [-1, 1]."""
        return self.autoencoder.decode(z.to(self.device)).clamp(-1.0, 1.0)

    def _labels(self, domain: str | int, n: int) -> torch.Tensor:
        return torch.full((n,), self.domain_index(domain), dtype=torch.long, device=self.device)

    @torch.inference_mode()
    def project_latents(
        self,
        z: torch.Tensor,
        source: str,
        targets: str | Sequence[str] | None = "all",
        alpha: float = 1.0,
    ) -> dict[str, torch.Tensor]:
        """Latents of dataset ``source`` -> their counterparts in every target, batched.

        One forward pass gives the residuals; the K inverse passes run as one batch of
        K * B. ``alpha`` in [0, 1] interpolates between the input (0) and the projection (1).
        """
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        names = self._targets(targets)
        b = z.shape[0]
        v, _ = self.flow(z, self._labels(source, b))
        ys = torch.cat([self._labels(t, b) for t in names])
        zt = self.flow.inverse(v.repeat(len(names), 1), ys)
        zt = (1.0 - alpha) * z.repeat(len(names), 1) + alpha * zt
        return dict(zip(names, zt.split(b)))

    @torch.inference_mode()
    def project(
        self,
        images: Images,
        source: str,
        targets: str | Sequence[str] | None = "all",
        alpha: float = 1.0,
    ) -> dict[str, torch.Tensor]:
        """Project images of dataset ``source`` onto ``targets`` ("all", a name or a list).

        Returns ``{target: (B, 3, R, R) in [-1, 1]}``; one encode, one forward pass, and the
        inverse passes and decodes of all targets in one batch.
        """
        z = self.encode(images)
        zs = self.project_latents(z, source, targets, alpha)
        names = list(zs)
        x = self.decode(torch.cat([zs[n] for n in names]))
        return dict(zip(names, x.split(z.shape[0])))

    @torch.inference_mode()
    def sample_latents(
        self,
        domains: str | Sequence[str] | None = "all",
        n: int = 8,
        temperature: float = 1.0,
        seed: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Draw ``n`` residuals v ~ N(0, temperature^2 I) and map the SAME residuals into
        every requested dataset: row i shows "the same face" in each of them."""
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        v = torch.randn(n, self.z_dim, generator=g).to(self.device) * temperature
        names = self._targets(domains)
        ys = torch.cat([self._labels(d, n) for d in names])
        z = self.flow.inverse(v.repeat(len(names), 1), ys)
        return dict(zip(names, z.split(n)))

    @torch.inference_mode()
    def sample(
        self, domain: str, n: int = 8, temperature: float = 1.0, seed: int | None = None
    ) -> torch.Tensor:
        """``n`` new images of ``domain``: ``(n, 3, R, R)`` in [-1, 1]."""
        z = self.sample_latents(domain, n, temperature, seed)[
            self.domains[self.domain_index(domain)]
        ]
        return self.decode(z)

    @torch.inference_mode()
    def sample_shared(
        self,
        domains: str | Sequence[str] | None = "all",
        n: int = 4,
        temperature: float = 1.0,
        seed: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Like :meth:`sample_latents`, decoded: ``{domain: (n, 3, R, R)}``."""
        zs = self.sample_latents(domains, n, temperature, seed)
        names = list(zs)
        x = self.decode(torch.cat([zs[k] for k in names]))
        return dict(zip(names, x.split(n)))

    # ------------------------------------------------------------------------ likelihoods
    @torch.inference_mode()
    def latent_log_likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z | y) in nats for every dataset: ``(B, K)``."""
        b, k = z.shape[0], len(self.domains)
        ys = torch.arange(k, device=self.device).repeat_interleave(b)
        lp = self.flow.log_prob(z.repeat(k, 1), ys)
        return lp.view(k, b).t()

    @torch.inference_mode()
    def log_likelihood(self, images: Images, domain: str | None = None) -> torch.Tensor:
        """Exact log-density (nats) of each image's latent code under each dataset.

        Returns ``(B,)`` for one ``domain``, else ``(B, K)``. It is the density of the
        encoder mean, so compare it across datasets, not across autoencoders.
        """
        ll = self.latent_log_likelihood(self.encode(images))
        return ll[:, self.domain_index(domain)] if domain is not None else ll

    @torch.inference_mode()
    def latent_posterior(self, z: torch.Tensor) -> torch.Tensor:
        ll = self.latent_log_likelihood(z)
        return torch.softmax(ll + self.priors.log(), dim=1)

    @torch.inference_mode()
    def posterior(self, images: Images) -> torch.Tensor:
        """p(dataset | image) by Bayes with the training priors: ``(B, K)``, rows sum to 1."""
        return self.latent_posterior(self.encode(images))

    def bits_per_dim(self, log_likelihood: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood in bits per latent dimension."""
        return -log_likelihood / (self.z_dim * math.log(2.0))

    # ---------------------------------------------------------------------------- storage
    def save(
        self,
        path: str | Path,
        *,
        metrics: dict | None = None,
        samples: Image.Image | None = None,
        dtype: torch.dtype | None = None,
    ) -> Path:
        """Write the model folder atomically: config.yaml, model.safetensors, metrics.json,
        samples.png. ``dtype=torch.float16`` halves the file; loading restores float32."""

        def fill(tmp: Path) -> None:
            tensors = {}
            for key, t in self.state_dict().items():
                t = t.detach().cpu()
                if dtype is not None and t.is_floating_point() and not key.startswith("stats_"):
                    t = t.to(dtype)
                tensors[key] = t.contiguous()
            save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
            self.cfg.model.package_version = __version__
            self.cfg.model.weights_sha256 = sha256_file(tmp / "model.safetensors")
            (tmp / "config.yaml").write_text(to_yaml(self.cfg))
            (tmp / "metrics.json").write_text(json.dumps(metrics or {}, indent=2) + "\n")
            if samples is not None:
                samples.save(tmp / "samples.png")

        path = write_folder_atomically(path, fill)
        return path

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device = "cpu") -> Translator:
        """Load a model folder (or a shipped model by name). Never runs pickled code."""
        folder = resolve_model_path(path)
        missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
        if missing:
            raise ModelLoadError(f"{folder}: model folder is missing {', '.join(missing)}")
        try:
            cfg = config_from_yaml_text(
                (folder / "config.yaml").read_text(), str(folder / "config.yaml")
            )
        except ConfigError as e:
            msg = str(e)
            where = str(folder / "config.yaml")
            raise ModelLoadError(msg if msg.startswith(where) else f"{where}: {msg}") from None
        weights = folder / "model.safetensors"
        if cfg.model.weights_sha256 and sha256_file(weights) != cfg.model.weights_sha256:
            raise ModelLoadError(
                f"{weights}: checksum does not match config.yaml (file truncated or modified)"
            )
        try:
            state = load_file(str(weights))
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelLoadError(f"{weights}: unreadable weights ({e})") from None
        try:
            model = cls(cfg)
        except (ConfigError, ValueError) as e:
            raise ModelLoadError(f"{folder / 'config.yaml'}: {e}") from None
        own = model.state_dict()
        lost = sorted(set(own) - set(state))
        extra = sorted(set(state) - set(own))
        if lost or extra:
            raise ModelLoadError(
                f"{weights}: weights do not match config.yaml "
                f"(missing {len(lost)} e.g. {lost[:3]}, unexpected {len(extra)} e.g. {extra[:3]})"
            )
        for key, t in state.items():
            if t.shape != own[key].shape:
                raise ModelLoadError(
                    f"{weights}: '{key}' has shape {tuple(t.shape)}, config.yaml implies "
                    f"{tuple(own[key].shape)}"
                )
            state[key] = t.to(own[key].dtype)
        model.load_state_dict(state, strict=True)
        model = model.to(device).freeze()
        # channels_last convolutions: about 1.25x faster projection at 256 px on CPU (less,
        # and noisy, at 64 px), measured side by side by bench/performance.py; the results
        # do not depend on it.
        model.autoencoder.to(memory_format=torch.channels_last)
        return model

    @staticmethod
    def to_pil(images: torch.Tensor) -> list[Image.Image]:
        """``(B, 3, H, W)`` in [-1, 1] -> PIL images."""
        return [tensor_to_pil(x) for x in images.detach().cpu()]
