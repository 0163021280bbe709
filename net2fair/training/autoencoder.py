"""Stage 1: train the shared autoencoder on the union of all datasets (labels unused)."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from net2fair.config import Config
from net2fair.data.datasets import MultiDomainDataset
from net2fair.models.autoencoder import Autoencoder, DiagonalGaussian
from net2fair.models.equivariance import (
    equivariance_residual,
    equivariance_weight_at,
    random_similarity,
)
from net2fair.models.losses import AutoencoderLoss
from net2fair.models.translator import build_autoencoder
from net2fair.training.checkpoint import CsvLog, load_checkpoint, restore, save_checkpoint
from net2fair.training.engine import (
    Runtime,
    StepBatchSampler,
    lr_at,
    step_generator,
)
from net2fair.viz import image_grid

logger = logging.getLogger(__name__)

LOG_COLUMNS = [
    "lr",
    "l1",
    "lpips",
    "chroma",
    "eye",
    "kl",
    "equivariance",
    "g",
    "d_weight",
    "d_loss",
    "total",
    "val_l1",
    "val_psnr",
    "images_per_s",
]


class TrainingDiverged(RuntimeError):
    """A non-finite loss; the message names the step and the loss terms."""


def check_finite(step: int, loss: torch.Tensor, logs: dict[str, float], stage: str) -> None:
    if not torch.isfinite(loss):
        terms = ", ".join(f"{k}={v:.4g}" for k, v in logs.items())
        raise TrainingDiverged(
            f"{stage} loss is not finite at step {step} ({terms}); stopped, the last "
            f"checkpoint is kept (try a lower learning rate)"
        )


def _flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    mask = torch.rand(x.shape[0], generator=g) < 0.5
    x = x.clone()
    x[mask] = x[mask].flip(-1)
    return x


class TwoViewAutoencoder(torch.nn.Module):
    """The training forward pass with the equivariance prior: reconstruct ``x`` and encode
    ``x`` and its warped view in one encoder call. One module, so that DDP wraps both."""

    def __init__(self, ae: Autoencoder) -> None:
        super().__init__()
        self.ae = ae

    def forward(
        self,
        x: torch.Tensor,
        warped: torch.Tensor | None,
        *,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, DiagonalGaussian, torch.Tensor | None]:
        """Reconstruction of ``x``, ``q(z | x)`` and the posterior means of ``warped``
        (None when ``warped`` is None)."""
        if warped is None:
            xrec, q = self.ae(x, generator=generator)
            return xrec, q, None
        q_both = self.ae.encode(torch.cat([x, warped]))
        n = x.shape[0]
        q = DiagonalGaussian(q_both.mean[:n], q_both.logvar[:n])
        return self.ae.decode(q.sample(generator)), q, q_both.mean[n:]


@torch.inference_mode()
def evaluate_autoencoder(
    ae: Autoencoder, data: MultiDomainDataset, rt: Runtime, batch_size: int, max_batches: int
) -> dict[str, float]:
    """Reconstruction L1 and PSNR (images scaled to [0, 1]) of posterior means."""
    ae.eval()
    n = len(data) if max_batches <= 0 else min(len(data), max_batches * batch_size)
    l1 = sq = 0.0
    psnr = 0.0
    for start in range(0, n, batch_size):
        x = torch.stack([data[i][0] for i in range(start, min(n, start + batch_size))]).to(
            rt.device
        )
        xrec = ae.decode(ae.encode(x).mean).clamp(-1, 1)
        d = (x - xrec) / 2.0  # [0, 1] scale
        l1 += d.abs().mean(dim=(1, 2, 3)).sum().item()
        mse = d.pow(2).mean(dim=(1, 2, 3))
        sq += mse.sum().item()
        psnr += (10 * torch.log10(1.0 / mse.clamp_min(1e-10))).sum().item()
    ae.train()
    return {"val_l1": l1 / n, "val_psnr": psnr / n, "val_mse": sq / n}


@torch.inference_mode()
def reconstruction_grid(
    ae: Autoencoder, data: MultiDomainDataset, rt: Runtime, n: int = 8
) -> Image.Image:
    ae.eval()
    idx = torch.linspace(0, len(data) - 1, steps=min(n, len(data))).long().tolist()
    x = torch.stack([data[i][0] for i in idx]).to(rt.device)
    xrec = ae.decode(ae.encode(x).mean).clamp(-1, 1)
    ae.train()
    return image_grid([list(x.cpu()), list(xrec.cpu())], row_labels=["input", "recon"])


def train_autoencoder(
    cfg: Config,
    run_dir: Path,
    rt: Runtime,
    train_data: MultiDomainDataset,
    val_data: MultiDomainDataset,
    *,
    resume: bool,
    progress: bool = True,
) -> tuple[Autoencoder, dict[str, float]]:
    """Train (or resume, or skip when finished) stage 1; return the autoencoder and metrics."""
    sc = cfg.train.autoencoder
    stage_dir = run_dir / "autoencoder"
    ckpt_path = stage_dir / "last.ckpt"
    torch.manual_seed(cfg.seed)
    ae = build_autoencoder(cfg).to(rt.device)
    lc = cfg.loss
    loss_fn = AutoencoderLoss(
        l1_weight=lc.l1_weight,
        perceptual_weight=lc.perceptual_weight,
        kl_weight=lc.kl_weight,
        disc_weight=lc.disc_weight,
        disc_start=lc.disc_start,
        disc_channels=lc.disc_channels,
        disc_layers=lc.disc_layers,
        lpips_net=lc.lpips_net,
        chroma_weight=lc.chroma_weight,
        eye_weight=lc.eye_weight,
    ).to(rt.device)
    disc = loss_fn.discriminator
    betas = (float(sc.betas[0]), float(sc.betas[1]))
    opt_g = torch.optim.Adam(ae.parameters(), lr=sc.lr, betas=betas, fused=True)
    opt_d = torch.optim.Adam(disc.parameters(), lr=sc.lr, betas=betas, fused=True)
    start = 0
    metrics: dict[str, float] = {}
    if ckpt_path.exists() and resume:
        state = load_checkpoint(ckpt_path, rt.device)
        for module, key in ((ae, "model"), (disc, "disc"), (opt_g, "opt_g"), (opt_d, "opt_d")):
            restore(module, state, key, ckpt_path)
        start = int(state["step"])
        metrics = dict(state.get("metrics", {}))
        torch.set_rng_state(state["rng"])
        if start >= sc.steps:
            logger.info("autoencoder: finished at step %d, skipping", start)
            return ae, metrics
        logger.info("autoencoder: resuming at step %d of %d", start, sc.steps)
    stage_dir.mkdir(parents=True, exist_ok=True)
    log = CsvLog(
        run_dir / "autoencoder_log.csv", LOG_COLUMNS, resume_step=start if resume else None
    )
    equivariant = lc.equivariance_weight > 0
    model = rt.wrap(TwoViewAutoencoder(ae) if equivariant else ae)
    d_model = rt.wrap(disc)
    scaler = rt.grad_scaler()
    sampler = StepBatchSampler(
        len(train_data), sc.batch_size, start, sc.steps, cfg.seed, rt.rank, rt.world_size
    )
    loader = torch.utils.data.DataLoader(
        train_data,
        batch_sampler=sampler,
        num_workers=cfg.data.num_workers,
        persistent_workers=False,
    )

    def save(step: int) -> None:
        if rt.is_main:
            save_checkpoint(
                ckpt_path,
                {
                    "model": ae.state_dict(),
                    "disc": disc.state_dict(),
                    "opt_g": opt_g.state_dict(),
                    "opt_d": opt_d.state_dict(),
                    "step": step,
                    "rng": torch.get_rng_state(),
                    "metrics": metrics,
                },
            )
        rt.barrier()

    bar = tqdm(
        total=sc.steps,
        initial=start,
        desc="autoencoder",
        disable=not (progress and rt.is_main),
        dynamic_ncols=True,
    )
    t0, seen = time.perf_counter(), 0
    step = start
    ae.train()
    for step, (x, _) in enumerate(loader, start=start):
        lr = lr_at(
            step, lr=sc.lr, steps=sc.steps, warmup=sc.warmup_steps, min_ratio=sc.min_lr_ratio
        )
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        g = step_generator(cfg.seed, step, rt.rank)
        x = x.to(rt.device, non_blocking=True)
        if cfg.data.flip:
            x = _flip(x, g)
        w_equiv = equivariance_weight_at(
            step, lc.equivariance_weight, lc.equivariance_start, lc.equivariance_ramp
        )
        if w_equiv > 0:
            warped, params = random_similarity(
                x,
                g,
                max_shift=lc.equivariance_shift,
                max_scale=lc.equivariance_scale,
                max_rotation=lc.equivariance_rotation,
            )
            with rt.autocast():
                xrec, q, mu_warped = model(x, warped, generator=g)
        else:
            with rt.autocast():
                # the two-view module when the prior has not started yet
                xrec, q, *_ = model(x, None, generator=g) if equivariant else model(x, generator=g)
        # the KL term (like every loss) in float32 when the forward pass ran in bf16/fp16
        q = DiagonalGaussian(q.mean.float(), q.logvar.float())
        g_loss, logs = loss_fn.generator_loss(
            x, xrec.float(), q.kl(), step=step, last_layer=ae.last_layer
        )
        if w_equiv > 0:
            equiv = equivariance_residual(q.mean, mu_warped.float(), params)
            g_loss = g_loss + w_equiv * equiv
            logs["equivariance"] = float(equiv.detach())
            logs["total"] = float(g_loss.detach())
        check_finite(step, g_loss, logs, "autoencoder")
        opt_g.zero_grad(set_to_none=True)
        scaler.scale(g_loss).backward()
        scaler.step(opt_g)
        if loss_fn.uses_discriminator(step):
            d_loss, dlogs = loss_fn.discriminator_loss(
                x, xrec.detach().float(), step=step, discriminator=d_model
            )
            check_finite(step, d_loss, dlogs, "discriminator")
            opt_d.zero_grad(set_to_none=True)
            scaler.scale(d_loss).backward()
            scaler.step(opt_d)
            logs.update(dlogs)
        scaler.update()
        seen += x.shape[0] * rt.world_size
        done = step + 1
        if done % sc.log_every == 0 or done == sc.steps:
            rate = seen / max(1e-9, time.perf_counter() - t0)
            vals = {k: rt.mean(v) for k, v in logs.items()}
            vals.update(lr=lr, images_per_s=rate)
            if rt.is_main:
                log.write(done, vals)
            bar.set_postfix(l1=f"{vals.get('l1', math.nan):.4f}", ips=f"{rate:.0f}")
        if done % sc.val_every == 0 or done == sc.steps:
            if rt.is_main:
                metrics = evaluate_autoencoder(ae, val_data, rt, sc.batch_size, sc.val_batches)
                log.write(done, metrics)
                reconstruction_grid(ae, val_data, rt).save(stage_dir / f"recon_{done:06d}.png")
                # with the bar hidden (-q, other ranks), the log decides what is shown
                (logger.info if bar.disable else bar.write)(
                    f"autoencoder step {done}: val L1 {metrics['val_l1']:.4f}, "
                    f"PSNR {metrics['val_psnr']:.2f} dB"
                )
        if done % sc.ckpt_every == 0 or done == sc.steps:
            save(done)
        bar.update(1)
    bar.close()
    if step + 1 < sc.steps and start < sc.steps:
        raise RuntimeError("autoencoder training ended early (data loader stopped)")
    if not metrics and rt.is_main:
        metrics = evaluate_autoencoder(ae, val_data, rt, sc.batch_size, sc.val_batches)
    if start >= sc.steps or sc.steps == 0:
        save(sc.steps)
    return ae, metrics
