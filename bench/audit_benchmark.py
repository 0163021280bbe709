"""The dataset-audit benchmark: do the cINN's resampling weights rebalance a biased dataset
better than the histogram baseline, and does the mislabel flag find planted intruders?

    python bench/audit_benchmark.py [--model demo] [--n 1000] [--n-mislabel 400]
        [--alpha 0.5] [--alphas 0.05,0.1,0.2,0.3,0.5,1.0] [--margin 0] [--bootstrap 200]
        [--mislabel-share 0.05] [--run-all-pairs] [--seed 0] [--json out.json]

About 1-3 minutes at the defaults on 2 CPU cores; seconds at --n 40 --n-mislabel 40.

1. Rebalancing. The synthetic dataset whose planted priors are furthest from uniform (the
   largest mean total-variation distance to uniform over the planted biases) gets n fresh
   faces (seeds never used in training), encoded with the model. Each weighting is judged
   with the TRUE rendered labels:

   - cINN weights w ∝ p(z | D)^(-alpha), mean 1, clipped at 10
     (:func:`net2fair.audit.resampling_weights`), for a sweep of alpha;
   - the histogram baseline of the debiasing VAE (Amini et al., "Uncovering and Mitigating
     Algorithmic Bias through Learned Latent Structure", AIES 2019; MIT 6.S191 lab):
     per latent dimension a 10-bin histogram density of the encoder means, plus 0.001,
     renormalised; per dimension w = 1 / smoothed density of the image's bin, normalised
     over the folder; the image's weight is the maximum over dimensions, scaled to mean 1
     (and, for a like-for-like row, clipped at 10 with the same solver as the cINN's).

   Per weighting: TV distance to uniform of each planted attribute's weighted distribution
   (lower = more balanced), how far the weighting moves the shared content (x, y, size,
   yaw, roll in 10 quantile bins of the unweighted sample, mouth_open as is: TV between
   unweighted and weighted, lower = content left alone), and Kish's effective sample size.
   Goal: at the default alpha the cINN weights cut the mean TV to uniform more than the
   baseline AND move content less. A paired bootstrap over images gives 95% intervals of
   both differences.

2. Mislabels. For every ordered pair (a, b): a folder of n_mislabel faces of a in which 5%
   are fresh faces of b, all claimed to be a. The audit flag (another dataset's
   log p(z | d) beats log p(z | a) by more than the margin) is scored by precision and
   recall. One pair (all with --run-all-pairs) goes through ``net2fair.audit.run`` on a
   folder of PNGs, the real command path; the others apply the same rule to the latents,
   and the script reports how often both give the same flag on the pair run both ways.

Every figure comes from the model and the renderer at run time; nothing is hard-coded.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from net2fair import Translator
from net2fair.audit import auto_alpha, effective_sample_size, resampling_weights
from net2fair.audit import run as audit_run
from net2fair.data.images import uint8_to_tensor
from net2fair.synth.benchmark import EVAL_SEED_OFFSET, prior_vector
from net2fair.synth.priors import PLANTED_ATTRIBUTES, load_priors
from net2fair.synth.render import render_batch

CLIP = 10.0
BASELINE = "histogram baseline"
BASELINE_CLIPPED = f"histogram baseline, clip {CLIP:g}"
HIST_BINS = 10
HIST_SMOOTHING = 1e-3
CONTENT_CONTINUOUS = ("x", "y", "size", "yaw", "roll")
CONTENT_CATEGORICAL = ("mouth_open",)
QUANTILE_BINS = 10
BATCH = 64  # the audit's own batch size, so both flag paths see the same arithmetic
# Each part of the benchmark renders from its own seed, all offset like the bias benchmark's
# evaluation faces, so no face is a training face and no face is used twice.
SEED_REBALANCE = 0
SEED_HOSTS = 1
SEED_INTRUDERS = 2


# ------------------------------------------------------------------------------ weights


def histogram_weights(
    mu: np.ndarray, bins: int = HIST_BINS, smoothing: float = HIST_SMOOTHING
) -> np.ndarray:
    """The debiasing-VAE resampling weights (Amini et al. 2019), mean 1.

    For each latent dimension: a ``bins``-bin histogram density of the values (density as
    in ``np.histogram(density=True)``: count / (n * bin width)), plus ``smoothing``,
    renormalised to sum 1 over the bins; each image's weight for that dimension is 1 / the
    smoothed density of its bin, normalised to sum 1 over the folder. An image's weight is
    its maximum over dimensions: it is rare if it is rare along ANY single dimension.

    Arguments:
        mu: ``(N, D)`` encoder means.

    Returns:
        ``(N,)`` float64 weights with mean 1.
    """
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2 or mu.shape[0] == 0:
        raise ValueError(f"expected latents shaped (N, D) with N >= 1, got {mu.shape}")
    n = mu.shape[0]
    w = np.zeros(n)
    for col in mu.T:
        density, edges = np.histogram(col, bins=bins, density=True)
        # the last bin is closed on the right, as np.histogram counts it
        idx = np.clip(np.searchsorted(edges, col, side="right") - 1, 0, bins - 1)
        smoothed = density + smoothing
        smoothed = smoothed / smoothed.sum()
        p = 1.0 / smoothed[idx]
        w = np.maximum(w, p / p.sum())
    return w * (n / w.sum())


def clip_weights(w: np.ndarray, clip: float) -> np.ndarray:
    """Mean-1 weights capped at ``clip`` by the audit's own solver: resampling_weights with
    alpha 1 on log-likelihood -log w returns min(clip, c * w) with mean 1."""
    return resampling_weights(-np.log(np.asarray(w, dtype=np.float64)), 1.0, clip)


# ---------------------------------------------------------------------------- measures


def weighted_shares(idx: np.ndarray, k: int, w: np.ndarray) -> np.ndarray:
    """``(k,)`` weighted category shares of integer labels ``idx``."""
    out = np.bincount(idx, weights=w, minlength=k)[:k]
    return out / out.sum()


def tv(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


def quantile_bins(values: np.ndarray, bins: int = QUANTILE_BINS) -> np.ndarray:
    """Bin index of each value in ``bins`` quantile bins of the values themselves."""
    inner = np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return np.searchsorted(inner, values, side="right")


def label_arrays(attrs: list[dict]) -> dict[str, np.ndarray]:
    """The rendered labels as one ``(N,)`` array per attribute (planted and content)."""
    keys = (*PLANTED_ATTRIBUTES, *CONTENT_CONTINUOUS, *CONTENT_CATEGORICAL)
    return {k: np.array([r[k] for r in attrs]) for k in keys}


def label_table(raw: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, int]]:
    """attribute -> (``(N,)`` category index, number of categories). Continuous content is
    binned into quantile bins of this (unweighted) sample."""
    table = {a: (raw[a].astype(np.int64), len(c)) for a, c in PLANTED_ATTRIBUTES.items()}
    for a in CONTENT_CONTINUOUS:
        table[a] = (quantile_bins(raw[a].astype(np.float64)), QUANTILE_BINS)
    for a in CONTENT_CATEGORICAL:
        idx = raw[a].astype(np.int64)
        table[a] = (idx, int(idx.max()) + 1)
    return table


def evaluate(
    table: dict[str, tuple[np.ndarray, int]], planted: list[str], biased: list[str], w: np.ndarray
) -> dict:
    """How one weighting balances the planted attributes and disturbs the content."""
    ones = np.ones_like(w)
    out: dict = {"tv_uniform": {}, "content_tv": {}}
    for a in planted:
        idx, k = table[a]
        out["tv_uniform"][a] = tv(weighted_shares(idx, k, w), np.full(k, 1.0 / k))
    for a in (*CONTENT_CONTINUOUS, *CONTENT_CATEGORICAL):
        idx, k = table[a]
        out["content_tv"][a] = tv(weighted_shares(idx, k, w), weighted_shares(idx, k, ones))
    out["mean_tv_uniform"] = float(np.mean([out["tv_uniform"][a] for a in biased]))
    out["mean_content_tv"] = float(np.mean(list(out["content_tv"].values())))
    out["ess"] = effective_sample_size(w)
    out["ess_share"] = out["ess"] / len(w)
    out["max_weight"] = float(np.max(w))
    return out


def shuffled_content_tv(
    table: dict[str, tuple[np.ndarray, int]],
    w: np.ndarray,
    rng: np.random.Generator,
    reps: int = 20,
) -> float:
    """Mean content TV moved by the same weights dealt to images at random: the part of
    "content TV moved" that is sampling noise of a smaller effective sample, not a pull on
    content."""
    keys = (*CONTENT_CONTINUOUS, *CONTENT_CATEGORICAL)
    ones = np.ones_like(w)
    base = {a: weighted_shares(*table[a], ones) for a in keys}
    out = []
    for _ in range(reps):
        ws = rng.permutation(w)
        out.append(np.mean([tv(weighted_shares(*table[a], ws), base[a]) for a in keys]))
    return float(np.mean(out))


def ess_matched_alpha(ll: np.ndarray, share: float, clip: float) -> float:
    """The alpha whose cINN weights have Kish ESS ``share`` * n (bisection; the ESS falls as
    alpha grows). Returns the largest alpha tried when even it keeps more."""

    def ess_share(alpha: float) -> float:
        return effective_sample_size(resampling_weights(ll, alpha, clip)) / len(ll)

    if share >= 1.0:
        return 0.0
    lo, hi = 0.0, 1.0
    while ess_share(hi) > share and hi < 64.0:
        lo, hi = hi, hi * 2.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ess_share(mid) > share else (lo, mid)
    return 0.5 * (lo + hi)


def tv_floor(idx: np.ndarray, k: int) -> float:
    """The lowest TV to uniform any reweighting of this sample reaches: categories absent
    from the sample cannot be created, so (k - present) / k stays."""
    return (k - len(np.unique(idx))) / k


# ------------------------------------------------------------------------------- model


def encode(t: Translator, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(N, R, R, 3)`` uint8 -> encoder means ``(N, D)`` and log p(z | d) ``(N, K)`` nats."""
    zs, lls = [], []
    with torch.inference_mode():
        for s in range(0, len(images), BATCH):
            z = t.encode(uint8_to_tensor(images[s : s + BATCH]).to(t.device))
            zs.append(z.double().cpu().numpy())
            lls.append(t.latent_log_likelihood(z).double().cpu().numpy())
    return np.concatenate(zs), np.concatenate(lls)


def skew_of_priors(priors: dict, domains: list[str]) -> tuple[dict, list[str]]:
    """Mean TV to uniform of each dataset's priors over the planted BIASES (attributes whose
    priors differ between datasets; eye_size, equal everywhere, is a control)."""
    biased = [
        a
        for a in PLANTED_ATTRIBUTES
        if any(
            not np.allclose(prior_vector(priors, d, a), prior_vector(priors, domains[0], a))
            for d in domains[1:]
        )
    ]
    skew = {}
    for d in domains:
        per = {}
        for a in PLANTED_ATTRIBUTES:
            p = prior_vector(priors, d, a)
            per[a] = tv(p / p.sum(), np.full(len(p), 1.0 / len(p)))
        skew[d] = {"per_attribute": per, "mean": float(np.mean([per[a] for a in biased]))}
    return skew, biased


# ---------------------------------------------------------------------------- part 1


def rebalance(t: Translator, args: argparse.Namespace, priors: dict) -> dict:
    domains = [d for d in t.domains if d in priors]
    if not domains:
        raise SystemExit(f"the model's datasets {t.domains} are not synthetic-benchmark ones")
    skew, biased = skew_of_priors(priors, domains)
    target = max(domains, key=lambda d: skew[d]["mean"])
    print(
        "Mean TV to uniform of the planted priors ("
        + ", ".join(biased)
        + "): "
        + ", ".join(f"{d} {skew[d]['mean']:.3f}" for d in domains)
        + f" -> auditing {target}, the most skewed."
    )

    images, attrs = render_batch(
        target, args.n, t.resolution, seed=args.seed + EVAL_SEED_OFFSET + SEED_REBALANCE
    )
    z, ll_all = encode(t, images)
    ll = ll_all[:, t.domain_index(target)]
    planted = list(PLANTED_ATTRIBUTES)
    raw = label_arrays(attrs)
    table = label_table(raw)

    def weightings(z: np.ndarray, ll: np.ndarray, alphas: list[float]) -> dict[str, np.ndarray]:
        hist = histogram_weights(z)
        out = {BASELINE: hist, BASELINE_CLIPPED: clip_weights(hist, CLIP)}
        for a in alphas:
            if a == "auto":  # the audit's default: the strongest alpha keeping ESS >= 50%
                out["cINN alpha=auto"] = resampling_weights(ll, auto_alpha(ll, CLIP), CLIP)
            else:
                out[f"cINN alpha={a:g}"] = resampling_weights(ll, a, CLIP)
        return out

    alphas = sorted(set(args.alphas) | ({args.alpha} - {"auto"})) + ["auto"]
    ws = {"before (uniform weights)": np.ones(args.n), **weightings(z, ll, alphas)}
    # Like for like: the cINN weights at the alpha that leaves as many effective images as
    # the baseline does (content TV grows as the ESS shrinks, whatever the weights target).
    matched = ess_matched_alpha(ll, effective_sample_size(ws[BASELINE]) / args.n, CLIP)
    ws[f"cINN ESS-matched to baseline, alpha={matched:.3g}"] = resampling_weights(ll, matched, CLIP)
    rows = {}
    for name, w in ws.items():
        rows[name] = evaluate(table, planted, biased, w)
        # the same shuffles for every row: equal weights give equal figures
        shuffles = np.random.default_rng([args.seed, 1])
        rows[name]["shuffled_content_tv"] = shuffled_content_tv(table, w, shuffles)
    floors = {a: tv_floor(*table[a]) for a in planted}

    # Paired bootstrap over images: resample the folder, recompute every weighting on the
    # resample (both depend on the whole folder), compare at the default alpha.
    rng = np.random.default_rng(args.seed)
    cinn_key = _alpha_key(args.alpha)
    diffs: dict[str, list[float]] = {}
    for _ in range(args.bootstrap):
        i = rng.integers(0, args.n, args.n)
        tb = label_table({key: v[i] for key, v in raw.items()})
        ws = weightings(z[i], ll[i], [args.alpha])
        ev = {k: evaluate(tb, planted, biased, ws[k]) for k in (cinn_key, *list(ws)[:2])}
        for base in list(ws)[:2]:
            for m in ("mean_tv_uniform", "mean_content_tv"):
                diffs.setdefault(f"{m}: {base} - cINN", []).append(ev[base][m] - ev[cinn_key][m])
    intervals = {
        k: [float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975))] for k, v in diffs.items()
    }
    return {
        "dataset": target,
        "prior_skew": skew,
        "biased_attributes": biased,
        "n": args.n,
        "clip": CLIP,
        "alphas": alphas,
        "auto_alpha": auto_alpha(ll, CLIP),
        "ess_matched_alpha": matched,
        "rows": rows,
        "tv_floor": floors,
        "bootstrap": {"replicates": args.bootstrap, "weighting": cinn_key, "ci95": intervals},
        "log_likelihood": {"mean": float(ll.mean()), "sd": float(ll.std())},
    }


def rebalance_table(res: dict) -> str:
    planted = list(PLANTED_ATTRIBUTES)
    biased = res["biased_attributes"]
    head = [
        "weighting",
        *[a if a in biased else f"{a} (control)" for a in planted],
        "mean planted",
        "content TV moved",
        "content TV, shuffled w",
        "ESS share",
        "max w",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in res["rows"].items():
        cells = [name, *[f"{r['tv_uniform'][a]:.3f}" for a in planted]]
        cells += [f"{r['mean_tv_uniform']:.3f}", f"{r['mean_content_tv']:.4f}"]
        cells += [f"{r['shuffled_content_tv']:.4f}"]
        cells += [f"{r['ess_share']:.1%}", f"{r['max_weight']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare_line(res: dict, cinn_key: str, head: str) -> tuple[str, dict[str, bool]]:
    """One sentence: does ``cinn_key``'s weighting cut the mean TV to uniform more than the
    baseline AND move content less? With the bootstrap's 95% intervals when they exist."""
    rows = res["rows"]
    c = rows[cinn_key]
    unclipped = rows[BASELINE]["max_weight"] <= CLIP
    verdicts, parts = {}, []
    for base in (BASELINE, BASELINE_CLIPPED):
        b = rows[base]
        ok = bool(
            c["mean_tv_uniform"] < b["mean_tv_uniform"]
            and c["mean_content_tv"] < b["mean_content_tv"]
        )
        verdicts[base] = ok
        if unclipped and base == BASELINE_CLIPPED:
            continue  # the same weights as the unclipped row; said once
        name = base
        if unclipped:
            name += f" (max weight {b['max_weight']:.2f}, under the clip: clipping changes nothing)"
        extra = ""
        ci = res["bootstrap"]["ci95"] if res["bootstrap"]["weighting"] == cinn_key else {}
        tv_ci = ci.get(f"mean_tv_uniform: {base} - cINN")
        ct_ci = ci.get(f"mean_content_tv: {base} - cINN")
        if tv_ci and ct_ci:
            extra = (
                f"; baseline - cINN, 95% bootstrap CI: TV [{tv_ci[0]:+.3f}, {tv_ci[1]:+.3f}], "
                f"content [{ct_ci[0]:+.4f}, {ct_ci[1]:+.4f}]"
            )
        parts.append(
            f"vs {name}: mean TV to uniform {c['mean_tv_uniform']:.3f} vs "
            f"{b['mean_tv_uniform']:.3f}, content moved {c['mean_content_tv']:.4f} vs "
            f"{b['mean_content_tv']:.4f}{extra} -> {'HOLDS' if ok else 'DOES NOT HOLD'}"
        )
    return f"{head}: " + "; ".join(parts) + ".", verdicts


def _alpha_key(alpha: float | str) -> str:
    return "cINN alpha=auto" if alpha == "auto" else f"cINN alpha={alpha:g}"


def goal_line(res: dict, alpha: float | str) -> tuple[str, dict[str, bool]]:
    shown = f"auto ({res['auto_alpha']:.3g})" if alpha == "auto" else f"{alpha:g}"
    return compare_line(
        res,
        _alpha_key(alpha),
        f"Goal at alpha {shown} (cINN cuts TV more AND moves content less)",
    )


# ---------------------------------------------------------------------------- part 2


def precision_recall(flag: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    tp = int(np.sum(flag & truth))
    precision = tp / int(flag.sum()) if flag.any() else math.nan
    recall = tp / int(truth.sum()) if truth.any() else math.nan
    return precision, recall


def mislabels(t: Translator, args: argparse.Namespace) -> dict:
    domains = t.domains
    k = max(1, round(args.mislabel_share * args.n_mislabel))
    if k >= args.n_mislabel:
        raise SystemExit(
            f"--n-mislabel {args.n_mislabel} leaves no genuine image at share {args.mislabel_share}"
        )
    base = args.seed + EVAL_SEED_OFFSET
    hosts, intruders = {}, {}
    for d in domains:
        img, _ = render_batch(d, args.n_mislabel - k, t.resolution, seed=base + SEED_HOSTS)
        hosts[d] = (img, *encode(t, img))
        img, _ = render_batch(d, k, t.resolution, seed=base + SEED_INTRUDERS)
        intruders[d] = (img, *encode(t, img))
    pairs = [(a, b) for a in domains for b in domains if a != b]
    via_run = set(pairs if args.run_all_pairs else pairs[:1])
    rng = np.random.default_rng(args.seed)
    out = []
    for a, b in pairs:
        ai = t.domain_index(a)
        ll = np.concatenate([hosts[a][2], intruders[b][2]])
        truth = np.r_[np.zeros(args.n_mislabel - k, bool), np.ones(k, bool)]
        others = np.delete(ll, ai, axis=1)
        flag_latent = others.max(1) - ll[:, ai] > args.margin
        row = {"folder": a, "intruders_from": b, "n": args.n_mislabel, "planted": k}
        flag = flag_latent
        if (a, b) in via_run:
            # the real path: PNGs on disk (shuffled names, so order says nothing), audit.run
            pixels = np.concatenate([hosts[a][0], intruders[b][0]])
            names = [f"{int(j):05d}.png" for j in rng.permutation(len(pixels))]
            with tempfile.TemporaryDirectory() as tmp:
                for px, name in zip(pixels, names):
                    Image.fromarray(px).save(Path(tmp) / name)
                audit = audit_run(
                    t,
                    tmp,
                    domain=a,
                    alpha=args.alpha,
                    clip=CLIP,
                    flag_margin=args.margin,
                    estimators=None,
                    batch_size=BATCH,
                    seed=args.seed,
                )
            by_name = {r["path"]: bool(r["flag"]) for r in audit.rows}
            flag = np.array([by_name[nm] for nm in names])
            row["agreement_with_latent_rule"] = float(np.mean(flag == flag_latent))
            row["via"] = "audit.run"
        else:
            row["via"] = "latent rule"
        p, r = precision_recall(flag, truth)
        row.update(
            flagged=int(flag.sum()),
            true_positives=int(np.sum(flag & truth)),
            false_flags=int(np.sum(flag & ~truth)),
            precision=p,
            recall=r,
        )
        out.append(row)
    return {"margin": args.margin, "share": args.mislabel_share, "pairs": out}


def mislabel_table(res: dict) -> str:
    head = [
        "folder",
        "mislabelled from",
        "n",
        "planted",
        "flagged",
        "false flags",
        "precision",
        "recall",
        "via",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def pct(v: float) -> str:
        return "n/a" if math.isnan(v) else f"{v:.1%}"

    for r in res["pairs"]:
        cells = [
            r["folder"],
            r["intruders_from"],
            str(r["n"]),
            str(r["planted"]),
            str(r["flagged"]),
            str(r["false_flags"]),
            pct(r["precision"]),
            pct(r["recall"]),
            r["via"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -------------------------------------------------------------------------------- main


def _json_safe(v: object) -> object:
    """NaN -> None (strict JSON), numpy scalars -> Python numbers."""
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from e


def _alpha(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from e


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="demo", help="model folder or shipped name")
    ap.add_argument("--n", type=int, default=1000, help="faces of the audited dataset")
    ap.add_argument("--n-mislabel", type=int, default=400, help="faces per mislabel folder")
    ap.add_argument("--mislabel-share", type=float, default=0.05, help="share of intruders")
    ap.add_argument(
        "--alpha",
        type=_alpha,
        default="auto",
        help="the alpha the goal is judged at: a number, or auto (the audit's default)",
    )
    ap.add_argument("--alphas", type=_floats, default=[0.05, 0.1, 0.2, 0.3, 0.5, 1.0])
    ap.add_argument("--margin", type=float, default=0.0, help="flag margin in nats")
    ap.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates (0: none)")
    ap.add_argument(
        "--run-all-pairs",
        action="store_true",
        help="every mislabel pair through audit.run (default: the first only)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write every figure here")
    args = ap.parse_args(argv)
    if args.n < 2 or args.n_mislabel < 2:
        ap.error("--n and --n-mislabel must be >= 2")
    if (args.alpha != "auto" and args.alpha < 0) or any(a < 0 for a in args.alphas):
        ap.error("alphas must be >= 0")
    if not 0.0 < args.mislabel_share < 1.0:
        ap.error("--mislabel-share must be in (0, 1)")

    t0 = time.perf_counter()
    t = Translator.load(args.model)
    print("$ python bench/audit_benchmark.py " + " ".join(sys.argv[1:] if argv is None else argv))
    print(f"model {args.model}: datasets {', '.join(t.domains)}; seed {args.seed}\n")

    priors = load_priors()
    reb = rebalance(t, args, priors)
    print(
        f"\n## Rebalancing {reb['dataset']}: TV distance to uniform after weighting "
        f"(n = {reb['n']}, true labels)\n"
    )
    print(rebalance_table(reb))
    floors = ", ".join(f"{a} {v:.3f}" for a, v in reb["tv_floor"].items())
    print(
        f"\nMean planted = mean over {', '.join(reb['biased_attributes'])} (eye_size is equal in "
        "every dataset's prior: a control). Content TV moved = mean over x, y, size, yaw, roll "
        "(10 quantile bins) and mouth_open of TV(unweighted, weighted). ESS share = Kish "
        f"effective sample size / n. The cINN rows and the clipped baseline are clipped at "
        f"{CLIP:g}."
    )
    print(f"Lowest TV any reweighting of this sample can reach (absent categories): {floors}.")

    mis = mislabels(t, args)
    print(
        f"\n## Mislabel flag: {mis['share']:.0%} of each folder replaced by another dataset's "
        f"faces; flag when max over d != folder of log p(z | d) - log p(z | folder) > "
        f"{mis['margin']:g} nats\n"
    )
    print(mislabel_table(mis))
    checked = [r for r in mis["pairs"] if r["via"] == "audit.run"]
    for r in checked:
        print(
            f"\naudit.run on {r['folder']} <- {r['intruders_from']} (PNG folder) agrees with the "
            f"latent rule on {r['agreement_with_latent_rule']:.1%} of images."
        )
    tp = sum(r["true_positives"] for r in mis["pairs"])
    nf = sum(r["flagged"] for r in mis["pairs"])
    npl = sum(r["planted"] for r in mis["pairs"])
    print(
        f"Pooled over pairs: precision {tp / nf if nf else math.nan:.1%}, "
        f"recall {tp / npl:.1%} ({tp} of {npl} planted found, {nf - tp} false flags)."
    )

    matched = next(k for k in reb["rows"] if k.startswith("cINN ESS-matched"))
    print("\n" + compare_line(reb, matched, f"Like for like, {matched}")[0])
    line, verdicts = goal_line(reb, args.alpha)
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                _json_safe(
                    {"args": vars(args), "rebalance": reb, "mislabels": mis, "goal": verdicts}
                ),
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
