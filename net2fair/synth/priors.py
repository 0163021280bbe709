"""The attributes of the synthetic benchmark's faces and how they are drawn.

Every face carries

* shared content, drawn from ONE distribution for every dataset: head position ``x``,
  ``y``, ``size``, ``yaw``, ``roll`` and ``mouth_open`` (:data:`SHARED_ATTRIBUTES`);
* planted attributes, categorical, drawn from per-dataset priors kept in
  ``net2fair/synth/priors.yaml``: skin tone (six levels on the ITA scale), hair colour,
  hair length, beard, glasses, age cues and eye size (:data:`PLANTED_ATTRIBUTES`).

The priors as a Markdown table (what the docs show)::

    python -m net2fair.synth.priors [PRIORS.yaml]

Example::

    attrs = sample_attributes("anime", 16, attribute_rng("anime", seed=0))
"""

from __future__ import annotations

import argparse
import functools
import sys
import zlib
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

DOMAINS: tuple[str, ...] = ("photo", "portrait", "anime")

#: Shared content attributes and their ranges. ``x``, ``y``: head centre offset as a
#: fraction of the image side (normal, sd :data:`XY_SD`, clipped); ``size``: head scale
#: (uniform); ``yaw``: features shifted sideways, -1 (turned to image left) .. 1 (uniform);
#: ``roll``: head tilt in degrees, counter-clockwise positive (uniform); ``mouth_open``:
#: 0 or 1, open with probability :data:`P_MOUTH_OPEN`.
SHARED_ATTRIBUTES: dict[str, tuple[float, float]] = {
    "x": (-0.04, 0.04),
    "y": (-0.04, 0.04),
    "size": (0.9, 1.1),
    "yaw": (-1.0, 1.0),
    "roll": (-15.0, 15.0),
    "mouth_open": (0.0, 1.0),
}
XY_SD = 0.015
P_MOUTH_OPEN = 0.4

#: Planted attributes: name -> category names; an attribute dict stores the category index.
PLANTED_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "skin_tone": ("very_light", "light", "intermediate", "tan", "brown", "dark"),
    "hair_colour": ("black", "brown", "blond", "red", "grey", "pink", "blue", "green", "purple"),
    "hair_length": ("short", "medium", "long"),
    "beard": ("no", "yes"),
    "glasses": ("no", "yes"),
    "age": ("young", "old"),
    "eye_size": ("small", "normal", "large"),
}

#: the packaged priors, beside this module
PRIORS_FILE = "priors.yaml"

Priors = dict[str, dict[str, dict[str, float]]]


def check_domain(domain: str) -> None:
    """Raise ValueError unless ``domain`` is one of :data:`DOMAINS`."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown dataset {domain!r}; expected one of {DOMAINS}")


# ------------------------------------------------------------------------------ priors
def _canonical_key(key: object) -> object:
    # YAML 1.1 reads unquoted yes/no as booleans; accept them as the category names.
    if isinstance(key, bool):
        return "yes" if key else "no"
    return key


def validate_priors(priors: Mapping) -> Priors:
    """Check a priors mapping and return it in canonical form.

    The canonical form lists, for every dataset in ``priors`` (each must be one of
    :data:`DOMAINS`), every planted attribute with every category in the order of
    :data:`PLANTED_ATTRIBUTES` (missing categories get probability 0).

    Raises:
        ValueError: naming the dataset and attribute, for an unknown dataset, a missing or
            unknown attribute, an unknown category, a negative probability or
            probabilities that do not sum to 1 within 1e-6.
    """
    if not isinstance(priors, Mapping) or not priors:
        raise ValueError(f"priors must be a non-empty mapping dataset -> attribute, got {priors!r}")
    out: Priors = {}
    for domain, table in priors.items():
        if domain not in DOMAINS:
            raise ValueError(f"priors: unknown dataset {domain!r}; expected one of {DOMAINS}")
        if not isinstance(table, Mapping):
            raise ValueError(f"priors[{domain!r}] must map attribute -> categories")
        unknown = set(table) - set(PLANTED_ATTRIBUTES)
        if unknown:
            raise ValueError(
                f"priors[{domain!r}]: unknown attribute(s) {sorted(map(str, unknown))}; "
                f"expected {list(PLANTED_ATTRIBUTES)}"
            )
        out[domain] = {}
        for attr, names in PLANTED_ATTRIBUTES.items():
            if attr not in table:
                raise ValueError(f"priors[{domain!r}]: missing attribute {attr!r}")
            probs = table[attr]
            if not isinstance(probs, Mapping):
                raise ValueError(f"priors[{domain!r}][{attr!r}] must map category -> probability")
            probs = {_canonical_key(k): v for k, v in probs.items()}
            bad = [k for k in probs if k not in names]
            if bad:
                raise ValueError(
                    f"priors[{domain!r}][{attr!r}]: unknown category {bad[0]!r}; "
                    f"expected some of {names}"
                )
            values = {}
            for name in names:
                p = probs.get(name, 0.0)
                if isinstance(p, bool) or not isinstance(p, (int, float)) or not p >= 0:
                    raise ValueError(
                        f"priors[{domain!r}][{attr!r}][{name!r}] must be a probability >= 0, "
                        f"got {p!r}"
                    )
                values[name] = float(p)
            total = sum(values.values())
            if abs(total - 1.0) > 1e-6:
                raise ValueError(
                    f"priors[{domain!r}][{attr!r}]: probabilities sum to {total:.8g}, not 1"
                )
            out[domain][attr] = values
    return out


def load_priors(path: str | Path | None = None) -> Priors:
    """Load and validate the per-dataset priors of the planted attributes.

    Arguments:
        path: a YAML file ``dataset -> attribute -> category -> probability``; default the
            packaged ``net2fair/synth/priors.yaml``.

    Returns:
        the canonical priors (see :func:`validate_priors`).
    """
    if path is None:
        text = resources.files(__package__).joinpath(PRIORS_FILE).read_text("utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return validate_priors(yaml.safe_load(text))


@functools.cache
def default_priors() -> Priors:
    """The packaged priors, loaded once (shared: do not modify)."""
    return load_priors()


def uniform_priors() -> Priors:
    """Every planted category equally likely, in every dataset (what the attribute
    estimators are trained on, so that they do not learn a dataset's bias)."""
    return {
        d: {a: {n: 1.0 / len(names) for n in names} for a, names in PLANTED_ATTRIBUTES.items()}
        for d in DOMAINS
    }


def priors_markdown_table(priors: Mapping) -> str:
    """Render priors as a Markdown table: one row per attribute category, one column per
    dataset, probabilities in percent."""
    priors = validate_priors(priors)
    domains = list(priors)
    lines = [
        "| attribute | category | " + " | ".join(domains) + " |",
        "|---|---|" + "---:|" * len(domains),
    ]
    for attr, names in PLANTED_ATTRIBUTES.items():
        for i, name in enumerate(names):
            cells = [f"{100.0 * priors[d][attr][name]:.1f}%" for d in domains]
            lines.append(f"| {attr if i == 0 else ''} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_table(path: str | Path | None = None) -> str:
    """The priors of a YAML file (default the packaged ones) as a Markdown table, see
    :func:`priors_markdown_table`."""
    return priors_markdown_table(load_priors(path))


# ---------------------------------------------------------------------------- sampling
def sample_attributes(
    domain: str, n: int, rng: np.random.Generator, priors: Mapping | None = None
) -> list[dict]:
    """Draw ``n`` attribute dicts for ``domain``.

    The shared attributes come from the same code path for every domain; the planted ones
    from ``priors[domain]`` (default the packaged priors). Each face consumes one row of
    ``rng.random((n, 13))``, so the first k faces do not depend on ``n``.

    Returns:
        list of dicts with float ``x, y, size, yaw, roll``, int ``mouth_open`` (0/1) and an
        int category index for every planted attribute.
    """
    check_domain(domain)
    table = default_priors() if priors is None else validate_priors(priors)
    if domain not in table:
        raise ValueError(f"priors have no entry for dataset {domain!r}")
    u = rng.random((n, 6 + len(PLANTED_ATTRIBUTES)))

    # Box-Muller on the row's own uniforms keeps faces independent of n.
    radius = np.sqrt(-2.0 * np.log1p(-u[:, 0]))
    lo, hi = SHARED_ATTRIBUTES["x"]
    x = np.clip(XY_SD * radius * np.cos(2 * np.pi * u[:, 1]), lo, hi)
    y = np.clip(XY_SD * radius * np.sin(2 * np.pi * u[:, 1]), lo, hi)

    def uniform(name: str, col: np.ndarray) -> np.ndarray:
        lo, hi = SHARED_ATTRIBUTES[name]
        return lo + (hi - lo) * col

    size, yaw, roll = uniform("size", u[:, 2]), uniform("yaw", u[:, 3]), uniform("roll", u[:, 4])
    mouth = (u[:, 5] < P_MOUTH_OPEN).astype(int)

    planted = {}
    for j, (attr, names) in enumerate(PLANTED_ATTRIBUTES.items()):
        p = np.array([table[domain][attr][k] for k in names])
        cdf = np.cumsum(p / p.sum())
        idx = np.searchsorted(cdf, u[:, 6 + j], side="right")
        planted[attr] = np.minimum(idx, np.flatnonzero(p > 0)[-1])

    return [
        {
            "x": float(x[i]),
            "y": float(y[i]),
            "size": float(size[i]),
            "yaw": float(yaw[i]),
            "roll": float(roll[i]),
            "mouth_open": int(mouth[i]),
            **{attr: int(planted[attr][i]) for attr in PLANTED_ATTRIBUTES},
        }
        for i in range(n)
    ]


def _domain_key(domain: str) -> int:
    return zlib.crc32(domain.encode("utf-8"))


def attribute_rng(domain: str, seed: int) -> np.random.Generator:
    """The generator the benchmark draws ``domain``'s attributes from:
    ``sample_attributes(domain, n, attribute_rng(domain, seed))`` reproduces the labels of
    :func:`~net2fair.synth.render.render_batch` and
    :func:`~net2fair.synth.files.write_benchmark`."""
    return np.random.default_rng([seed, _domain_key(domain), 0])


def image_rng(domain: str, seed: int, index: int) -> np.random.Generator:
    """The generator of the nuisance randomness (background, light, textures) of image
    ``index`` of ``domain`` under ``seed``."""
    return np.random.default_rng([seed, _domain_key(domain), 1, index])


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m net2fair.synth.priors [PRIORS.yaml]``: print the priors table."""
    p = argparse.ArgumentParser(
        prog="python -m net2fair.synth.priors",
        description="Print the synthetic benchmark's planted-attribute priors as Markdown.",
    )
    p.add_argument("priors", nargs="?", help="a priors YAML file (default: the packaged one)")
    args = p.parse_args(argv)
    try:
        table = markdown_table(args.priors)
    except (OSError, ValueError, yaml.YAMLError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
