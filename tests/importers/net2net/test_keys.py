"""The weight folding of net2fair/importers/net2net/keys.py: BatchNorm into the Linear
before it, the spectral norm into plain weights."""

from __future__ import annotations

import torch

from net2fair.importers.net2net import fold_batchnorm, fold_spectral_norm


def test_fold_batchnorm_equals_linear_then_batchnorm() -> None:
    torch.manual_seed(0)
    lin, bn = torch.nn.Linear(5, 7), torch.nn.BatchNorm1d(7)
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
        bn.weight.normal_()
        bn.bias.normal_()
    bn.eval()
    w, b = fold_batchnorm(lin.weight, lin.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var)
    x = torch.randn(4, 5)
    torch.testing.assert_close(x @ w.T + b, bn(lin(x)), rtol=1e-5, atol=1e-6)


def test_fold_spectral_norm_divides_by_the_power_iteration_estimate() -> None:
    w = torch.randn(6, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    u = torch.randn(6, generator=torch.Generator().manual_seed(1))
    folded = fold_spectral_norm(w, u)
    ratio = w / folded
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio))
    # one power iteration from a random u underestimates the largest singular value
    assert float(ratio.flatten()[0]) <= float(torch.linalg.matrix_norm(w.reshape(6, -1), 2))
