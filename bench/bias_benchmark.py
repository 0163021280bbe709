"""The bias benchmark: does projection a -> b replicate b's planted biases and keep content?

    python bench/bias_benchmark.py [--model demo] [--n 200] [--seed 0] [--json out.json]
    python bench/bias_benchmark.py --projection mean-shift    # a baseline without the flow

Renders n fresh faces per synthetic dataset, projects each into every dataset, reads the
attributes back with the shipped estimators and prints one row per ordered pair (see
net2fair.benchmark for the definitions). Goals: target accuracy >= 90%, content error
<= 0.3 sd, bias ratio <= 0.25.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from net2fair import Translator
from net2fair.benchmark import PROJECTIONS, format_table, load_estimators, run_benchmark


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="demo")
    ap.add_argument("--n", type=int, default=200, help="evaluation faces per dataset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument(
        "--projection",
        choices=PROJECTIONS,
        default="flow",
        help="what carries codes between datasets: the model's flow, or a linear baseline "
        "from the datasets' code statistics (mean-shift, gaussian-ot)",
    )
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    t = Translator.load(args.model)
    est = load_estimators()
    result = run_benchmark(t, estimators=est, n=args.n, seed=args.seed, projection=args.projection)
    extra = f" --projection {args.projection}" if args.projection != "flow" else ""
    print(
        f"$ python bench/bias_benchmark.py --model {args.model} --n {args.n} "
        f"--seed {args.seed}{extra}\n"
    )
    print(format_table(result))
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result.to_dict(), f, indent=2)


if __name__ == "__main__":
    main()
