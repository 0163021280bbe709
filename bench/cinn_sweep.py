"""Width/depth sweep of the cINN on a run's latent cache, against the paper-size flow.

    python bench/cinn_sweep.py --run runs/demo [--grid 4,8,12x128,256,512x2]
        [--steps 2000] [--baseline-steps 2000] [--json sweep.json]

Every configuration is trained by the package's own stage-2 loop
(:func:`net2fair.training.cinn.train_cinn`) on the run's ``latents_train.safetensors``
(z ~ N(mu, sigma^2) drawn from the cached posteriors, flipped latents included), with the
same schedule (steps, batch, lr, warm-up, cosine decay) and keeping the weights of the
best validation bits/dim on ``latents_val.safetensors``: the flow memorises ~8.5k latents
after about 1,000 steps, so the best, not the last, validation is what a model ships with.
Scratch files (logs, the final checkpoint: about 2.8 GB for the paper-size flow) go to a
temporary folder (``--scratch``) and are deleted; the run folder is only read.

For each configuration the table gives the parameters, the best validation bits/dim and
the step it was reached at, the training seconds, latents/s of one forward + one inverse
pass at batch 64 (what a projection costs, under ``torch.inference_mode``) and the
milliseconds for a single latent; then the speed-up over the baseline (the paper-size
configuration of our flow: 20 blocks, width 1024, depth 2, embedding 10) and the bits/dim
difference. "goal" marks rows >= 10x faster than the baseline at bits/dim at most 0.02
above it. The baseline at full size takes hours on 2 CPU cores: ``--baseline-steps``
shortens its schedule (then its cosine decay is shorter too, which the table says).

Grid syntax: ``BLOCKS x WIDTHS [x DEPTHS]``, each a comma list (their product is swept);
``--grid`` may be given several times.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import itertools
import json
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from timing import timed  # bench/timing.py

from net2fair.config import Config, load_config
from net2fair.models.flow import ConditionalFlow
from net2fair.training.cinn import train_cinn
from net2fair.training.engine import Runtime
from net2fair.training.run import load_run_config

PAPER = (20, 1024, 2)  # blocks, MLP width, MLP depth of the paper's released cINN
PAPER_EMBEDDING = 10
DEFAULT_GRID = "4,8,12x128,256,512x2"
GOAL_SPEEDUP = 10.0
GOAL_BPD = 0.02
COLUMNS = [
    "config",
    "blocks",
    "width",
    "depth",
    "emb",
    "params",
    "steps",
    "best val bits/dim",
    "best step",
    "train s",
    "latents/s (fwd+inv)",
    "ms (1 latent)",
    "speed-up",
    "Δ bits/dim",
    "goal",
]


@dataclass
class FlowShape:
    blocks: int
    width: int
    depth: int
    embedding: int

    @property
    def name(self) -> str:
        return f"{self.blocks}x{self.width}x{self.depth}"


@dataclass
class Row:
    name: str
    blocks: int
    width: int
    depth: int
    embedding: int
    params: int
    steps: int
    best_val_bpd: float
    best_step: int
    train_s: float
    latents_per_s: float
    single_ms: float
    val_curve: list[tuple[int, float]]
    baseline: bool = False
    speedup: float = math.nan
    delta_bpd: float = math.nan
    meets_goal: bool = False


def parse_grid(specs: list[str]) -> list[tuple[int, int, int]]:
    """``["4,8x128,256x2"]`` -> ``[(4, 128, 2), (4, 256, 2), (8, 128, 2), (8, 256, 2)]``."""
    out: list[tuple[int, int, int]] = []
    for spec in specs:
        parts = [p.strip() for p in spec.lower().split("x")]
        if len(parts) == 2:
            parts.append("2")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"grid spec {spec!r}: expected BLOCKS x WIDTHS [x DEPTHS]")
        try:
            axes = [[int(v) for v in p.split(",")] for p in parts]
        except ValueError:
            raise ValueError(f"grid spec {spec!r}: not comma lists of integers") from None
        if min(min(a) for a in axes[:2]) < 1 or min(axes[2]) < 0:
            raise ValueError(f"grid spec {spec!r}: blocks and widths >= 1, depths >= 0")
        for combo in itertools.product(*axes):
            if combo not in out:
                out.append(combo)  # type: ignore[arg-type]
    return out


@torch.inference_mode()
def inference_speed(flow: ConditionalFlow, batch: int, repeats: int) -> tuple[float, float]:
    """Latents/s of forward + inverse (to the next dataset) at ``batch``, and ms at batch 1."""
    flow.eval()
    k = flow.num_classes
    g = torch.Generator().manual_seed(0)
    z = torch.randn(batch, flow.dim, generator=g)
    y = torch.arange(batch) % k
    y_to = (y + 1) % k

    def run(zz: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
        v, _ = flow(zz, a)
        flow.inverse(v, b)

    sec = timed(lambda: run(z, y, y_to), repeats)
    single = timed(lambda: run(z[:1], y[:1], y_to[:1]), repeats)
    return batch / sec, single * 1000.0


def read_val_curve(log_path: Path) -> list[tuple[int, float]]:
    """(step, validation bits/dim) pairs from a stage-2 ``cinn_log.csv``."""
    if not log_path.is_file():
        return []
    with log_path.open(newline="") as f:
        return [
            (int(r["step"]), float(r["val_bits_per_dim"]))
            for r in csv.DictReader(f)
            if r.get("val_bits_per_dim")
        ]


def sweep_config(base: Config, shape: FlowShape, steps: int) -> Config:
    cfg = copy.deepcopy(base)
    cfg.flow.n_flows = shape.blocks
    cfg.flow.hidden_dim = shape.width
    cfg.flow.hidden_depth = shape.depth
    cfg.flow.embedding_dim = shape.embedding
    cfg.train.cinn.steps = steps
    return cfg


def train_one(
    base: Config,
    shape: FlowShape,
    steps: int,
    caches: tuple[dict, dict],
    num_classes: int,
    *,
    infer_batch: int,
    repeats: int,
    baseline: bool = False,
    scratch: Path | None = None,
) -> Row:
    cfg = sweep_config(base, shape, steps)
    rt = Runtime(torch.device("cpu"))
    with tempfile.TemporaryDirectory(prefix="cinn-sweep-", dir=scratch) as tmp:
        t0 = time.perf_counter()
        # train_cinn reports validations with tqdm.write (stdout): keep stdout for the table.
        with contextlib.redirect_stdout(sys.stderr):
            flow, metrics = train_cinn(
                cfg, Path(tmp), rt, caches[0], caches[1], num_classes, resume=False, progress=False
            )
        train_s = time.perf_counter() - t0
        curve = read_val_curve(Path(tmp) / "cinn_log.csv")
    # best_step None: the last validation (at the final step) was the best.
    best_step = metrics.get("best_step") or steps
    lps, single_ms = inference_speed(flow, infer_batch, repeats)
    if not baseline:
        name = shape.name
    elif (shape.blocks, shape.width, shape.depth) == PAPER:
        name = "paper size (baseline)"
    else:
        name = f"baseline {shape.name}"
    return Row(
        name=name,
        blocks=shape.blocks,
        width=shape.width,
        depth=shape.depth,
        embedding=shape.embedding,
        params=flow.num_parameters,
        steps=steps,
        best_val_bpd=float(metrics["val_bits_per_dim"]),
        best_step=int(best_step),
        train_s=train_s,
        latents_per_s=lps,
        single_ms=single_ms,
        val_curve=curve,
        baseline=baseline,
    )


def compare(rows: list[Row]) -> None:
    """Fill speed-up, bits/dim difference and goal of every row against the baseline row."""
    base = next(r for r in rows if r.baseline)
    for r in rows:
        r.speedup = r.latents_per_s / base.latents_per_s
        r.delta_bpd = r.best_val_bpd - base.best_val_bpd
        r.meets_goal = (
            not r.baseline and r.speedup >= GOAL_SPEEDUP and r.delta_bpd <= GOAL_BPD + 1e-12
        )


def markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [
            r.name,
            str(r.blocks),
            str(r.width),
            str(r.depth),
            str(r.embedding),
            f"{r.params:,}",
            str(r.steps),
            f"{r.best_val_bpd:.4f}",
            str(r.best_step),
            f"{r.train_s:.1f}" if r.train_s >= 10 else f"{r.train_s:.2f}",
            f"{r.latents_per_s:,.0f}",
            f"{r.single_ms:.2f}",
            f"{r.speedup:.2f}x",
            f"{r.delta_bpd:+.4f}",
            "baseline" if r.baseline else ("yes" if r.meets_goal else "no"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load_caches(run: Path) -> tuple[dict, dict]:
    paths = [run / "latents_train.safetensors", run / "latents_val.safetensors"]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"{run}: no latent cache ({', '.join(missing)} missing)")
    train, val = (load_file(str(p)) for p in paths)
    for name, c in (("train", train), ("val", val)):
        if "mu" not in c or "logvar" not in c or "labels" not in c:
            raise SystemExit(f"{run}: latents_{name}.safetensors lacks mu, logvar or labels")
    return train, val


def base_config(run: Path, args: argparse.Namespace, z_dim: int) -> Config:
    cfg = load_run_config(run) if (run / "config.yaml").is_file() else load_config()
    cfg.autoencoder.z_dim = z_dim
    sc = cfg.train.cinn
    for key, value in (
        ("batch_size", args.batch_size),
        ("lr", args.lr),
        ("warmup_steps", args.warmup),
        ("min_lr_ratio", args.min_lr_ratio),
        ("val_every", args.val_every),
    ):
        if value is not None:
            setattr(sc, key, value)
    # Checkpoints only cost disk time here; one at the end is enough.
    sc.ckpt_every = 10**9
    sc.log_every = max(1, sc.val_every)
    if args.seed is not None:
        cfg.seed = args.seed
    return cfg


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--run", required=True, type=Path, help="run folder with the latent cache")
    ap.add_argument(
        "--grid", action="append", help=f"BLOCKS x WIDTHS [x DEPTHS] (default {DEFAULT_GRID})"
    )
    ap.add_argument("--steps", type=int, help="training steps (default: the run's train.cinn)")
    ap.add_argument("--baseline-steps", type=int, help="steps for the baseline (default --steps)")
    ap.add_argument(
        "--baseline",
        default="x".join(map(str, PAPER)),
        help="baseline BLOCKSxWIDTHxDEPTH (default the paper's 20x1024x2)",
    )
    ap.add_argument("--embedding", type=int, default=PAPER_EMBEDDING, help="label embedding size")
    ap.add_argument("--batch-size", type=int, help="default: the run's (256)")
    ap.add_argument("--lr", type=float)
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--min-lr-ratio", type=float)
    ap.add_argument("--val-every", type=int, help="validate every N steps (default: the run's)")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--infer-batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=20, help="timed calls per speed figure")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--json", type=Path, help="also write every figure (and val curves) here")
    ap.add_argument(
        "--scratch", type=Path, help="folder for the temporary stage-2 runs (default: the OS's)"
    )
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    caches = load_caches(args.run)
    z_dim = caches[0]["mu"].shape[1]
    base = base_config(args.run, args, z_dim)
    num_classes = max(
        len(base.model.domains),
        int(caches[0]["labels"].max()) + 1,
        int(caches[1]["labels"].max()) + 1,
    )
    steps = args.steps if args.steps is not None else base.train.cinn.steps
    baseline_steps = args.baseline_steps if args.baseline_steps is not None else steps
    try:
        (b_shape,) = parse_grid([args.baseline])
        grid = parse_grid(args.grid or [DEFAULT_GRID])
    except ValueError as e:
        ap.error(str(e))
    shapes = [FlowShape(*b_shape, PAPER_EMBEDDING)]
    shapes += [FlowShape(*s, args.embedding) for s in grid]

    sc = base.train.cinn
    print(
        f"latents: {caches[0]['mu'].shape[0]} train, {caches[1]['mu'].shape[0]} val, "
        f"{z_dim}-d, {num_classes} datasets; schedule: batch {sc.batch_size}, lr {sc.lr}, "
        f"warm-up {sc.warmup_steps}, cosine to x{sc.min_lr_ratio}, validation every "
        f"{sc.val_every}; {steps} steps (baseline {baseline_steps}); torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, CPU\n"
    )
    rows: list[Row] = []
    for i, shape in enumerate(shapes):
        row = train_one(
            base,
            shape,
            baseline_steps if i == 0 else steps,
            caches,
            num_classes,
            infer_batch=args.infer_batch,
            repeats=args.repeats,
            baseline=i == 0,
            scratch=args.scratch,
        )
        rows.append(row)
        print(
            f"[{i + 1}/{len(shapes)}] {row.name}: {row.best_val_bpd:.4f} bits/dim at step "
            f"{row.best_step}, {row.latents_per_s:,.0f} latents/s, {row.train_s:.0f} s",
            file=sys.stderr,
        )
        if args.json:  # written after every row: a long sweep that stops keeps its figures
            compare(rows)
            args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    compare(rows)
    print(markdown(rows))
    b = rows[0]
    print(
        f"\nBaseline: {b.blocks}x{b.width}x{b.depth}, embedding {b.embedding}, "
        f"{b.steps} steps. Speed: one forward + one inverse pass, batch {args.infer_batch} "
        f"(latents/s) and batch 1 (ms), median of {args.repeats}, torch.inference_mode. "
        f"Goal: >= {GOAL_SPEEDUP:.0f}x the baseline's latents/s at bits/dim "
        f"at most {GOAL_BPD} above it; {sum(r.meets_goal for r in rows)} of {len(rows) - 1} "
        "configurations meet it."
    )
    if baseline_steps != steps:
        print(f"Note: the baseline trained {baseline_steps} steps, the others {steps}.")


if __name__ == "__main__":
    main()
