"""Every YAML under configs/ loads against the schema and builds; mistakes name the key."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from net2fair.config import (
    ConfigError,
    check_domain_names,
    config_from_yaml_text,
    load_config,
    to_yaml,
)
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


# ------------------------------------------------------------------ dataset names (issue 20)
BAD_NAMES = [
    "..",
    ".",
    "",
    "../../x",
    "/abs",
    "a/b",
    "a\\b",
    "$x$",
    "a\nb",
    "a\x00b",
    "all",
    "ALL",
    " a",
    "a ",
    "-a",
    "a.",
    "caf\xe9",
    "x" * 65,
    "a=b",
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=[ascii(n)[:20] for n in BAD_NAMES])
def test_unsafe_dataset_names_are_refused(name):
    with pytest.raises(ConfigError) as err:
        check_domain_names([name, "other"], "model.domains")
    msg = str(err.value)
    assert msg.startswith("model.domains: dataset name ") and len(msg.splitlines()) == 1


@pytest.mark.parametrize("name", ["photo", "a b", "v1.2", "c++1", "A_B-C.D+E", "0", "x" * 64])
def test_safe_dataset_names_are_accepted(name):
    check_domain_names([name, "other"], "model.domains")


@pytest.mark.parametrize("names", [["a", "a"], ["Photo", "photo"]])
def test_dataset_names_must_be_unique_ignoring_case(names):
    with pytest.raises(ConfigError, match="unique, ignoring case"):
        check_domain_names(names, "--domain")


def test_dataset_names_must_be_text_and_few():
    with pytest.raises(ConfigError, match="is not text"):
        check_domain_names(["a", 3], "model.domains")
    with pytest.raises(ConfigError, match="at most 256"):
        check_domain_names([f"d{i}" for i in range(257)], "model.domains")


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.domains.all=/x", "data.domains.b=/y"], "data.domains: dataset name 'all'"),
        (["data.domains.$x$=/x"], "data.domains: dataset name '$x$'"),
        (["model.domains=[a,a]"], "model.domains: dataset name 'a' is given twice"),
        (["model.domains=['..',b]"], "model.domains: dataset name '..' is not usable"),
    ],
)
def test_validate_config_checks_both_kinds_of_dataset_names(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("$", r"\$")):
        load_config(overrides=overrides)


# ------------------------------------------------------------------------------ priors
@pytest.mark.parametrize(
    "priors, message",
    [
        ("[1.0]", r"one weight per dataset in model.domains \(2\), got 1"),
        ("[0.5,0.3,0.2]", r"one weight per dataset in model.domains \(2\), got 3"),
        ("[1.5,-0.5]", r"model.priors\[1\] must be a finite number > 0, got -0.5"),
        ("[.nan,1.0]", r"model.priors\[0\] must be a finite number > 0, got nan"),
        ("[.inf,1.0]", r"model.priors\[0\]"),
        ("[0.0,1.0]", r"model.priors\[0\]"),
        ("[0.5,0.6]", r"must sum to 1 \(within 0.001\), got 1.1"),
    ],
)
def test_priors_need_one_positive_finite_weight_per_dataset(priors, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=["model.domains=[a,b]", f"model.priors={priors}"])


def test_good_priors_are_accepted():
    cfg = load_config(overrides=["model.domains=[a,b]", "model.priors=[0.25,0.75]"])
    assert cfg.model.priors == [0.25, 0.75]
    assert load_config(overrides=["model.domains=[a,b]"]).model.priors == []


# ------------------------------------------------------------------------------ bounds
@pytest.mark.parametrize(
    "override, message",
    [
        ("autoencoder.z_dim=4000000", "autoencoder.z_dim must be in [2, 1024], got 4000000"),
        ("flow.n_flows=100000", "flow.n_flows must be in [1, 64], got 100000"),
        ("flow.n_flows=0", "flow.n_flows must be in [1, 64], got 0"),
        ("flow.hidden_dim=8193", "flow.hidden_dim must be in [1, 8192]"),
        ("flow.hidden_depth=9", "flow.hidden_depth must be in [0, 8]"),
        ("flow.embedding_dim=4097", "flow.embedding_dim must be in [1, 4096]"),
        ("flow.embedder_hidden_dim=0", "flow.embedder_hidden_dim must be in [1, 4096]"),
        ("flow.embedder_depth=-1", "flow.embedder_depth must be in [0, 8]"),
        ("autoencoder.res_blocks=9", "autoencoder.res_blocks must be in [0, 8]"),
        ("autoencoder.channels=[4096]", "autoencoder.channels must be a list of 1 to 8 widths"),
        ("autoencoder.channels=[8,8,8,8,8,8,8,8,8]", "1 to 8 widths in [1, 2048]"),
        ("autoencoder.channels=[]", "autoencoder.channels must be"),
        ("autoencoder.decoder_res_blocks=[2,9]", "autoencoder.decoder_res_blocks must be a list"),
        ("autoencoder.decoder_res_blocks=[-1]", "block counts in [0, 8]"),
        ("train.autoencoder.betas=[0.9]", "train.autoencoder.betas must be two numbers"),
        ("train.autoencoder.betas=[0.9,1.0]", "in [0, 1) (Adam's beta1, beta2)"),
        ("loss.disc_layers=0", "loss.disc_layers must be in [1, 8]"),
        ("train.cinn.batch_size=100000000", "train.cinn.batch_size must be in [1, 65536]"),
        ("seed=-1", "seed must be in [0, 4294967295]"),
        ("seed=99999999999999999999", "seed must be in [0, 4294967295]"),
        ("name=../x", "must not be a path"),
        ("name=''", "name must be 1 to 128 characters"),
        ("model.weights_sha256=abc", "model.weights_sha256 must be 64 lower-case hex digits"),
    ],
)
def test_sizes_and_other_values_are_bounded(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[override])
    assert message in str(err.value) and len(str(err.value).splitlines()) == 1


def test_paper_scale_sizes_are_within_the_bounds():
    paper = Path(__file__).resolve().parent.parent / "configs" / "ffhq_celebahq_celeba.yaml"
    names = [f"data.domains.{k}=/d/{k}" for k in ("ffhq", "celebahq", "celeba")]
    cfg = load_config([paper], names)
    assert cfg.data.resolution == 256 and cfg.flow.hidden_dim == 1024


# ----------------------------------------------------------------------- interpolation
SAVED = to_yaml(load_config(overrides=["model.domains=[a,b]"]))


@pytest.mark.parametrize(
    "old, new, key",
    [
        ("n_flows: 8", "n_flows: ${nope}", "flow.n_flows"),
        ("name: net2fair", "name: ${oc.env:HOME}", "name"),
        ("name: net2fair", "name: ${oc.env:N2F_SURELY_UNSET}", "name"),
        ("provenance: ''", "provenance: 'from ${oc.env:HOME} here'", "model.provenance"),
        ("  - b", "  - ${oc.env:HOME}", "model.domains[1]"),
        ("name: net2fair", "name: '\\\\${oc.env:HOME}'", "name"),  # \\ then ${: live
    ],
)
def test_interpolation_in_a_saved_config_is_refused(old, new, key):
    assert old in SAVED
    with pytest.raises(ConfigError) as err:
        config_from_yaml_text(SAVED.replace(old, new, 1), "m/config.yaml")
    msg = str(err.value)
    assert msg.startswith("m/config.yaml: interpolation is not allowed in a model's config.yaml")
    assert f"'{key}'" in msg and len(msg.splitlines()) == 1


def test_interpolation_is_refused_before_anything_resolves_it():
    calls = []
    OmegaConf.register_resolver("n2f_probe", lambda: calls.append(1) or "x", replace=True)
    try:
        with pytest.raises(ConfigError, match="interpolation is not allowed"):
            config_from_yaml_text(SAVED.replace("name: net2fair", "name: ${n2f_probe:}"), "c")
        # the user's own config files may interpolate (and do resolve)
        assert load_config(overrides=["name=${n2f_probe:}"]).name == "x"
    finally:
        OmegaConf.clear_resolver("n2f_probe")
    assert calls == [1]


def test_escaped_dollar_braces_are_plain_text_and_round_trip():
    cfg = load_config(overrides=["model.domains=[a,b]"])
    for text in ["${oc.env:HOME}", "\\${x}", "\\\\${x}", "a ${ b", "x\\", "$${}"]:
        cfg.model.provenance = text
        saved = to_yaml(cfg)
        assert config_from_yaml_text(saved, "rt").model.provenance == text


def test_user_config_interpolation_works_and_bad_ones_are_one_line(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("flow:\n  hidden_dim: ${autoencoder.z_dim}\n")
    assert load_config([good]).flow.hidden_dim == 64
    for i, body in enumerate(
        [
            "flow:\n  n_flows: ${nope}\n",
            "name: ${oc.env:N2F_SURELY_UNSET}\n",
            "flow:\n  n_flows: ${oc.decode:'[1'}\n",
            "name: ${\n",
        ]
    ):
        path = tmp_path / f"bad{i}.yaml"
        path.write_text(body)
        with pytest.raises(ConfigError) as err:
            load_config([path])
        assert str(err.value).startswith(str(path)) and len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize("text", ["- 1\n", "5\n", "[a, b]\n"])
def test_a_saved_config_must_be_a_mapping(text, tmp_path):
    with pytest.raises(ConfigError, match="not a config"):
        config_from_yaml_text(text, "c")
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match="not a config|not valid YAML"):
        load_config([tmp_path / "c.yaml"])


# ------------------------------------------------------------------ retired options
DEMO = Path(__file__).resolve().parent.parent / "net2fair" / "assets" / "demo"
#: a config.yaml saved before the retirements and before the ADDED_KEYS existed
OLD_CONFIG = Path(__file__).resolve().parent / "fixtures" / "old_demo_config.yaml"
RETIRED_NAMES = ("transport_weight", "transport_steps", "equivariance_odd_dims")


def _retired_set(text: str) -> str:
    """An old config.yaml (written before the options were retired) with each one on."""
    for old, new in [
        ("transport_weight: 0.0", "transport_weight: 0.1"),
        ("equivariance_odd_dims: 0", "equivariance_odd_dims: 16"),
    ]:
        assert old in text
        text = text.replace(old, new)
    return text


def test_an_old_config_holding_the_retired_options_off_loads():
    text = OLD_CONFIG.read_text()
    assert all(name in text for name in RETIRED_NAMES) and text.count("val_batches: 8") == 2
    cfg = config_from_yaml_text(text, "old/config.yaml")
    saved = to_yaml(cfg)
    assert not any(name in saved for name in RETIRED_NAMES)
    assert saved.count("val_batches") == 1 and cfg.train.autoencoder.val_batches == 8
    assert not hasattr(cfg.train.cinn, "val_batches")
    assert config_from_yaml_text(text, "run/config.yaml", resume=True) == cfg


def test_a_user_config_holding_the_retired_options_off_loads(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text(
        "loss:\n  transport_weight: 0.0\n  transport_steps: null\n  equivariance_odd_dims: 0\n"
        "train:\n  cinn: {steps: 5, val_batches: 3}\n"
    )
    cfg = load_config([old], ["loss.transport_weight=0", "train.cinn.val_batches=1"])
    assert cfg.train.cinn.steps == 5
    assert (
        load_config(overrides=["train.autoencoder.val_batches=2"]).train.autoencoder.val_batches
        == 2
    )


@pytest.mark.parametrize(
    "override",
    ["loss.transport_weight=0.1", "loss.transport_steps=100", "loss.equivariance_odd_dims=16"],
)
def test_setting_a_retired_option_is_one_line_naming_it_and_its_write_up(override, tmp_path):
    key = override.split("=")[0]
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[override])
    msg = str(err.value)
    assert msg.startswith(f"override: {key} = ") and "was retired" in msg
    assert "docs/content-and-pose.md" in msg and len(msg.splitlines()) == 1
    section, name = key.split(".")
    path = tmp_path / "c.yaml"
    path.write_text(f"{section}:\n  {name}: {override.split('=')[1]}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: {key} = .* was retired"):
        load_config([path])


def test_a_run_trained_with_a_retired_option_is_not_resumed(tmp_path):
    from net2fair.training.run import load_run_config, train

    run = tmp_path / "run"
    (run / "autoencoder").mkdir(parents=True)
    (run / "config.yaml").write_text(OLD_CONFIG.read_text())
    assert load_run_config(run).train.cinn.steps == 2000  # an old run, options off: resumes
    (run / "config.yaml").write_text(_retired_set(OLD_CONFIG.read_text()))
    with pytest.raises(ConfigError) as err:
        train(resume=run)
    msg = str(err.value)
    assert msg.startswith(f"{run / 'config.yaml'}: loss.transport_weight = 0.1 was retired")
    assert "cannot be resumed" in msg and len(msg.splitlines()) == 1


def test_a_model_folder_trained_with_a_retired_option_loads_with_a_note(tmp_path, caplog):
    folder = tmp_path / "model"
    shutil.copytree(DEMO, folder)
    saved = OmegaConf.load(folder / "config.yaml")
    saved.loss.transport_weight, saved.loss.equivariance_odd_dims = 0.1, 16
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(saved))
    with caplog.at_level(logging.INFO, logger="net2fair.config"):
        t = Translator.load(folder)
    assert t.domains == Translator.load(DEMO).domains
    notes = [r.getMessage() for r in caplog.records if "retired" in r.getMessage()]
    assert len(notes) == 2 and "loss.equivariance_odd_dims = 16" in notes[1]
    assert all("it only changed training" in n for n in notes)


# -------------------------------------------------------------------- added options
def test_a_saved_config_without_an_added_option_gets_what_it_was_trained_with():
    from net2fair.config import ADDED_KEYS
    from net2fair.config_schema import AutoencoderConfig, AutoencoderStageConfig

    text = OLD_CONFIG.read_text()
    raw = OmegaConf.create(text)
    assert all(OmegaConf.select(raw, key) is None for key in ADDED_KEYS)
    # whatever today's defaults are, the old config builds and trains as it did
    cfg = config_from_yaml_text(text, "old/config.yaml")
    assert cfg.autoencoder.decoder_res_blocks == [] and cfg.train.autoencoder.betas == [0.5, 0.9]
    assert config_from_yaml_text(text, "run/config.yaml", resume=True) == cfg
    # a config that names them keeps its own values
    saved = OmegaConf.create(text)
    saved.autoencoder.decoder_res_blocks, saved.train.autoencoder.betas = [2, 1], [0.9, 0.99]
    cfg = config_from_yaml_text(OmegaConf.to_yaml(saved), "new/config.yaml")
    assert cfg.autoencoder.decoder_res_blocks == [2, 1] and cfg.train.autoencoder.betas == [
        0.9,
        0.99,
    ]
    # and a user's config file without them gets today's defaults, not the old values
    assert load_config().autoencoder.decoder_res_blocks == AutoencoderConfig().decoder_res_blocks
    assert load_config().train.autoencoder.betas == AutoencoderStageConfig().betas


@pytest.mark.parametrize("section", ["train.autoencoder", "loss", "autoencoder"])
def test_a_missing_section_parses_or_is_one_line_before_added_keys_are_filled(section):
    # found by the model-folder fuzz: '???' where a section holding an added key should be
    # leaked omegaconf's MissingMandatoryValue
    saved = OmegaConf.create(OLD_CONFIG.read_text())
    OmegaConf.update(saved, section, "???", force_add=True)
    try:
        cfg = config_from_yaml_text(OmegaConf.to_yaml(saved), "m/config.yaml")
    except ConfigError as e:
        assert str(e).startswith("m/config.yaml: ") and len(str(e).splitlines()) == 1
    else:  # the schema's section stands in for the missing one
        assert isinstance(cfg.loss.eye_weight, float)
