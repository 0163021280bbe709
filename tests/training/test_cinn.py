"""Stage 2: batch schedule, latent statistics, the likelihood it fits, and keeping the best
validation weights."""

from __future__ import annotations

import math

import pytest
import torch

from net2fair.config import load_config
from net2fair.training.cinn import (
    LogLikelihood,
    _keep_best,
    build_flow,
    evaluate_flow,
    latent_statistics,
    train_cinn,
    validation_objective,
)
from net2fair.training.engine import batch_indices, lr_at, setup_runtime


def test_batches_are_a_pure_function_of_step_and_cover_each_epoch():
    a = batch_indices(10, 4, step=7, seed=3)
    assert torch.equal(a, batch_indices(10, 4, step=7, seed=3))
    epoch = torch.cat([batch_indices(12, 4, s, seed=1) for s in range(3)])
    assert sorted(epoch.tolist()) == list(range(12))
    # two processes split one global batch without overlap
    r0 = batch_indices(12, 3, 0, seed=1, rank=0, world_size=2)
    r1 = batch_indices(12, 3, 0, seed=1, rank=1, world_size=2)
    assert not set(r0.tolist()) & set(r1.tolist())


def test_lr_schedule_warms_up_then_decays():
    kw = dict(lr=1.0, steps=100, warmup=10, min_ratio=0.1)
    assert lr_at(0, **kw) == 0.1 and lr_at(9, **kw) == 1.0
    assert abs(lr_at(99, **kw) - 0.1) < 1e-3 and lr_at(50, **kw) < 1.0
    assert lr_at(50, lr=1.0, steps=100, warmup=0, min_ratio=1.0) == 1.0


def test_latent_statistics_per_dataset():
    mu = torch.tensor([[0.0, 0.0], [2.0, 2.0], [10.0, 0.0], [12.0, 2.0]])
    labels = torch.tensor([0, 0, 1, 1])
    mean, cov, count = latent_statistics({"mu": mu, "labels": labels}, 3)
    assert torch.allclose(mean[1], torch.tensor([11.0, 1.0]))
    assert torch.allclose(cov[0], torch.tensor([[2.0, 2.0], [2.0, 2.0]]))
    assert count.tolist() == [2, 2, 0]


def test_keep_best_restores_the_best_validation_weights():
    cfg = load_config(overrides=["autoencoder.z_dim=4", "flow.n_flows=1", "flow.hidden_dim=8"])
    flow = build_flow(cfg, 2)
    best_state = {k: v.clone() for k, v in flow.state_dict().items()}
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(1.0)
    best = {"val": 1.0, "step": 200, "state": best_state, "metrics": {"val_bits_per_dim": 1.0}}
    kept, metrics = _keep_best(flow, best, {"val_bits_per_dim": 1.5})
    assert metrics["best_step"] == 200 and metrics["val_bits_per_dim"] == 1.0
    assert metrics["last_val_bits_per_dim"] == 1.5
    for k, v in kept.state_dict().items():
        assert torch.equal(v, best_state[k])
    # when the last weights are the best, they stay
    flow2 = build_flow(cfg, 2)
    before = {k: v.clone() for k, v in flow2.state_dict().items()}
    _, m2 = _keep_best(flow2, {**best, "val": 2.0}, {"val_bits_per_dim": 1.5})
    assert m2["best_step"] is None
    assert all(torch.equal(v, before[k]) for k, v in flow2.state_dict().items())


def test_the_training_pass_is_the_flows_log_likelihood_and_validation_its_bits_per_dim():
    torch.manual_seed(0)
    cfg = load_config(overrides=["autoencoder.z_dim=6", "flow.n_flows=3", "flow.hidden_dim=16"])
    flow = build_flow(cfg, 3).double()
    with torch.no_grad():  # move the flow away from its near-identity initialisation
        for p in flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
    z = torch.randn(10, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (10,))
    lp = LogLikelihood(flow)(z, y)
    v, logdet = flow(z, y)
    by_hand = -0.5 * (v.pow(2).sum(1) + 6 * math.log(2 * math.pi)) + logdet
    torch.testing.assert_close(lp, by_hand)
    metrics = evaluate_flow(flow, {"mu": z, "labels": y}, setup_runtime("cpu"))
    assert metrics["val_nll"] == pytest.approx(-lp.mean().item())
    assert metrics["val_bits_per_dim"] == pytest.approx(-lp.mean().item() / (6 * math.log(2)))
    assert set(metrics) == {"val_nll", "val_bits_per_dim"}


def test_validation_objective_is_the_bits_per_dim():
    assert validation_objective({"val_bits_per_dim": 1.0, "val_transport": 0.5}) == 1.0
    assert validation_objective({}) == math.inf


def test_a_short_run_keeps_its_best_validation_and_logs_no_retired_columns(tmp_path):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(256, 4, generator=g)
    cache = {"mu": z, "logvar": torch.full_like(z, -12.0), "labels": torch.arange(256) % 2}
    cfg = load_config(
        overrides=[
            "autoencoder.z_dim=4",
            "flow.n_flows=2",
            "flow.hidden_dim=16",
            "train.cinn.steps=20",
            "train.cinn.batch_size=64",
            "train.cinn.val_every=10",
            "train.cinn.ckpt_every=20",
            "train.cinn.log_every=10",
        ]
    )
    rt = setup_runtime("cpu")
    flow, metrics = train_cinn(cfg, tmp_path, rt, cache, cache, 2, resume=False, progress=False)
    again = evaluate_flow(flow, cache, rt)
    assert again["val_bits_per_dim"] == pytest.approx(metrics["val_bits_per_dim"], rel=1e-5)
    header = (tmp_path / "cinn_log.csv").read_text().splitlines()[0].split(",")
    assert "transport" not in header and "val_transport" not in header
