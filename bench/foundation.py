"""Foundation figures on this machine: training throughput, projection latency, model size.

    python bench/foundation.py [--model demo] [--steps 20]

Prints a markdown table. Stage-1 throughput is measured on the default 64 px config with
the full loss (L1 + LPIPS + KL + discriminator); stage 2 on the default flow from a latent
cache; projection of one image to every dataset on the given model (batched and, for
comparison, one target at a time, measured side by side).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from net2fair import Translator
from net2fair.config import load_config
from net2fair.models.losses import AutoencoderLoss
from net2fair.models.translator import resolve_model_path
from net2fair.training.autoencoder import build_autoencoder
from net2fair.training.cinn import build_flow

REPO = Path(__file__).resolve().parent.parent


def timed(fn, repeat: int) -> float:
    """Median seconds of ``repeat`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def stage1_images_per_s(steps: int) -> tuple[float, float]:
    cfg = load_config([REPO / "configs" / "default.yaml"])
    ae = build_autoencoder(cfg)
    loss = AutoencoderLoss(disc_start=0)
    opt_g = torch.optim.Adam(ae.parameters(), lr=1e-4)
    opt_d = torch.optim.Adam(loss.discriminator.parameters(), lr=1e-4)
    b = cfg.train.autoencoder.batch_size
    x = torch.rand(b, 3, 64, 64) * 2 - 1

    def step() -> None:
        xrec, q = ae(x)
        g, _ = loss.generator_loss(x, xrec, q.kl(), step=1, last_layer=ae.last_layer)
        opt_g.zero_grad()
        g.backward()
        opt_g.step()
        d, _ = loss.discriminator_loss(x, xrec.detach(), step=1)
        opt_d.zero_grad()
        d.backward()
        opt_d.step()

    sec = timed(step, steps)
    return b / sec, sec


def stage2_latents_per_s(steps: int) -> tuple[float, float]:
    cfg = load_config([REPO / "configs" / "default.yaml"])
    flow = build_flow(cfg, 3)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-4)
    b = cfg.train.cinn.batch_size
    z = torch.randn(b, cfg.autoencoder.z_dim)
    y = torch.randint(0, 3, (b,))

    def step() -> None:
        loss = -flow.log_prob(z, y).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    sec = timed(step, steps * 5)
    return b / sec, sec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="demo")
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    ips, sec = stage1_images_per_s(args.steps)
    rows.append(
        (
            "stage-1 training, default 64 px, full loss",
            f"{ips:.0f} images/s",
            f"{sec * 1000:.0f} ms per batch of 64",
        )
    )
    lps, sec = stage2_latents_per_s(args.steps)
    rows.append(
        (
            "stage-2 training, default cINN, from cache",
            f"{lps:.0f} latents/s",
            f"{sec * 1000:.1f} ms per batch of 256",
        )
    )
    t = Translator.load(args.model)
    x = torch.rand(1, 3, t.resolution, t.resolution) * 2 - 1
    batched = timed(lambda: t.project(x, source=t.domains[0], targets="all"), 30)
    loop = timed(lambda: [t.project(x, source=t.domains[0], targets=d) for d in t.domains], 30)
    k = len(t.domains)
    rows.append(
        (
            f"one image to all {k} datasets, {t.resolution} px, batched",
            f"{batched * 1000:.1f} ms",
            f"{loop / batched:.2f}x faster than a per-target loop ({loop * 1000:.1f} ms)",
        )
    )
    folder = resolve_model_path(args.model)
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    rows.append(
        (
            f"model folder '{args.model}'",
            f"{size / 2**20:.1f} MiB",
            ", ".join(sorted(p.name for p in folder.iterdir())),
        )
    )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU\n")
    print("| measure | figure | note |\n|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
