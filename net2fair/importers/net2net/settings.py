"""What the weights do not say: the run's project yaml, the released runs' dataset names,
and the net2fair config of an imported model.

The flow's activation, the encoder's input normalisation and the dataset names leave no
trace in the weights; they are read from the run folder's ``configs/*-project.yaml`` (or,
without one, taken to be the released models' values) and checked against the sizes the
checkpoint holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from net2fair.config import Config, ConfigError, check_domain_names, load_config
from net2fair.importers.net2net.architecture import Architecture
from net2fair.importers.net2net.errors import Net2NetImportError, _one_line

#: data module target of each released run -> its labels, in label order (as in the paper's
#: demo, ml4cad.py; "CelebA-HQ" as the paper writes it)
KNOWN_DATASETS: dict[str, tuple[str, ...]] = {
    "net2net.data.faces.CCFQTrain": ("CelebA", "CelebA-HQ", "FFHQ"),
    "net2net.data.faces.FacesHQAndAnimeTrain": ("Photography", "Anime"),
    "net2net.data.faces.FFHQAndPortraitsTrain": ("Photography", "Oil Portrait"),
}
#: the same, recognised from the released run folders' names
KNOWN_RUN_NAMES: dict[str, tuple[str, ...]] = {
    "celeba_celebahq_ffhq": KNOWN_DATASETS["net2net.data.faces.CCFQTrain"],
    "anime_photography": KNOWN_DATASETS["net2net.data.faces.FacesHQAndAnimeTrain"],
    "portraits_photography": KNOWN_DATASETS["net2net.data.faces.FFHQAndPortraitsTrain"],
}
#: the released checkpoints, for messages and docs
RELEASED_RUNS = (
    "2020-11-30T23-32-28_celeba_celebahq_ffhq_256/checkpoints/last.ckpt",
    "2020-12-02T13-58-19_anime_photography_256/checkpoints/epoch=000004.ckpt",
    "2020-12-02T16-19-39_portraits_photography_256/checkpoints/epoch=000003.ckpt",
)
FLOW_TARGET = "net2net.modules.flow.flatflow.ConditionalFlatCouplingFlow"
MODEL_TARGET = "net2net.models.flows.flow.Net2NetFlow"


def read_project_yaml(paths: Sequence[Path]) -> dict[str, Any] | None:
    """The merged project yaml files as plain data (interpolations left unresolved), or
    None when there are none.

    Raises:
        Net2NetImportError: a file that is not YAML or not a net2net flow config.
    """
    if not paths:
        return None
    from omegaconf import DictConfig, OmegaConf

    merged: Any = OmegaConf.create({})
    for p in paths:
        try:
            loaded = OmegaConf.load(p)
        except Exception as e:  # yaml errors come in many classes
            raise Net2NetImportError(f"{p}: not valid YAML ({_one_line(e)})") from None
        if not isinstance(loaded, DictConfig):
            raise Net2NetImportError(f"{p}: not a net2net config (expected a YAML mapping)")
        merged = OmegaConf.merge(merged, loaded)
    data = OmegaConf.to_container(merged, resolve=False)
    where = paths[-1]
    target = _get(data, "model.target")
    if target != MODEL_TARGET:
        raise Net2NetImportError(
            f"{where}: model.target is {target!r}; only net2net's dataset-translation models "
            f"({MODEL_TARGET}) can be imported"
        )
    flow_target = _get(data, "model.params.flow_config.target")
    if flow_target != FLOW_TARGET:
        raise Net2NetImportError(
            f"{where}: the flow is {flow_target!r}; only {FLOW_TARGET} can be imported"
        )
    return data  # type: ignore[return-value]


def _get(data: Any, dotted: str, default: Any = None) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return default
        data = data[part]
    return data


@dataclass
class ProjectSettings:
    """What the project yaml says that the weights do not."""

    activation: str = "none"
    imagenet_normalize: int = 2
    labels: tuple[str, ...] | None = None
    notes: list[str] = field(default_factory=list)


def project_settings(
    data: dict[str, Any] | None, arch: Architecture, where: Path | None, ckpt: Path
) -> ProjectSettings:
    """Activation, input normalisation and dataset names from the project yaml (or, with
    none, the released models' values), checked against the checkpoint's sizes.

    Raises:
        Net2NetImportError: the yaml describes another model than the checkpoint holds.
    """
    s = ProjectSettings()
    if data is None:
        s.notes.append(
            "no project yaml found: assumed the released models' flow activation 'none' and "
            "their double ImageNet normalisation"
        )
        s.labels = _labels_from_name(ckpt)
        return s
    p = _get(data, "model.params", {})
    flow = _get(p, "flow_config.params", {}) or {}
    # the yaml's values where given, their classes' defaults where not
    s.activation = str(flow.get("activation", "lrelu"))
    if s.activation not in ("none", "lrelu"):
        raise Net2NetImportError(f"{where}: flow activation {s.activation!r} is not supported")
    if s.activation == "lrelu":
        s.notes.append(
            "flow activation 'lrelu': net2fair's log-determinant counts it exactly (net2net's "
            "reported 0), so likelihoods differ from theirs; the maps are the same"
        )
    checks = {
        "conditioning_dim": (flow.get("conditioning_dim"), arch.num_classes),
        "embedding_dim": (flow.get("embedding_dim"), arch.embedding_dim),
        "n_flows": (flow.get("n_flows"), arch.n_flows),
        "in_channels": (flow.get("in_channels"), arch.z_dim),
        "hidden_dim": (flow.get("hidden_dim"), arch.hidden_dim),
        "hidden_depth": (flow.get("hidden_depth"), arch.hidden_depth),
        "conditioning_depth": (flow.get("conditioning_depth", 2), arch.embedder_depth),
        "conditioning_hidden_dim": (
            flow.get("conditioning_hidden_dim", 256),
            arch.embedder_hidden_dim,
        ),
        "conditioner_use_bn": (bool(flow.get("conditioner_use_bn", False)), arch.embedder_bn),
    }
    for name, (said, has) in checks.items():
        if said is not None and said != has:
            raise Net2NetImportError(
                f"{where}: flow {name} is {said} in the yaml but {has} in {ckpt.name}; the "
                "yaml belongs to another model"
            )
    option = str(flow.get("conditioning_option", "none")).lower()
    if option != "none" or flow.get("conditioner_use_an"):
        raise Net2NetImportError(f"{where}: another flow variant (conditioning_option {option})")
    num_classes = _get(p, "cond_stage_config.params.num_classes")
    if num_classes is not None and num_classes != arch.num_classes:
        raise Net2NetImportError(
            f"{where}: the yaml has {num_classes} labels but the flow in {ckpt.name} is "
            f"conditioned on {arch.num_classes}; the yaml belongs to another model"
        )
    enc = _get(p, "first_stage_config.params.encoder_config.params", {}) or {}
    s.imagenet_normalize = 2 if enc.get("pre_process", True) else 0
    if enc.get("type") not in (None, arch.resnet) or enc.get("z_dim") not in (None, arch.z_dim):
        raise Net2NetImportError(
            f"{where}: the yaml's encoder ({enc.get('type')}, z_dim {enc.get('z_dim')}) is not "
            f"the one in {ckpt.name} ({arch.resnet}, z_dim {arch.z_dim})"
        )
    dec = _get(p, "first_stage_config.params.decoder_config.params", {}) or {}
    if dec.get("in_size") not in (None, arch.resolution):
        raise Net2NetImportError(
            f"{where}: the yaml's decoder is for {dec.get('in_size')} px, the checkpoint's "
            f"for {arch.resolution} px"
        )
    target = _get(data, "data.params.train.target")
    if target in KNOWN_DATASETS:
        labels = KNOWN_DATASETS[target]
        if len(labels) != arch.num_classes:
            raise Net2NetImportError(
                f"{where}: the yaml's data ({target.rsplit('.', 1)[-1]}) has {len(labels)} "
                f"labels but the flow in {ckpt.name} is conditioned on {arch.num_classes}"
            )
        s.labels = labels
    else:
        s.labels = _labels_from_name(ckpt)
    return s


def _labels_from_name(ckpt: Path) -> tuple[str, ...] | None:
    text = str(ckpt.absolute())
    for fragment, labels in KNOWN_RUN_NAMES.items():
        if fragment in text:
            return labels
    return None


def build_config(
    arch: Architecture,
    settings: ProjectSettings,
    domains: Sequence[str],
    provenance: str,
) -> Config:
    """The net2fair config of an imported model."""
    cfg = load_config(
        overrides=[
            "name=net2net",
            f"data.resolution={arch.resolution}",
            "autoencoder.arch=net2net",
            f"autoencoder.z_dim={arch.z_dim}",
            f"autoencoder.resnet={arch.resnet}",
            f"autoencoder.biggan_chn={arch.chn}",
            f"autoencoder.imagenet_normalize={settings.imagenet_normalize}",
            f"flow.n_flows={arch.n_flows}",
            f"flow.hidden_dim={arch.hidden_dim}",
            f"flow.hidden_depth={arch.hidden_depth}",
            f"flow.embedding_dim={arch.embedding_dim}",
            f"flow.embedder_hidden_dim={arch.embedder_hidden_dim}",
            f"flow.embedder_depth={arch.embedder_depth}",
            f"flow.activation={settings.activation}",
        ],
        validate=False,
    )
    cfg.model.domains = list(domains)
    cfg.model.provenance = provenance
    return cfg


def parse_domains(text: str | None, k: int, where: Path) -> list[str] | None:
    """``--domains a,b,c`` as a list, checked (count and names); None when not given."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if len(names) != k:
        raise Net2NetImportError(
            f"{where}: --domains names {len(names)} dataset(s) but the flow is conditioned on "
            f"{k} labels"
        )
    try:
        check_domain_names(names, "--domains")
    except ConfigError as e:
        raise Net2NetImportError(str(e)) from None
    return names
