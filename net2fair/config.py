"""Typed configuration: one structured OmegaConf schema, layered YAML, dot-list overrides.

The schema (:mod:`net2fair.config_schema`) is also the format of the ``config.yaml`` saved
with every run and every model folder, so a model always carries the exact architecture it
was built with. Its value checks are :mod:`net2fair.config_checks`; every name of both is
importable from here.

Layering (later wins): schema defaults -> YAML files -> ``key=value`` overrides. Unknown
keys and wrong types are :class:`ConfigError` s that name the key and suggest valid ones.
Options retired after their measurement are handled in one place, :data:`RETIRED_KEYS`;
options added later, whose default may differ from what older saved configs did, in
:data:`ADDED_KEYS`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    MissingMandatoryValue,
    OmegaConfBaseException,
)

from net2fair.config_checks import (
    AUTOENCODER_ARCHS,
    MAX_CHANNEL_ENTRIES,
    MAX_CHANNELS,
    MAX_DOMAIN_NAME,
    MAX_DOMAINS,
    MAX_SEED,
    RESNETS,
    SIZE_BOUNDS,
    _printable,
    _show,
    check_domain_names,
    validate_config,
)
from net2fair.config_schema import (
    FORMAT_VERSION,
    AutoencoderConfig,
    AutoencoderStageConfig,
    Config,
    ConfigError,
    DataConfig,
    FlowConfig,
    LossConfig,
    ModelMeta,
    StageConfig,
    TrainConfig,
)

__all__ = [
    "ADDED_KEYS",
    "AUTOENCODER_ARCHS",
    "FORMAT_VERSION",
    "MAX_CHANNELS",
    "MAX_CHANNEL_ENTRIES",
    "MAX_DOMAINS",
    "MAX_DOMAIN_NAME",
    "MAX_SEED",
    "RESNETS",
    "RETIRED_KEYS",
    "SIZE_BOUNDS",
    "AutoencoderConfig",
    "AutoencoderStageConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "FlowConfig",
    "LossConfig",
    "ModelMeta",
    "StageConfig",
    "TrainConfig",
    "check_domain_names",
    "config_from_yaml_text",
    "drop_retired_keys",
    "has_interpolation",
    "load_config",
    "to_yaml",
    "validate_config",
]

logger = logging.getLogger(__name__)


def _first_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message (its class name if it has none),
    printable."""
    for line in str(err).splitlines():
        if line.strip():
            return _printable(line.strip())
    return type(err).__name__


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


#: Options removed after they were measured and not adopted, kept so that configs written
#: before still load: key -> (the values that meant "off", the write-up that measured it).
#: ``None`` instead of the values: the option was never read, so any value is "off".
RETIRED_KEYS: dict[str, tuple[tuple[Any, ...] | None, str]] = {
    "loss.transport_weight": ((0,), "docs/content-and-pose.md"),
    "loss.transport_steps": ((None,), "docs/content-and-pose.md"),
    "loss.equivariance_odd_dims": ((0,), "docs/content-and-pose.md"),
    "train.cinn.val_batches": (None, ""),
}


#: Options added after configs were first saved, with the value that reproduces what a
#: saved config without them built and trained: a model or run folder written before the
#: option existed gets this value, not today's default (which may differ).
ADDED_KEYS: dict[str, Any] = {
    "autoencoder.decoder_res_blocks": [],
    "train.autoencoder.betas": [0.5, 0.9],
    "loss.eye_weight": 0.0,
}


def _plain_section(node: DictConfig, path: list[str]) -> DictConfig | None:
    """The section at ``path`` in a raw (not yet merged) config; None when it is not there,
    not a mapping, or hidden behind an interpolation or a '???' (left to the schema merge,
    which names the key in its error)."""
    section: Any = node
    for part in path:
        if (
            not isinstance(section, DictConfig)
            or part not in section.keys()
            or OmegaConf.is_interpolation(section, part)
            or OmegaConf.is_missing(section, part)
        ):
            return None
        section = section[part]
    return section if isinstance(section, DictConfig) else None


def fill_added_keys(node: DictConfig) -> None:
    """Give a saved config's sections the :data:`ADDED_KEYS` they lack (in place)."""
    for key, value in ADDED_KEYS.items():
        *path, name = key.split(".")
        section = _plain_section(node, path)
        if section is not None and name not in section.keys():
            section[name] = copy.deepcopy(value)


def _is_off(value: Any, off: tuple[Any, ...] | None) -> bool:
    if off is None:
        return True
    if value is None:
        return None in off
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and any(o is not None and value == o for o in off)


def _retired_node(node: DictConfig, key: str) -> tuple[DictConfig, str] | None:
    """The section holding ``key`` in a raw (not yet merged) config, and the key's last part;
    None when it is not there (or hidden behind an interpolation)."""
    *path, name = key.split(".")
    section = _plain_section(node, path)
    if section is None or name not in section.keys():
        return None
    return section, name


def drop_retired_keys(node: DictConfig, source: str, *, use: str) -> None:
    """Remove the :data:`RETIRED_KEYS` from a raw config read from ``source`` (in place).

    A retired key that holds its old "off" value is dropped silently: every config saved
    before it was retired has it. One that holds anything else depends on ``use``:

    - ``"config"`` (a user's config file or override) and ``"resume"`` (the saved config of a
      run to train further): :class:`ConfigError`, one line naming the key, saying it was
      retired and where it was measured;
    - ``"model"`` (a model folder loaded for inference; the option only changed training):
      dropped, with a logged note.
    """
    for key, (off, doc) in RETIRED_KEYS.items():
        found = _retired_node(node, key)
        if found is None:
            continue
        section, name = found
        value = OmegaConf.to_container(section, resolve=False)[name]  # type: ignore[index]
        del section[name]
        if _is_off(value, off):
            continue
        said = f"{key} = {_show(value)} was retired (measured, not adopted: see {doc})"
        if use == "model":
            logger.info("%s: %s; it only changed training, so the model loads", source, said)
            continue
        if use == "resume":
            raise ConfigError(
                f"{source}: {said}; this run was trained with it and cannot be resumed by this "
                "version (start a new run without it)"
            )
        raise ConfigError(f"{source}: {said}; remove it")


def load_config(
    files: Sequence[str | Path] = (), overrides: Iterable[str] = (), *, validate: bool = True
) -> Config:
    """Merge schema defaults, YAML ``files`` and ``key=value`` ``overrides``; return a typed config.

    Raises :class:`ConfigError` (one line, naming the key) on unknown keys, wrong types,
    unreadable files, invalid values, or a retired option that is set
    (:func:`drop_retired_keys`).
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
        drop_retired_keys(loaded, str(path), use="config")
        try:
            cfg = OmegaConf.merge(cfg, loaded)
        except OmegaConfBaseException as e:
            raise _explain(e, schema, str(path)) from None
    overrides = list(overrides)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
    try:
        dotlist = OmegaConf.from_dotlist(overrides)
        drop_retired_keys(dotlist, "override", use="config")
        cfg = OmegaConf.merge(cfg, dotlist)
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


def config_from_yaml_text(text: str, source: str, *, resume: bool = False) -> Config:
    """Parse a saved ``config.yaml`` (of a model or run folder) against the schema.

    Saved configs hold plain values: an interpolation ``${...}`` anywhere is refused before
    anything could resolve it (it could pull environment variables into outputs). A retired
    option set to anything but "off" is refused when the run is to be trained further
    (``resume``), and dropped with a logged note otherwise (:func:`drop_retired_keys`).

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
    drop_retired_keys(raw, source, use="resume" if resume else "model")
    fill_added_keys(raw)
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
