"""Peak memory of `net2fair sample` and `net2fair project` as the number of images grows.

Both commands work in batches and write as they go, so their peak resident memory should
not grow with the number of images. Each run is a fresh process; its peak RSS is read from
the kernel (``ru_maxrss`` of that child alone). Prints a table and the ratio of the largest
run's peak to the smallest's (issue 20's target: within 1.2x from 1,000 to 100,000).

    python bench/memory.py                         # tiny model trained on the spot
    python bench/memory.py --model demo --sizes 1000,10000

Inputs for `project` are hard links to a few rendered faces, so making 100,000 of them
costs no disk and no time; outputs go to a temporary folder removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Runs one command in a child and prints that child's peak RSS (KiB on Linux).
_MEASURE = """
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": proc.returncode, "peak_kib": peak, "seconds": time.perf_counter() - t0,
                  "err": proc.stderr[-500:]}))
"""


def measure(args: list[str]) -> dict:
    cmd = [sys.executable, "-c", _MEASURE, sys.executable, "-m", "net2fair", *args, "-q"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"net2fair {' '.join(args)} failed: {result['err']}")
    return result


def tiny_model(root: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "net2fair", "synth", str(root / "data"), "--n", "24"]
        + ["--resolution", "32", "-q"],
        check=True,
    )
    subprocess.run(
        [sys.executable, "-m", "net2fair", "train", str(REPO / "configs" / "tiny.yaml")]
        + [f"--domain={d}={root / 'data' / d}" for d in ("photo", "anime")]
        + ["--out", str(root / "run"), "-q"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return root / "run" / "model"


def linked_inputs(folder: Path, source: Path, n: int) -> Path:
    """``n`` image files in ``folder``: hard links to the images in ``source``."""
    originals = sorted(source.glob("*.png"))
    folder.mkdir(parents=True)
    for i in range(n):
        os.link(originals[i % len(originals)], folder / f"{i:06d}.png")
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", help="a model folder or 'demo' (default: a tiny model)")
    p.add_argument("--sizes", default="1000,100000", help="numbers of images, comma-separated")
    p.add_argument("--source", default="photo", help="dataset of the projected inputs")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="net2fair-memory-") as tmp:
        root = Path(tmp)
        model = args.model or str(tiny_model(root))
        faces = root / "faces"
        subprocess.run(
            [sys.executable, "-m", "net2fair", "synth", str(faces), "--n", "8", "-q"], check=True
        )
        rows = []
        for n in sizes:
            for command in ("sample", "project"):
                out = root / f"out-{command}-{n}"
                if command == "sample":
                    cmd = ["sample", model, "-n", str(n), "--domain", args.source]
                else:
                    inputs = linked_inputs(root / f"in-{n}", faces / args.source, n)
                    cmd = ["project", model, str(inputs), "--from", args.source]
                t0 = time.perf_counter()
                r = measure([*cmd, "--out", str(out)])
                files = sum(1 for _ in out.rglob("*.png"))
                rows.append((command, n, r["peak_kib"] / 1024, time.perf_counter() - t0, files))
                subprocess.run(["rm", "-rf", str(out)], check=True)
    print(f"model: {args.model or 'tiny (configs/tiny.yaml)'}; cores: {os.cpu_count()}\n")
    print("| command | images | peak RSS (MiB) | seconds | PNG files written |")
    print("|---|---|---|---|---|")
    for command, n, mib, sec, files in rows:
        print(f"| {command} | {n:,} | {mib:.0f} | {sec:.0f} | {files:,} |")
    print()
    for command in ("sample", "project"):
        peaks = [mib for c, _, mib, _, _ in rows if c == command]
        ratio = peaks[-1] / peaks[0]
        print(f"{command}: peak at {sizes[-1]:,} / peak at {sizes[0]:,} = {ratio:.2f}x")


if __name__ == "__main__":
    main()
