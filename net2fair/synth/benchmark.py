"""The bias benchmark on the synthetic datasets, where every attribute is known.

For every ordered pair of datasets a -> b it measures what no real dataset can:

- target accuracy: the share of projections a -> b that the domain classifier assigns to b;
- content kept: the error of the projection's position, size, yaw, roll and mouth against
  the source face's TRUE values, in units of each attribute's standard deviation;
- bias replication: for each planted attribute, TV(projections, b's prior) divided by the
  identity baseline TV(a's prior, b's prior): 0 when projection reproduces b's bias
  exactly, 1 when it changes nothing;
- skin tone: the median ITA over the cheeks of inputs and projections.

The estimators (:mod:`net2fair.synth.estimators`) read attributes off generated images;
their own error on clean rendered faces is reported beside the figures as a floor.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from net2fair.colour import median_ita
from net2fair.data.images import tensor_to_uint8, uint8_to_tensor
from net2fair.fidelity import colour_noise, psnr
from net2fair.models.translator import Translator
from net2fair.synth.priors import DOMAINS, PLANTED_ATTRIBUTES, SHARED_ATTRIBUTES, load_priors
from net2fair.synth.render import render_batch
from net2fair.synth.shapes import skin_region_mask

logger = logging.getLogger(__name__)

CONTENT = ("x", "y", "size", "yaw", "roll", "mouth_open")
#: eval faces are rendered with seeds far from the training data's (seed 0 + index)
EVAL_SEED_OFFSET = 1_000_003


def skin_ita(images: np.ndarray, attrs: list[dict] | None = None) -> np.ndarray:
    """Median ITA (degrees) over the cheek region of each ``(B, H, W, 3)`` uint8 image.

    With ``attrs`` the true face geometry of each image is used (projections keep the
    source's geometry, so the source's attrs apply to them too)."""
    out = np.empty(len(images))
    for i, img in enumerate(images):
        mask = skin_region_mask(img.shape[0], attrs[i] if attrs else None)
        out[i] = float(median_ita(img[mask]))
    return out


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


def prior_vector(priors: dict, domain: str, attribute: str) -> np.ndarray:
    cats = PLANTED_ATTRIBUTES[attribute]
    table = priors[domain][attribute]
    return np.array([float(table.get(c, 0.0)) for c in cats])


def histogram(indices: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(np.asarray(indices, dtype=np.int64), minlength=k)[:k] / max(1, len(indices))


@dataclass
class PairResult:
    source: str
    target: str
    n: int
    #: share of projections the domain classifier assigns to the target (None: no estimators)
    target_accuracy: float | None
    #: mean cINN posterior p(target | projection)
    posterior_target: float
    #: content error of the projections (in attribute standard deviations)
    content_error: dict[str, float] = field(default_factory=dict)
    #: TV(projections, target prior) / TV(source prior, target prior) per planted attribute
    bias_ratio: dict[str, float] = field(default_factory=dict)
    #: TV(projections, target prior) (defined also when the priors are equal)
    bias_tv: dict[str, float] = field(default_factory=dict)
    #: share of projections whose planted attribute reads back as the source face's own;
    #: for a -> a, what the reconstruction keeps (for a -> b a bias is expected to move it)
    attribute_kept: dict[str, float] = field(default_factory=dict)
    ita_before: float = math.nan
    ita_after: float = math.nan
    #: eye-band colour noise (:mod:`net2fair.fidelity`) of the projections over that of the
    #: target dataset's own fresh faces; for a -> a, of the reconstructions over their
    #: inputs. About 1 or less when the model adds no colour confetti.
    colour_noise_ratio: float = math.nan


@dataclass
class BenchmarkResult:
    n_per_domain: int
    seed: int
    reconstruction_psnr: float
    bits_per_dim: float
    pairs: list[PairResult]
    #: the estimators' own error on clean rendered faces: accuracy / content error
    estimator_floor: dict[str, float] = field(default_factory=dict)
    #: the autoencoder alone, per dataset: ``{"psnr": dB, "colour_noise_ratio": x}`` of the
    #: reconstructions against their inputs (the model's own damage, apart from any bias)
    reconstruction: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        """The figures as indented JSON (NaN where a ratio has no baseline)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=True)


#: what carries codes from one dataset to another in :func:`run_benchmark`
PROJECTIONS = ("flow", "mean-shift", "gaussian-ot")


def psd_power(c: torch.Tensor, power: float) -> torch.Tensor:
    """``c ** power`` of a symmetric positive semi-definite matrix, through its
    eigendecomposition (negative eigenvalues from rounding are clipped; a negative power
    floors them at 1e-9 of the largest)."""
    w, v = torch.linalg.eigh(c)
    floor = 1e-9 * float(w.abs().max()) if power < 0 else 0.0
    return (v * w.clamp_min(floor) ** power) @ v.T


def linear_projection(t: Translator, kind: str) -> dict[tuple[str, str], tuple]:
    """Baselines to the flow, from the latent mean and covariance of each dataset's
    training codes (stored in the model): ``(a, b) -> (m_a, M, m_b)`` with
    ``z_b = m_b + (z_a - m_a) @ M.T``.

    ``mean-shift``: ``M = I``, each code moved by the difference of the datasets' means.
    ``gaussian-ot``: the optimal-transport map between the two datasets' Gaussian fits
    (``M = C_a^-1/2 (C_a^1/2 C_b C_a^1/2)^1/2 C_a^-1/2``), the linear map that carries a's
    mean and covariance onto b's while moving codes least (its cost is Gelbrich's bound).
    """
    if kind not in PROJECTIONS[1:]:
        raise ValueError(f"unknown linear projection {kind!r}; choose from {PROJECTIONS[1:]}")
    means, covs = t.stats_mean.double().cpu(), t.stats_cov.double().cpu()
    if not bool((t.stats_count > 0).all()):
        raise ValueError("the model stores no latent statistics for some dataset")
    maps: dict[tuple[str, str], tuple] = {}
    for i, a in enumerate(t.domains):
        root, inv_root = psd_power(covs[i], 0.5), psd_power(covs[i], -0.5)
        for j, b in enumerate(t.domains):
            if kind == "mean-shift" or i == j:
                m = torch.eye(covs.shape[1], dtype=torch.float64)
            else:
                m = inv_root @ psd_power(root @ covs[j] @ root, 0.5) @ inv_root
            maps[a, b] = (means[i], m, means[j])
    return maps


def run_benchmark(
    t: Translator,
    *,
    estimators=None,  # noqa: ANN001
    n: int = 200,
    seed: int = 0,
    batch_size: int = 100,
    priors: dict | None = None,
    projection: str = "flow",
) -> BenchmarkResult:
    """Render ``n`` fresh faces per dataset, project them to every dataset, measure.

    ``projection`` is ``"flow"`` (the model's cINN) or one of the linear baselines of
    :func:`linear_projection`, which show how much of a result a map without the flow gets.
    """
    if projection not in PROJECTIONS:
        raise ValueError(f"unknown projection {projection!r}; choose from {PROJECTIONS}")
    maps = linear_projection(t, projection) if projection != "flow" else None

    def project(z: torch.Tensor, source: str) -> dict[str, torch.Tensor]:
        if maps is None:
            return t.project_latents(z, source, "all")
        out = {}
        for b in t.domains:
            ma, m, mb = (v.to(z.device, z.dtype) for v in maps[source, b])
            out[b] = mb + (z - ma) @ m.T
        return out

    priors = priors or load_priors()
    res = t.resolution
    domains = t.domains
    content_sd = {}
    rendered: dict[str, tuple[np.ndarray, list[dict]]] = {}
    for d in domains:
        rendered[d] = render_batch(d, n, res, seed=seed + EVAL_SEED_OFFSET)
    all_attrs = [a for d in domains for a in rendered[d][1]]
    for key in CONTENT:
        vals = np.array([float(a[key]) for a in all_attrs])
        lo, hi = SHARED_ATTRIBUTES[key]
        content_sd[key] = float(vals.std()) or (hi - lo) / math.sqrt(12)

    def estimate(images: np.ndarray) -> dict[str, np.ndarray]:
        outs: dict[str, list] = {}
        for s in range(0, len(images), batch_size):
            x = uint8_to_tensor(images[s : s + batch_size]).to(next(estimators.parameters()).device)
            for k, v in estimators.predict(x).items():
                outs.setdefault(k, []).append(v.float().cpu().numpy())
        return {k: np.concatenate(v) for k, v in outs.items()}

    floor: dict[str, list[float]] = {}
    nll = []
    pairs: list[PairResult] = []
    # eye-band colour noise of each dataset's own fresh faces: what projections into it
    # are compared with
    own_noise = {d: float(np.mean(colour_noise(rendered[d][0]))) for d in domains}
    reconstruction: dict[str, dict[str, float]] = {}
    for a in domains:
        images, attrs = rendered[a]
        ita_in = skin_ita(images, attrs)
        projections: dict[str, list[np.ndarray]] = {b: [] for b in domains}
        post: dict[str, list[float]] = {b: [] for b in domains}
        recon_psnr: list[np.ndarray] = []
        recon_noise: list[np.ndarray] = []
        for s in range(0, n, batch_size):
            x = uint8_to_tensor(images[s : s + batch_size]).to(t.device)
            z = t.encode(x)
            rec = tensor_to_uint8(t.decode(z))
            recon_psnr.append(psnr(rec, images[s : s + batch_size]))
            recon_noise.append(colour_noise(rec))
            nll.append(
                float(t.bits_per_dim(t.latent_log_likelihood(z)[:, t.domain_index(a)]).mean())
            )
            zs = project(z, a)
            decoded = t.decode(torch.cat([zs[b] for b in domains])).split(z.shape[0])
            for b, xb in zip(domains, decoded):
                projections[b].append(tensor_to_uint8(xb))
                post[b].extend(t.latent_posterior(t.encode(xb))[:, t.domain_index(b)].tolist())
        reconstruction[a] = {
            "psnr": float(np.mean(np.concatenate(recon_psnr))),
            "colour_noise_ratio": _ratio(float(np.mean(np.concatenate(recon_noise))), own_noise[a]),
        }
        truth = {k: np.array([float(at[k]) for at in attrs]) for k in CONTENT}
        if estimators is not None:
            own = estimate(images)
            floor.setdefault("domain_accuracy", []).append(float(np.mean(_domain_names(own) == a)))
            for k in CONTENT:
                floor.setdefault(f"content_{k}", []).append(
                    float(np.mean(np.abs(own[k] - truth[k])) / content_sd[k])
                )
            for attr in PLANTED_ATTRIBUTES:
                true_idx = np.array([int(at[attr]) for at in attrs])
                floor.setdefault(f"{attr}_accuracy", []).append(
                    float(np.mean(own[attr] == true_idx))
                )
        for b in domains:
            pb = np.concatenate(projections[b])
            pr = PairResult(a, b, n, None, float(np.mean(post[b])))
            pr.ita_before = float(np.mean(ita_in))
            pr.ita_after = float(np.mean(skin_ita(pb, attrs)))
            pr.colour_noise_ratio = _ratio(float(np.mean(colour_noise(pb))), own_noise[b])
            if estimators is not None:
                est = estimate(pb)
                pr.target_accuracy = float(np.mean(_domain_names(est) == b))
                for k in CONTENT:
                    pr.content_error[k] = float(np.mean(np.abs(est[k] - truth[k])) / content_sd[k])
                for attr, cats in PLANTED_ATTRIBUTES.items():
                    got = histogram(est[attr], len(cats))
                    tv = total_variation(got, prior_vector(priors, b, attr))
                    base = total_variation(
                        prior_vector(priors, a, attr), prior_vector(priors, b, attr)
                    )
                    pr.bias_tv[attr] = tv
                    true_idx = np.array([int(at[attr]) for at in attrs])
                    pr.attribute_kept[attr] = float(np.mean(est[attr] == true_idx))
                    pr.bias_ratio[attr] = tv / base if base > 1e-9 else math.nan
            pairs.append(pr)
    return BenchmarkResult(
        n_per_domain=n,
        seed=seed,
        reconstruction_psnr=float(np.mean([r["psnr"] for r in reconstruction.values()])),
        bits_per_dim=float(np.mean(nll)),
        pairs=pairs,
        estimator_floor={k: float(np.mean(v)) for k, v in floor.items()},
        reconstruction=reconstruction,
    )


def _ratio(value: float, reference: float) -> float:
    if reference > 0:
        return value / reference
    return 1.0 if value == 0 else math.inf


def _domain_names(pred: dict[str, np.ndarray]) -> np.ndarray:
    return np.array(DOMAINS)[pred["domain"].astype(np.int64)]


def format_table(result: BenchmarkResult) -> str:
    """A markdown table, one row per ordered pair (a -> a rows are reconstructions)."""
    attrs = list(PLANTED_ATTRIBUTES)
    head = [
        "pair",
        "target acc",
        "p(target)",
        "content err (max, sd)",
        "ITA before -> after",
        "colour noise",
        *[f"{a} ratio" for a in attrs],
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def f(v: float | None, fmt: str = "{:.2f}") -> str:
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)

    for p in result.pairs:
        content = max(p.content_error.values()) if p.content_error else None
        ratios = []
        for a in attrs:
            r = p.bias_ratio.get(a)
            if r is not None and math.isnan(r):
                ratios.append(f"(TV {p.bias_tv[a]:.2f})")
            else:
                ratios.append(f(r))
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{p.source} -> {p.target}",
                    f(p.target_accuracy, "{:.0%}"),
                    f(p.posterior_target),
                    f(content),
                    f"{p.ita_before:.1f} -> {p.ita_after:.1f}",
                    f(p.colour_noise_ratio, "{:.2f}x"),
                    *ratios,
                ]
            )
            + " |"
        )
    lines.append("")
    lines.append(
        f"Reconstruction PSNR {result.reconstruction_psnr:.2f} dB; cINN "
        f"{result.bits_per_dim:.3f} bits/dim on the evaluation faces; "
        f"n = {result.n_per_domain} per dataset, seed {result.seed}."
    )
    if result.reconstruction:
        per = "; ".join(
            f"{d} {r['psnr']:.1f} dB, colour noise {r['colour_noise_ratio']:.2f}x"
            for d, r in result.reconstruction.items()
        )
        lines.append(f"The autoencoder alone (reconstructions against their inputs): {per}.")
    kept = [p for p in result.pairs if p.source == p.target and p.attribute_kept]
    if kept:
        per = "; ".join(
            f"{p.source} " + ", ".join(f"{a} {v:.0%}" for a, v in p.attribute_kept.items())
            for p in kept
        )
        lines.append(f"Planted attributes read back as the input's (a -> a): {per}.")
    if result.estimator_floor:
        fl = result.estimator_floor
        accs = ", ".join(f"{a} {fl[f'{a}_accuracy']:.0%}" for a in attrs)
        cont = max(fl[f"content_{k}"] for k in CONTENT)
        lines.append(
            f"Estimator floor on clean rendered faces: domain {fl['domain_accuracy']:.0%}, "
            f"{accs}; content error up to {cont:.2f} sd."
        )
    lines.append(
        "Ratios: TV(projections, target prior) / TV(source prior, target prior); "
        "(TV x) where the two priors are equal. Colour noise: eye-band colour noise of the "
        "projections over that of the target dataset's own faces (a -> a: reconstructions "
        "over their inputs); above 1 the model adds colour confetti."
    )
    return "\n".join(lines)
