"""A label-free prior that gives the autoencoder's code one set of content coordinates.

Likelihood fixes what each dataset's codes look like, not which face of dataset b a face
of dataset a is sent to; a projection can only keep the content that the code stores in
the same coordinates in every dataset (docs/content-and-pose.md). Nothing
in reconstruction asks for that: a shared encoder is free to store a photo's head
position in other dimensions than an anime drawing's.

This module asks for it without labels. Each training image ``x`` is also seen warped by
a random similarity transform ``g`` (shift, scale and rotation of the whole image, the
ranges of an aligned face's own variation). The loss asks the code to move linearly with
the transform's parameters ``p(g)``, with one matrix for every image of the batch::

    mu(g x) - mu(x) ~ c + A p(g)

``A`` and ``c`` are fitted by least squares on each batch, which mixes the datasets; the
loss is the share of the code's variance the fit leaves unexplained. Moving a face right,
up, larger or tilting it then moves the code along the same directions in every style,
so the flow's map between datasets can keep those directions (position, size and roll).

It is the linear ("additive") case of an equivariant representation; see Worrall et
al., "Interpretable Transformations with Encoder-Decoder Networks" (ICCV 2017) for the
general idea.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "N_PARAMS",
    "equivariance_residual",
    "equivariance_weight_at",
    "random_similarity",
]

#: parameters of a similarity transform: shift x, shift y, log scale, rotation
N_PARAMS = 4


def random_similarity(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    max_shift: float = 0.04,
    max_scale: float = 0.1,
    max_rotation: float = 15.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp each image by its own random similarity transform about the image centre.

    Arguments:
        x: ``(B, C, H, W)`` images.
        generator: CPU generator for the draws (reproducible per step).
        max_shift: largest shift, a fraction of the image side (each axis uniform).
        max_scale: largest relative change of size (log scale uniform in
            ``[-log(1 + s), log(1 + s)]``).
        max_rotation: largest rotation in degrees, counter-clockwise positive.

    Returns the warped images (same shape; content moved out of the frame is replaced by
    the mirrored border) and ``(B, 4)`` parameters, each uniform in ``[-1, 1]``:
    shift right, shift down, log scale and rotation, as fractions of their maxima. A
    parameter whose maximum is 0 is 0.
    """
    b, _, h, w = x.shape
    p = torch.rand(b, N_PARAMS, generator=generator) * 2.0 - 1.0
    maxima = torch.tensor([max_shift, max_shift, math.log1p(max_scale), math.radians(max_rotation)])
    p = torch.where(maxima > 0, p, torch.zeros_like(p))
    shift_x, shift_y, log_s, angle = (p * maxima).unbind(1)
    s = log_s.exp()
    cos, sin = angle.cos(), angle.sin()
    # affine_grid maps output coordinates (normalised to [-1, 1], y down) to input ones:
    # the inverse of "scale by s, rotate counter-clockwise by angle, then shift".
    # Counter-clockwise on screen (y down) is a clockwise rotation of (x, y) coordinates.
    inv = torch.zeros(b, 2, 3)
    inv[:, 0, 0] = cos / s
    inv[:, 0, 1] = -sin / s
    inv[:, 1, 0] = sin / s
    inv[:, 1, 1] = cos / s
    t = torch.stack([shift_x * 2.0, shift_y * 2.0], dim=1)  # fraction of side -> [-1, 1] units
    inv[:, :, 2] = -(inv[:, :, :2] @ t.unsqueeze(-1)).squeeze(-1)
    grid = F.affine_grid(inv.to(x.device, x.dtype), [b, x.shape[1], h, w], align_corners=False)
    warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return warped, p.to(x.device)


def equivariance_weight_at(step: int, weight: float, start: int, ramp: int) -> float:
    """0 before ``start``, then rising linearly to ``weight`` over ``ramp`` steps."""
    if weight <= 0 or step < start:
        return 0.0
    if ramp <= 0:
        return weight
    return weight * min(1.0, (step - start + 1) / ramp)


def equivariance_residual(
    mu: torch.Tensor,
    mu_warped: torch.Tensor,
    params: torch.Tensor,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Share of the code's variance that one linear map of the transform parameters does
    not explain.

    Fits ``mu_warped - mu ~ c + A p`` by least squares over the batch (``A``: ``(D, P)``,
    ``c``: ``(D,)``, shared by all images) and returns the residual's mean squared value
    divided by the batch variance of ``mu`` (summed over dimensions, detached, so that
    shrinking the code does not lower the loss). 0 when the code moves exactly linearly.

    Arguments:
        mu: ``(B, D)`` codes of the images.
        mu_warped: ``(B, D)`` codes of the warped images.
        params: ``(B, P)`` transform parameters, ``B > P + 1``.
    """
    if mu.shape != mu_warped.shape or params.shape[0] != mu.shape[0]:
        raise ValueError(
            f"shapes do not match: mu {tuple(mu.shape)}, mu_warped {tuple(mu_warped.shape)}, "
            f"params {tuple(params.shape)}"
        )
    if mu.shape[0] <= params.shape[1] + 1:
        raise ValueError(
            f"a batch of {mu.shape[0]} cannot fit {params.shape[1]} transform parameters and "
            "an offset; use a larger batch"
        )
    delta = (mu_warped - mu).float()
    design = torch.cat([params.float(), torch.ones_like(params[:, :1], dtype=torch.float32)], 1)
    # the projection onto the design's column space is fixed (the params carry no
    # gradient), so the residual is a linear function of delta
    hat = design @ torch.linalg.pinv(design)
    residual = delta - hat @ delta
    scale = mu.detach().float().var(dim=0, unbiased=False).sum().clamp_min(eps)
    return residual.pow(2).sum(dim=1).mean() / scale
