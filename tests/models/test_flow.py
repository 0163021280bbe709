from __future__ import annotations

import math

import pytest
import torch

from net2fair.models.flow import (
    ActNorm,
    ConditionalDoubleCoupling,
    ConditionalFlow,
    InvLeakyReLU,
    Shuffle,
    bits_per_dim,
)

NUM_CLASSES = 3

CONFIGS = [
    pytest.param(dict(dim=2, n_flows=1, activation="none", hidden_depth=0), id="d2-f1-none-h0"),
    pytest.param(dict(dim=4, n_flows=3, activation="lrelu", hidden_depth=1), id="d4-f3-lrelu-h1"),
    pytest.param(dict(dim=6, n_flows=3, activation="none", hidden_depth=2), id="d6-f3-none-h2"),
    pytest.param(dict(dim=8, n_flows=3, activation="lrelu", hidden_depth=2), id="d8-f3-lrelu-h2"),
]
DTYPES = [pytest.param(torch.float32, id="f32"), pytest.param(torch.float64, id="f64")]
INVERSE_TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def build(cfg: dict, dtype: torch.dtype = torch.float32, seed: int = 0) -> ConditionalFlow:
    flow = ConditionalFlow(
        num_classes=NUM_CLASSES,
        hidden_dim=32,
        embedding_dim=8,
        embedder_hidden_dim=16,
        seed=seed,
        **cfg,
    )
    return flow.to(dtype)


@torch.no_grad()
def perturb(flow: ConditionalFlow, std: float = 0.2, seed: int = 1) -> None:
    """Give the zero-initialised last layers of the s/t nets random weights, so every coupling
    is a non-trivial nonlinear map (a fresh flow's couplings are mere half swaps)."""
    g = torch.Generator().manual_seed(seed)
    for block in flow.sub_layers:
        for net in (*block.coupling.s, *block.coupling.t):
            for p in net.last_linear.parameters():
                p.add_(std * torch.randn(p.shape, generator=g, dtype=p.dtype))


def toy_batch(
    dim: int, n: int, dtype: torch.dtype, seed: int = 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-dependent Gaussians with a non-trivial mean and scale."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, NUM_CLASSES, (n,), generator=g)
    means = torch.randn(NUM_CLASSES, dim, generator=g, dtype=dtype) * 2.0
    z = means[y] + 0.5 * torch.randn(n, dim, generator=g, dtype=dtype) * (1 + y[:, None].to(dtype))
    return z, y


def ready_flow(cfg: dict, dtype: torch.dtype, init_scale: float = 1.0) -> ConditionalFlow:
    """Perturbed flow whose ActNorms were initialised on a toy batch (multiplied by
    ``init_scale``); returned in eval mode."""
    flow = build(cfg, dtype)
    perturb(flow)
    z, y = toy_batch(cfg["dim"], 256, dtype)
    flow.train()
    with torch.no_grad():
        flow(init_scale * z, y)
    assert all(b.norm_layer.is_initialized for b in flow.sub_layers)
    return flow.eval()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", CONFIGS)
def test_inverse_at_init_with_perturbed_weights(cfg: dict, dtype: torch.dtype) -> None:
    flow = ready_flow(cfg, dtype)
    z, y = toy_batch(cfg["dim"], 64, dtype, seed=3)
    with torch.no_grad():
        v, logdet = flow(z, y)
        z_rec = flow.inverse(v, y)
    assert v.shape == z.shape and v.dtype == dtype
    assert logdet.shape == (64,) and logdet.dtype == dtype
    # the map is far from the identity, so the round trip tests something
    assert (v - z).abs().max() > 0.1
    torch.testing.assert_close(z_rec, z, atol=INVERSE_TOL[dtype], rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", CONFIGS)
def test_inverse_after_training(cfg: dict, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    flow = build(cfg, dtype).train()
    z, y = toy_batch(cfg["dim"], 128, dtype)
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = flow.nll_loss(z, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    last = flow.sub_layers[0].coupling.s[0].last_linear.weight
    assert last.abs().max() > 0  # training moved the zero-initialised layers
    flow.eval()
    with torch.no_grad():
        torch.testing.assert_close(flow.nll_loss(z, y), -flow.log_prob(z, y).mean())
        z_rec = flow.inverse(flow(z, y)[0], y)
    torch.testing.assert_close(z_rec, z, atol=INVERSE_TOL[dtype], rtol=0)


@pytest.mark.parametrize("cfg", [c for c in CONFIGS if c.values[0]["dim"] in (4, 6)])
def test_logdet_matches_autograd_jacobian(cfg: dict) -> None:
    flow = ready_flow(cfg, torch.float64)
    z, y = toy_batch(cfg["dim"], 6, torch.float64, seed=4)
    _, logdet = flow(z, y)
    for i in range(z.shape[0]):

        def f(x: torch.Tensor, i: int = i) -> torch.Tensor:
            return flow(x[None], y[i : i + 1])[0][0]

        jac = torch.autograd.functional.jacobian(f, z[i])
        expected = torch.linalg.slogdet(jac).logabsdet
        assert abs(logdet[i].item() - expected.item()) < 1e-8
    # a non-constant log-det shows the couplings are active nonlinear maps
    assert logdet.std() > 1e-3


def test_actnorm_data_dependent_init() -> None:
    torch.manual_seed(0)
    x = 3.0 + 5.0 * torch.randn(512, 5, dtype=torch.float64) * torch.arange(1, 6)
    layer = ActNorm(5).double().train()
    assert not layer.is_initialized
    y, logdet = layer(x)
    assert layer.is_initialized
    torch.testing.assert_close(y.mean(0), torch.zeros(5, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(y.var(0), torch.ones(5, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(logdet, torch.log(layer.scale).sum().expand(512))
    torch.testing.assert_close(layer.inverse(y), x)

    loc, scale = layer.loc.detach().clone(), layer.scale.detach().clone()
    layer(10.0 + x * 2.0)
    assert torch.equal(layer.loc, loc) and torch.equal(layer.scale, scale)


def test_actnorm_eval_mode_does_not_initialise() -> None:
    layer = ActNorm(3).eval()
    x = torch.randn(16, 3) * 4 + 1
    y, logdet = layer(x)
    assert not layer.is_initialized
    assert torch.equal(y, x) and torch.equal(logdet, torch.zeros(16))
    with pytest.raises(ValueError, match="at least 2"):
        ActNorm(3).train()(torch.randn(1, 3))


def test_inv_leaky_relu() -> None:
    act = InvLeakyReLU(alpha=0.5)
    x = torch.tensor([[-2.0, 1.0, -4.0], [3.0, 0.5, 1.0]])
    y, logdet = act(x)
    assert torch.equal(y, torch.tensor([[-1.0, 1.0, -2.0], [3.0, 0.5, 1.0]]))
    torch.testing.assert_close(logdet, torch.tensor([2 * math.log(0.5), 0.0]))
    assert torch.equal(act.inverse(y), x)
    with pytest.raises(ValueError, match="alpha"):
        InvLeakyReLU(alpha=0.0)


@pytest.mark.parametrize("label", range(NUM_CLASSES))
def test_density_integrates_to_one(label: int) -> None:
    # ActNorm initialised on a tight batch keeps the density well inside the grid
    flow = ready_flow(
        dict(dim=2, n_flows=3, activation="lrelu", hidden_depth=1), torch.float64, init_scale=0.5
    )
    n, lo, hi = 400, -8.0, 8.0
    h = (hi - lo) / n
    centres = lo + h * (torch.arange(n, dtype=torch.float64) + 0.5)
    grid = torch.cartesian_prod(centres, centres)
    with torch.no_grad():
        density = flow.log_prob(grid, label).exp()
    total = (density.sum() * h * h).item()
    assert abs(total - 1.0) < 0.02


def test_conditioning_changes_the_map() -> None:
    flow = ready_flow(dict(dim=4, n_flows=3, activation="none", hidden_depth=1), torch.float32)
    z, _ = toy_batch(4, 32, torch.float32)
    with torch.no_grad():
        v0, ld0 = flow(z, 0)
        v1, ld1 = flow(z, torch.ones(32, dtype=torch.long))
        z_01 = flow.inverse(v0, 1)
    assert (v0 - v1).abs().max() > 1e-2
    assert (ld0 - ld1).abs().max() > 1e-3
    assert (z_01 - z).abs().max() > 1e-2  # projecting to another class moves z


def test_embedding_is_batch_independent() -> None:
    flow = build(dict(dim=4, n_flows=1, activation="none", hidden_depth=0))
    y = torch.tensor([0, 2, 1, 2])
    e_all = flow.embed(y)
    e_single = torch.cat([flow.embed(y[i : i + 1]) for i in range(4)])
    assert e_all.shape == (4, 8)
    torch.testing.assert_close(e_all, e_single)
    assert not torch.allclose(e_all[0], e_all[1])


def test_permutations_seeded_and_differ_across_blocks() -> None:
    rng_before = torch.get_rng_state()
    a = build(dict(dim=8, n_flows=3, activation="none", hidden_depth=1), seed=5)
    assert torch.equal(torch.get_rng_state(), rng_before)  # construction leaves global RNG alone
    b = build(dict(dim=8, n_flows=3, activation="none", hidden_depth=1), seed=5)
    c = build(dict(dim=8, n_flows=3, activation="none", hidden_depth=1), seed=6)
    perms_a = [blk.shuffle.forward_shuffle_idx for blk in a.sub_layers]
    perms_b = [blk.shuffle.forward_shuffle_idx for blk in b.sub_layers]
    perms_c = [blk.shuffle.forward_shuffle_idx for blk in c.sub_layers]
    assert all(torch.equal(p, q) for p, q in zip(perms_a, perms_b, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(perms_a, perms_c, strict=True))
    assert not torch.equal(perms_a[0], perms_a[1]) or not torch.equal(perms_a[1], perms_a[2])
    for blk in a.sub_layers:
        fwd, bwd = blk.shuffle.forward_shuffle_idx, blk.shuffle.backward_shuffle_idx
        assert torch.equal(fwd.sort().values, torch.arange(8))
        assert torch.equal(fwd[bwd], torch.arange(8))
    # the seed fixes the weights too
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name

    shuffle = Shuffle(6, torch.Generator().manual_seed(0))
    x = torch.randn(3, 6)
    y, logdet = shuffle(x)
    assert torch.equal(shuffle.inverse(y), x) and torch.equal(logdet, torch.zeros(3))


def test_state_dict_round_trip_and_names() -> None:
    cfg = dict(dim=4, n_flows=2, activation="lrelu", hidden_depth=1)
    flow = ready_flow(cfg, torch.float32)
    state = flow.state_dict()
    for key in (
        "sub_layers.0.norm_layer.loc",
        "sub_layers.0.norm_layer.scale",
        "sub_layers.0.norm_layer.initialized",
        "sub_layers.0.coupling.s.0.main.0.weight",
        "sub_layers.1.coupling.t.1.main.4.bias",
        "sub_layers.0.shuffle.forward_shuffle_idx",
        "sub_layers.0.shuffle.backward_shuffle_idx",
        "embedder.main.0.weight",
    ):
        assert key in state, key
    assert state["sub_layers.0.norm_layer.loc"].shape == (4,)
    assert state["sub_layers.0.norm_layer.initialized"].dtype == torch.uint8

    fresh = build(cfg, seed=99)
    fresh.load_state_dict(state)
    fresh.train()  # loaded ActNorms are initialised and must not re-initialise
    z, y = toy_batch(4, 16, torch.float32, seed=7)
    with torch.no_grad():
        v_fresh, ld_fresh = fresh(z, y)
        v, ld = flow(z, y)
    assert torch.equal(v_fresh, v) and torch.equal(ld_fresh, ld)


def test_float64_module() -> None:
    flow = ready_flow(dict(dim=4, n_flows=2, activation="none", hidden_depth=0), torch.float64)
    assert all(p.dtype == torch.float64 for p in flow.parameters())
    assert flow.sub_layers[0].shuffle.forward_shuffle_idx.dtype == torch.long
    z, y = toy_batch(4, 8, torch.float64)
    assert flow.log_prob(z, y).dtype == torch.float64


def test_sample_and_bits_per_dim() -> None:
    flow = ready_flow(dict(dim=4, n_flows=2, activation="none", hidden_depth=1), torch.float32)
    a = flow.sample(1, num_samples=5, generator=torch.Generator().manual_seed(0))
    b = flow.sample(torch.ones(5, dtype=torch.long), generator=torch.Generator().manual_seed(0))
    assert a.shape == (5, 4) and torch.equal(a, b)
    with torch.no_grad():
        torch.testing.assert_close(
            flow.sample(2, num_samples=3, temperature=0.0), flow.inverse(torch.zeros(3, 4), 2)
        )
    with pytest.raises(ValueError, match="num_samples"):
        flow.sample(0)

    assert bits_per_dim(4 * math.log(2.0), 4) == pytest.approx(1.0)
    torch.testing.assert_close(
        bits_per_dim(torch.tensor([0.0, 8 * math.log(2.0)]), 4), torch.tensor([0.0, 2.0])
    )
    assert flow.num_parameters == sum(p.numel() for p in flow.parameters())


def test_bad_inputs_raise() -> None:
    flow = build(dict(dim=4, n_flows=1, activation="none", hidden_depth=0))
    z = torch.randn(3, 4)
    with pytest.raises(ValueError, match=r"label 3 .*num_classes=3"):
        flow(z, torch.tensor([0, 3, 1]))
    with pytest.raises(ValueError, match=r"label -1 "):
        flow.inverse(z, torch.tensor([0, -1, 1]))
    with pytest.raises(ValueError, match="label 7"):
        flow.log_prob(z, 7)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        flow(z, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="integer"):
        flow(z, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"\(B, 4\), got \(3, 5\)"):
        flow(torch.randn(3, 5), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="even dim.*got dim=5"):
        ConditionalFlow(dim=5, num_classes=2)
    with pytest.raises(ValueError, match="even dim.*got 3"):
        ConditionalDoubleCoupling(3, 4, 16, 1)
    with pytest.raises(ValueError, match="activation"):
        ConditionalFlow(dim=4, num_classes=2, activation="relu")


def test_fresh_coupling_is_a_half_swap() -> None:
    # zero last layers: both affine maps are identities, leaving only the swap of pass 1
    coupling = ConditionalDoubleCoupling(6, 4, 16, 1)
    x, c = torch.randn(5, 6), torch.randn(5, 4)
    z, logdet = coupling(x, c)
    assert torch.equal(z, torch.cat((x[:, 3:], x[:, :3]), dim=1))
    assert torch.equal(logdet, torch.zeros(5))
    assert torch.equal(coupling.inverse(z, c), x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_round_trip() -> None:
    flow = ready_flow(
        dict(dim=8, n_flows=3, activation="lrelu", hidden_depth=1), torch.float32
    ).cuda()
    z, y = toy_batch(8, 32, torch.float32)
    z, y = z.cuda(), y.cuda()
    with torch.no_grad():
        v, logdet = flow(z, y)
        assert v.device.type == "cuda" and logdet.device.type == "cuda"
        torch.testing.assert_close(flow.inverse(v, y), z, atol=1e-5, rtol=0)
        assert flow.sample(1, num_samples=4).device.type == "cuda"
