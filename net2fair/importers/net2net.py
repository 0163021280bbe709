"""Import the released net2net dataset-translation models as net2fair model folders.

Rombach, Esser and Ommer released three 256 px dataset-translation models with
"Network-to-Network Translation with Conditional Invertible Neural Networks" (NeurIPS 2020,
github.com/CompVis/net2net): CelebA / CelebA-HQ / FFHQ, photography / anime and
photography / oil portraits. Each is a PyTorch Lightning 0.9 checkpoint holding a ResNet +
BigGAN autoencoder (``first_stage_model.*``) and a conditional flow (``flow.*``).

:func:`import_net2net` reads such a checkpoint without running any code from it
(``torch.load(weights_only=True)``: only tensors, storages and plain containers can be
unpickled; anything else is refused, never retried with plain pickle), accounts for every
key (each is mapped onto a net2fair weight, or dropped for a stated reason; none may be
left over or missing), and writes an ordinary model folder with
:meth:`~net2fair.models.translator.Translator.save`, which builds it aside and puts it in
place only when complete. Two kinds of weight change shape on the way:

- the decoder's spectral norm is folded into plain weights: their code never updates the
  power-iteration vector ``u``, so every forward pass uses one fixed
  ``W = W_bar / sigma(W_bar, u)``, computed here once;
- the flow's label embedder has BatchNorm1d layers after its Linear layers; in eval mode
  each is a fixed affine map, folded into the Linear before it (net2fair's embedder has no
  BatchNorm, so a label's embedding never depends on the batch).

What leaves no trace in the weights (the flow's activation, the encoder's input
normalisation, the dataset names) is read from the run folder's ``configs/*-project.yaml``.

Example::

    net2fair import-net2net logs/2020-11-30T23-32-28_celeba_celebahq_ffhq_256 --out ccfq
"""

from __future__ import annotations

import logging
import pickle
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from net2fair.config import Config, ConfigError, check_domain_names, load_config

logger = logging.getLogger(__name__)

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
#: the spectral norm's l2 normalisation, x / (||x|| + eps), as in their biggan.py
SN_EPS = 1e-4
#: BatchNorm1d's default eps (their embedder uses the default)
BN_EPS = 1e-5
#: ResNet kind by (bottleneck blocks?, blocks per stage)
_RESNETS = {
    (False, (2, 2, 2, 2)): "resnet18",
    (False, (3, 4, 6, 3)): "resnet34",
    (True, (3, 4, 6, 3)): "resnet50",
    (True, (3, 4, 23, 3)): "resnet101",
}
_BLOCKS_TO_RESOLUTION = {6: 256, 5: 128}

ENC = "first_stage_model.encoder."
DEC = "first_stage_model.decoder."
GEN = DEC + "decoder."


class Net2NetImportError(ValueError):
    """A checkpoint or run folder that cannot be imported; one line naming the file."""


def _one_line(err: BaseException) -> str:
    line = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), type(err).__name__)
    line = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in line)
    return line if len(line) <= 160 else line[:157] + "..."


# ------------------------------------------------------------------------------ locating
def locate(source: str | Path) -> tuple[Path, list[Path]]:
    """The checkpoint file and the project yaml files of a run folder or checkpoint.

    A run folder holds ``checkpoints/*.ckpt`` (``last.ckpt`` is preferred; otherwise there
    must be exactly one) and ``configs/*-project.yaml`` (merged in name order, as the
    paper's demo does). A checkpoint inside a run folder's ``checkpoints/`` gets that run's
    yaml files too; any other file is read alone.

    Raises:
        Net2NetImportError: no such file or folder, or no (or an ambiguous) checkpoint.
    """
    path = Path(source)
    if path.is_dir():
        ckpts = sorted((path / "checkpoints").glob("*.ckpt"))
        if not ckpts:
            raise Net2NetImportError(
                f"{path}: no checkpoints/*.ckpt in this folder; give a net2net run folder or "
                "its checkpoint file"
            )
        last = path / "checkpoints" / "last.ckpt"
        if last in ckpts:
            ckpt = last
        elif len(ckpts) == 1:
            ckpt = ckpts[0]
        else:
            names = ", ".join(p.name for p in ckpts[:4])
            raise Net2NetImportError(
                f"{path}: several checkpoints ({names}) and no last.ckpt; give the file to import"
            )
        run = path
    elif path.is_file():
        ckpt = path
        run = path.parent.parent if path.parent.name == "checkpoints" else None
    else:
        raise Net2NetImportError(f"{path}: no such file or folder")
    yamls = sorted((run / "configs").glob("*-project.yaml")) if run is not None else []
    return ckpt, yamls


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


# ------------------------------------------------------------------------------- loading
def load_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The ``state_dict`` of a PyTorch Lightning checkpoint, and its small metadata
    (epoch, global_step, Lightning version).

    Read with ``torch.load(weights_only=True, map_location="cpu")``: both torch formats
    (the legacy one of torch 1.6, and zip), and nothing but tensors, storages and plain
    containers; any other object in the pickle (a class, a function call) is refused.

    Raises:
        Net2NetImportError: unreadable, truncated, not a checkpoint, or a pickle that
            would run code.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise Net2NetImportError(f"{path}: unreadable ({e.strerror or e})") from None
    if not head:
        raise Net2NetImportError(f"{path}: empty file, not a checkpoint")
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4": the refusal says more
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = _one_line(e)
        if "weights only" in msg.lower() or "unsupported global" in msg.lower():
            found = re.search(r"GLOBAL ([\w.]+)", str(e))
            what = f" ({found.group(1)})" if found else ""
            raise Net2NetImportError(
                f"{path}: refused: the pickle asks for an object other than tensors{what}, "
                "which could run code; it was not loaded"
            ) from None
        raise Net2NetImportError(f"{path}: not a torch checkpoint ({msg})") from None
    except (EOFError, RuntimeError, ValueError, OSError, KeyError, AttributeError) as e:
        why = _one_line(e)
        raise Net2NetImportError(
            f"{path}: not a readable torch checkpoint (truncated or another format: {why})"
        ) from None
    if not isinstance(obj, Mapping):
        raise Net2NetImportError(f"{path}: not a checkpoint (a {type(obj).__name__}, no dict)")
    state = obj.get("state_dict", obj)
    if not isinstance(state, Mapping) or not state:
        raise Net2NetImportError(f"{path}: not a net2net checkpoint (no state_dict)")
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise Net2NetImportError(
                f"{path}: not a net2net checkpoint (state_dict entry {ascii(k)[:60]} is not "
                "a named tensor)"
            )
        out[k] = v
    meta = {
        k: obj[k]
        for k in ("epoch", "global_step", "pytorch-lightning_version")
        if k in obj and isinstance(obj[k], (int, str))
    }
    return out, meta


# ------------------------------------------------------------------------------- folding
def fold_spectral_norm(w_bar: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The weight net2net's SpectralNorm uses in every forward pass: ``W_bar / sigma``.

    One power iteration from the stored (never updated) ``u``: ``v = l2n(W^T u)``,
    ``u' = l2n(W v)``, ``sigma = u' . (W v)``, with ``W = W_bar`` viewed as (out, -1) and
    ``l2n(x) = x / (||x|| + 1e-4)``, in the same order of operations as their code.
    """
    w = w_bar.reshape(w_bar.shape[0], -1)
    v = torch.matmul(w.t(), u)
    v = v / (v.norm() + SN_EPS)
    u2 = torch.matmul(w, v)
    u2 = u2 / (u2.norm() + SN_EPS)
    sigma = u2.dot(w.mv(v))
    return w_bar / sigma


def fold_batchnorm(
    weight: torch.Tensor,
    bias: torch.Tensor,
    bn_weight: torch.Tensor,
    bn_bias: torch.Tensor,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    eps: float = BN_EPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``Linear`` followed by an eval-mode ``BatchNorm1d`` as one ``Linear``: (weight, bias).

    ``bn(W x + b) = s (W x + b - m) + beta`` with ``s = gamma / sqrt(var + eps)``; computed
    in float64 and returned in the Linear's dtype.
    """
    s = bn_weight.double() / torch.sqrt(running_var.double() + eps)
    w = weight.double() * s[:, None]
    b = (bias.double() - running_mean.double()) * s + bn_bias.double()
    return w.to(weight.dtype), b.to(bias.dtype)


# ------------------------------------------------------------------------- architecture
@dataclass
class Architecture:
    """The sizes of a net2net model, read from its state dict's shapes."""

    resnet: str
    z_dim: int
    resolution: int
    chn: int
    num_classes: int
    n_flows: int
    hidden_dim: int
    hidden_depth: int
    embedding_dim: int
    embedder_hidden_dim: int
    embedder_depth: int
    embedder_bn: bool
    #: indices of the embedder's Linear layers in ``flow.embedder.main``
    embedder_linears: list[int] = field(default_factory=list)


def _indices(sd: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in sd if (m := rx.fullmatch(k))})


def _shape(sd: Mapping[str, torch.Tensor], key: str, where: Path) -> tuple[int, ...]:
    if key not in sd:
        raise Net2NetImportError(
            f"{where}: not a net2net dataset-translation checkpoint (no '{key}')"
        )
    return tuple(sd[key].shape)


def refuse_other_variants(sd: Mapping[str, torch.Tensor], where: Path) -> None:
    """Refuse net2net models other than the released dataset-translation kind."""
    if not any(k.startswith("first_stage_model.") for k in sd):
        raise Net2NetImportError(
            f"{where}: holds no autoencoder (no first_stage_model.* weights); only net2net "
            "dataset-translation checkpoints, which hold autoencoder and flow, can be imported"
        )
    if not any(k.startswith("flow.") for k in sd):
        raise Net2NetImportError(f"{where}: holds no flow (no flow.* weights)")
    for prefix, what in (
        (ENC, "a ResnetEncoder"),
        (DEC + "map_to_class_embedding.", "a BigGANDecoderWrapper"),
    ):
        if not any(k.startswith(prefix) for k in sd):
            raise Net2NetImportError(
                f"{where}: the autoencoder is not the ResNet + BigGAN of the released models "
                f"(no {prefix}* weights of {what})"
            )
    for k in sd:
        if k.startswith("flow.conditioning_layers."):
            raise Net2NetImportError(
                f"{where}: a flow with conditioning layers ('{k}': conditioning_option "
                "parallel or sequential); only the released models' flow can be imported"
            )
        if ".extra_linears." in k:
            raise Net2NetImportError(
                f"{where}: a BigGAN decoder with extra latent inputs ('{k}': extra_z_dims); "
                "only the released models' decoder can be imported"
            )
        if k.startswith(ENC + "model.in_ch_match."):
            raise Net2NetImportError(
                f"{where}: an encoder for {tuple(sd[k].shape)[1]}-channel input ('{k}'); "
                "only RGB encoders can be imported"
            )
        if k.startswith(GEN + "ScaledCrossReplicaBN.running_mean"):
            raise Net2NetImportError(
                f"{where}: a BigGAN decoder without ActNorm (use_actnorm_in_dec false); only "
                "the released models' decoder can be imported"
            )


def infer_architecture(sd: Mapping[str, torch.Tensor], where: Path) -> Architecture:
    """Sizes of the autoencoder and flow from the state dict's shapes.

    Raises:
        Net2NetImportError: a layout that is not the released models' kind.
    """
    refuse_other_variants(sd, where)
    bottleneck = f"{ENC}model.layer1.0.conv3.weight" in sd
    blocks = tuple(
        len(_indices(sd, re.escape(f"{ENC}model.layer{s}.") + r"(\d+)\.conv1\.weight"))
        for s in (1, 2, 3, 4)
    )
    resnet = _RESNETS.get((bottleneck, blocks))
    if resnet is None:
        kind = "bottleneck" if bottleneck else "basic"
        raise Net2NetImportError(
            f"{where}: the encoder is no torchvision ResNet-18/34/50/101 ({kind} blocks "
            f"{list(blocks)} per stage)"
        )
    head = _shape(sd, f"{ENC}model.fc.sub_layers.0.weight", where)
    z_dim = head[0] // 2
    if head[0] % 2 or head[2:] != (1, 1):
        raise Net2NetImportError(
            f"{where}: the encoder head has shape {head}; expected (2 z_dim, C, 1, 1)"
        )
    n_blocks = len(_indices(sd, re.escape(f"{GEN}GBlock.") + r"(\d+)\.conv0\.module\.weight_bar"))
    resolution = _BLOCKS_TO_RESOLUTION.get(n_blocks)
    if resolution is None:
        raise Net2NetImportError(
            f"{where}: the BigGAN decoder has {n_blocks} blocks; BigGAN-256 has 6, -128 has 5"
        )
    chn = _shape(sd, f"{GEN}colorize.module.weight_bar", where)[1]
    emb0 = _shape(sd, f"{DEC}map_to_class_embedding.main.0.weight", where)
    if emb0[1] != z_dim:
        raise Net2NetImportError(
            f"{where}: the decoder takes {emb0[1]}-d codes but the encoder gives {z_dim}-d ones"
        )

    linears = [
        i
        for i in _indices(sd, r"flow\.embedder\.main\.(\d+)\.weight")
        if len(sd[f"flow.embedder.main.{i}.weight"].shape) == 2
    ]
    bns = _indices(sd, r"flow\.embedder\.main\.(\d+)\.running_mean")
    if len(linears) < 2:
        raise Net2NetImportError(f"{where}: the flow's embedder has fewer than 2 Linear layers")
    step = 3 if bns else 2
    if linears != list(range(0, step * len(linears), step)) or (
        bns and bns != [i + 1 for i in linears[:-1]]
    ):
        raise Net2NetImportError(
            f"{where}: the flow's embedder is not a BasicFullyConnectedNet (Linear layers at "
            f"{linears}, BatchNorm at {bns})"
        )
    first = sd[f"flow.embedder.main.{linears[0]}.weight"].shape
    last = sd[f"flow.embedder.main.{linears[-1]}.weight"].shape
    n_flows = len(_indices(sd, r"flow\.sub_layers\.(\d+)\.norm_layer\.loc"))
    if n_flows < 1:
        raise Net2NetImportError(f"{where}: the flow has no blocks (flow.sub_layers.*)")
    dim = sd["flow.sub_layers.0.norm_layer.loc"].numel()
    if dim != z_dim:
        raise Net2NetImportError(
            f"{where}: the flow works on {dim}-d codes but the autoencoder's are {z_dim}-d"
        )
    s_linears = _indices(sd, r"flow\.sub_layers\.0\.coupling\.s\.0\.main\.(\d+)\.weight")
    if len(s_linears) < 2:
        raise Net2NetImportError(
            f"{where}: the flow's couplings are not net2net's double couplings"
        )
    hidden = sd["flow.sub_layers.0.coupling.s.0.main.0.weight"].shape
    if hidden[1] != dim // 2 + last[0]:
        raise Net2NetImportError(
            f"{where}: the couplings take {hidden[1]} inputs, not half the code ({dim // 2}) "
            f"plus the label embedding ({last[0]})"
        )
    return Architecture(
        resnet=resnet,
        z_dim=z_dim,
        resolution=resolution,
        chn=chn,
        num_classes=first[1],
        n_flows=n_flows,
        hidden_dim=hidden[0],
        hidden_depth=len(s_linears) - 2,
        embedding_dim=last[0],
        embedder_hidden_dim=first[0],
        embedder_depth=len(linears) - 2,
        embedder_bn=bool(bns),
        embedder_linears=linears,
    )


# ---------------------------------------------------------------------------- key mapping
_SN_PARTS = ("weight_bar", "weight_u", "weight_v", "bias")
#: the weights of a flow block that net2fair's FlowBlock has under the same names
_FLOW_BLOCK = re.compile(
    r"flow\.sub_layers\.\d+\.(norm_layer\.(loc|scale|initialized)"
    r"|coupling\.[st]\.[01]\.main\.\d+\.(weight|bias)"
    r"|shuffle\.(forward|backward)_shuffle_idx)"
)


def _decoder_name(rest: str) -> str | None:
    """net2fair name (under ``autoencoder.decoder.``) of a generator module path, or None."""
    m = re.fullmatch(r"GBlock\.(\d+)\.(conv0|conv1|conv_sc)", rest)
    if m:
        return f"blocks.{m.group(1)}.{m.group(2)}"
    m = re.fullmatch(r"GBlock\.(\d+)\.(HyperBN|HyperBN_1)\.(gamma_embed|beta_embed)", rest)
    if m:
        norm = "norm0" if m.group(2) == "HyperBN" else "norm1"
        return f"blocks.{m.group(1)}.{norm}.{m.group(3).split('_')[0]}"
    m = re.fullmatch(r"attention\.(theta|phi|g|o_conv)", rest)
    if m:
        return rest
    return {"G_linear": "z_linear", "colorize": "colorize"}.get(rest)


def convert_state(
    sd: Mapping[str, torch.Tensor], arch: Architecture, where: Path
) -> dict[str, torch.Tensor]:
    """net2net's state dict as net2fair ``Translator`` weights (without ``stats_*``).

    Every source key is consumed exactly once: mapped (renamed, reshaped or folded), or
    dropped for a reason (the spectral norm's unused ``weight_v``); a key left over is an
    error, so nothing is silently ignored.

    Raises:
        Net2NetImportError: a key no rule accounts for, or a malformed spectral norm.
    """
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        if key not in sd:
            raise Net2NetImportError(f"{where}: '{key}' is missing")
        used.add(key)
        return sd[key]

    for key in sd:
        if key.startswith(ENC):
            rest = key[len(ENC) :]
            if rest.startswith("model.fc.sub_layers.0."):
                out["autoencoder.encoder.head." + rest.split(".")[-1]] = take(key)
            elif rest.startswith("model."):
                out["autoencoder.encoder.resnet." + rest[len("model.") :]] = take(key)
        elif key.startswith(DEC + "map_to_class_embedding."):
            rest = key[len(DEC + "map_to_class_embedding.") :]
            out["autoencoder.decoder.class_embedding." + rest] = take(key)
        elif key == GEN + "linear.weight":
            out["autoencoder.decoder.class_linear.weight"] = take(key)
        elif key.startswith(GEN) and ".module." in key:
            module, _, part = key[len(GEN) :].rpartition(".module.")
            name = _decoder_name(module)
            if name is None or part not in _SN_PARTS:
                continue  # left over: reported below
            if part == "weight_bar":
                w_bar = take(key)
                u = take(f"{GEN}{module}.module.weight_u").reshape(-1)
                take(f"{GEN}{module}.module.weight_v")  # their code never reads it
                if u.numel() != w_bar.shape[0]:
                    raise Net2NetImportError(
                        f"{where}: '{key}': spectral norm vector u has {u.numel()} entries "
                        f"for a weight with {w_bar.shape[0]} rows"
                    )
                out[f"autoencoder.decoder.{name}.weight"] = fold_spectral_norm(
                    w_bar.float(), u.float()
                )
            elif part == "bias":
                out[f"autoencoder.decoder.{name}.bias"] = take(key)
        elif key.startswith(GEN):
            rest = key[len(GEN) :]
            m = re.fullmatch(r"GBlock\.(\d+)\.(HyperBN|HyperBN_1)\.bn\.(\w+)", rest)
            if m:
                norm = "norm0" if m.group(2) == "HyperBN" else "norm1"
                out[f"autoencoder.decoder.blocks.{m.group(1)}.{norm}.bn.{m.group(3)}"] = take(key)
            elif rest.startswith("ScaledCrossReplicaBN."):
                out["autoencoder.decoder.out_norm." + rest.split(".", 1)[1]] = take(key)
            elif rest == "attention.gamma":
                out["autoencoder.decoder.attention.gamma"] = take(key)
        elif key.startswith("flow.embedder.main."):
            continue  # below, with its BatchNorm
        elif _FLOW_BLOCK.fullmatch(key):
            t = take(key)
            if key.endswith((".norm_layer.loc", ".norm_layer.scale")):
                t = t.reshape(-1)  # (1, C, 1, 1) there, (C,) in net2fair's flat ActNorm
            out[key] = t

    for j, i in enumerate(arch.embedder_linears):
        w = take(f"flow.embedder.main.{i}.weight")
        b = take(f"flow.embedder.main.{i}.bias")
        if arch.embedder_bn and i != arch.embedder_linears[-1]:
            bn = f"flow.embedder.main.{i + 1}."
            w, b = fold_batchnorm(
                w,
                b,
                take(bn + "weight"),
                take(bn + "bias"),
                take(bn + "running_mean"),
                take(bn + "running_var"),
            )
            take(bn + "num_batches_tracked")  # a training counter; eval mode ignores it
        out[f"flow.embedder.main.{2 * j}.weight"] = w
        out[f"flow.embedder.main.{2 * j}.bias"] = b

    left = [k for k in sd if k not in used]
    if left:
        shown = ", ".join(f"'{k}'" for k in left[:3])
        raise Net2NetImportError(
            f"{where}: {len(left)} weight(s) that no part of the released models' architecture "
            f"accounts for, e.g. {shown}; this is another kind of net2net model"
        )
    return out


# ------------------------------------------------------------------------------- config
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


# --------------------------------------------------------------------------- the import
@dataclass
class ImportResult:
    """What :func:`import_net2net` wrote."""

    model_dir: Path
    checkpoint: Path
    domains: list[str]
    architecture: Architecture
    notes: list[str]
    #: images used per dataset for the latent statistics (empty: none computed)
    stats_counts: dict[str, int] = field(default_factory=dict)


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


def translator_from_checkpoint(
    source: str | Path, *, domains: str | Sequence[str] | None = None
) -> tuple[Any, ImportResult]:
    """Read a net2net run folder or checkpoint into a frozen net2fair ``Translator``.

    Arguments:
        source: the run folder (with ``checkpoints/`` and ``configs/``) or a ``.ckpt``.
        domains: dataset names in label order (a list, or "a,b,c"); default: the paper's
            labels for the three released runs.

    Returns:
        The translator (CPU, eval mode, no latent statistics) and an :class:`ImportResult`
        whose ``model_dir`` is not set yet.

    Raises:
        Net2NetImportError: one line naming the file and the reason.
    """
    from net2fair.models.translator import Translator

    ckpt, yamls = locate(source)
    data = read_project_yaml(yamls)
    sd, meta = load_state_dict(ckpt)
    arch = infer_architecture(sd, ckpt)
    settings = project_settings(data, arch, yamls[-1] if yamls else None, ckpt)
    state = convert_state(sd, arch, ckpt)
    del sd
    if isinstance(domains, str):
        names = parse_domains(domains, arch.num_classes, ckpt)
    elif domains is not None:
        names = parse_domains(",".join(domains), arch.num_classes, ckpt)
    else:
        names = list(settings.labels) if settings.labels else None
    if names is None:
        raise Net2NetImportError(
            f"{ckpt}: not one of the released runs, so the dataset names are unknown; pass "
            f"--domains with {arch.num_classes} names in label order"
        )
    what = f"epoch {meta['epoch']}, step {meta['global_step']}" if "epoch" in meta else ""
    provenance = (
        f"imported from the net2net checkpoint {ckpt.name} ({ckpt.parent.parent.name}"
        f"{'; ' + what if what else ''}); weights trained and released by Rombach, Esser and "
        "Ommer (github.com/CompVis/net2net) on their datasets"
    )
    cfg = build_config(arch, settings, names, provenance)
    try:
        from net2fair.config import validate_config

        validate_config(cfg)
        t = Translator(cfg)
    except (ConfigError, ValueError) as e:
        raise Net2NetImportError(f"{ckpt}: {_one_line(e)}") from None
    expected = t.state_dict()
    for key in list(expected):
        if key.startswith("stats_"):
            state[key] = expected[key]
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise Net2NetImportError(
            f"{ckpt}: the weights do not fill the model (missing {len(missing)} e.g. "
            f"{missing[:2]}, unexpected {len(extra)} e.g. {extra[:2]})"
        )
    for key, ref in expected.items():
        got = state[key]
        if tuple(got.shape) != tuple(ref.shape):
            raise Net2NetImportError(
                f"{ckpt}: '{key}' has shape {tuple(got.shape)}, the architecture needs "
                f"{tuple(ref.shape)}"
            )
        got = got.to(ref.dtype)
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise Net2NetImportError(f"{ckpt}: '{key}' holds NaN or infinite values")
        state[key] = got
    t.load_state_dict(state, strict=True)
    t.freeze()
    result = ImportResult(
        model_dir=Path(),
        checkpoint=ckpt,
        domains=names,
        architecture=arch,
        notes=settings.notes,
    )
    return t, result


@torch.inference_mode()
def latent_statistics_from_folders(
    t: Any,
    folders: Mapping[str, str | Path],
    *,
    batch_size: int = 8,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, int]:
    """Fill ``t``'s per-dataset latent statistics (mean, covariance, count of the encoder
    means) from image folders, the way training does from its training set.

    Arguments:
        t: a :class:`~net2fair.models.translator.Translator`.
        folders: dataset name -> image folder (recursive); unreadable images are skipped.
        batch_size: images per encoder call.
        progress: called with (dataset, done, total) after each batch.

    Returns:
        dataset -> number of images used.

    Raises:
        ValueError: an unknown dataset name, or a folder without a usable image.
    """
    from net2fair.data.images import ImageError, list_images, load_image, to_tensor

    counts: dict[str, int] = {}
    for name, folder in folders.items():
        k = t.domain_index(name)
        paths, skipped = list_images(Path(folder))
        for p, reason in skipped:
            logger.warning("skipped %s: %s", p, reason)
        mus = []
        for start in range(0, len(paths), batch_size):
            batch = []
            for p in paths[start : start + batch_size]:
                try:
                    batch.append(to_tensor(load_image(p), t.resolution))
                except ImageError as e:
                    logger.warning("skipped %s", e)
            if batch:
                mus.append(t.encode(torch.stack(batch)).double().cpu())
            if progress is not None:
                progress(name, min(start + batch_size, len(paths)), len(paths))
        if not mus or sum(m.shape[0] for m in mus) < 2:
            raise ValueError(
                f"{folder}: fewer than 2 usable images for '{name}'; latent statistics need a "
                "covariance"
            )
        mu = torch.cat(mus)
        t.stats_mean[k] = mu.mean(0).float()
        t.stats_cov[k] = torch.cov(mu.t()).float()
        t.stats_count[k] = float(mu.shape[0])
        counts[t.domains[k]] = int(mu.shape[0])
    return counts


def import_net2net(
    source: str | Path,
    out: str | Path,
    *,
    domains: str | Sequence[str] | None = None,
    stats_folders: Mapping[str, str | Path] | None = None,
    device: str | torch.device = "cpu",
) -> ImportResult:
    """Import a released net2net model into the model folder ``out``.

    ``out`` is checked first (new, empty, or an earlier model folder), then the checkpoint
    is read and converted, the latent statistics computed (on ``device``) when
    ``stats_folders`` are given, and the folder written atomically: on any error nothing is
    written to ``out``.

    Raises:
        Net2NetImportError: bad input (one line naming the file and the reason).
        net2fair.fileio.OutputError: ``out`` may not be written.
    """
    from net2fair.fileio import check_output_folder
    from net2fair.models.translator import MODEL_EXTRA_FILES, MODEL_FILES

    legacy = (*MODEL_FILES, *MODEL_EXTRA_FILES)
    check_output_folder(out, "model", legacy=legacy)
    t, result = translator_from_checkpoint(source, domains=domains)
    if stats_folders:
        t = t.to(device)
        try:
            result.stats_counts = latent_statistics_from_folders(t, stats_folders)
        except (ValueError, FileNotFoundError, NotADirectoryError) as e:
            raise Net2NetImportError(_one_line(e)) from None
        shown = ", ".join(f"{k} ({n} images)" for k, n in result.stats_counts.items())
        t.cfg.model.provenance += f"; latent statistics computed at import from {shown}"
    else:
        result.notes.append(
            "no per-dataset latent statistics: reports skip the latent Frechet distance and "
            "the benchmark's linear baselines need them (compute them with --stats NAME=DIR)"
        )
    metrics = {
        "imported_from": "net2net",
        "checkpoint": result.checkpoint.name,
        "latent_statistics": result.stats_counts,
    }
    result.model_dir = t.save(out, metrics=metrics)
    return result
