"""The value checks of a config (:func:`validate_config`) and of dataset names.

Import them from :mod:`net2fair.config`, which applies them to every config it loads.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from net2fair.config_schema import FORMAT_VERSION, Config, ConfigError, StageConfig

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
    "eye_weight",
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
    blocks = cfg.autoencoder.decoder_res_blocks
    if len(blocks) > MAX_CHANNEL_ENTRIES or not all(0 <= b <= 8 for b in blocks):
        raise ConfigError(
            f"autoencoder.decoder_res_blocks must be a list of up to {MAX_CHANNEL_ENTRIES} "
            f"block counts in [0, 8] (empty: res_blocks everywhere), got {_show(list(blocks), 80)}"
        )
    betas = cfg.train.autoencoder.betas
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ConfigError(
            "train.autoencoder.betas must be two numbers in [0, 1) (Adam's beta1, beta2), "
            f"got {_show(list(betas), 80)}"
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
