"""Does the autoencoder code a face's content in the same coordinates in every dataset?

    python bench/content_probe.py [--model demo] [--n 1500] [--seed 0] [--json out.json]
    python bench/content_probe.py --model demo --autoencoder RUN/autoencoder/last.ckpt

``--autoencoder`` probes a stage-1 checkpoint (same architecture as the model's) before any
flow is trained on it: the probe needs only the encoder.

Renders ``n`` fresh faces per synthetic dataset (evaluation seeds, as the bias benchmark),
encodes them to their posterior means and fits, on two thirds of each dataset, a
ridge-regularised linear readout of the shared content (x, y, size, yaw, roll, mouth). The
table gives that readout's mean absolute error, in standard deviations of each attribute
and averaged over them, on the held-out third of every dataset:

- the diagonal says how linearly the code holds content within a dataset;
- a row's other cells say whether the same coordinates mean the same content elsewhere.

A flow that carries one dataset onto another can only keep content it finds in shared
coordinates, so large off-diagonal errors bound what projection can keep (README, "Why
projections lose the pose").
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from net2fair import Translator
from net2fair.synth.benchmark import CONTENT, EVAL_SEED_OFFSET, psd_power
from net2fair.synth.render import render_batch
from net2fair.training.checkpoint import load_checkpoint


def fit_readout(z: np.ndarray, a: np.ndarray, ridge: float = 1e-2) -> np.ndarray:
    """Least squares ``[z, 1] @ W ~ a`` with an L2 penalty ``ridge`` on all of W (the
    intercept row too); ``(D + 1, A)``."""
    x = np.c_[z, np.ones(len(z))]
    return np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ a)


def readout_error(w: np.ndarray, z: np.ndarray, a: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Mean |readout - truth| / sd per attribute; ``(A,)``."""
    return (np.abs(np.c_[z, np.ones(len(z))] @ w - a) / sd).mean(0)


def encode_faces(
    t: Translator, n: int, seed: int, batch: int = 250
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Dataset -> (posterior means ``(n, D)``, content attributes ``(n, len(CONTENT))``)."""
    out = {}
    res = t.resolution
    for d in t.domains:
        images, attrs = render_batch(d, n, res, seed=seed + EVAL_SEED_OFFSET)
        with torch.inference_mode():
            z = torch.cat([t.encode(t.prepare(images[i : i + batch])) for i in range(0, n, batch)])
        a = np.array([[float(at[k]) for k in CONTENT] for at in attrs])
        out[d] = (z.float().cpu().numpy(), a)
    return out


def probe(
    codes: dict[str, tuple[np.ndarray, np.ndarray]],
    ridge: float = 1e-2,
    names: tuple[str, ...] = CONTENT,
) -> dict:
    """Readout errors: ``{"error": {fit_on: {test_on: mean}}, "per_attribute": ...}``;
    ``names`` names the attribute columns."""
    sd = np.concatenate([a for _, a in codes.values()]).std(0)
    sd = np.where(sd > 0, sd, 1.0)
    error: dict[str, dict[str, float]] = {}
    per: dict[str, dict[str, dict[str, float]]] = {}
    for fit_on, (z, a) in codes.items():
        cut = 2 * len(z) // 3
        w = fit_readout(z[:cut], a[:cut], ridge)
        error[fit_on], per[fit_on] = {}, {}
        for test_on, (z2, a2) in codes.items():
            e = readout_error(w, z2[cut:], a2[cut:], sd)
            error[fit_on][test_on] = float(e.mean())
            per[fit_on][test_on] = dict(zip(names, map(float, e), strict=True))
    return {"error": error, "per_attribute": per}


def standardised(
    codes: dict[str, tuple[np.ndarray, np.ndarray]],
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each dataset's codes shifted and scaled to mean 0, sd 1 per dimension."""
    return {d: ((z - z.mean(0)) / np.maximum(z.std(0), 1e-12), a) for d, (z, a) in codes.items()}


def _sqrtm(c: np.ndarray) -> np.ndarray:
    return psd_power(torch.from_numpy(c), 0.5).numpy()


def gelbrich(codes: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, dict[str, float]]:
    """Gelbrich's lower bound on the squared Wasserstein-2 distance between two datasets'
    codes (from their means and covariances), per dimension, in units of the pooled codes'
    mean per-dimension variance: the least E||z_b - z_a||^2 / D / var that any map carrying
    one dataset's codes onto the other's must pay, in the units of the stage-2 transport
    cost that docs/content-and-pose.md measured (``loss.transport_weight``, since
    retired)."""
    pooled = np.concatenate([z for z, _ in codes.values()])
    scale = pooled.var(0).mean()
    stats = {d: (z.mean(0), np.cov(z.T)) for d, (z, _) in codes.items()}
    out: dict[str, dict[str, float]] = {}
    for a, (ma, ca) in stats.items():
        root = _sqrtm(ca)
        out[a] = {}
        for b, (mb, cb) in stats.items():
            cross = _sqrtm(root @ cb @ root)
            w2 = float(((ma - mb) ** 2).sum() + np.trace(ca + cb - 2 * cross))
            out[a][b] = float(max(0.0, w2) / ma.shape[0] / scale)
    return out


def markdown(result: dict) -> str:
    names = list(result["error"])
    lines = [
        "| readout fitted on | " + " | ".join(f"error on {n}" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for fit_on in names:
        cells = [f"{result['error'][fit_on][n]:.2f}" for n in names]
        lines.append(f"| {fit_on} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="demo")
    ap.add_argument("--n", type=int, default=1500, help="faces per dataset (2/3 fit, 1/3 test)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ridge", type=float, default=1e-2)
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument(
        "--autoencoder",
        metavar="CKPT",
        help="probe this stage-1 checkpoint's encoder instead of the model's",
    )
    args = ap.parse_args(argv)
    if args.n < 6:
        raise SystemExit("--n must be at least 6")
    t0 = time.perf_counter()
    t = Translator.load(args.model)
    if args.autoencoder:
        t.autoencoder.load_state_dict(load_checkpoint(Path(args.autoencoder))["model"])
    codes = encode_faces(t, args.n, args.seed)
    result = probe(codes, args.ridge)
    result["standardised"] = probe(standardised(codes), args.ridge)
    result["gelbrich"] = gelbrich(codes)
    ckpt = f" --autoencoder {args.autoencoder}" if args.autoencoder else ""
    print(
        f"$ python bench/content_probe.py --model {args.model}{ckpt} --n {args.n} "
        f"--seed {args.seed}\n"
    )
    print(markdown(result))
    print(
        f"\nMean |linear readout - truth| / sd over {', '.join(CONTENT)}; fitted on "
        f"{2 * args.n // 3} faces of each dataset, tested on the other {args.n - 2 * args.n // 3}."
    )
    print("\nThe same after standardising each dataset's codes (per-dimension mean and sd):\n")
    print(markdown(result["standardised"]))
    pairs = [(a, b) for a in codes for b in codes if a != b]
    bounds = [result["gelbrich"][a][b] for a, b in pairs]
    print(
        "\nGelbrich lower bound on the transport between datasets' codes (per dimension, in "
        "units of the codes' variance, as the retired loss.transport_weight priced it): "
        + ", ".join(f"{a} -> {b} {result['gelbrich'][a][b]:.2f}" for a, b in pairs)
        + f"; mean {sum(bounds) / len(bounds):.2f}"
    )
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
