"""What each stage-1 loss charges for eye-band colour confetti (issue 17).

    python bench/stage1_fidelity.py [--model demo] [--n 100] [--seed 0] [--vgg]

Renders ``n`` fresh synthetic faces per dataset in memory (evaluation seeds, as
``net2fair benchmark``) and prints two markdown tables, written up in
docs/stage1-fidelity.md:

1. **What removing the confetti is worth to each loss.** The model's autoencoder
   reconstructs every face (encoder mean -> decoder, clamped). The reconstruction is then
   *cleaned*: inside the eye band its chroma (Cb, Cr of YCbCr, ITU-R BT.601) is replaced by
   its Gaussian blur (sigma 1 px), its luma kept. Each cell is ``reconstruction -> cleaned``
   with the change (in dB for PSNR, in % for the losses): PSNR and eye-band colour-noise
   ratio (``net2fair.fidelity``, on the 8-bit images), and, against the input, L1,
   LPIPS-AlexNet at 64 px, LPIPS-AlexNet on both images upsampled to 224 px, and
   ``chroma_detail_l1`` (``net2fair.models.losses``).
   On the demo model shipped before issue 17, cleaning takes the colour-noise ratio far below
   1 while L1 and LPIPS-AlexNet-64 barely move (LPIPS even rises a little);
   ``chroma_detail_l1``, a mean over the whole image, falls an order of magnitude more.
2. **What each loss charges for confetti and for blur.** On the clean input faces: synthetic
   Gaussian chroma noise in the eye band, scaled per dataset so that the colour-noise ratio
   is 2.5 (about the shipped model's), against a sigma-1 Gaussian blur of the whole image.
   A second table divides each loss by the L1 of the same distortion: per unit of pixel
   error, LPIPS-AlexNet-64 charges the confetti tens of times less than the blur, on 224 px
   only about twice less; ``chroma_detail_l1`` charges the confetti more than the blur.

``--vgg`` adds LPIPS-VGG at 64 px (slow). When the LPIPS backbone weights are missing
(:class:`~net2fair.models.perceptual.PerceptualWeightsMissing`) the LPIPS columns read n/a
and the rest is still printed. All figures are means over the faces of a dataset.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from net2fair import Translator
from net2fair.data.images import tensor_to_uint8 as to_uint8
from net2fair.data.images import uint8_to_tensor
from net2fair.fidelity import colour_noise_ratio, eye_band, psnr
from net2fair.models.losses import chroma_detail_l1
from net2fair.models.perceptual import PerceptualWeightsMissing, load_lpips
from net2fair.synth.benchmark import EVAL_SEED_OFFSET
from net2fair.synth.render import render_batch

#: colour-noise ratio of the synthetic confetti in table 2 (the shipped demo model's ~2.6)
CONFETTI_RATIO = 2.5
#: faces per forward pass of the autoencoder and of LPIPS
BATCH = 50
#: BT.601 RGB -> (Y, Cb, Cr), without offsets (they cancel in every use here)
_RGB_TO_YCC = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [-0.168736, -0.331264, 0.5],
        [0.5, -0.418688, -0.081312],
    ]
)
_YCC_TO_RGB = torch.linalg.inv(_RGB_TO_YCC.double()).float()

Loss = Callable[[torch.Tensor, torch.Tensor], float]


# ------------------------------------------------------------------------- colour helpers
def rgb_to_ycc(x: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB -> Y, Cb, Cr in the same scale (for [-1, 1] input, Y is in
    [-1, 1] and Cb, Cr in [-1, 1] centred on 0)."""
    return torch.einsum("kc,nchw->nkhw", _RGB_TO_YCC.to(x), x)


def ycc_to_rgb(c: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycc` (not clamped)."""
    return torch.einsum("kc,nchw->nkhw", _YCC_TO_RGB.to(c), c)


def gaussian_blur(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, C, H, W)``: 7 taps, borders reflected, as in
    :mod:`net2fair.fidelity`."""
    t = torch.arange(-3, 4, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    h = F.conv2d(
        F.pad(x, (3, 3, 0, 0), mode="reflect"), k.view(1, 1, 1, 7).expand(c, 1, 1, 7), groups=c
    )
    h = F.pad(h, (0, 0, 3, 3), mode="reflect")
    return F.conv2d(h, k.view(1, 1, 7, 1).expand(c, 1, 7, 1), groups=c)


def eye_band_mask(x: torch.Tensor) -> torch.Tensor:
    """``(1, 1, H, W)`` mask, 1 in the eye band of ``x``'s images (:func:`eye_band`)."""
    rows, cols = eye_band(x.shape[-2], x.shape[-1])
    mask = torch.zeros(1, 1, *x.shape[-2:], dtype=x.dtype, device=x.device)
    mask[..., rows, cols] = 1.0
    return mask


def clean_eye_band_chroma(x: torch.Tensor) -> torch.Tensor:
    """``x`` with its eye-band Cb, Cr replaced by their sigma-1 blur, luma kept; clamped."""
    c = rgb_to_ycc(x)
    m = eye_band_mask(x)
    c[:, 1:] = m * gaussian_blur(c[:, 1:]) + (1 - m) * c[:, 1:]
    return ycc_to_rgb(c).clamp(-1, 1)


def add_eye_band_chroma_noise(x: torch.Tensor, noise: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` plus ``scale * noise`` (``(N, 2, H, W)``) on its Cb, Cr inside the eye band."""
    c = rgb_to_ycc(x)
    c[:, 1:] += scale * eye_band_mask(x) * noise
    return ycc_to_rgb(c).clamp(-1, 1)


def confetti(
    x: torch.Tensor, seed: int, target: float = CONFETTI_RATIO
) -> tuple[torch.Tensor, float]:
    """``x`` with Gaussian eye-band chroma noise scaled (by bisection) so that its
    colour-noise ratio against ``x`` (:func:`cnr`, 8-bit) is ``target``; returns the images
    and the ratio met."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(x.shape[0], 2, *x.shape[-2:], generator=g).to(x)

    def ratio(scale: float) -> float:
        return cnr(x, add_eye_band_chroma_noise(x, noise, scale))

    lo, hi = 0.0, 0.01
    while ratio(hi) < target:
        lo, hi = hi, 2 * hi
        if hi > 10:
            raise RuntimeError(f"no noise scale reaches a colour-noise ratio of {target}")
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ratio(mid) < target else (lo, mid)
    out = add_eye_band_chroma_noise(x, noise, hi)
    return out, cnr(x, out)


# --------------------------------------------------------------------------------- losses
def l1(x: torch.Tensor, y: torch.Tensor) -> float:
    return float((x - y).abs().mean())


def chroma(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(chroma_detail_l1(x, y))


def lpips_loss(model: torch.nn.Module, size: int | None = None) -> Loss:
    """Mean LPIPS distance with ``model``, both images resized to ``size`` (bilinear) first
    when given."""

    def loss(x: torch.Tensor, y: torch.Tensor) -> float:
        total = 0.0
        for s in range(0, x.shape[0], BATCH):
            a, b = x[s : s + BATCH], y[s : s + BATCH]
            if size is not None:
                a, b = (F.interpolate(v, size=(size, size), mode="bilinear") for v in (a, b))
            total += float(model(a, b).sum())
        return total / x.shape[0]

    return loss


def losses(vgg: bool) -> tuple[dict[str, Loss | None], list[str]]:
    """Column name -> loss (``None``: LPIPS weights missing), and notes to print."""
    notes = []
    nets: dict[str, torch.nn.Module | None] = {}
    for net in ("alex", "vgg") if vgg else ("alex",):
        try:
            nets[net] = load_lpips(net)
        except PerceptualWeightsMissing as err:
            nets[net] = None
            notes.append(f"LPIPS-{net} weights are missing, its columns are n/a: {err}")
    alex = nets["alex"]
    out: dict[str, Loss | None] = {
        "L1": l1,
        "LPIPS alex 64 px": lpips_loss(alex) if alex else None,
        "LPIPS alex 224 px": lpips_loss(alex, 224) if alex else None,
        "chroma_detail_l1": chroma,
    }
    if vgg:
        out["LPIPS vgg 64 px"] = lpips_loss(nets["vgg"]) if nets["vgg"] else None
    return out, notes


# ------------------------------------------------------------------------------- measures
def mean_psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean per-image PSNR (dB) of ``y`` against ``x``, both quantised to 8 bits."""
    return float(np.mean(psnr(to_uint8(y), to_uint8(x))))


def cnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """Eye-band colour-noise ratio of ``y`` over ``x``, both quantised to 8 bits."""
    return colour_noise_ratio(to_uint8(y), to_uint8(x))


def reconstruct(t: Translator, x: torch.Tensor) -> torch.Tensor:
    """Encoder mean -> decoder, clamped to [-1, 1], in batches."""
    return torch.cat([t.decode(t.encode(x[s : s + BATCH])) for s in range(0, len(x), BATCH)])


def _fmt(v: float | None, digits: int) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _change(a: float | None, b: float | None, digits: int, how: str = "%") -> str:
    """``a -> b (+x%)``; ``how`` ``"dB"`` gives the difference in dB instead, ``""`` none."""
    if a is None or b is None:
        return "n/a"
    if how == "dB":
        rel = f" ({b - a:+.2f} dB)"
    elif how == "%" and a != 0 and math.isfinite(a):
        rel = f" ({100 * (b - a) / a:+.1f}%)"
    else:
        rel = ""
    return f"{a:.{digits}f} -> {b:.{digits}f}{rel}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def removal_table(
    t: Translator, faces: dict[str, torch.Tensor], loss_fns: dict[str, Loss | None]
) -> str:
    """Table 1: reconstruction -> cleaned reconstruction, per dataset."""
    header = ["dataset", "PSNR (dB)", "colour-noise ratio", *loss_fns]
    rows = []
    for d, x in faces.items():
        r = reconstruct(t, x)
        c = clean_eye_band_chroma(r)
        row = [
            d,
            _change(mean_psnr(x, r), mean_psnr(x, c), 2, "dB"),
            _change(cnr(x, r), cnr(x, c), 2, ""),
        ]
        for fn in loss_fns.values():
            row.append(_change(*((fn(x, r), fn(x, c)) if fn else (None, None)), 4))
        rows.append(row)
    return _table(header, rows)


def charge_tables(
    faces: dict[str, torch.Tensor], loss_fns: dict[str, Loss | None], seed: int
) -> tuple[str, str]:
    """Tables 2a (each loss per distortion) and 2b (per unit of L1, confetti / blur)."""
    header = ["dataset", "distortion", "colour-noise ratio", "PSNR (dB)", *loss_fns]
    rows, unit_rows = [], []
    per_unit = [k for k in loss_fns if k != "L1"]
    for i, (d, x) in enumerate(faces.items()):
        noisy, _ = confetti(x, seed * 1000 + i)
        blurred = gaussian_blur(x)
        charged = {}
        for name, y in (("confetti", noisy), ("blur", blurred)):
            vals = {k: (fn(x, y) if fn else None) for k, fn in loss_fns.items()}
            charged[name] = vals
            rows.append(
                [d, name, f"{cnr(x, y):.2f}", f"{mean_psnr(x, y):.1f}"]
                + [_fmt(v, 4) for v in vals.values()]
            )
        cells = [d]
        for k in per_unit:
            a, b = (charged[n][k] for n in ("confetti", "blur"))
            if a is None or b is None:
                cells.append("n/a")
                continue
            ua, ub = a / charged["confetti"]["L1"], b / charged["blur"]["L1"]
            cells.append(
                f"{ua:.2f} / {ub:.2f} ({ub / ua:.1f}x)" if ua > 0 else f"{ua:.2f} / {ub:.2f}"
            )
        unit_rows.append(cells)
    unit_header = ["dataset", *(f"{k} per L1: confetti / blur" for k in per_unit)]
    return _table(header, rows), _table(unit_header, unit_rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="demo", help="shipped model name or model folder")
    ap.add_argument("--n", type=int, default=100, help="fresh faces per dataset")
    ap.add_argument("--seed", type=int, default=0, help="evaluation seed (as net2fair benchmark)")
    ap.add_argument("--vgg", action="store_true", help="also LPIPS-VGG at 64 px (slow)")
    args = ap.parse_args(argv)
    if args.n < 1:
        raise SystemExit("--n must be at least 1")
    t0 = time.perf_counter()
    t = Translator.load(args.model)
    t.eval()
    loss_fns, notes = losses(args.vgg)
    with torch.inference_mode():
        faces = {
            d: uint8_to_tensor(
                render_batch(d, args.n, t.resolution, seed=args.seed + EVAL_SEED_OFFSET)[0]
            )
            for d in t.domains
        }
        table1 = removal_table(t, faces, loss_fns)
        table2, table2b = charge_tables(faces, loss_fns, args.seed)
    vgg = " --vgg" if args.vgg else ""
    print(
        f"$ python bench/stage1_fidelity.py --model {args.model} --n {args.n} "
        f"--seed {args.seed}{vgg}\n"
    )
    for note in notes:
        print(f"Note: {note}\n")
    print(
        f"### 1. What removing the confetti is worth to each loss ({args.n} fresh faces per "
        f"dataset, {t.resolution} px)\n"
    )
    print(
        "Reconstruction -> the same with its eye-band chroma (Cb, Cr) replaced by its sigma-1 "
        "blur, luma kept (change). PSNR and colour-noise ratio on 8-bit images; the "
        "losses against the input.\n"
    )
    print(table1)
    print(
        f"\n### 2. What each loss charges: eye-band chroma noise (colour-noise ratio "
        f"{CONFETTI_RATIO}) vs a sigma-1 blur of the clean input\n"
    )
    print(table2)
    print("\nEach loss divided by the L1 of the same distortion (blur / confetti in brackets):\n")
    print(table2b)
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
