"""Train and evaluate the attribute estimators of the synthetic face benchmark.

The estimators (:class:`~net2fair.synth.estimators.AttributeEstimator`) measure images a
model produces, so two choices matter more than raw accuracy on clean renders:

* Balanced training data. Faces are drawn with UNIFORM priors over every planted
  category in every style, not with the benchmark's per-dataset priors. An estimator
  trained on the skewed priors would learn "anime -> very light skin" and report a
  dataset's bias in a projection that does not have it.
* Robustness to reconstruction blur. Autoencoder outputs are slightly soft, so training
  images get a random Gaussian blur (sigma 0..1 px at 64 px, scaled with the side), a
  little pixel noise and a colour jitter of at most 3%, small enough that neighbouring
  skin tones and hair colours stay distinct.

The domain label is the style a face is drawn in. Training and validation faces come
from seeds that the benchmark's own default seeds do not use.

Command line::

    python -m net2fair.synth.train_estimators --out net2fair/assets/estimators
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from net2fair.data.images import uint8_to_tensor
from net2fair.synth.estimators import AttributeEstimator
from net2fair.synth.priors import DOMAINS, uniform_priors
from net2fair.synth.render import render_batch

logger = logging.getLogger(__name__)

DEFAULT_STEPS = 2000
# Far from the small seeds the benchmark and the tests render with, so the estimators are
# never trained on a face they will later be asked to measure.
_SEED_BASE = 7_000_000

#: The estimators' target on every categorical attribute and on the domain.
TARGET_ACCURACY = 0.95


def _render(
    n_per_domain: int, resolution: int, seed: int, progress: bool
) -> tuple[np.ndarray, list[dict]]:
    images, attrs = [], []
    priors = uniform_priors()
    for domain in tqdm(DOMAINS, desc="render", disable=not progress, leave=False):
        im, at = render_batch(domain, n_per_domain, resolution, seed, priors=priors)
        images.append(im)
        attrs += [{**a, "domain": domain} for a in at]
    return np.concatenate(images), attrs


def _label_tensors(
    est: AttributeEstimator, attrs_list: Sequence[Mapping]
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Category indices ``{name: (N,)}`` for every categorical attribute that every dict has,
    and the continuous targets ``(N, C)`` in natural units (NaN where a dict lacks one)."""
    cats: dict[str, torch.Tensor] = {}
    for name, names in est.categories.items():
        if not all(name in a for a in attrs_list):
            continue
        idx = []
        for a in attrs_list:
            v = a[name]
            if isinstance(v, str):
                if v not in names:
                    raise ValueError(f"unknown {name} {v!r}; expected one of {names}")
                v = names.index(v)
            v = int(v)
            if not 0 <= v < len(names):
                raise ValueError(f"{name} index {v} out of range 0..{len(names) - 1}")
            idx.append(v)
        cats[name] = torch.tensor(idx, dtype=torch.long)
    cont = torch.tensor(
        [[float(a.get(name, math.nan)) for name in est.continuous] for a in attrs_list],
        dtype=torch.float32,
    ).reshape(len(attrs_list), len(est.continuous))
    return cats, cont


# ---------------------------------------------------------------------------- augmentation


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Blur each image with its own Gaussian.

    Arguments:
        x: ``(B, C, H, W)``.
        sigma: ``(B,)`` standard deviations in pixels; 0 leaves an image unchanged.
        radius: kernel half width in pixels (kernel side ``2 * radius + 1``).

    Returns:
        ``(B, C, H, W)``, borders reflected.
    """
    _, _, h, w = x.shape
    k = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    s = sigma.to(x.dtype).clamp_min(1e-3)[:, None]
    kernel = torch.exp(-0.5 * (k[None] / s) ** 2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True))[:, :, None, None, None]  # (B, K, 1, 1, 1)
    # Shifted copies weighted per image: far cheaper on CPU than a grouped convolution
    # with one group per image and channel.
    y = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    x = sum(kernel[:, i] * y[..., i : i + w] for i in range(2 * radius + 1))
    y = F.pad(x, (0, 0, radius, radius), mode="reflect")
    return sum(kernel[:, i] * y[..., i : i + h, :] for i in range(2 * radius + 1))


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Make clean renders look like autoencoder outputs, without changing any label.

    Arguments:
        x: ``(B, 3, R, R)`` in [-1, 1].
        generator: CPU generator for the random choices.

    Returns:
        ``(B, 3, R, R)`` in [-1, 1]: blurred with sigma ~ U(0, R / 64) px for 80% of the
        images, contrast within +-3% and a gain of at most +-3% per channel (skin tone
        levels are 6% or more apart, so no label becomes ambiguous), and Gaussian noise
        of sd up to 0.04 (about 5/255).
    """
    b, _, r, _ = x.shape

    def u(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(x.device)

    sigma = u(b) * (r / 64.0) * (u(b) < 0.8)
    x = gaussian_blur(x, sigma)
    p = (x + 1.0) / 2.0  # [0, 1]
    # Contrast about each channel's own mean, so that it does not also change saturation.
    mean = p.mean(dim=(2, 3), keepdim=True)
    contrast = 1.0 + 0.06 * (u(b, 1, 1, 1) - 0.5)
    # Overall gain +-2% times per-channel gain +-1%: at most 3% on any channel.
    gain = (1.0 + 0.04 * (u(b, 1, 1, 1) - 0.5)) * (1.0 + 0.02 * (u(b, 3, 1, 1) - 0.5))
    p = (mean + contrast * (p - mean)) * gain
    noise_sd = 0.02 * u(b, 1, 1, 1)
    p = p + noise_sd * torch.randn(p.shape, generator=generator).to(x.device)
    return (p.clamp(0.0, 1.0) * 2.0 - 1.0).contiguous()


# ------------------------------------------------------------------------------ evaluation


def _as_tensor(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    if isinstance(images, np.ndarray) or images.dtype == torch.uint8:
        return uint8_to_tensor(images)
    return images


def evaluate_estimators(
    est: AttributeEstimator,
    images: torch.Tensor | np.ndarray,
    attrs_list: Sequence[Mapping],
    *,
    domain: str | None = None,
    batch_size: int = 256,
) -> dict:
    """Compare the estimators' readings of ``images`` with known attributes.

    Arguments:
        est: a trained estimator.
        images: uint8 ``(N, H, W, 3)`` (array or tensor) or float ``(N, 3, H, W)`` in
            [-1, 1]; resized to the estimator's resolution if needed.
        attrs_list: N attribute dicts as from :func:`~net2fair.synth.render.render_batch`
            or :func:`~net2fair.synth.files.read_labels`. Categorical values are
            indices or category names; ``domain`` may be a name or an index. Attributes
            missing from any dict are not scored.
        domain: the dataset label of every image, for dicts without a ``domain`` key.

    Returns:
        ``n``: N; ``accuracy``: ``{categorical name: fraction correct}``; ``rmse``:
        ``{continuous name: RMSE in natural units}``; ``rmse_over_std``: the RMSE divided
        by the attribute's standard deviation over the estimator's training faces (the
        benchmark's shared distribution, so 1.0 is no better than guessing the mean);
        ``accuracy_by_domain``: ``{domain: {name: accuracy}}`` when domain labels are
        known; ``predictions``: what :meth:`AttributeEstimator.predict` returned (CPU).
    """
    x = _as_tensor(images)
    if x.dim() != 4 or x.shape[0] != len(attrs_list):
        raise ValueError(
            f"got {x.shape[0] if x.dim() == 4 else '?'} images of shape {tuple(x.shape)} "
            f"for {len(attrs_list)} attribute dicts; expected one batch of N images"
        )
    if domain is not None:
        attrs_list = [{"domain": domain, **a} for a in attrs_list]
    cats, cont = _label_tensors(est, attrs_list)
    pred = {k: v.cpu() for k, v in est.predict(x, batch_size=batch_size).items()}
    out: dict = {"n": len(attrs_list), "accuracy": {}, "rmse": {}, "rmse_over_std": {}}
    for name, target in cats.items():
        out["accuracy"][name] = float((pred[name] == target).float().mean())
    std = est.cont_std.cpu()
    for i, name in enumerate(est.continuous):
        t = cont[:, i]
        ok = ~torch.isnan(t)
        if not bool(ok.any()):
            continue
        rmse = float((pred[name][ok] - t[ok]).pow(2).mean().sqrt())
        out["rmse"][name] = rmse
        out["rmse_over_std"][name] = rmse / float(std[i])
    if "domain" in cats:
        out["accuracy_by_domain"] = {}
        for j, dname in enumerate(est.categories["domain"]):
            mask = cats["domain"] == j
            if bool(mask.any()):
                out["accuracy_by_domain"][dname] = {
                    name: float((pred[name][mask] == target[mask]).float().mean())
                    for name, target in cats.items()
                }
    out["predictions"] = pred
    return out


# -------------------------------------------------------------------------------- training


def train_estimators(
    *,
    resolution: int = 64,
    n_train_per_domain: int = 3000,
    n_val_per_domain: int = 500,
    steps: int = DEFAULT_STEPS,
    batch_size: int = 64,
    lr: float = 3e-3,
    widths: Sequence[int] = (32, 64, 128, 128),
    hidden: int = 256,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> tuple[AttributeEstimator, dict]:
    """Render balanced faces, train an :class:`AttributeEstimator`, measure it held out.

    Arguments:
        resolution: image side, 32..128.
        n_train_per_domain: training faces rendered per style (kept in memory as uint8).
        n_val_per_domain: held-out faces per style, from another seed.
        steps: optimiser steps (AdamW, one-cycle schedule) of ``batch_size`` images.
        lr: peak learning rate.
        widths, hidden: the architecture (see :class:`AttributeEstimator`).
        seed: fixes the faces, the initialisation and the batches.
        device: where to train.
        progress: show tqdm bars.

    Returns:
        the estimator (eval mode, ``metrics`` filled in) and the metrics: what
        :func:`evaluate_estimators` reports on the clean validation faces (without
        ``predictions``), ``blurred``: the same on validation faces blurred with sigma
        R / 64 px, and ``steps``, ``n_train``, ``n_val``, ``resolution``,
        ``train_priors``, ``render_seconds``, ``train_seconds``.
    """
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    train_x, train_attrs = _render(n_train_per_domain, resolution, _SEED_BASE + 2 * seed, progress)
    val_x, val_attrs = _render(n_val_per_domain, resolution, _SEED_BASE + 2 * seed + 1, progress)
    t_render = time.perf_counter() - t0
    logger.info(
        "rendered %d training and %d validation faces in %.1f s",
        len(train_attrs),
        len(val_attrs),
        t_render,
    )

    est = AttributeEstimator(resolution=resolution, widths=widths, hidden=hidden).to(device)
    cats, cont = _label_tensors(est, train_attrs)
    missing = set(est.categories) - set(cats)
    if missing:
        raise RuntimeError(f"training labels lack {sorted(missing)}")
    mean, std = cont.mean(dim=0), cont.std(dim=0)
    est.set_target_stats(mean.to(device), std.to(device))
    cont_z = ((cont - mean) / std).to(device)
    cats = {k: v.to(device) for k, v in cats.items()}
    pixels = torch.from_numpy(train_x)  # (N, R, R, 3) uint8, converted per batch

    opt = torch.optim.AdamW(est.parameters(), lr=lr, weight_decay=1e-4, fused=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1
    )
    g = torch.Generator().manual_seed(seed)
    n = len(train_attrs)
    est.train()
    t1 = time.perf_counter()
    bar = tqdm(range(steps), desc="estimators", disable=not progress)
    for step in bar:
        idx = torch.randint(n, (batch_size,), generator=g)
        x = augment(uint8_to_tensor(pixels[idx]).to(device), g)
        out = est(x)
        idx = idx.to(device)
        loss_cat = sum(F.cross_entropy(out[k], cats[k][idx]) for k in est.categories)
        loss_reg = F.mse_loss(out["continuous"], cont_z[idx])
        loss = loss_cat + 2.0 * loss_reg
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
            logger.debug("step %d loss %.4f (reg %.4f)", step, loss.item(), loss_reg.item())
    t_train = time.perf_counter() - t1
    est.eval()

    metrics = evaluate_estimators(est, val_x, val_attrs)
    metrics.pop("predictions")
    val_t = uint8_to_tensor(val_x)
    sigma = torch.full((len(val_t),), resolution / 64.0)
    blurred = evaluate_estimators(est, gaussian_blur(val_t, sigma), val_attrs)
    metrics["blurred"] = {k: blurred[k] for k in ("accuracy", "rmse_over_std")}
    metrics.update(
        steps=steps,
        batch_size=batch_size,
        n_train=n,
        n_val=len(val_attrs),
        resolution=resolution,
        seed=seed,
        train_priors="uniform",
        render_seconds=round(t_render, 1),
        train_seconds=round(t_train, 1),
    )
    est.metrics = metrics
    est.requires_grad_(False)
    low = {k: v for k, v in metrics["accuracy"].items() if v < TARGET_ACCURACY}
    if low:
        logger.warning("held-out accuracy below %.0f%%: %s", 100 * TARGET_ACCURACY, low)
    return est, metrics


def metrics_table(metrics: Mapping) -> str:
    """A Markdown table of held-out accuracy (categorical) and RMSE / std (continuous), on
    clean and on blurred validation faces."""
    blurred = metrics.get("blurred", {})
    lines = ["| attribute | metric | clean | blurred |", "|---|---|---:|---:|"]
    for name, v in metrics["accuracy"].items():
        b = blurred.get("accuracy", {}).get(name)
        cell = "" if b is None else f"{100 * b:.1f}%"
        lines.append(f"| {name} | accuracy | {100 * v:.1f}% | {cell} |")
    for name, v in metrics["rmse_over_std"].items():
        b = blurred.get("rmse_over_std", {}).get(name)
        cell = "" if b is None else f"{b:.3f}"
        lines.append(f"| {name} | RMSE / std | {v:.3f} | {cell} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m net2fair.synth.train_estimators --out DIR [--steps N] [--seed S]``."""
    p = argparse.ArgumentParser(
        prog="python -m net2fair.synth.train_estimators",
        description="Train the synthetic benchmark's attribute estimators and save them.",
    )
    p.add_argument("--out", required=True, help="estimator folder to write")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--n-train", type=int, default=3000, help="training faces per dataset")
    p.add_argument("--n-val", type=int, default=500, help="validation faces per dataset")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    est, metrics = train_estimators(
        resolution=args.resolution,
        n_train_per_domain=args.n_train,
        n_val_per_domain=args.n_val,
        steps=args.steps,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
    )
    path = est.save(args.out)
    print(metrics_table(metrics), end="")
    print(
        f"rendered in {metrics['render_seconds']:.0f} s, trained {metrics['steps']} steps in "
        f"{metrics['train_seconds']:.0f} s; saved to {path}"
    )
    low = [k for k, v in metrics["accuracy"].items() if v < TARGET_ACCURACY]
    if low:
        print(f"below the {100 * TARGET_ACCURACY:.0f}% target: {', '.join(low)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
