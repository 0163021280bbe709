"""Every YAML under configs/ loads against the schema and builds; mistakes name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from net2fair.config import ConfigError, config_from_yaml_text, load_config, to_yaml
from net2fair.models.translator import Translator

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_config_loads_and_builds(path: Path):
    names = list(OmegaConf.load(path).get("data", {}).get("domains", {}) or ["a", "b"])
    cfg = load_config([path], [f"data.domains.{k}=/data/{k}" for k in names])
    cfg.model.domains = list(cfg.data.domains)
    if cfg.data.resolution <= 64:
        t = Translator(cfg)
        assert t.autoencoder.resolution == cfg.data.resolution
    assert config_from_yaml_text(to_yaml(cfg), "roundtrip") == cfg


def test_paper_configs_require_their_folders():
    with pytest.raises(ConfigError, match="data.domains.anime' is not set"):
        load_config([Path(__file__).resolve().parent.parent / "configs" / "anime_photo.yaml"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.resoltion=64", "unknown config key 'data.resoltion'; did you mean data.resolution"),
        ("flow.n_flows=many", "bad value for config key 'flow.n_flows'"),
        ("data.resolution=48", "power of two"),
        ("autoencoder.z_dim=7", "even number"),
        ("train.precision=fp8", "train.precision"),
        ("nonsense", "not of the form key=value"),
    ],
)
def test_mistakes_are_one_line_errors_naming_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_newer_format_version_is_refused():
    with pytest.raises(ConfigError, match="newer than this net2fair"):
        load_config(overrides=["model.format_version=99"])


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config([tmp_path / "nope.yaml"])
