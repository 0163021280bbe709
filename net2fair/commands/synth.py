"""``net2fair synth``, ``net2fair demo`` and ``net2fair benchmark``: the synthetic
datasets, the demo run on them, and the bias benchmark."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from net2fair.commands.common import (
    MAX_EVAL_FACES,
    CommandError,
    at_least,
    check_out,
    in_range,
    load_model,
    staged_output,
)


def cmd_synth(args: argparse.Namespace) -> int:
    """Write the synthetic benchmark datasets as image folders under ``out``."""
    from net2fair.synth.files import write_benchmark

    at_least(args.n, 1, "--n")
    in_range(args.resolution, 32, 256, "--resolution")
    out = check_out(args.out, "synth")
    t0 = time.perf_counter()
    with staged_output(out, "synth") as tmp:
        folders = write_benchmark(
            tmp, n=args.n, resolution=args.resolution, seed=args.seed, progress=not args.quiet
        )
    dt = time.perf_counter() - t0
    print(
        f"wrote {args.n} images for each of {', '.join(folders)} at {args.resolution} px "
        f"to {args.out} in {dt:.1f} s (labels.csv in each folder)"
    )
    return 0


# ---------------------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    """Run the main job on the shipped demo model and a fresh synthetic set."""
    from net2fair.demo import run_demo
    from net2fair.fileio import OutputError
    from net2fair.training.engine import resolve_device

    in_range(args.n, 1, MAX_EVAL_FACES, "--n")
    out = check_out(args.out, "demo")
    t0 = time.perf_counter()
    try:
        result = run_demo(
            out, model="demo", n=args.n, seed=args.seed, device=resolve_device(args.device)
        )
    except OutputError as e:  # --out changed while the demo ran: it was kept as it was
        raise CommandError(str(e).splitlines()[0]) from None
    print(
        f"net2fair demo: {args.n} rendered faces per dataset projected into every dataset "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    for line in result.headlines:
        print(f"  {line}")
    print("  from the bias report on the photo faces:")
    for line in result.report_sentences:
        if "skin tone" in line:
            print(f"    {line}")
    print(
        f"outputs in {result.out}/: projections.png, samples.png, summary.md, summary.json, "
        f"report/index.html"
    )
    return 0


# ----------------------------------------------------------------------------- benchmark
def _is_benchmark_json(path: Path) -> bool:
    """Whether ``path`` holds an earlier ``--json`` result (which --json may replace)."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"pairs", "model"} <= set(data)


def cmd_benchmark(args: argparse.Namespace) -> int:
    """Run the bias benchmark on a model trained on the synthetic datasets."""
    import os

    import torch

    from net2fair.synth.benchmark import format_table, run_benchmark
    from net2fair.synth.estimators import load_estimators
    from net2fair.synth.priors import DOMAINS
    from net2fair.training.checkpoint import atomic_write

    in_range(args.n, 1, MAX_EVAL_FACES, "--n")
    if args.json:  # refuse an unusable destination before the work, not after
        dest = Path(args.json)
        if dest.is_dir():
            raise CommandError(f"{dest}: --json names a folder; give a file name", 2)
        if dest.exists() and not _is_benchmark_json(dest):
            raise CommandError(
                f"{dest}: exists and is not an earlier benchmark result; --json replaces only "
                "those: give a new file name",
                2,
            )
        parent = next(p for p in (dest.parent, *dest.parent.parents) if p.exists())
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise CommandError(f"{dest}: cannot write here ({parent} is not a writable folder)")
    t0 = time.perf_counter()
    t = load_model(args.model, args.device)
    foreign = [d for d in t.domains if d not in DOMAINS]
    if foreign:
        raise CommandError(
            f"{args.model}: the bias benchmark needs a model trained on the synthetic datasets "
            f"({', '.join(DOMAINS)}; see `net2fair synth`), this one has {', '.join(foreign)}",
            2,
        )
    estimators = load_estimators(t.device)
    if estimators is None:
        raise CommandError(
            "the attribute estimators (net2fair/assets/estimators) are not installed; "
            "reinstall net2fair or train them with python -m net2fair.synth.train_estimators"
        )
    torch.manual_seed(args.seed)
    result = run_benchmark(
        t, estimators=estimators, n=args.n, seed=args.seed, projection=args.projection
    )
    extra = f" --projection {args.projection}" if args.projection != "flow" else ""
    print(f"$ net2fair benchmark {args.model} --n {args.n} --seed {args.seed}{extra}\n")
    print(format_table(result))
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    if args.json:
        payload = result.to_json()
        atomic_write(Path(args.json), lambda p: p.write_text(payload))
        print(f"figures written to {args.json}")
    return 0
