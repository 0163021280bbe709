"""Typed configuration: one structured OmegaConf schema, layered YAML, dot-list overrides.

The schema below is also the format of the ``config.yaml`` saved with every run and every
model folder, so a model always carries the exact architecture it was built with.

Layering (later wins): schema defaults -> YAML files -> ``key=value`` overrides. Unknown
keys and wrong types are :class:`ConfigError` s that name the key and suggest valid ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import types
import typing
from collections.abc import Iterable, Iterator, Sequence
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


#: longest dataset name (names become folder names of outputs)
MAX_DOMAIN_NAME = 64
#: most datasets one model or one training run may have
MAX_DOMAINS = 256
_DOMAIN_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 _.+-]*[A-Za-z0-9])?", re.ASCII)
_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _show(value: object, limit: int = 48) -> str:
    """``value`` quoted for a one-line message: ASCII escapes, cut to ``limit`` characters."""
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _printable(text: str) -> str:
    """``text`` with every non-printable character (line breaks, escape sequences) escaped."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _first_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message (its class name if it has none),
    printable."""
    for line in str(err).splitlines():
        if line.strip():
            return _printable(line.strip())
    return type(err).__name__


def check_domain_names(names: Iterable[object], source: str) -> None:
    """Refuse dataset names that are unsafe as folder names or ambiguous on the command line.

    A name is 1 to :data:`MAX_DOMAIN_NAME` ASCII letters, digits and, inside the name (not
    first or last), space, ``_``, ``-``, ``.`` and ``+``; so a name is always one ordinary
    path component (never ``.``, ``..``, empty, absolute or holding a separator). Names are
    unique ignoring case (outputs land in one folder per dataset, and some file systems
    ignore case), ``all`` (any case) is reserved for "every dataset", and there are at
    most :data:`MAX_DOMAINS` of them.

    Arguments:
        names: the dataset names, in order.
        source: where they come from, the start of the message (``model.domains``,
            ``--domain``, a file name).

    Raises:
        ConfigError: one line naming ``source``, the name and the rule it breaks.
    """
    names = list(names)
    if len(names) > MAX_DOMAINS:
        raise ConfigError(f"{source}: {len(names)} datasets; at most {MAX_DOMAINS} are allowed")
    seen: dict[str, str] = {}
    for name in names:
        if not isinstance(name, str):
            raise ConfigError(f"{source}: dataset name {_show(name)} is not text")
        if len(name) > MAX_DOMAIN_NAME:
            raise ConfigError(
                f"{source}: dataset name {_show(name)} is {len(name)} characters long; "
                f"at most {MAX_DOMAIN_NAME} are allowed"
            )
        if name.lower() == "all":
            raise ConfigError(
                f"{source}: dataset name {_show(name)} is reserved (--to all means every dataset)"
            )
        if not _DOMAIN_NAME.fullmatch(name):
            raise ConfigError(
                f"{source}: dataset name {_show(name)} is not usable: dataset names name output "
                "folders, so use ASCII letters and digits, and inside the name also space, "
                "'_', '-', '.' and '+'"
            )
        key = name.lower()
        if key in seen:
            same = "twice" if seen[key] == name else f"twice ({_show(seen[key])} and {_show(name)})"
            raise ConfigError(
                f"{source}: dataset name {_show(name)} is given {same}; dataset names must be "
                "unique, ignoring case"
            )
        seen[key] = name


def _check_range(key: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{key} must be in [{low}, {high}], got {value}")


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
    #: "conv": the lean convolutional VAE (net2fair.models.autoencoder); "net2net": the
    #: paper's ResNet encoder + BigGAN decoder (net2fair.models.paper_autoencoder, 128 or
    #: 256 px, z_dim > 20 x its generator blocks), which its released models use
    arch: str = "conv"
    #: net2net arch: the encoder's torchvision ResNet
    resnet: str = "resnet101"
    #: net2net arch: the BigGAN channel unit (the paper's 256 px model: 96)
    biggan_chn: int = 96
    #: net2net arch: how often the encoder's input is normalised with the ImageNet mean and
    #: std (the paper's code does it twice, and its weights expect that)
    imagenet_normalize: int = 2


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
    #: stage 1: weight of the L1 loss on fine chroma detail (models.losses.chroma_detail_l1),
    #: which removes the colour confetti LPIPS on AlexNet misses at 64 px (issue 17). 0 = off
    chroma_weight: float = 0.0
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


@functools.cache
def _schema() -> DictConfig:
    """The schema as an OmegaConf node, built once (merges copy it, never change it)."""
    return OmegaConf.structured(Config)


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
    key = _printable(str(getattr(err, "full_key", None) or ""))
    msg = str(getattr(err, "msg", None) or err)
    msg = next((line.strip() for line in msg.splitlines() if line.strip()), type(err).__name__)
    msg = _printable(msg)
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
    schema = _schema()
    cfg = schema
    for f in files:
        path = Path(f)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            loaded = OmegaConf.load(path)
        except Exception as e:  # yaml errors come in many classes
            raise ConfigError(f"{path}: not valid YAML ({_first_line(e)})") from None
        if not isinstance(loaded, DictConfig):
            raise ConfigError(f"{path}: not a config (expected a YAML mapping of sections)")
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
    where = ", ".join(str(f) for f in files) or "config"
    try:  # interpolations (allowed in the user's own files) are resolved here
        result: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    except OmegaConfBaseException as e:
        raise _explain(e, schema, where) from None
    except (RecursionError, ValueError, TypeError, KeyError) as e:  # from a resolver
        raise ConfigError(f"{where}: bad value in the config ({_first_line(e)})") from None
    if validate:
        validate_config(result)
    return result


#: (key, lowest, highest) of the sizes a config may ask for: every network is built from
#: these, so they bound what building or loading a model allocates before any weight is read
#: (the paper-scale 256 px config uses z_dim 128, 6 widths up to 512, 20 flows of width 1024)
SIZE_BOUNDS: tuple[tuple[str, int, int], ...] = (
    ("autoencoder.z_dim", 2, 1024),
    ("autoencoder.res_blocks", 0, 8),
    ("flow.n_flows", 1, 64),
    ("flow.hidden_dim", 1, 8192),
    ("flow.hidden_depth", 0, 8),
    ("flow.embedding_dim", 1, 4096),
    ("flow.embedder_hidden_dim", 1, 4096),
    ("flow.embedder_depth", 0, 8),
    ("loss.disc_channels", 1, 2048),
    ("loss.disc_layers", 1, 8),
    ("train.autoencoder.batch_size", 1, 65536),
    ("train.cinn.batch_size", 1, 65536),
)
#: at most this many autoencoder widths, each at most MAX_CHANNELS
MAX_CHANNEL_ENTRIES = 8
MAX_CHANNELS = 2048
#: seeds feed torch and numpy generators (and step seeds derived from them)
MAX_SEED = 2**32 - 1


def _get(cfg: Config, key: str) -> Any:
    value: Any = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _type_ok(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of the (simple) type ``hint`` of a schema field."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if origin is dict:
        k, v = typing.get_args(hint)
        return isinstance(value, dict) and all(
            _type_ok(a, k) and _type_ok(b, v) for a, b in value.items()
        )
    if dataclasses.is_dataclass(hint):
        return isinstance(value, hint)
    return True


def _check_types(obj: Any, prefix: str = "") -> None:
    """Every field of the config tree has its schema's type (OmegaConf lets some through,
    such as a list inside a list of ints)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        hint = hints[f.name]
        if not _type_ok(value, hint):
            name = str(hint).replace("typing.", "") if typing.get_args(hint) else hint.__name__
            raise ConfigError(f"{prefix}{f.name} must be of type {name}, got {_show(value, 80)}")
        if dataclasses.is_dataclass(value):
            _check_types(value, f"{prefix}{f.name}.")


#: loss settings that must be finite and >= 0
_NON_NEGATIVE_LOSS_KEYS = (
    "l1_weight",
    "perceptual_weight",
    "kl_weight",
    "disc_weight",
    "chroma_weight",
    "equivariance_weight",
    "equivariance_shift",
    "equivariance_scale",
)


def validate_config(cfg: Config) -> None:
    """Check types and value ranges; raise :class:`ConfigError`.

    Every field must have its schema's type. Besides value ranges: dataset names
    (``data.domains`` keys and ``model.domains``) go through :func:`check_domain_names`,
    ``model.priors`` is empty or one positive finite weight per dataset summing to 1, and
    every size is within :data:`SIZE_BOUNDS` (so a config cannot make building a model
    allocate without bound).
    """
    _check_types(cfg)
    if not cfg.name or len(cfg.name) > 128 or _CONTROL.search(cfg.name):
        raise ConfigError(
            f"name must be 1 to 128 characters without control characters, got {_show(cfg.name)}"
        )
    if cfg.name in (".", "..") or any(c in cfg.name for c in "/\\"):
        raise ConfigError(f"name {_show(cfg.name)} must not be a path (it names run folders)")
    _check_range("seed", cfg.seed, 0, MAX_SEED)
    res = cfg.data.resolution
    if res < 32 or res > 256 or 2 ** round(math.log2(res)) != res:
        raise ConfigError(f"data.resolution must be a power of two from 32 to 256, got {res}")
    for key, low, high in SIZE_BOUNDS:
        _check_range(key, _get(cfg, key), low, high)
    if cfg.autoencoder.z_dim % 2:
        raise ConfigError(
            f"autoencoder.z_dim must be an even number >= 2, got {cfg.autoencoder.z_dim}"
        )
    _check_autoencoder_arch(cfg)
    channels = cfg.autoencoder.channels
    if (
        not channels
        or len(channels) > MAX_CHANNEL_ENTRIES
        or not all(1 <= c <= MAX_CHANNELS for c in channels)
    ):
        raise ConfigError(
            f"autoencoder.channels must be a list of 1 to {MAX_CHANNEL_ENTRIES} widths in "
            f"[1, {MAX_CHANNELS}], got {_show(list(channels), 80)}"
        )
    if cfg.flow.activation not in ("none", "lrelu"):
        raise ConfigError(
            f"flow.activation must be 'none' or 'lrelu', got {_show(cfg.flow.activation)}"
        )
    if not 0.0 <= cfg.data.val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction must be in [0, 1), got {cfg.data.val_fraction}")
    if cfg.train.precision not in ("32", "bf16", "16-mixed"):
        raise ConfigError(
            f"train.precision must be '32', 'bf16' or '16-mixed', got {_show(cfg.train.precision)}"
        )
    if cfg.loss.lpips_net not in ("alex", "vgg"):
        raise ConfigError(
            f"loss.lpips_net must be 'alex' or 'vgg', got {_show(cfg.loss.lpips_net)}"
        )
    if not 0.0 <= cfg.loss.transport_weight < math.inf:
        raise ConfigError(
            f"loss.transport_weight must be a finite number >= 0, got {cfg.loss.transport_weight}"
        )
    if cfg.loss.transport_steps is not None and cfg.loss.transport_steps < 1:
        raise ConfigError(
            f"loss.transport_steps must be >= 1 (or null), got {cfg.loss.transport_steps}"
        )
    for key in _NON_NEGATIVE_LOSS_KEYS:
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
        if s.steps < 0 or s.batch_size < 1 or not 0 < s.lr < math.inf:
            raise ConfigError(
                f"train.{stage}: steps >= 0, batch_size >= 1 and a finite lr > 0 required"
            )
        if not 0.0 <= s.min_lr_ratio < math.inf:
            raise ConfigError(
                f"train.{stage}.min_lr_ratio must be a finite number >= 0, got {s.min_lr_ratio}"
            )
    check_domain_names(cfg.data.domains, "data.domains")
    check_domain_names(cfg.model.domains, "model.domains")
    _check_priors(cfg.model.priors, len(cfg.model.domains))
    sha = cfg.model.weights_sha256
    if sha and not _SHA256.fullmatch(sha):
        raise ConfigError(
            f"model.weights_sha256 must be 64 lower-case hex digits (or empty), got {_show(sha)}"
        )
    if cfg.model.format_version > FORMAT_VERSION:
        raise ConfigError(
            f"model format version {cfg.model.format_version} is newer than this net2fair "
            f"understands ({FORMAT_VERSION}); upgrade net2fair"
        )


#: choices of autoencoder.arch and autoencoder.resnet
AUTOENCODER_ARCHS = ("conv", "net2net")
RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")


def _check_autoencoder_arch(cfg: Config) -> None:
    ae = cfg.autoencoder
    if ae.arch not in AUTOENCODER_ARCHS:
        raise ConfigError(
            f"autoencoder.arch must be one of {', '.join(AUTOENCODER_ARCHS)}, got {_show(ae.arch)}"
        )
    if ae.resnet not in RESNETS:
        raise ConfigError(
            f"autoencoder.resnet must be one of {', '.join(RESNETS)}, got {_show(ae.resnet)}"
        )
    _check_range("autoencoder.biggan_chn", ae.biggan_chn, 4, 256)
    _check_range("autoencoder.imagenet_normalize", ae.imagenet_normalize, 0, 2)
    if ae.arch != "net2net":
        return
    blocks = {128: 5, 256: 6}.get(cfg.data.resolution)
    if blocks is None:
        raise ConfigError(
            "autoencoder.arch net2net is a BigGAN-128 or -256 decoder: data.resolution must be "
            f"128 or 256, got {cfg.data.resolution}"
        )
    if ae.z_dim <= 20 * blocks:
        raise ConfigError(
            f"autoencoder.arch net2net at {cfg.data.resolution} px feeds 20 latent dimensions "
            f"to each of its {blocks} generator blocks: autoencoder.z_dim must be > {20 * blocks}, "
            f"got {ae.z_dim}"
        )


def _check_priors(priors: Sequence[float], k: int) -> None:
    if not priors:
        return
    if len(priors) != k:
        raise ConfigError(
            f"model.priors must be empty or hold one weight per dataset in model.domains "
            f"({k}), got {len(priors)}"
        )
    for i, p in enumerate(priors):
        if not (math.isfinite(p) and p > 0.0):
            raise ConfigError(f"model.priors[{i}] must be a finite number > 0, got {p}")
    total = math.fsum(priors)
    if abs(total - 1.0) > 1e-3:
        raise ConfigError(f"model.priors must sum to 1 (within 0.001), got {total:.6g}")


#: ``${`` after an even number (0, 2, ...) of backslashes starts an OmegaConf
#: interpolation; after an odd number it is escaped, a literal ``${``
_INTERPOLATION = re.compile(r"(?<!\\)(?:\\\\)*\$\{")
_TO_ESCAPE = re.compile(r"(\\*)\$\{")


def has_interpolation(text: str) -> bool:
    """Whether OmegaConf would treat ``text`` as (or as holding) an interpolation ``${...}``."""
    return bool(_INTERPOLATION.search(text))


def _escape(value: Any) -> Any:
    """Every string in a plain container with its ``${`` escaped, so that OmegaConf reads
    the string back as written (k backslashes before ``${`` become 2k + 1)."""
    if isinstance(value, str):
        return _TO_ESCAPE.sub(lambda m: "\\" * (2 * len(m.group(1)) + 1) + "${", value)
    if isinstance(value, dict):
        return {k: _escape(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_escape(v) for v in value]
    return value


def to_yaml(cfg: Config) -> str:
    """The resolved config as YAML text (what ``config.yaml`` holds).

    Strings that hold ``${`` (a folder name, the provenance) are written escaped, so the
    file holds no interpolation and :func:`config_from_yaml_text` reads them back as given.
    """
    return OmegaConf.to_yaml(OmegaConf.create(_escape(dataclasses.asdict(cfg))))


def _interpolations(node: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(key, text) of every key or string value in a plain container that interpolates."""
    if isinstance(node, dict):
        items: Iterable[tuple[Any, Any]] = node.items()
    elif isinstance(node, list):
        items = ((f"[{i}]", v) for i, v in enumerate(node))
    else:
        return
    for k, v in items:
        key = f"{prefix}{k}" if str(k).startswith("[") or not prefix else f"{prefix}.{k}"
        if isinstance(k, str) and has_interpolation(k):
            yield key, k
        if isinstance(v, str) and has_interpolation(v):
            yield key, v
        yield from _interpolations(v, key)


def config_from_yaml_text(text: str, source: str) -> Config:
    """Parse a saved ``config.yaml`` (of a model or run folder) against the schema.

    Saved configs hold plain values: an interpolation ``${...}`` anywhere is refused before
    anything could resolve it (it could pull environment variables into outputs).

    Raises:
        ConfigError: one line starting with ``source``.
    """
    schema = _schema()
    try:
        raw = OmegaConf.create(text)
    except AssertionError:  # OmegaConf's answer to a YAML scalar
        raise ConfigError(f"{source}: not a config (expected a YAML mapping of sections)") from None
    except Exception as e:  # yaml and grammar errors come in many classes
        raise ConfigError(f"{source}: not valid YAML ({_first_line(e)})") from None
    if not isinstance(raw, DictConfig):
        raise ConfigError(f"{source}: not a config (expected a YAML mapping of sections)")
    try:
        plain = OmegaConf.to_container(raw, resolve=False)
    except Exception as e:
        raise ConfigError(f"{source}: not valid YAML ({_first_line(e)})") from None
    for key, value in _interpolations(plain):
        raise ConfigError(
            f"{source}: interpolation is not allowed in a model's config.yaml (saved configs "
            f"hold plain values): '{_printable(key)}' holds {_show(value)}"
        )
    try:
        cfg = OmegaConf.merge(schema, raw)
        result: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    except OmegaConfBaseException as e:
        raise _explain(e, schema, source) from None
    except (RecursionError, ValueError, TypeError, KeyError, AssertionError) as e:
        raise ConfigError(f"{source}: bad value in the config ({_first_line(e)})") from None
    try:
        validate_config(result)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    return result
