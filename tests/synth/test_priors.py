"""The benchmark's attributes, its priors (priors.yaml) and sampling."""

from __future__ import annotations

import copy
from importlib import resources

import numpy as np
import pytest

from net2fair.synth import priors as priors_module
from net2fair.synth.priors import (
    DOMAINS,
    P_MOUTH_OPEN,
    PLANTED_ATTRIBUTES,
    SHARED_ATTRIBUTES,
    attribute_rng,
    load_priors,
    markdown_table,
    priors_markdown_table,
    sample_attributes,
    uniform_priors,
    validate_priors,
)

# ---------------------------------------------------------------- priors


def test_default_priors_are_complete_and_normalised():
    priors = load_priors()
    assert tuple(priors) == DOMAINS
    for domain in DOMAINS:
        assert tuple(priors[domain]) == tuple(PLANTED_ATTRIBUTES)
        for attr, names in PLANTED_ATTRIBUTES.items():
            assert tuple(priors[domain][attr]) == names
            assert abs(sum(priors[domain][attr].values()) - 1.0) < 1e-6
    # planted biases differ, and at least one planted attribute is a control
    assert priors["photo"]["skin_tone"] != priors["anime"]["skin_tone"]
    assert (
        priors["photo"]["eye_size"] == priors["portrait"]["eye_size"] == priors["anime"]["eye_size"]
    )


def _broken(edit):
    priors = copy.deepcopy(load_priors())
    edit(priors)
    return priors


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda p: p["portrait"]["beard"].update(yes=0.9), ["portrait", "beard", "sum"]),
        (lambda p: p["anime"]["hair_colour"].update(teal=0.0), ["anime", "hair_colour", "teal"]),
        (lambda p: p["photo"].update(hats={"yes": 1.0}), ["photo", "hats"]),
        (lambda p: p["photo"].pop("glasses"), ["photo", "glasses"]),
        (lambda p: p.update(sketch=p["photo"]), ["sketch"]),
        (lambda p: p["photo"]["age"].update(young=1.5, old=-0.5), ["photo", "age"]),
    ],
)
def test_validate_priors_names_the_broken_key(edit, words):
    with pytest.raises(ValueError) as err:
        validate_priors(_broken(edit))
    for word in words:
        assert word in str(err.value)


def test_load_priors_from_broken_yaml(tmp_path):
    good = (resources.files("net2fair.synth") / "priors.yaml").read_text()
    path = tmp_path / "priors.yaml"
    path.write_text(good)
    assert load_priors(path) == load_priors()
    path.write_text(good.replace("long: 0.65", "long: 0.75"))
    with pytest.raises(ValueError, match=r"anime.*hair_length"):
        load_priors(path)


def test_priors_markdown_table():
    table = priors_markdown_table(load_priors())
    lines = table.strip().splitlines()
    assert lines[0] == "| attribute | category | photo | portrait | anime |"
    assert "| skin_tone | very_light | 17.0% | 55.0% | 90.0% |" in lines
    assert "|  | dark | 16.0% | 0.5% | 0.0% |" in lines
    n_categories = sum(len(v) for v in PLANTED_ATTRIBUTES.values())
    assert len(lines) == 2 + n_categories


# ---------------------------------------------------------------- sampling


@pytest.mark.parametrize("domain", DOMAINS)
def test_empirical_frequencies_match_priors(domain):
    n = 2000
    priors = load_priors()
    attrs = sample_attributes(domain, n, np.random.default_rng(0))
    for attr, names in PLANTED_ATTRIBUTES.items():
        counts = np.bincount([a[attr] for a in attrs], minlength=len(names))
        for k, name in enumerate(names):
            p = priors[domain][attr][name]
            if p == 0.0:
                assert counts[k] == 0, (attr, name)
                continue
            sd = np.sqrt(p * (1 - p) / n)
            assert abs(counts[k] / n - p) <= 3 * sd, (attr, name, counts[k] / n, p)


def test_shared_attributes_share_one_distribution():
    n = 2000
    draws = {d: sample_attributes(d, n, np.random.default_rng(5)) for d in DOMAINS}
    for name, (lo, hi) in SHARED_ATTRIBUTES.items():
        # same code path: the same generator state gives the same shared content everywhere
        values = {d: np.array([a[name] for a in draws[d]]) for d in DOMAINS}
        np.testing.assert_array_equal(values["photo"], values["portrait"])
        np.testing.assert_array_equal(values["photo"], values["anime"])
        assert values["photo"].min() >= lo and values["photo"].max() <= hi
    # independent generators: means agree within sampling error, and with the design
    means = {
        d: {
            k: np.mean([a[k] for a in sample_attributes(d, n, attribute_rng(d, 3))])
            for k in SHARED_ATTRIBUTES
        }
        for d in DOMAINS
    }
    expected = dict(x=0.0, y=0.0, size=1.0, yaw=0.0, roll=0.0, mouth_open=P_MOUTH_OPEN)
    spread = dict(x=0.015, y=0.015, size=0.058, yaw=0.58, roll=8.7, mouth_open=0.49)
    for d in DOMAINS:
        for k in SHARED_ATTRIBUTES:
            assert abs(means[d][k] - expected[k]) < 4 * spread[k] / np.sqrt(n), (d, k)


def test_custom_priors_and_prefix_stability():
    priors = copy.deepcopy(load_priors())
    priors["photo"]["glasses"] = {"no": 0.0, "yes": 1.0}
    attrs = sample_attributes("photo", 50, np.random.default_rng(1), priors)
    assert all(a["glasses"] == 1 for a in attrs)
    short = sample_attributes("photo", 10, np.random.default_rng(1), priors)
    assert short == attrs[:10]
    with pytest.raises(ValueError, match="sketch"):
        sample_attributes("sketch", 1, np.random.default_rng(1))


def test_markdown_table_and_its_command(tmp_path, capsys):
    assert markdown_table() == priors_markdown_table(load_priors())
    assert priors_module.main([]) == 0
    assert capsys.readouterr().out == markdown_table()
    one = tmp_path / "one.yaml"
    one.write_text(
        "anime:\n"
        + "".join(f"  {a}: {{{names[0]}: 1.0}}\n" for a, names in PLANTED_ATTRIBUTES.items())
    )
    table = markdown_table(one)
    assert table.splitlines()[0] == "| attribute | category | anime |"
    assert "| skin_tone | very_light | 100.0% |" in table
    assert priors_module.main([str(one)]) == 0 and capsys.readouterr().out == table
    assert priors_module.main([str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_uniform_priors_are_valid_and_flat():
    flat = uniform_priors()
    assert validate_priors(flat) == flat
    assert flat["anime"]["hair_length"] == {"short": 1 / 3, "medium": 1 / 3, "long": 1 / 3}
