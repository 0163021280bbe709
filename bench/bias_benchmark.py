"""The bias benchmark: does projection a -> b replicate b's planted biases and keep content?

    python bench/bias_benchmark.py [--model demo] [--n 200] [--seed 0] [--json out.json]
    python bench/bias_benchmark.py --projection mean-shift    # a baseline without the flow

The same as ``net2fair benchmark [MODEL] ...`` (the installed command, which takes the model
as its first argument): renders n fresh faces per synthetic dataset, projects each into
every dataset, reads the attributes back with the shipped estimators and prints one row per
ordered pair (see net2fair.synth.benchmark for the definitions). Goals: target accuracy >= 90%,
content error <= 0.3 sd, bias ratio <= 0.25.
"""

from __future__ import annotations

import argparse
import sys

from net2fair.cli import main

if __name__ == "__main__":
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--model", default="demo")
    known, rest = ap.parse_known_args()
    if any(a in ("-h", "--help") for a in rest):
        print(__doc__)
    sys.exit(main(["benchmark", known.model, *rest]))
