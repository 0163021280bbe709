"""Stage 2: batch schedule, latent statistics, keeping the best validation weights, and the
transport cost."""

from __future__ import annotations

import math

import pytest
import torch

from net2fair.config import ConfigError, load_config
from net2fair.training.cinn import (
    ProjectionObjective,
    _keep_best,
    build_flow,
    evaluate_flow,
    latent_scale,
    latent_statistics,
    other_labels,
    train_cinn,
    transport_cost,
    transport_weight_at,
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
    kept, metrics = _keep_best(flow, best, {"val_bits_per_dim": 1.5}, 0.0)
    assert metrics["best_step"] == 200 and metrics["val_bits_per_dim"] == 1.0
    assert metrics["last_val_bits_per_dim"] == 1.5
    for k, v in kept.state_dict().items():
        assert torch.equal(v, best_state[k])
    # when the last weights are the best, they stay
    flow2 = build_flow(cfg, 2)
    before = {k: v.clone() for k, v in flow2.state_dict().items()}
    _, m2 = _keep_best(flow2, {**best, "val": 2.0}, {"val_bits_per_dim": 1.5}, 0.0)
    assert m2["best_step"] is None
    assert all(torch.equal(v, before[k]) for k, v in flow2.state_dict().items())


def test_other_labels_are_uniform_over_the_other_datasets():
    y = torch.randint(0, 3, (30_000,), generator=torch.Generator().manual_seed(0))
    to = other_labels(y, 3, torch.Generator().manual_seed(1))
    assert not (to == y).any()
    for a in range(3):
        counts = torch.bincount(to[y == a], minlength=3).double()
        share = counts / counts.sum()
        assert share[a] == 0
        others = [b for b in range(3) if b != a]
        assert all(abs(share[b].item() - 0.5) < 0.02 for b in others)
    assert torch.equal(
        other_labels(torch.zeros(4, dtype=torch.long), 1, torch.Generator()), y[:0].new_zeros(4)
    )


def test_transport_cost_is_the_mean_squared_move_in_units_of_the_scale():
    torch.manual_seed(0)
    z = torch.randn(16, 6)
    assert transport_cost(z, z, 2.0).item() == 0.0
    moved = z + torch.tensor([1.0, 0, 0, 0, 0, 2.0])
    assert transport_cost(z, moved, 2.0).item() == pytest.approx((1 + 4) / 6 / 2.0)
    mu = torch.tensor([[0.0, 0.0], [2.0, 4.0]])
    assert latent_scale({"mu": mu}) == pytest.approx((2.0 + 8.0) / 2)


def test_projection_objective_projects_exactly_and_to_its_own_dataset_is_the_identity():
    torch.manual_seed(0)
    cfg = load_config(overrides=["autoencoder.z_dim=6", "flow.n_flows=3", "flow.hidden_dim=16"])
    flow = build_flow(cfg, 3).double()
    with torch.no_grad():  # move the flow away from its near-identity initialisation
        for p in flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
    z = torch.randn(10, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (10,))
    to = (y + 1) % 3
    v, logdet, z_to = ProjectionObjective(flow)(z, y, to)
    v_ref, ld_ref = flow(z, y)
    assert torch.allclose(v, v_ref) and torch.allclose(logdet, ld_ref)
    assert torch.allclose(z_to, flow.inverse(v_ref, to))
    assert not torch.allclose(z_to, z, atol=1e-3)
    _, _, z_same = ProjectionObjective(flow)(z, y, y)
    assert torch.allclose(z_same, z, atol=1e-10)
    assert ProjectionObjective(flow)(z, y)[2] is None


def test_validation_objective_adds_the_weighted_transport_in_bits():
    m = {"val_bits_per_dim": 1.0, "val_transport": 0.5}
    assert validation_objective(m, 0.0) == 1.0
    assert validation_objective(m, 2.0) == pytest.approx(1.0 + 2.0 * 0.5 / math.log(2.0))


def _two_dataset_cache(n: int, seed: int) -> dict[str, torch.Tensor]:
    """Two datasets sharing 'content' (dims 0, 1) and differing in 'style' (dims 2, 3)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    z = torch.randn(n, 4, generator=g)
    z[y == 1, 2:] = 0.3 * z[y == 1, 2:] + 2.0
    return {"mu": z, "logvar": torch.full_like(z, -12.0), "labels": y}


def _train_toy(tmp_path, *overrides: str):  # noqa: ANN202
    train, val = _two_dataset_cache(2048, 0), _two_dataset_cache(512, 1)
    cfg = load_config(
        overrides=[
            "autoencoder.z_dim=4",
            "flow.n_flows=4",
            "flow.hidden_dim=32",
            "train.cinn.steps=300",
            "train.cinn.batch_size=128",
            "train.cinn.val_every=100",
            "train.cinn.ckpt_every=300",
            "train.cinn.log_every=100",
            *overrides,
        ]
    )
    rt = setup_runtime("cpu")
    flow, metrics = train_cinn(
        cfg, tmp_path / "-".join(overrides), rt, train, val, 2, resume=False, progress=False
    )
    flow.eval()
    with torch.no_grad():
        z0 = val["mu"][val["labels"] == 0]
        moved = (flow.inverse(flow(z0, 0)[0], 1) - z0).pow(2).mean(0)
    again = evaluate_flow(flow, val, rt, latent_scale(train))
    assert again["val_transport"] == pytest.approx(metrics["val_transport"], rel=1e-4)
    return metrics, moved


def test_the_transport_weight_shrinks_projections_and_a_decaying_one_hands_back_to_likelihood(
    tmp_path,
):
    """Two datasets that differ in two of four dimensions. The transport cost pulls every
    projection towards its source (it is measured as trained, and the shared dimensions
    stay put); held constant it also keeps projections from reaching the target, which
    costs likelihood, so decaying it to 0 gives the likelihood back."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one reduction order, whatever the machine
    try:
        ml, move_ml = _train_toy(tmp_path, "loss.transport_weight=0")
        held, move_held = _train_toy(tmp_path, "loss.transport_weight=1.0")
        decayed, _ = _train_toy(tmp_path, "loss.transport_weight=1.0", "loss.transport_steps=150")
    finally:
        torch.set_num_threads(threads)
    assert held["val_transport"] < 0.1 * ml["val_transport"]
    assert move_held[2:].mean() < 0.1 * move_ml[2:].mean()
    # what moves is the dataset-specific part, not the shared one
    assert move_held[:2].mean() < 0.25 * move_held[2:].mean()
    assert held["val_bits_per_dim"] > ml["val_bits_per_dim"] + 0.1
    gap = abs(decayed["val_bits_per_dim"] - ml["val_bits_per_dim"])
    assert gap < 0.05 and gap < 0.5 * (held["val_bits_per_dim"] - ml["val_bits_per_dim"])


def test_the_transport_weight_decays_linearly_to_zero():
    assert transport_weight_at(0, 0.5, None) == transport_weight_at(10**6, 0.5, None) == 0.5
    assert transport_weight_at(0, 0.5, 100) == 0.5
    assert transport_weight_at(50, 0.5, 100) == pytest.approx(0.25)
    assert transport_weight_at(100, 0.5, 100) == transport_weight_at(150, 0.5, 100) == 0.0


def test_a_negative_transport_weight_is_refused():
    with pytest.raises(ConfigError, match="transport_weight"):
        load_config(overrides=["loss.transport_weight=-1"])
    with pytest.raises(ConfigError, match="transport_steps"):
        load_config(overrides=["loss.transport_steps=0"])
