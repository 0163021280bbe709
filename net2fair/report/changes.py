"""Where a dataset changes faces: per-pixel maps of a folder projected a -> b.

For every image the residual v = T(z | a) is decoded twice, under a (the reconstruction,
T^-1(v | a) = z) and under b (the projection). Comparing these two, not the input with the
projection, removes what the autoencoder alone changes: an image projected onto its own
dataset gives maps of zero (up to the flow's float error). Accumulated over a folder:

* ``mean_abs``: the mean absolute change per pixel (0-1 scale, averaged over RGB), a heat
  map of *where* the target dataset changes faces;
* ``mean_dlab``: the mean signed change of CIELAB L*, a*, b* per pixel: *how* colours move
  (lighter or darker, redder or greener, yellower or bluer);
* ``mean_source`` / ``mean_target``: "the average change", the pixel means of the same
  residuals decoded under a and under b, side by side.

Memory is O(R^2) per target whatever the number of images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from net2fair.colour import lab_to_srgb, srgb_to_lab
from net2fair.report.measures import background_mask, skin_mask


@dataclass
class ChangeMap:
    """Per-pixel change of a folder projected ``source`` -> ``target``; arrays ``(R, R[, 3])``."""

    source: str
    target: str
    n: int
    #: mean |projection - reconstruction| per pixel, 0-1 scale, averaged over RGB
    mean_abs: np.ndarray
    #: mean signed change of L*, a*, b* per pixel
    mean_dlab: np.ndarray
    #: pixel means of the reconstructions (under source) and of the projections, uint8 RGB
    mean_source: np.ndarray
    mean_target: np.ndarray
    layout: str

    def region_means(self) -> dict[str, float]:
        """Mean absolute change in the face-skin region, the background corners and the
        whole image (0-1 scale): the numbers behind "changes skin but not background"."""
        res = self.mean_abs.shape[0]
        return {
            "skin": float(self.mean_abs[skin_mask(res, self.layout)].mean()),
            "background": float(self.mean_abs[background_mask(res)].mean()),
            "image": float(self.mean_abs.mean()),
        }

    def region_lightness(self) -> dict[str, float]:
        """Mean change of L* in the skin region and the background."""
        res = self.mean_abs.shape[0]
        dl = self.mean_dlab[..., 0]
        return {
            "skin": float(dl[skin_mask(res, self.layout)].mean()),
            "background": float(dl[background_mask(res)].mean()),
        }

    def sentence(self) -> str:
        r, light = self.region_means(), self.region_lightness()
        where = "the face skin" if r["skin"] >= r["background"] else "the background"
        other = "the background" if where == "the face skin" else "the face skin"
        ratio = max(r["skin"], r["background"]) / max(min(r["skin"], r["background"]), 1e-6)
        ld = light["skin"]
        tone = "lighter" if ld > 0 else "darker"
        return (
            f"{self.target} changes {where} most: mean absolute change "
            f"{max(r['skin'], r['background']):.3f} there against "
            f"{min(r['skin'], r['background']):.3f} in {other} ({ratio:.1f}x; whole image "
            f"{r['image']:.3f}); the skin comes out {abs(ld):.1f} L* {tone} on average."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "n": self.n,
            "mean_abs_change": self.region_means(),
            "mean_lightness_change": self.region_lightness(),
            "max_pixel_change": float(self.mean_abs.max()),
            "sentence": self.sentence(),
        }


class ChangeAccumulator:
    """Running sums for one (source, target) pair; feed batches with :meth:`update`."""

    def __init__(self, source: str, target: str, layout: str) -> None:
        self.source, self.target, self.layout = source, target, layout
        self.n = 0
        self._abs: np.ndarray | None = None
        self._dlab: np.ndarray | None = None
        self._src: np.ndarray | None = None
        self._tgt: np.ndarray | None = None

    def update(self, reconstruction: torch.Tensor, projection: torch.Tensor) -> None:
        """Add a batch: both ``(B, 3, R, R)`` in [-1, 1], image i decoded from the same
        residual under the source and under the target."""
        if reconstruction.shape != projection.shape:
            raise ValueError(
                f"shapes differ: {tuple(reconstruction.shape)} vs {tuple(projection.shape)}"
            )
        a = ((reconstruction.detach().float().cpu().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1)
        b = ((projection.detach().float().cpu().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1)
        a_np, b_np = a.numpy().astype(np.float64), b.numpy().astype(np.float64)
        absd = np.abs(b_np - a_np).mean(axis=-1).sum(axis=0)
        dlab = (srgb_to_lab(b_np) - srgb_to_lab(a_np)).sum(axis=0)
        if self._abs is None:
            self._abs, self._dlab = absd, dlab
            self._src, self._tgt = a_np.sum(axis=0), b_np.sum(axis=0)
        else:
            self._abs += absd
            self._dlab += dlab
            self._src += a_np.sum(axis=0)
            self._tgt += b_np.sum(axis=0)
        self.n += a_np.shape[0]

    def result(self) -> ChangeMap | None:
        """The maps, or None before any image was added."""
        if self._abs is None or self.n == 0:
            return None

        def u8(x: np.ndarray) -> np.ndarray:
            return np.clip(np.round(x / self.n * 255.0), 0, 255).astype(np.uint8)

        return ChangeMap(
            source=self.source,
            target=self.target,
            n=self.n,
            mean_abs=(self._abs / self.n).astype(np.float32),
            mean_dlab=(self._dlab / self.n).astype(np.float32),
            mean_source=u8(self._src),
            mean_target=u8(self._tgt),
            layout=self.layout,
        )


def colour_shift_image(dlab: np.ndarray, *, scale: float | None = None) -> tuple[np.ndarray, float]:
    """Render the chroma shift (a*, b*) as colours on a mid grey: grey = no shift, the hue
    shows the direction (red, green, yellow, blue) and the saturation its size.

    Returns ``(uint8 (R, R, 3), scale)``; ``scale`` (a*/b* units shown at full
    saturation) is chosen from the data unless given, so maps can share it.
    """
    ab = dlab[..., 1:]
    if scale is None:
        scale = float(max(np.percentile(np.hypot(ab[..., 0], ab[..., 1]), 99), 1.0))
    # Full saturation at `scale`: 40 a*/b* units on an L* 60 grey stays inside sRGB.
    shown = np.concatenate([np.full(dlab.shape[:-1] + (1,), 60.0), ab / scale * 40.0], axis=-1)
    rgb = lab_to_srgb(shown)
    return (rgb * 255.0 + 0.5).astype(np.uint8), scale


def write_change_figure(
    maps: list[ChangeMap], path: str | Path, *, title: str | None = None
) -> Path:
    """One row per map: average under the source, average under the target, the heat map
    of mean |change| (shared colour scale across rows), the L* shift and the colour
    shift. Written as PNG with matplotlib's object API (headless)."""
    from matplotlib.figure import Figure

    path = Path(path)
    if not maps:
        raise ValueError("no change maps to draw")
    vmax = max(float(m.mean_abs.max()) for m in maps) or 1e-3
    lmax = max(float(np.abs(m.mean_dlab[..., 0]).max()) for m in maps) or 1.0
    cscale = max(
        float(np.percentile(np.hypot(m.mean_dlab[..., 1], m.mean_dlab[..., 2]), 99)) for m in maps
    )
    cscale = max(cscale, 1.0)
    fig = Figure(figsize=(10.5, 2.25 * len(maps) + 0.4), dpi=100, layout="constrained")
    axes = np.asarray(fig.subplots(len(maps), 5, squeeze=False))
    for row, m in zip(axes, maps):
        row[0].imshow(m.mean_source, interpolation="nearest")
        row[0].set_title(f"average under {m.source}", fontsize=8)
        row[1].imshow(m.mean_target, interpolation="nearest")
        row[1].set_title(f"average under {m.target}", fontsize=8)
        h = row[2].imshow(m.mean_abs, cmap="magma", vmin=0.0, vmax=vmax, interpolation="nearest")
        row[2].set_title("mean |change| (0-1)", fontsize=8)
        fig.colorbar(h, ax=row[2], fraction=0.046, pad=0.02)
        h = row[3].imshow(
            m.mean_dlab[..., 0], cmap="RdBu_r", vmin=-lmax, vmax=lmax, interpolation="nearest"
        )
        row[3].set_title("lightness shift (L*)", fontsize=8)
        fig.colorbar(h, ax=row[3], fraction=0.046, pad=0.02)
        img, _ = colour_shift_image(m.mean_dlab, scale=cscale)
        row[4].imshow(img, interpolation="nearest")
        row[4].set_title(f"colour shift (full at {cscale:.0f} a*b*)", fontsize=8)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(f"{m.source} -> {m.target}\n(n={m.n})", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path)
    return path


__all__ = [
    "ChangeAccumulator",
    "ChangeMap",
    "colour_shift_image",
    "lab_to_srgb",
    "write_change_figure",
]
