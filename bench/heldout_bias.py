"""Held-out planted-bias check of a stage-1 recipe (issue 17's "must not break").

Two photo-style datasets that differ only in skin tone (``a``: 15% brown or dark, ``b``:
50%) are rendered, trained from folders the way a user trains
(``net2fair train --domain a=... --domain b=... --resolution 32``), and the shipped
attribute estimators read the brown-or-dark share of fresh faces projected a -> b and
b -> a. A recipe that projects well moves each share towards the other dataset's.

    python bench/heldout_bias.py --recipe eye --seed 0 --out runs/heldout
    python bench/heldout_bias.py --recipe chroma --seed 0 --out runs/heldout

``eye`` is the package's default stage 1 (chroma L1, eye-band L1, Adam (0.9, 0.99), no
discriminator); ``chroma`` the default before the eye-band L1 (``loss.eye_weight=0``,
Adam (0.5, 0.9)); ``old`` the default before the chroma L1 (also
``loss.chroma_weight=0 loss.disc_weight=0.5``). Each run takes about
12 minutes on 2 free CPU cores at the defaults; an interrupted run continues where it
stopped. The figures are in docs/stage1-fidelity.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from net2fair.models.translator import Translator
from net2fair.synth.estimators import load_estimators
from net2fair.synth.files import write_benchmark
from net2fair.synth.priors import (
    PLANTED_ATTRIBUTES,
    attribute_rng,
    default_priors,
    image_rng,
    sample_attributes,
)
from net2fair.synth.render import render_face

_CHROMA = ["loss.eye_weight=0", "train.autoencoder.betas=[0.5,0.9]"]
RECIPES = {
    "eye": [],
    "chroma": _CHROMA,
    "old": [*_CHROMA, "loss.chroma_weight=0", "loss.disc_weight=0.5"],
}
SHARES = {"a": 0.15, "b": 0.50}
DARK = ("brown", "dark")


def priors_with_dark_share(share: float) -> dict:
    """The packaged priors with photo's skin tone set to ``share`` brown or dark."""
    p = copy.deepcopy(default_priors())
    levels = PLANTED_ATTRIBUTES["skin_tone"]
    light = (1.0 - share) / (len(levels) - len(DARK))
    p["photo"]["skin_tone"] = {k: share / len(DARK) if k in DARK else light for k in levels}
    return p


def fresh_faces(share: float, seed: int, n: int, resolution: int) -> np.ndarray:
    attrs = sample_attributes(
        "photo", n, attribute_rng("photo", seed), priors_with_dark_share(share)
    )
    faces = [
        render_face(a, "photo", resolution, image_rng("photo", seed, i))
        for i, a in enumerate(attrs)
    ]
    return np.stack(faces)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--recipe", choices=sorted(RECIPES), required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="folder for the data and the runs")
    ap.add_argument("--n-train", type=int, default=3000, help="faces per dataset")
    ap.add_argument("--n-eval", type=int, default=600, help="fresh faces read each way")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--ae-steps", type=int, default=3000)
    ap.add_argument("--cinn-steps", type=int, default=4000)
    args = ap.parse_args(argv)

    data = args.out / f"data{args.seed}"
    for name, seed in (("a", args.seed), ("b", args.seed + 50)):
        if not (data / name / "photo" / "labels.csv").exists():
            write_benchmark(
                data / name,
                n=args.n_train,
                resolution=args.resolution,
                seed=seed,
                priors=priors_with_dark_share(SHARES[name]),
                domains=("photo",),
            )
    run = args.out / f"train{args.seed}_{args.recipe}"
    if not (run / "model" / "config.yaml").exists():
        cmd = [sys.executable, "-m", "net2fair", "train"]
        if run.exists():  # interrupted: continue it
            cmd += ["--resume", str(run)]
        else:
            cmd += [f"--domain={n}={data / n / 'photo'}" for n in ("a", "b")]
            cmd += ["--resolution", str(args.resolution), "--out", str(run)]
            cmd += ["--ae-steps", str(args.ae_steps), "--cinn-steps", str(args.cinn_steps)]
            cmd += ["--seed", str(args.seed), *RECIPES[args.recipe]]
        subprocess.run(cmd, check=True)

    t = Translator.load(run / "model")
    est = load_estimators()
    if est is None:
        raise SystemExit("the shipped attribute estimators are missing: reinstall net2fair")
    dark = [PLANTED_ATTRIBUTES["skin_tone"].index(k) for k in DARK]

    def share(images: np.ndarray | torch.Tensor) -> float:
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return float(np.isin(est.predict(images)["skin_tone"].numpy(), dark).mean())

    result: dict = {"recipe": args.recipe, "seed": args.seed}
    for src, dst, k in (("a", "b", 9000), ("b", "a", 9100)):
        x = fresh_faces(SHARES[src], k + args.seed, args.n_eval, args.resolution)
        target = fresh_faces(SHARES[dst], k + 200 + args.seed, args.n_eval, args.resolution)
        out = t.project(x, src, [src, dst])
        xt = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        mse = ((out[src].float() - xt) / 2).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
        result[f"{src}->{dst}"] = {
            "input": share(x),
            "projection": share(out[dst]),
            "target": share(target),
            "reconstruction_psnr": float((-10 * torch.log10(mse)).mean()),
        }
    print(json.dumps(result, indent=1))
    (args.out / f"result{args.seed}_{args.recipe}.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
