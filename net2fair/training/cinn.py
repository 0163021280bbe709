"""Stage 2: the conditional INN, trained by maximum likelihood on a latent cache.

The autoencoder is frozen, so every image is encoded exactly once (and once flipped, the
augmentation stage 1 trained with); an epoch of stage 2 then costs MLP time only. Each
step draws z ~ q(z | x) = N(mu, sigma^2) from the cached posterior parameters, so the flow
still sees the encoder's uncertainty.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from net2fair.config import Config
from net2fair.data.datasets import MultiDomainDataset
from net2fair.models.autoencoder import Autoencoder
from net2fair.models.flow import ConditionalFlow, bits_per_dim
from net2fair.models.translator import build_flow
from net2fair.training.autoencoder import check_finite
from net2fair.training.checkpoint import (
    CsvLog,
    atomic_write,
    load_checkpoint,
    restore,
    save_checkpoint,
)
from net2fair.training.engine import Runtime, batch_indices, lr_at, step_generator

logger = logging.getLogger(__name__)

LOG_COLUMNS = [
    "lr",
    "nll",
    "bits_per_dim",
    "grad_norm",
    "val_bits_per_dim",
    "latents_per_s",
]


class LogLikelihood(nn.Module):
    """One training forward pass: log p(z | y) of every latent (:meth:`ConditionalFlow.log_prob`).

    A module (rather than a call of the flow's method) so that DDP wraps the pass and
    synchronises its gradients."""

    def __init__(self, flow: ConditionalFlow) -> None:
        super().__init__()
        self.flow = flow

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.flow.log_prob(z, y)


@torch.inference_mode()
def encode_dataset(
    ae: Autoencoder,
    data: MultiDomainDataset,
    rt: Runtime,
    *,
    flips: bool,
    batch_size: int = 256,
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """Posterior parameters of every image (and of its mirror image when ``flips``)."""
    ae.eval()
    parts: dict[str, list[torch.Tensor]] = {
        "mu": [],
        "logvar": [],
        "mu_flip": [],
        "logvar_flip": [],
    }
    for start in tqdm(
        range(0, len(data), batch_size), desc="encoding", disable=not progress, dynamic_ncols=True
    ):
        x = torch.stack([data[i][0] for i in range(start, min(len(data), start + batch_size))])
        q = ae.encode(x.to(rt.device))
        parts["mu"].append(q.mean.float().cpu())
        parts["logvar"].append(q.logvar.float().cpu())
        if flips:
            qf = ae.encode(x.flip(-1).to(rt.device))
            parts["mu_flip"].append(qf.mean.float().cpu())
            parts["logvar_flip"].append(qf.logvar.float().cpu())
    out = {k: torch.cat(v) for k, v in parts.items() if v}
    out["labels"] = data.labels.clone()
    return out


def autoencoder_fingerprint(ae: Autoencoder) -> str:
    """sha256 of the autoencoder's weights: what a latent cache and a stage-2 run belong to."""
    h = hashlib.sha256()
    for key, t in sorted(ae.state_dict().items()):
        h.update(key.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def latent_cache(
    ae: Autoencoder,
    data: MultiDomainDataset,
    rt: Runtime,
    path: Path,
    *,
    flips: bool,
    progress: bool,
    fingerprint: str | None = None,
) -> dict[str, torch.Tensor]:
    """Load the cache at ``path`` when it matches the data and the autoencoder, else build
    and write it. A cache of an earlier autoencoder (e.g. after stage 1 was extended) is
    never reused."""
    fingerprint = fingerprint or autoencoder_fingerprint(ae)
    if path.exists():
        with safe_open(str(path), framework="pt") as f:
            stored = (f.metadata() or {}).get("autoencoder")
        cache = load_file(str(path))
        if (
            stored == fingerprint
            and cache["labels"].shape[0] == len(data)
            and ("mu_flip" in cache) == flips
        ):
            return cache
        logger.info("%s belongs to other data or another autoencoder; re-encoding", path)
    if rt.is_main:
        cache = encode_dataset(ae, data, rt, flips=flips, progress=progress)
        tensors = {k: v.contiguous() for k, v in cache.items()}
        atomic_write(
            path, lambda p: save_file(tensors, str(p), metadata={"autoencoder": fingerprint})
        )
    rt.barrier()
    return load_file(str(path))


def latent_statistics(cache: dict[str, torch.Tensor], k: int) -> tuple[torch.Tensor, ...]:
    """Per-dataset mean ``(K, D)``, covariance ``(K, D, D)`` and count ``(K,)`` of the means."""
    mu, y = cache["mu"].double(), cache["labels"]
    d = mu.shape[1]
    means, covs, counts = torch.zeros(k, d), torch.zeros(k, d, d), torch.zeros(k)
    for i in range(k):
        m = mu[y == i]
        counts[i] = m.shape[0]
        if m.shape[0] == 0:
            continue
        means[i] = m.mean(0).float()
        if m.shape[0] > 1:
            covs[i] = torch.cov(m.t()).float()
    return means, covs, counts


def _draw(cache: dict[str, torch.Tensor], idx: torch.Tensor, g: torch.Generator, flips: bool):
    mu, logvar = cache["mu"][idx], cache["logvar"][idx]
    if flips:
        use = torch.rand(idx.shape[0], generator=g) < 0.5
        mu = torch.where(use[:, None], cache["mu_flip"][idx], mu)
        logvar = torch.where(use[:, None], cache["logvar_flip"][idx], logvar)
    eps = torch.randn(mu.shape, generator=g)
    return mu + torch.exp(0.5 * logvar) * eps, cache["labels"][idx]


@torch.inference_mode()
def evaluate_flow(flow: ConditionalFlow, cache: dict[str, torch.Tensor], rt: Runtime) -> dict:
    """Validation NLL of the encoder means, in nats per latent and bits per dimension."""
    flow.eval()
    nll = 0.0
    mu, y = cache["mu"], cache["labels"]
    for s in range(0, mu.shape[0], 1024):
        zb, yb = mu[s : s + 1024].to(rt.device), y[s : s + 1024].to(rt.device)
        nll -= flow.log_prob(zb, yb).sum().item()
    flow.train()
    n = max(1, mu.shape[0])
    return {"val_nll": nll / n, "val_bits_per_dim": bits_per_dim(nll / n, mu.shape[1])}


def train_cinn(
    cfg: Config,
    run_dir: Path,
    rt: Runtime,
    train_cache: dict[str, torch.Tensor],
    val_cache: dict[str, torch.Tensor],
    num_classes: int,
    *,
    resume: bool,
    progress: bool = True,
    on_validate=None,  # noqa: ANN001 - callable(flow, step) for sample grids
    fingerprint: str | None = None,
) -> tuple[ConditionalFlow, dict[str, float]]:
    """Train (or resume, or skip when finished) stage 2 on the latent caches.

    ``fingerprint`` names the autoencoder the caches come from; a checkpoint of stage 2
    made on another autoencoder is not resumed."""
    sc = cfg.train.cinn
    stage_dir = run_dir / "cinn"
    ckpt_path = stage_dir / "last.ckpt"
    torch.manual_seed(cfg.seed)
    flow = build_flow(cfg, num_classes).to(rt.device)
    opt = torch.optim.Adam(flow.parameters(), lr=sc.lr, fused=True)
    flips = "mu_flip" in train_cache
    n = train_cache["labels"].shape[0]
    start = 0
    metrics: dict[str, float] = {}
    # The flow can memorise a small latent set (training NLL keeps falling while the
    # validation NLL rises), so the model keeps the weights of the best validation.
    best: dict = {"val": math.inf, "step": 0, "state": None, "metrics": {}}
    state = load_checkpoint(ckpt_path, rt.device) if ckpt_path.exists() and resume else None
    if state is not None and state.get("autoencoder") != fingerprint:
        logger.info("cinn: the autoencoder changed since %s; stage 2 starts again", ckpt_path)
        state = None
    if state is not None:
        restore(flow, state, "model", ckpt_path)
        restore(opt, state, "opt", ckpt_path)
        start = int(state["step"])
        metrics = dict(state.get("metrics", {}))
        torch.set_rng_state(state["rng"])
        if "best_state" in state:
            best = {
                # scored again from its metrics: an older run may have saved another objective
                "val": validation_objective(dict(state["best_metrics"])),
                "step": int(state["best_step"]),
                "state": state["best_state"],
                "metrics": dict(state["best_metrics"]),
            }
        if start >= sc.steps:
            return _keep_best(flow, best, metrics)
        logger.info("cinn: resuming at step %d of %d", start, sc.steps)
    else:
        # ActNorm's data-dependent initialisation sees a first batch; under DDP the
        # wrapper then broadcasts rank 0's initialisation to every process.
        z, y = _draw(
            train_cache,
            batch_indices(n, sc.batch_size, 0, cfg.seed),
            step_generator(cfg.seed, -1),
            flips,
        )
        with torch.no_grad():
            flow(z.to(rt.device), y.to(rt.device))
    stage_dir.mkdir(parents=True, exist_ok=True)
    log = CsvLog(run_dir / "cinn_log.csv", LOG_COLUMNS, resume_step=start if resume else None)
    model = rt.wrap(LogLikelihood(flow))

    def save(step: int) -> None:
        if rt.is_main:
            state = {
                "autoencoder": fingerprint,
                "model": flow.state_dict(),
                "opt": opt.state_dict(),
                "step": step,
                "rng": torch.get_rng_state(),
                "metrics": metrics,
            }
            if best["state"] is not None:
                state.update(
                    best_state=best["state"],
                    best_val=best["val"],
                    best_step=best["step"],
                    best_metrics=best["metrics"],
                )
            save_checkpoint(ckpt_path, state)
        rt.barrier()

    bar = tqdm(
        total=sc.steps,
        initial=start,
        desc="cinn",
        disable=not (progress and rt.is_main),
        dynamic_ncols=True,
    )
    t0, seen = time.perf_counter(), 0
    d = cfg.autoencoder.z_dim
    flow.train()
    for step in range(start, sc.steps):
        lr = lr_at(
            step, lr=sc.lr, steps=sc.steps, warmup=sc.warmup_steps, min_ratio=sc.min_lr_ratio
        )
        for group in opt.param_groups:
            group["lr"] = lr
        idx = batch_indices(n, sc.batch_size, step, cfg.seed, rt.rank, rt.world_size)
        g = step_generator(cfg.seed, step, rt.rank)
        z, y = _draw(train_cache, idx, g, flips)
        nll = -model(z.to(rt.device), y.to(rt.device)).mean()  # nats per latent
        logs = {"nll": nll.item(), "bits_per_dim": float(bits_per_dim(nll.item(), d))}
        loss = nll / d  # nats per dimension: a scale independent of d
        check_finite(step, loss, logs, "cinn")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(flow.parameters(), 10.0)
        opt.step()
        seen += idx.shape[0] * rt.world_size
        done = step + 1
        if done % sc.log_every == 0 or done == sc.steps:
            rate = seen / max(1e-9, time.perf_counter() - t0)
            vals = {k: rt.mean(v) for k, v in logs.items()}
            vals.update(lr=lr, grad_norm=float(gn), latents_per_s=rate)
            if rt.is_main:
                log.write(done, vals)
            bar.set_postfix(bpd=f"{vals['bits_per_dim']:.3f}")
        if done % sc.val_every == 0 or done == sc.steps:
            if rt.is_main:
                metrics = evaluate_flow(flow, val_cache, rt)
                log.write(done, metrics)
                if validation_objective(metrics) < best["val"]:
                    best = {
                        "val": validation_objective(metrics),
                        "step": done,
                        "state": {k: v.detach().clone() for k, v in flow.state_dict().items()},
                        "metrics": dict(metrics),
                    }
                # with the bar hidden (-q, other ranks), the log decides what is shown
                (logger.info if bar.disable else bar.write)(
                    f"cinn step {done}: val {metrics['val_bits_per_dim']:.4f} bits/dim"
                )
                if on_validate is not None:
                    on_validate(flow, done)
        if done % sc.ckpt_every == 0 or done == sc.steps:
            save(done)
        bar.update(1)
    bar.close()
    if not metrics and rt.is_main:
        metrics = evaluate_flow(flow, val_cache, rt)
    if sc.steps == 0:
        save(0)
    return _keep_best(flow, best, metrics)


def validation_objective(metrics: dict[str, float]) -> float:
    """What stage 2 minimises, on the validation split: the NLL in bits per dimension."""
    return metrics.get("val_bits_per_dim", math.inf)


def _keep_best(flow: ConditionalFlow, best: dict, last: dict[str, float]):  # noqa: ANN202
    """The flow with the best validation weights, and its metrics (plus the last ones)."""
    if best["state"] is None or best["val"] >= validation_objective(last):
        return flow, {**last, "best_step": None}
    flow.load_state_dict(best["state"])
    logger.info(
        "cinn: keeping the weights of step %d (best validation objective %.4f bits/dim)",
        best["step"],
        best["val"],
    )
    return flow, {
        **best["metrics"],
        "best_step": best["step"],
        "last_val_bits_per_dim": last.get("val_bits_per_dim"),
    }
