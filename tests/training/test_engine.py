"""Runtime: which precision each device trains in."""

from __future__ import annotations

import torch
from torch import nn

from net2fair.training.engine import Runtime


def _conv_dtype(rt: Runtime) -> torch.dtype:
    conv = nn.Conv2d(3, 4, 3)
    with rt.autocast():
        return conv(torch.randn(1, 3, 8, 8)).dtype


def test_bf16_autocasts_convolutions_on_cpu_and_the_other_settings_stay_float32():
    cpu = torch.device("cpu")
    assert _conv_dtype(Runtime(cpu, precision="bf16")) == torch.bfloat16
    assert _conv_dtype(Runtime(cpu, precision="32")) == torch.float32
    # CPUs have no fast float16 convolutions: "16-mixed" trains in float32 there
    assert _conv_dtype(Runtime(cpu, precision="16-mixed")) == torch.float32
    assert not Runtime(cpu, precision="16-mixed").grad_scaler().is_enabled()
