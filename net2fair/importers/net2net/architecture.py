"""The sizes of a net2net model, read from its state dict's shapes, and the refusal of
every variant other than the released dataset-translation models (ResNet encoder, BigGAN
decoder with ActNorm, the conditional flat coupling flow without conditioning layers)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from net2fair.importers.net2net.errors import Net2NetImportError

#: key prefixes of the autoencoder's encoder, its decoder wrapper and the BigGAN generator
ENC = "first_stage_model.encoder."
DEC = "first_stage_model.decoder."
GEN = DEC + "decoder."
#: ResNet kind by (bottleneck blocks?, blocks per stage)
_RESNETS = {
    (False, (2, 2, 2, 2)): "resnet18",
    (False, (3, 4, 6, 3)): "resnet34",
    (True, (3, 4, 6, 3)): "resnet50",
    (True, (3, 4, 23, 3)): "resnet101",
}
_BLOCKS_TO_RESOLUTION = {6: 256, 5: 128}


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
