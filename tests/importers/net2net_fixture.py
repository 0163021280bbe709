"""The small net2net fixture: weights from a seed per key, a PL-0.9-shaped checkpoint, inputs.

Shared by ``tools/net2net_goldens.py`` (which builds the small variant from the original
code, loads these weights into it and records its outputs) and ``tests/importers`` (which
rebuild the same checkpoint without the original code and import it). Only the key list
(``manifest.json``), the project yaml and the goldens are committed; the weights are
regenerated from :func:`seeded_tensor`.

The small variant: ResNet-18 encoder, BigGAN-256 generator with chn 8, z_dim 128, a flow of
3 blocks of width 64 with a BatchNorm embedder, K = 3 (the CelebA / CelebA-HQ / FFHQ data
module, so the paper's labels apply).
"""

from __future__ import annotations

import json
import math
import zlib
from collections import OrderedDict
from pathlib import Path

import torch

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "net2net"
MANIFEST = FIXTURES / "manifest.json"
PROJECT_YAML = FIXTURES / "2020-01-01T00-00-00-project.yaml"
GOLDENS = FIXTURES / "goldens.safetensors"
#: a run folder name like the released one, so the paper's labels are recognised from it too
RUN_NAME = "2020-01-01T00-00-00_celeba_celebahq_ffhq_256_mini"
#: the images fed to the model, and the seed of the sampled residuals
N_IMAGES = 2
SOURCE_LABEL = 0
SAMPLE_SEED = 7
N_SAMPLES = 2
#: golden images are stored subsampled: rows and columns OFFSET, OFFSET + STRIDE, ...
STRIDE = 8
OFFSET = 3

_DTYPES = {"float32": torch.float32, "int64": torch.int64, "uint8": torch.uint8}


def _generator(key: str) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(key.encode()))


def seeded_tensor(key: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """The fixture's value of state-dict entry ``key``: a function of the key alone.

    Chosen so that the random model is well conditioned: weights ~ N(0, 1 / fan_in), the
    flow couplings' last layers 10x smaller, ActNorm and BatchNorm statistics near the
    identity, the attention switched on (gamma 0.5), permutations random.
    """
    g = _generator(key)
    name = key.rsplit(".", 1)[-1]
    if name.endswith("_shuffle_idx"):
        idx = torch.randperm(shape[0], generator=_generator(key.replace("backward", "forward")))
        return idx if name.startswith("forward") else torch.argsort(idx)
    if name == "initialized":
        return torch.ones(shape, dtype=dtype)
    if name == "num_batches_tracked":
        return torch.full(shape, 1000, dtype=dtype)
    if name in ("running_var", "scale"):
        return torch.rand(shape, generator=g, dtype=dtype) + 0.5
    if name in ("running_mean", "loc"):
        return 0.1 * torch.randn(shape, generator=g, dtype=dtype)
    if name == "gamma":
        return torch.full(shape, 0.5, dtype=dtype)
    small = 0.1 if ".coupling." in key and ".main.6." in key else 1.0
    if name in ("weight", "weight_bar") and len(shape) >= 2:
        fan_in = math.prod(shape[1:])
        return small * torch.randn(shape, generator=g, dtype=dtype) / math.sqrt(fan_in)
    if name == "weight" and len(shape) == 1:  # a BatchNorm's
        return 1.0 + 0.1 * torch.randn(shape, generator=g, dtype=dtype)
    if name == "bias":
        return small * 0.1 * torch.randn(shape, generator=g, dtype=dtype)
    return torch.randn(shape, generator=g, dtype=dtype)  # weight_u, weight_v


def manifest() -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    """(key, shape, dtype) of the small variant's state dict, in its order."""
    entries = json.loads(MANIFEST.read_text())
    return [(k, tuple(shape), _DTYPES[dt]) for k, shape, dt in entries]


def seeded_state_dict() -> OrderedDict[str, torch.Tensor]:
    """The small variant's weights, regenerated from the manifest and the seed rule."""
    return OrderedDict((k, seeded_tensor(k, shape, dt)) for k, shape, dt in manifest())


def lightning_checkpoint(state: OrderedDict[str, torch.Tensor]) -> dict:
    """A dict shaped like a PyTorch Lightning 0.9 checkpoint around ``state``: what the
    released files hold (Adam state for a few flow parameters stands in for the rest)."""
    flow_keys = [k for k in state if k.startswith("flow.") and state[k].is_floating_point()][:3]
    opt_state = {
        i: {
            "step": 10,
            "exp_avg": torch.zeros_like(state[k]),
            "exp_avg_sq": torch.zeros_like(state[k]),
            "max_exp_avg_sq": torch.zeros_like(state[k]),
        }
        for i, k in enumerate(flow_keys)
    }
    groups = [
        {
            "lr": 4.5e-6,
            "betas": (0.5, 0.9),
            "eps": 1e-8,
            "weight_decay": 0,
            "amsgrad": True,
            "params": list(range(len(flow_keys))),
        }
    ]
    return {
        "epoch": 3,
        "global_step": 1234,
        "pytorch-lightning_version": "0.9.0",
        "checkpoint_callback_best_model_score": torch.tensor(1.5),
        "checkpoint_callback_best_model_path": "logs/x/checkpoints/epoch=000003.ckpt",
        "optimizer_states": [{"state": opt_state, "param_groups": groups}],
        "lr_schedulers": [],
        "state_dict": state,
    }


def write_run_folder(root: Path, *, legacy: bool, state: OrderedDict | None = None) -> Path:
    """A net2net run folder under ``root`` with the fixture checkpoint (legacy non-zip torch
    format when ``legacy``, else zip) and the project yaml; returns the run folder."""
    run = root / RUN_NAME
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run / "configs").mkdir(exist_ok=True)
    ckpt = lightning_checkpoint(state if state is not None else seeded_state_dict())
    torch.save(ckpt, run / "checkpoints" / "last.ckpt", _use_new_zipfile_serialization=not legacy)
    (run / "configs" / PROJECT_YAML.name).write_text(PROJECT_YAML.read_text())
    return run


def input_images() -> torch.Tensor:
    """``(N_IMAGES, 3, 256, 256)`` in [-1, 1]: smooth seeded noise (bilinear from 16 px)."""
    g = torch.Generator().manual_seed(1)
    small = torch.rand(N_IMAGES, 3, 16, 16, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(
        small, size=(256, 256), mode="bilinear", align_corners=False
    )


def sample_residuals() -> torch.Tensor:
    """``(N_SAMPLES, 128)``: the residuals drawn by ``Translator.sample_latents(seed=...)``."""
    return torch.randn(N_SAMPLES, 128, generator=torch.Generator().manual_seed(SAMPLE_SEED))


def subsample(images: torch.Tensor) -> torch.Tensor:
    """What the goldens keep of ``(B, 3, 256, 256)`` images: every STRIDE-th pixel."""
    return images[:, :, OFFSET::STRIDE, OFFSET::STRIDE].contiguous()
