"""Typed configuration: one structured OmegaConf schema, layered YAML, dot-list overrides.

The schema below is also the format of the ``config.yaml`` saved with every run and every
model folder, so a model always carries the exact architecture it was built with.

Layering (later wins): schema defaults -> YAML files -> ``key=value`` overrides. Unknown
keys and wrong types are :class:`ConfigError` s that name the key and suggest valid ones.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    MissingMandatoryValue,
    OmegaConfBaseException,
)

#: Bumped when the saved config or weight layout changes incompatibly.
FORMAT_VERSION = 1


class ConfigError(ValueError):
    """A configuration problem; the message is one line meant for the user."""


@dataclass
class DataConfig:
    #: dataset name -> image folder (recursive). At least two for training.
    domains: dict[str, str] = field(default_factory=dict)
    resolution: int = 64
    #: random horizontal flips during autoencoder training (and flipped latents in the cache)
    flip: bool = True
    #: share of each folder held out for validation, chosen by a stable hash of the path
    val_fraction: float = 0.05
    #: decode every image once into memory (None: when it fits in 2 GiB)
    preload: bool | None = None
    num_workers: int = 0


@dataclass
class AutoencoderConfig:
    z_dim: int = 64
    #: channel width after each stride-2 step (64 px -> 32 -> 16 -> 8 -> 4); the list is
    #: extended with its last value or cut to the number of steps the resolution needs.
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    res_blocks: int = 1


@dataclass
class FlowConfig:
    n_flows: int = 8
    hidden_dim: int = 256
    hidden_depth: int = 2
    embedding_dim: int = 16
    embedder_hidden_dim: int = 64
    embedder_depth: int = 1
    #: "none" (identity, as in the paper's face models) or "lrelu"
    activation: str = "none"


@dataclass
class LossConfig:
    l1_weight: float = 1.0
    perceptual_weight: float = 1.0
    lpips_net: str = "alex"
    kl_weight: float = 1.0e-6
    disc_weight: float = 0.5
    #: autoencoder step at which the adversarial loss is switched on
    disc_start: int = 2000
    disc_channels: int = 32
    disc_layers: int = 2
    #: stage 2: weight of the transport cost, the mean squared distance a projection
    #: T^-1(T(z | a) | b) moves z (in units of the latents' variance). 0 = maximum
    #: likelihood alone, as in the paper; > 0 prefers, among the maps that carry one
    #: dataset onto another, those that move the code least, which keeps shared content.
    transport_weight: float = 0.0
    #: stage-2 steps over which the transport weight falls linearly to 0, after which the
    #: flow is fitted by likelihood alone (None: the weight stays constant)
    transport_steps: int | None = None
    #: stage 1: weight of the equivariance prior (net2fair.models.equivariance): the code
    #: of an image warped by a random shift, scaling and rotation should move along one
    #: linear map of the warp's parameters, the same in every dataset, so that position,
    #: size and tilt have shared coordinates a projection can keep. 0 = off (the paper)
    equivariance_weight: float = 0.0
    #: the prior is off before this autoencoder step and its weight rises linearly to
    #: equivariance_weight over the next equivariance_ramp steps: on a code that does not
    #: reconstruct anything yet, the warps' effect is noise, and the prior stalls learning
    equivariance_start: int = 0
    equivariance_ramp: int = 0
    #: largest warp of that prior: shift (fraction of the side), relative size change and
    #: rotation (degrees); match them to how much aligned faces vary in the data
    equivariance_shift: float = 0.04
    equivariance_scale: float = 0.1
    equivariance_rotation: float = 15.0
    #: mirror half of the warped views too, and ask the first this many code dimensions to
    #: change sign under the mirror (0 = no mirror): the mirror-odd content (horizontal
    #: position, yaw, tilt) then has one origin, the frontal centred face, in every dataset
    equivariance_odd_dims: int = 0


@dataclass
class StageConfig:
    steps: int = 1000
    batch_size: int = 64
    lr: float = 2.0e-4
    warmup_steps: int = 0
    #: cosine decay from lr to lr * min_lr_ratio over the steps (1.0 = constant)
    min_lr_ratio: float = 1.0
    log_every: int = 25
    val_every: int = 500
    ckpt_every: int = 500
    #: validation batches (of batch_size) per validation; 0 = the whole split
    val_batches: int = 8


@dataclass
class TrainConfig:
    autoencoder: StageConfig = field(
        default_factory=lambda: StageConfig(steps=3000, batch_size=64, lr=2.0e-4)
    )
    cinn: StageConfig = field(
        default_factory=lambda: StageConfig(
            steps=4000, batch_size=256, lr=1.0e-3, warmup_steps=100, min_lr_ratio=0.05
        )
    )
    #: "32"; "bf16": the autoencoder's forward pass under bfloat16 autocast (CUDA and CPU);
    #: "16-mixed": float16 autocast with loss scaling (CUDA only; float32 on CPU)
    precision: str = "32"
    #: a model folder or run folder whose autoencoder stage 2 starts from (skips stage 1)
    autoencoder_from: str | None = None


@dataclass
class ModelMeta:
    """Filled in by training: what the model knows about its datasets."""

    domains: list[str] = field(default_factory=list)
    priors: list[float] = field(default_factory=list)
    package_version: str = ""
    format_version: int = FORMAT_VERSION
    #: free text: where the data came from (folders, benchmark seed)
    provenance: str = ""
    #: sha256 of model.safetensors, checked on load (catches truncation and tampering)
    weights_sha256: str = ""


@dataclass
class Config:
    name: str = "net2fair"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    model: ModelMeta = field(default_factory=ModelMeta)


def _valid_keys(node: Any, prefix: str = "") -> list[str]:
    keys: list[str] = []
    if isinstance(node, DictConfig):
        for k in node.keys():
            full = f"{prefix}{k}"
            keys.append(full)
            child = node._get_node(k)
            if isinstance(child, DictConfig) and not full.startswith("data.domains"):
                keys.extend(_valid_keys(child, full + "."))
    return keys


def _explain(err: OmegaConfBaseException, schema: DictConfig, source: str) -> ConfigError:
    key = getattr(err, "full_key", None) or ""
    msg = getattr(err, "msg", str(err)).splitlines()[0]
    if isinstance(err, MissingMandatoryValue):
        return ConfigError(f"{source}: '{key}' is not set (pass {key}=VALUE)")
    if isinstance(err, (ConfigKeyError, ConfigAttributeError)) and key:
        close = difflib.get_close_matches(key, _valid_keys(schema), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        section = key.rsplit(".", 1)[0] if "." in key else ""
        siblings = [
            k.rsplit(".", 1)[-1]
            for k in _valid_keys(schema)
            if (k.rsplit(".", 1)[0] if "." in k else "") == section
        ]
        return ConfigError(
            f"{source}: unknown config key '{key}'{hint} (valid keys here: {', '.join(siblings)})"
        )
    where = f" '{key}'" if key else ""
    return ConfigError(f"{source}: bad value for config key{where}: {msg}")


def load_config(
    files: Sequence[str | Path] = (), overrides: Iterable[str] = (), *, validate: bool = True
) -> Config:
    """Merge schema defaults, YAML ``files`` and ``key=value`` ``overrides``; return a typed config.

    Raises :class:`ConfigError` (one line, naming the key) on unknown keys, wrong types,
    unreadable files or invalid values.
    """
    schema = OmegaConf.structured(Config)
    cfg = schema
    for f in files:
        path = Path(f)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            loaded = OmegaConf.load(path)
        except Exception as e:  # yaml errors come in many classes
            raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        try:
            cfg = OmegaConf.merge(cfg, loaded)
        except OmegaConfBaseException as e:
            raise _explain(e, schema, str(path)) from None
    overrides = list(overrides)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    except OmegaConfBaseException as e:
        raise _explain(e, schema, "override") from None
    try:
        result: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    except OmegaConfBaseException as e:
        raise _explain(e, schema, "config") from None
    if validate:
        validate_config(result)
    return result


def validate_config(cfg: Config) -> None:
    """Check value ranges that types alone do not; raise :class:`ConfigError`."""
    res = cfg.data.resolution
    if res < 32 or res > 256 or 2 ** round(math.log2(res)) != res:
        raise ConfigError(f"data.resolution must be a power of two from 32 to 256, got {res}")
    if cfg.autoencoder.z_dim < 2 or cfg.autoencoder.z_dim % 2:
        raise ConfigError(
            f"autoencoder.z_dim must be an even number >= 2, got {cfg.autoencoder.z_dim}"
        )
    if not cfg.autoencoder.channels or min(cfg.autoencoder.channels) < 1:
        raise ConfigError("autoencoder.channels must be a non-empty list of positive widths")
    if cfg.flow.activation not in ("none", "lrelu"):
        raise ConfigError(f"flow.activation must be 'none' or 'lrelu', got '{cfg.flow.activation}'")
    if not 0.0 <= cfg.data.val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction must be in [0, 1), got {cfg.data.val_fraction}")
    if cfg.train.precision not in ("32", "bf16", "16-mixed"):
        raise ConfigError(
            f"train.precision must be '32', 'bf16' or '16-mixed', got '{cfg.train.precision}'"
        )
    if cfg.loss.lpips_net not in ("alex", "vgg"):
        raise ConfigError(f"loss.lpips_net must be 'alex' or 'vgg', got '{cfg.loss.lpips_net}'")
    if not 0.0 <= cfg.loss.transport_weight < math.inf:
        raise ConfigError(
            f"loss.transport_weight must be a finite number >= 0, got {cfg.loss.transport_weight}"
        )
    if cfg.loss.transport_steps is not None and cfg.loss.transport_steps < 1:
        raise ConfigError(
            f"loss.transport_steps must be >= 1 (or null), got {cfg.loss.transport_steps}"
        )
    for key in ("equivariance_weight", "equivariance_shift", "equivariance_scale"):
        value = getattr(cfg.loss, key)
        if not 0.0 <= value < math.inf:
            raise ConfigError(f"loss.{key} must be a finite number >= 0, got {value}")
    if not 0.0 <= cfg.loss.equivariance_rotation <= 180.0:
        raise ConfigError(
            f"loss.equivariance_rotation must be in [0, 180] degrees, got "
            f"{cfg.loss.equivariance_rotation}"
        )
    if cfg.loss.equivariance_start < 0 or cfg.loss.equivariance_ramp < 0:
        raise ConfigError("loss.equivariance_start and loss.equivariance_ramp must be >= 0")
    if not 0 <= cfg.loss.equivariance_odd_dims <= cfg.autoencoder.z_dim:
        raise ConfigError(
            f"loss.equivariance_odd_dims must be in [0, autoencoder.z_dim = "
            f"{cfg.autoencoder.z_dim}], got {cfg.loss.equivariance_odd_dims}"
        )
    if cfg.loss.equivariance_weight > 0 and cfg.train.autoencoder.batch_size < 6:
        raise ConfigError(
            "loss.equivariance_weight > 0 fits one linear map per batch of 4 warp parameters "
            f"and an offset: train.autoencoder.batch_size must be >= 6, got "
            f"{cfg.train.autoencoder.batch_size}"
        )
    for stage in ("autoencoder", "cinn"):
        s: StageConfig = getattr(cfg.train, stage)
        if s.steps < 0 or s.batch_size < 1 or s.lr <= 0:
            raise ConfigError(f"train.{stage}: steps >= 0, batch_size >= 1 and lr > 0 required")
    for name in cfg.data.domains:
        if not name or any(c in name for c in "/\\=") or name == "all":
            raise ConfigError(f"data.domains: '{name}' is not a usable dataset name")
    if cfg.model.format_version > FORMAT_VERSION:
        raise ConfigError(
            f"model format version {cfg.model.format_version} is newer than this net2fair "
            f"understands ({FORMAT_VERSION}); upgrade net2fair"
        )


def to_yaml(cfg: Config) -> str:
    """The resolved config as YAML text (what ``config.yaml`` holds)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def config_from_yaml_text(text: str, source: str) -> Config:
    """Parse a saved ``config.yaml`` against the schema (used when loading models)."""
    schema = OmegaConf.structured(Config)
    try:
        cfg = OmegaConf.merge(schema, OmegaConf.create(text))
    except OmegaConfBaseException as e:
        raise _explain(e, schema, source) from None
    except Exception as e:
        raise ConfigError(f"{source}: not valid YAML ({str(e).splitlines()[0]})") from None
    result: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    validate_config(result)
    return result
