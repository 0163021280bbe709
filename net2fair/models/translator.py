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
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from net2fair import __version__
from net2fair.config import (
    Config,
    ConfigError,
    config_from_yaml_text,
    to_yaml,
    validate_config,
)
from net2fair.data.images import load_image, tensor_to_pil, to_tensor
from net2fair.fileio import sha256_file, write_folder_atomically
from net2fair.models.autoencoder import Autoencoder
from net2fair.models.flow import ConditionalFlow
from net2fair.models.flow import bits_per_dim as _bits_per_dim
from net2fair.models.paper_autoencoder import PaperAutoencoder

logger = logging.getLogger(__name__)

ImageLike = torch.Tensor | Image.Image | np.ndarray | str | Path
Images = ImageLike | Sequence[ImageLike]

MODEL_FILES = ("config.yaml", "model.safetensors")
#: written beside them by :meth:`Translator.save`
MODEL_EXTRA_FILES = ("metrics.json", "samples.png")


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


def build_autoencoder(cfg: Config) -> Autoencoder | PaperAutoencoder:
    """The autoencoder a config describes (untrained): ``autoencoder.arch`` picks the lean
    convolutional VAE ("conv") or the paper's ResNet + BigGAN ("net2net")."""
    a = cfg.autoencoder
    if a.arch == "net2net":
        return PaperAutoencoder(
            resolution=cfg.data.resolution,
            z_dim=a.z_dim,
            resnet=a.resnet,
            chn=a.biggan_chn,
            imagenet_normalize=a.imagenet_normalize,
        )
    return Autoencoder(
        resolution=cfg.data.resolution,
        z_dim=cfg.autoencoder.z_dim,
        channels=list(cfg.autoencoder.channels),
        res_blocks=cfg.autoencoder.res_blocks,
        decoder_res_blocks=list(cfg.autoencoder.decoder_res_blocks),
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
        """Latents ``(B, z_dim)`` -> images ``(B, 3, R, R)`` clamped to [-1, 1].

        Decoded in micro-batches of the autoencoder's ``max_decode_batch`` (when it has
        one): the paper's decoder needs 256 MiB per image for its attention alone.
        """
        z = z.to(self.device)
        step = getattr(self.autoencoder, "max_decode_batch", None) or max(1, z.shape[0])
        parts = [self.autoencoder.decode(chunk) for chunk in z.split(step)]
        return torch.cat(parts).clamp(-1.0, 1.0)

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
        *,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Draw ``n`` residuals v ~ N(0, temperature^2 I) and map the SAME residuals into
        every requested dataset: row i shows "the same face" in each of them.

        ``generator`` (a CPU generator) instead of ``seed`` continues a stream: drawing
        n = 1000 in batches of 100 from one generator gives the same residuals as one call.
        """
        if not (math.isfinite(temperature) and 0.0 < temperature <= 100.0):
            raise ValueError(f"temperature must be in (0, 100], got {temperature}")
        g = generator
        if g is None and seed is not None:
            g = torch.Generator().manual_seed(seed)
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
        *,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Like :meth:`sample_latents`, decoded: ``{domain: (n, 3, R, R)}``."""
        zs = self.sample_latents(domains, n, temperature, seed, generator=generator)
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
        """p(dataset | z) by Bayes with the training priors: ``(B, K)``, rows sum to 1."""
        return self.posterior_from_log_likelihood(self.latent_log_likelihood(z))

    def posterior_from_log_likelihood(self, log_likelihood: torch.Tensor) -> torch.Tensor:
        """p(dataset | z) from the ``(B, K)`` log p(z | dataset) of
        :meth:`latent_log_likelihood`, by Bayes with the training priors (no flow pass):
        callers that need both get them from one pass. Computed in the dtype and on the
        device of ``log_likelihood``."""
        priors = self.priors.to(log_likelihood)
        return torch.softmax(log_likelihood + priors.log(), dim=1)

    @torch.inference_mode()
    def posterior(self, images: Images) -> torch.Tensor:
        """p(dataset | image) by Bayes with the training priors: ``(B, K)``, rows sum to 1."""
        return self.latent_posterior(self.encode(images))

    def bits_per_dim(self, log_likelihood: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood in bits per latent dimension."""
        return _bits_per_dim(-log_likelihood, self.z_dim)

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
        samples.png. ``dtype=torch.float16`` halves the file; loading restores float32.

        The config is validated first (:class:`ConfigError`), so that nothing is written
        that :meth:`load` would refuse.
        """
        validate_config(self.cfg)

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

        # an existing folder is replaced only if it is a model folder (nothing else in it)
        return write_folder_atomically(path, fill, legacy=(*MODEL_FILES, *MODEL_EXTRA_FILES))

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device = "cpu") -> Translator:
        """Load a model folder (or a shipped model by name). Never runs pickled code.

        Checked, in this order, each a one-line :class:`ModelLoadError` naming the file:
        config.yaml is a plain config (no interpolation, valid names and bounded sizes,
        see :func:`net2fair.config.validate_config`) with a ``model.weights_sha256`` line;
        model.safetensors matches that checksum; its header holds exactly the tensors, of
        the shapes, the config implies (computed without allocating them); then the model
        is built, the weights loaded, and their values checked (finite, permutations).
        """
        folder = resolve_model_path(path)
        missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
        if missing:
            raise ModelLoadError(f"{folder}: model folder is missing {', '.join(missing)}")
        where = folder / "config.yaml"
        cfg = _read_model_config(where)
        weights = folder / "model.safetensors"
        if not cfg.model.weights_sha256:
            raise ModelLoadError(
                f"{where}: the checksum line (model.weights_sha256) is missing; it is required "
                "to check model.safetensors (restore it, or re-save the model)"
            )
        try:
            actual = sha256_file(weights)
        except OSError as e:
            raise ModelLoadError(f"{weights}: unreadable weights ({e.strerror or e})") from None
        if actual != cfg.model.weights_sha256:
            raise ModelLoadError(
                f"{weights}: checksum does not match config.yaml (file truncated or modified)"
            )
        expected = _expected_tensors(cls, cfg, where)
        _check_header(weights, expected)
        try:
            state = load_file(str(weights))
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelLoadError(f"{weights}: unreadable weights ({_one_line(e)})") from None
        for key, t in state.items():
            dtype = expected[key][1]
            if dtype.is_floating_point and not bool(torch.isfinite(t).all()):
                raise ModelLoadError(f"{weights}: '{key}' holds NaN or infinite values")
            state[key] = t.to(dtype)
        _check_permutations(state, weights)
        try:
            model = cls(cfg)
            model.load_state_dict(state, strict=True)
        except (ConfigError, ValueError, RuntimeError) as e:
            raise ModelLoadError(f"{where}: {_one_line(e)}") from None
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


#: a model's config.yaml is a few kB; anything far larger is not one
MAX_CONFIG_BYTES = 1 << 20


def _one_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message (its class name if it has none),
    with non-printable characters escaped."""
    line = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), type(err).__name__)
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in line)


def _read_model_config(where: Path) -> Config:
    """A model folder's config.yaml, parsed and validated (:class:`ModelLoadError` if not)."""
    try:
        size = where.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ModelLoadError(
                f"{where}: {size} bytes is too large for a model's config.yaml "
                f"(at most {MAX_CONFIG_BYTES})"
            )
        text = where.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModelLoadError(f"{where}: not UTF-8 text") from None
    except OSError as e:
        raise ModelLoadError(f"{where}: unreadable ({e.strerror or e})") from None
    try:
        return config_from_yaml_text(text, str(where))
    except ConfigError as e:
        msg = str(e)  # one line already
        raise ModelLoadError(msg if msg.startswith(str(where)) else f"{where}: {msg}") from None


def _expected_tensors(
    cls: type[Translator], cfg: Config, where: Path
) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Name -> (shape, dtype) of the state dict ``cfg`` implies, built on the meta device
    (no memory is allocated for the tensors, and the global RNG is left as it was)."""
    try:
        with torch.device("meta"), torch.random.fork_rng(devices=[]):
            skeleton = cls(cfg)
    except (ConfigError, ValueError, RuntimeError, TypeError) as e:
        raise ModelLoadError(f"{where}: {_one_line(e)}") from None
    return {k: (tuple(v.shape), v.dtype) for k, v in skeleton.state_dict().items()}


_FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}
_INT_DTYPES = {"I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64"}


def _check_header(weights: Path, expected: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> None:
    """Compare the safetensors header (names, shapes, dtypes) with ``expected`` before any
    tensor is read, so a config and weights that disagree fail fast and allocate nothing."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            header = {}
            for key in f.keys():
                sl = f.get_slice(key)
                header[key] = (tuple(sl.get_shape()), sl.get_dtype())
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelLoadError(f"{weights}: unreadable weights ({_one_line(e)})") from None
    lost = sorted(set(expected) - set(header))
    extra = sorted(set(header) - set(expected))
    if lost or extra:
        raise ModelLoadError(
            f"{weights}: weights do not match config.yaml (missing {len(lost)} e.g. "
            f"{_show_keys(lost)}, unexpected {len(extra)} e.g. {_show_keys(extra)})"
        )
    for key, (shape, dtype) in expected.items():
        got_shape, got_dtype = header[key]
        if got_shape != shape:
            raise ModelLoadError(
                f"{weights}: '{key}' has shape {got_shape}, config.yaml implies {shape}"
            )
        allowed = _FLOAT_DTYPES if dtype.is_floating_point else _INT_DTYPES
        if got_dtype not in allowed:
            raise ModelLoadError(
                f"{weights}: '{key}' is stored as {got_dtype}, expected one of "
                f"{', '.join(sorted(allowed))}"
            )


def _show_keys(keys: list[str]) -> str:
    return "[" + ", ".join(ascii(k)[:80] for k in keys[:3]) + "]"


def _check_permutations(state: dict[str, torch.Tensor], weights: Path) -> None:
    """Every flow permutation in ``state`` is a permutation with its inverse beside it
    (indices out of range would fail only later, in the middle of a projection)."""
    for key, idx in state.items():
        if not key.endswith("forward_shuffle_idx"):
            continue
        back = state.get(key.replace("forward_shuffle_idx", "backward_shuffle_idx"))
        n = idx.numel()
        if not torch.equal(torch.sort(idx).values, torch.arange(n, dtype=idx.dtype)) or (
            back is None or not torch.equal(back, torch.argsort(idx))
        ):
            raise ModelLoadError(
                f"{weights}: '{key}' is not a permutation with its inverse beside it"
            )
