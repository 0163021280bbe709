"""Devices, processes and precision for both training stages, on PyTorch DDP.

One code path serves a CPU, one GPU, and several GPUs or machines: launched by
``torchrun`` (which sets RANK / WORLD_SIZE / LOCAL_RANK), every process trains on its own
slice of each global batch and DDP averages the gradients (gloo on CPU, NCCL on CUDA).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

logger = logging.getLogger(__name__)


class DeviceError(RuntimeError):
    """The requested device cannot be used."""


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda was asked for, but no CUDA GPU is available here")
        return torch.device("cuda", local_rank) if name == "cuda" else torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise DeviceError(f"unknown device '{name}' (use auto, cpu or cuda)")


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    precision: str = "32"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision when asked for: bf16 or fp16 on CUDA; bf16 on CPU (1.36x faster
        stage-1 steps on a CPU with bf16 instructions, bench/performance.py), where
        "16-mixed" stays float32 (CPUs have no fast fp16 convolutions)."""
        if self.precision == "32" or self.device.type not in ("cuda", "cpu"):
            return contextlib.nullcontext()
        if self.device.type == "cpu":
            if self.precision != "bf16":
                return contextlib.nullcontext()
            return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        enabled = self.device.type == "cuda" and self.precision == "16-mixed"
        return torch.amp.GradScaler("cuda", enabled=enabled)

    def wrap(self, module: nn.Module) -> nn.Module:
        """DDP around ``module`` when distributed (broadcasts rank 0's state to all)."""
        if not self.distributed:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def mean(self, value: float) -> float:
        """Average a scalar over processes (for logging)."""
        if not self.distributed:
            return float(value)
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item() / self.world_size)


def setup_runtime(device: str = "auto", precision: str = "32") -> Runtime:
    """Join the process group when launched by torchrun; pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend)
        logger.info("process %d of %d on %s (%s)", rank, world, dev, backend)
    if dev.type == "cpu" and precision == "bf16":
        if cpu_has_bf16():
            logger.info("train.precision=bf16: the autoencoder runs under bf16 autocast on CPU")
        else:
            logger.warning(
                "train.precision=bf16: this CPU has no bfloat16 instructions, so bf16 is "
                "emulated and likely slower than float32 (train.precision=32)"
            )
    elif dev.type == "cpu" and precision == "16-mixed":
        logger.info("train.precision=16-mixed has no effect on CPU: training in float32")
    return Runtime(dev, rank, world, local_rank, precision)


def cpu_has_bf16() -> bool:
    """Whether oneDNN has native bfloat16 kernels on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def teardown(rt: Runtime) -> None:
    if rt.distributed and dist.is_initialized():
        dist.destroy_process_group()


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, DistributedDataParallel) else module


@lru_cache(maxsize=4)
def _permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def batch_indices(
    n: int, batch_size: int, step: int, seed: int, rank: int = 0, world_size: int = 1
) -> torch.Tensor:
    """The dataset indices of one process's batch at ``step``: a pure function of its
    arguments, so a resumed run sees exactly the data an uninterrupted run would.

    The stream is a concatenation of seeded permutations (one per epoch); each global
    batch of ``batch_size * world_size`` is split between processes by rank.
    """
    if n <= 0:
        raise ValueError("cannot draw batches from an empty dataset")
    pos = step * batch_size * world_size + rank * batch_size
    out: list[torch.Tensor] = []
    need = batch_size
    while need:
        epoch, off = divmod(pos, n)
        take = min(need, n - off)
        out.append(_permutation(n, seed, epoch)[off : off + take])
        pos += take
        need -= take
    return torch.cat(out)


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A CPU generator for one step's randomness (flips, posterior noise)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 7 + stream)


class StepBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches for steps ``start .. stop - 1`` from :func:`batch_indices` (for DataLoader)."""

    def __init__(
        self, n: int, batch_size: int, start: int, stop: int, seed: int, rank: int, world: int
    ) -> None:
        self.args = (n, batch_size, seed, rank, world)
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        n, b, seed, rank, world = self.args
        for step in range(self.start, self.stop):
            yield batch_indices(n, b, step, seed, rank, world).tolist()


def lr_at(step: int, *, lr: float, steps: int, warmup: int, min_ratio: float) -> float:
    """Linear warm-up, then cosine decay to ``lr * min_ratio`` (constant when 1.0)."""
    import math

    if warmup and step < warmup:
        return lr * (step + 1) / warmup
    if min_ratio >= 1.0 or steps <= warmup:
        return lr
    t = min(1.0, (step - warmup) / max(1, steps - warmup))
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))
