"""Summaries of a report's per-image rows: one :class:`~net2fair.report.model.Shift` per
measure and target (mean paired shift, bootstrap interval, plain sentence), attribute
distributions, the latent Frechet distance, and the autoencoder's own error.

:func:`summarise_target` turns the rows of one target into its
:class:`~net2fair.report.model.TargetReport`; :func:`reconstruction_summary` condenses the
reconstruction figures gathered while streaming.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from net2fair.models.translator import Translator
from net2fair.report.measures import (
    MomentAccumulator,
    band_counts,
    bootstrap_mean_ci,
    describe_level,
    describe_shift,
    frechet_distance,
)
from net2fair.report.model import AttributeSummary, GalleryItem, Shift, TargetReport

#: bootstrap resamples per interval
N_RESAMPLES = 2000

# Pixel measures: key, subject, group, unit, verb up, verb down, decimals.
PIXEL_MEASURES: tuple[tuple[str, str, str, str, str, str, int], ...] = (
    ("ita", "skin tone", "skin and colour", "ITA degrees", "lightens", "darkens", 1),
    ("face_L", "face brightness", "skin and colour", "L* units", "brightens", "darkens", 1),
    ("face_r", "the face's mean red", "skin and colour", "levels (0-255)", "rises", "falls", 1),
    ("face_g", "the face's mean green", "skin and colour", "levels (0-255)", "rises", "falls", 1),
    ("face_b", "the face's mean blue", "skin and colour", "levels (0-255)", "rises", "falls", 1),
    ("bg_L", "background brightness", "background", "L* units", "brightens", "darkens", 1),
    ("bg_r", "the background's mean red", "background", "levels (0-255)", "rises", "falls", 1),
    ("bg_g", "the background's mean green", "background", "levels (0-255)", "rises", "falls", 1),
    ("bg_b", "the background's mean blue", "background", "levels (0-255)", "rises", "falls", 1),
)
PIXEL_KEYS = tuple(m[0] for m in PIXEL_MEASURES)


def reconstruction_summary(source: str, acc: dict[str, list[float]]) -> dict[str, Any]:
    """The autoencoder alone on the report's images, from per-image PSNRs and eye-band
    colour noise of inputs and reconstructions: ``{"dataset", "n", "psnr" (mean dB over
    finite values), "colour_noise_ratio"}``; ``{}`` without images."""
    if not acc["psnr"]:
        return {}
    finite = [v for v in acc["psnr"] if math.isfinite(v)]
    noise_in = float(np.sum(acc["noise_in"]))
    noise_out = float(np.sum(acc["noise_out"]))
    ratio = noise_out / noise_in if noise_in > 0 else (1.0 if noise_out == 0 else math.inf)
    return {
        "dataset": source,
        "n": len(acc["psnr"]),
        "psnr": float(np.mean(finite)) if finite else math.inf,
        "colour_noise_ratio": ratio,
    }


def _arrays(rows: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([r.get(key, math.nan) for r in rows], dtype=np.float64)


def shift_entry(
    rows: list[dict[str, Any]],
    target: str,
    key: str,
    subject: str,
    group: str,
    unit: str,
    up: str,
    down: str,
    digits: int,
    seed: int,
    before: np.ndarray | None = None,
    after: np.ndarray | None = None,
) -> Shift:
    """The paired shift of measure ``key`` (columns ``in_<key>`` and ``out_<key>`` of
    ``rows``, or the arrays ``before`` and ``after``): mean, bootstrap 95% interval and
    sentence."""
    b = _arrays(rows, f"in_{key}") if before is None else before
    a = _arrays(rows, f"out_{key}") if after is None else after
    diff = a - b
    shift, low, high, n = bootstrap_mean_ci(diff, n_resamples=N_RESAMPLES, seed=seed)
    ok = ~np.isnan(diff)
    return Shift(
        measure=key,
        label=subject,
        subject=subject,
        group=group,
        unit=unit,
        kind="shift",
        before=float(b[ok].mean()) if n else math.nan,
        after=float(a[ok].mean()) if n else math.nan,
        shift=shift,
        low=low,
        high=high,
        n=n,
        sentence=describe_shift(
            target=target,
            subject=subject,
            shift=shift,
            low=low,
            high=high,
            n=n,
            up=up,
            down=down,
            unit=unit,
            digits=digits,
        ),
    )


#: the model's measures per dataset d: key prefix, subject, unit, decimals
_MODEL_MEASURES = (
    ("posterior", "p({d} | image)", "", 3),
    ("loglik", "the log-likelihood under {d}", "nats", 1),
    ("bpd", "the negative log-likelihood under {d}", "bits/dim", 3),
)

#: change measures: key -> (table label, sentence subject, decimals)
CHANGE_SUBJECTS = {
    "lpips": ("LPIPS (0 = identical)", "images change by LPIPS", 3),
    "l1": (
        "L1, mean absolute pixel difference (0-1)",
        "images change by a mean absolute pixel difference (0-1) of",
        3,
    ),
    "ssim": (
        "SSIM (1 = identical)",
        "the structural similarity (SSIM) of input and projection is",
        3,
    ),
}


def _level_entry(rows: list[dict[str, Any]], target: str, key: str, seed: int) -> Shift:
    """How much input and projection differ by change measure ``key`` (a level, not a shift)."""
    v = _arrays(rows, f"change_{key}")
    mean, low, high, n = bootstrap_mean_ci(v, n_resamples=N_RESAMPLES, seed=seed)
    label, subject, digits = CHANGE_SUBJECTS[key]
    return Shift(
        measure=key,
        label=label,
        subject=subject,
        group="change",
        unit="",
        kind="level",
        before=None,
        after=mean,
        shift=mean,
        low=low,
        high=high,
        n=n,
        sentence=describe_level(
            target=target, subject=subject, mean=mean, low=low, high=high, n=n, digits=digits
        ),
    )


def _frechet(
    t: Translator, target: str, acc_proj: MomentAccumulator, acc_in: MomentAccumulator
) -> tuple[float | None, float | None, str]:
    """Squared latent Frechet distance of the projected (and of the input) latents to the
    target's stored training-latent statistics, and the note that explains it."""
    k = t.domain_index(target)
    count = float(t.stats_count[k])
    if count <= 0:
        note = (
            f"the model stores no latent statistics for {target}; Frechet distance skipped "
            f"(an imported model: import it again with --stats {target}=FOLDER)"
        )
        return None, None, note
    if acc_proj.n < 2:
        return None, None, "fewer than 2 images; Frechet distance needs a covariance"
    mu_t, cov_t = t.stats_mean[k].cpu(), t.stats_cov[k].cpu()
    mu_p, cov_p = acc_proj.mean_cov()
    mu_i, cov_i = acc_in.mean_cov()
    fd = frechet_distance(mu_p, cov_p, mu_t, cov_t)
    fd_in = frechet_distance(mu_i, cov_i, mu_t, cov_t)
    note = (
        f"squared Frechet distance in the {t.z_dim}-d latent space between the projected "
        f"latents (n = {acc_proj.n}) and {target}'s training latents (n = {int(count)}); "
        f"the inputs' own latents give {fd_in:.3g} for reference"
    )
    if acc_proj.n < 10 * t.z_dim:
        note += "; with n below 10x the latent dimension it is biased upward"
    return fd, fd_in, note


def summarise_target(
    t: Translator,
    target: str,
    source: str,
    rows: list[dict[str, Any]],
    change_keys: list[str],
    est_categories: dict[str, list[str]] | None,
    acc_proj: MomentAccumulator,
    acc_in: MomentAccumulator,
    most: list[GalleryItem],
    least: list[GalleryItem],
    seed: int,
) -> TargetReport:
    """Everything measured for one target, from its per-image ``rows``.

    Shifts come in a fixed order: the pixel measures, the model's (posterior,
    log-likelihood, bits/dim per dataset), the change levels, then the estimated
    attributes (when ``est_categories`` is given). ``acc_proj`` and ``acc_in`` hold the
    moments of the projected and the input latents for the Frechet distance.
    """
    domains = t.domains
    shifts = [
        shift_entry(rows, target, key, subject, group, unit, up, down, digits, seed)
        for key, subject, group, unit, up, down, digits in PIXEL_MEASURES
    ]
    for prefix, subject, unit, digits in _MODEL_MEASURES:
        shifts += [
            shift_entry(
                rows,
                target,
                f"{prefix}_{d}",
                subject.format(d=d),
                "model",
                unit,
                "rises",
                "falls",
                digits,
                seed,
            )
            for d in domains
        ]
    shifts += [_level_entry(rows, target, key, seed) for key in change_keys]

    attributes: list[AttributeSummary] = []
    if est_categories is not None and rows:
        attributes, est_shifts = attribute_summaries(rows, target, est_categories, seed)
        shifts.extend(est_shifts)

    fd, fd_in, note = _frechet(t, target, acc_proj, acc_in)
    return TargetReport(
        target=target,
        is_source=target == source,
        n=len(rows),
        shifts=shifts,
        ita_bands_before=band_counts(_arrays(rows, "in_ita")),
        ita_bands_after=band_counts(_arrays(rows, "out_ita")),
        posterior_before={d: float(_arrays(rows, f"in_posterior_{d}").mean()) for d in domains},
        posterior_after={d: float(_arrays(rows, f"out_posterior_{d}").mean()) for d in domains},
        frechet=fd,
        frechet_inputs=fd_in,
        frechet_note=note,
        attributes=attributes,
        most_changed=most,
        least_changed=least,
    )


def attribute_summaries(
    rows: list[dict[str, Any]], target: str, categories: dict[str, list[str]], seed: int
) -> tuple[list[AttributeSummary], list[Shift]]:
    """Estimated attributes (columns ``in_est_<attr>`` / ``out_est_<attr>``): per
    categorical attribute its distribution before and after and one shift per category
    (in percentage points); per continuous one (not in ``categories``) its mean shift."""
    summaries: list[AttributeSummary] = []
    shifts: list[Shift] = []
    for attr, cats in categories.items():
        key = f"est_{attr}"
        if f"in_{key}" not in rows[0]:
            continue
        label = "style" if attr == "domain" else attr.replace("_", " ")
        before = np.array([r[f"in_{key}"] for r in rows], dtype=object)
        after = np.array([r[f"out_{key}"] for r in rows], dtype=object)
        cat_shifts = []
        for cat in cats:
            ind_b = (before == cat).astype(np.float64) * 100.0
            ind_a = (after == cat).astype(np.float64) * 100.0
            s = shift_entry(
                rows,
                target,
                f"{key}={cat}",
                f"the share of {label} '{cat}'",
                "attributes (estimated)",
                "percentage points",
                "rises",
                "falls",
                1,
                seed,
                before=ind_b,
                after=ind_a,
            )
            cat_shifts.append(s)
        clear = [s for s in cat_shifts if s.clear]
        pick = max(clear or cat_shifts, key=lambda s: abs(s.shift))
        if clear:
            sentence = pick.sentence
        else:
            cat = pick.measure.split("=", 1)[1]
            sentence = (
                f"Projected into {target}, the estimated {label} shows no clear change "
                f"(largest shift: '{cat}' {pick.shift:+.1f} percentage points, 95% CI "
                f"{pick.low:.1f} to {pick.high:.1f}, n = {pick.n})."
            )
        summaries.append(
            AttributeSummary(
                attribute=label,
                categories=list(cats),
                before=[float(s.before) / 100.0 for s in cat_shifts],
                after=[float(s.after) / 100.0 for s in cat_shifts],
                sentence=sentence,
            )
        )
        shifts.extend(cat_shifts)
    continuous = [
        k[len("in_est_") :]
        for k in rows[0]
        if k.startswith("in_est_") and k[len("in_est_") :] not in categories
    ]
    for attr in continuous:
        shifts.append(
            shift_entry(
                rows,
                target,
                f"est_{attr}",
                f"the estimated head {attr}",
                "content (estimated)",
                "",
                "rises",
                "falls",
                3,
                seed,
            )
        )
    return summaries, shifts


__all__ = [
    "CHANGE_SUBJECTS",
    "N_RESAMPLES",
    "PIXEL_KEYS",
    "PIXEL_MEASURES",
    "attribute_summaries",
    "reconstruction_summary",
    "shift_entry",
    "summarise_target",
]
