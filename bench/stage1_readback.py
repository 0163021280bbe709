"""What stage 1 alone keeps of a face: reconstructions of fresh benchmark faces, read back.

    python bench/stage1_readback.py old=demo new=runs/demo3 [--n 200] [--seed 0]

Each ``NAME=SOURCE`` is a model folder (or ``demo``) or a run folder, whose stage-1
checkpoint (``autoencoder/last.ckpt``) is read with the run's ``config.yaml``, so a stage 1
can be compared before its run has a stage 2, at matched steps. Every autoencoder
reconstructs the same ``n`` fresh faces per dataset (the evaluation seeds of
``net2fair benchmark``; encoder mean -> decoder), and the shipped attribute estimators read
the reconstructions. Printed per source and dataset, as a markdown table:

- PSNR of the whole image and of the eye band (rows 33% to 58%, columns 20% to 80%);
- the eye-band colour-noise ratio (``net2fair.fidelity``; <= 1 is faithful or blurry);
- the share of faces whose glasses and eye size are read back as the input's, and the share
  of faces without glasses read as wearing them (the faint glasses a soft decoder draws);
- the worst other planted attribute read back, and the content error (position, size, yaw,
  roll, mouth; mean over those, in standard deviations), with the estimators' own floor on
  the clean inputs beside it.

A reconstruction is a -> a projection (the flow is exactly invertible), so these are the
a -> a figures of ``net2fair benchmark`` without needing a stage 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from net2fair.config import config_from_yaml_text
from net2fair.data.images import tensor_to_uint8, uint8_to_tensor
from net2fair.fidelity import colour_noise, eye_band, psnr
from net2fair.models.translator import Translator, build_autoencoder
from net2fair.synth.benchmark import CONTENT, EVAL_SEED_OFFSET
from net2fair.synth.estimators import load_estimators
from net2fair.synth.priors import DOMAINS, PLANTED_ATTRIBUTES
from net2fair.synth.render import render_batch
from net2fair.training.checkpoint import load_checkpoint


def load_autoencoder(source: str) -> tuple[torch.nn.Module, int, str]:
    """(autoencoder in eval mode, resolution, a note on what was loaded)."""
    run = Path(source)
    ckpt = run / "autoencoder" / "last.ckpt"
    if ckpt.is_file() and (run / "config.yaml").is_file():
        cfg = config_from_yaml_text((run / "config.yaml").read_text(), str(run / "config.yaml"))
        ae = build_autoencoder(cfg)
        state = load_checkpoint(ckpt, torch.device("cpu"))
        ae.load_state_dict(state["model"])
        return ae.eval(), cfg.data.resolution, f"run, stage-1 step {int(state['step'])}"
    t = Translator.load(source)
    return t.autoencoder.float().eval(), t.resolution, "model folder"


def band_psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image PSNR (dB) of two (N, H, W, 3) uint8 batches over the eye band."""
    rows, cols = eye_band(a.shape[1], a.shape[2])
    return psnr(a[:, rows, cols], b[:, rows, cols])


@torch.inference_mode()
def measure(ae: torch.nn.Module, resolution: int, n: int, seed: int, est) -> dict:  # noqa: ANN001
    out = {}
    for d in DOMAINS:
        images, attrs = render_batch(d, n, resolution, seed=seed + EVAL_SEED_OFFSET)
        recs = []
        for s in range(0, n, 100):
            x = uint8_to_tensor(images[s : s + 100])
            recs.append(tensor_to_uint8(ae.decode(ae.encode(x).mean)))
        rec = np.concatenate(recs)
        row = {
            "psnr": float(np.mean(psnr(rec, images))),
            "eye_psnr": float(np.mean(band_psnr(rec, images))),
            "noise": float(np.mean(colour_noise(rec)) / max(np.mean(colour_noise(images)), 1e-12)),
        }
        got = est.predict(uint8_to_tensor(rec))
        own = est.predict(uint8_to_tensor(images))
        kept = {}
        for attr in PLANTED_ATTRIBUTES:
            truth = np.array([int(a[attr]) for a in attrs])
            kept[attr] = float(np.mean(got[attr].numpy() == truth))
        row["glasses"], row["eye_size"] = kept["glasses"], kept["eye_size"]
        no_glasses = np.array([int(a["glasses"]) == 0 for a in attrs])
        row["false_glasses"] = float(np.mean(got["glasses"].numpy()[no_glasses] == 1))
        others = {k: v for k, v in kept.items() if k not in ("glasses", "eye_size")}
        worst = min(others, key=others.get)
        row["worst_other"] = f"{others[worst]:.0%} ({worst})"
        sd = {}
        for k in CONTENT:
            vals = np.array([float(a[k]) for a in attrs])
            sd[k] = float(vals.std()) or 1.0
        truth = {k: np.array([float(a[k]) for a in attrs]) for k in CONTENT}
        row["content"] = float(
            np.mean([np.mean(np.abs(got[k].numpy() - truth[k])) / sd[k] for k in CONTENT])
        )
        row["floor"] = float(
            np.mean([np.mean(np.abs(own[k].numpy() - truth[k])) / sd[k] for k in CONTENT])
        )
        out[d] = row
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sources", nargs="+", metavar="NAME=SOURCE")
    ap.add_argument("--n", type=int, default=200, help="fresh faces per dataset")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    est = load_estimators()
    if est is None:
        print("the shipped attribute estimators are missing: reinstall net2fair", file=sys.stderr)
        return 1
    print(
        "| source | dataset | PSNR | eye-band PSNR | colour noise | glasses kept "
        "| no glasses read as glasses | eye size kept | worst other kept | content (floor) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for spec in args.sources:
        name, _, source = spec.partition("=")
        ae, resolution, note = load_autoencoder(source or name)
        for d, r in measure(ae, resolution, args.n, args.seed, est).items():
            print(
                f"| {name} ({note}) | {d} | {r['psnr']:.2f} | {r['eye_psnr']:.2f} "
                f"| {r['noise']:.2f}x | {r['glasses']:.0%} | {r['false_glasses']:.0%} "
                f"| {r['eye_size']:.0%} | {r['worst_other']} "
                f"| {r['content']:.2f} ({r['floor']:.2f}) |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
