"""net2net's state dict as net2fair weights: every key renamed, reshaped or folded, or
dropped for a stated reason; none may be left over or missing.

Two kinds of weight change shape on the way:

- the decoder's spectral norm is folded into plain weights: their code never updates the
  power-iteration vector ``u``, so every forward pass uses one fixed
  ``W = W_bar / sigma(W_bar, u)``, computed here once (:func:`fold_spectral_norm`);
- the flow's label embedder has BatchNorm1d layers after its Linear layers; in eval mode
  each is a fixed affine map, folded into the Linear before it (:func:`fold_batchnorm`;
  net2fair's embedder has no BatchNorm, so a label's embedding never depends on the batch).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from net2fair.importers.net2net.architecture import DEC, ENC, GEN, Architecture
from net2fair.importers.net2net.errors import Net2NetImportError

#: the spectral norm's l2 normalisation, x / (||x|| + eps), as in their biggan.py
SN_EPS = 1e-4
#: BatchNorm1d's default eps (their embedder uses the default)
BN_EPS = 1e-5


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
