from __future__ import annotations

import copy
from importlib import resources

import numpy as np
import pytest
from PIL import Image

from net2fair.data import synthetic as syn
from net2fair.data.synthetic import (
    DOMAINS,
    ITA_BANDS,
    PLANTED_ATTRIBUTES,
    SHARED_ATTRIBUTES,
    SKIN_RGB,
    attribute_rng,
    ita_degrees,
    load_priors,
    priors_markdown_table,
    read_labels,
    render_batch,
    render_face,
    sample_attributes,
    skin_region_mask,
    srgb_to_lab,
    validate_priors,
    write_benchmark,
)

BASE = dict(
    x=0.0,
    y=0.0,
    size=1.0,
    yaw=0.0,
    roll=0.0,
    mouth_open=0,
    skin_tone=1,
    hair_colour=1,
    hair_length=0,
    beard=0,
    glasses=0,
    age=0,
    eye_size=1,
)


# ---------------------------------------------------------------- colour science


def test_srgb_to_lab_reference_values():
    lab = srgb_to_lab(np.array([[255, 255, 255], [255, 0, 0], [0, 0, 0]], np.uint8))
    np.testing.assert_allclose(lab[0], [100.0, 0.0, 0.0], atol=0.02)
    np.testing.assert_allclose(lab[1], [53.24, 80.09, 67.20], atol=0.05)
    np.testing.assert_allclose(lab[2], [0.0, 0.0, 0.0], atol=1e-6)
    # float input in [0, 1] means the same colour as its uint8 version
    np.testing.assert_allclose(srgb_to_lab(np.array([1.0, 0.0, 0.0])), lab[1])


def test_skin_colours_fall_in_their_ita_bands():
    ita = ita_degrees(srgb_to_lab(np.array(SKIN_RGB, np.uint8)))
    assert len(SKIN_RGB) == len(PLANTED_ATTRIBUTES["skin_tone"]) == 6
    for level, (lo, hi) in enumerate(ITA_BANDS):
        if level == 0:
            assert ita[level] > 55.0
        elif level == 5:
            assert ita[level] <= -30.0
        else:
            assert lo < ita[level] <= hi, (level, ita[level])


@pytest.mark.parametrize("domain", DOMAINS)
def test_rendered_skin_ita_decreases_with_tone(domain):
    rng = np.random.default_rng(11)
    for attrs in sample_attributes(domain, 3, rng):
        mask = skin_region_mask(64, attrs)
        medians = []
        for tone in range(6):
            img = render_face({**attrs, "skin_tone": tone}, domain, 64, np.random.default_rng(2))
            medians.append(np.median(ita_degrees(srgb_to_lab(img[mask]))))
        assert np.all(np.diff(medians) < 0), (attrs, medians)


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
    good = (resources.files("net2fair") / "configs" / "synth_priors.yaml").read_text()
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
    expected = dict(x=0.0, y=0.0, size=1.0, yaw=0.0, roll=0.0, mouth_open=syn._P_MOUTH_OPEN)
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


# ---------------------------------------------------------------- rendering


def test_render_batch_is_deterministic_per_seed():
    for domain in DOMAINS:
        a, attrs_a = render_batch(domain, 4, 32, seed=7)
        b, attrs_b = render_batch(domain, 4, 32, seed=7)
        c, _ = render_batch(domain, 4, 32, seed=8)
        assert a.shape == (4, 32, 32, 3) and a.dtype == np.uint8
        assert a.tobytes() == b.tobytes() and attrs_a == attrs_b
        assert a.tobytes() != c.tobytes()
        # image i depends on (domain, seed, i) only
        head, _ = render_batch(domain, 2, 32, seed=7)
        assert head.tobytes() == a[:2].tobytes()


@pytest.mark.parametrize("resolution", [32, 48, 64, 100, 256])
def test_render_face_any_resolution(resolution):
    img = render_face(BASE, "photo", resolution, np.random.default_rng(0))
    assert img.shape == (resolution, resolution, 3) and img.dtype == np.uint8
    assert img.std() > 10


@pytest.mark.parametrize("resolution", [16, 31, 257, 64.0])
def test_render_face_rejects_bad_resolution(resolution):
    with pytest.raises(ValueError, match="resolution"):
        render_face(BASE, "photo", resolution, np.random.default_rng(0))


def test_style_is_separable_from_content():
    imgs = {d: render_face(BASE, d, 64, np.random.default_rng(0)) for d in DOMAINS}
    for d in DOMAINS:
        for e in DOMAINS:
            if d < e:
                assert np.abs(imgs[d].astype(int) - imgs[e].astype(int)).mean() > 10


def _eye_region(resolution, attrs, pad):
    """Boolean mask of a band around both eyes (head frame), and the rest of the head."""
    g = syn._Geometry.from_attrs(attrs, resolution)
    hx, hy, _, _ = g.frames()
    near = (np.abs(hy - (-0.08 * g.b)) < pad * g.b) & (np.abs(hx) < 1.1 * g.a)
    return near


@pytest.mark.parametrize("domain", DOMAINS)
def test_glasses_change_pixels_around_the_eyes(domain):
    attrs = {**BASE, "yaw": 0.3, "roll": 8.0}
    without = render_face(attrs, domain, 64, np.random.default_rng(4)).astype(int)
    with_ = render_face({**attrs, "glasses": 1}, domain, 64, np.random.default_rng(4)).astype(int)
    changed = np.abs(with_ - without).max(axis=-1) > 30
    near = _eye_region(64, attrs, 0.45)
    assert changed[near].sum() >= 40
    # the portrait brush smear spreads a change by a pixel or two; nothing moves further
    assert not changed[~_eye_region(64, attrs, 0.6)].any()


def test_eye_size_modulates_anime_eyes():
    whites = []
    for k in range(3):
        img = render_face({**BASE, "eye_size": k}, "anime", 64, np.random.default_rng(0))
        whites.append(int((img.min(axis=-1) >= 245)[_eye_region(64, BASE, 0.45)].sum()))
    assert whites[0] < whites[1] < whites[2]


def test_skin_region_mask_follows_the_face():
    mask = skin_region_mask(64)
    assert mask.dtype == bool and mask.shape == (64, 64)
    assert 20 < mask.sum() < 400
    ys, xs = np.nonzero(mask)
    assert abs(xs.mean() - 32) < 1.5 and 32 < ys.mean() < 48  # cheeks: centred, below middle
    shifted = skin_region_mask(64, {**BASE, "x": 0.04})
    assert np.nonzero(shifted)[1].mean() - xs.mean() == pytest.approx(0.04 * 64, abs=0.6)
    assert skin_region_mask(64, BASE).tolist() == mask.tolist()


# ---------------------------------------------------------------- files


def test_write_benchmark_and_read_labels(tmp_path):
    n, res, seed = 5, 32, 3
    folders = write_benchmark(tmp_path / "bench", n=n, resolution=res, seed=seed)
    assert set(folders) == set(DOMAINS)
    for domain, folder in folders.items():
        pngs = sorted(folder.glob("*.png"))
        assert [p.name for p in pngs] == [f"{i:05d}.png" for i in range(n)]
        assert not list(folder.glob(".*"))  # no temporary files left behind
        images, _ = render_batch(domain, n, res, seed)
        for i, p in enumerate(pngs):
            with Image.open(p) as im:
                assert im.size == (res, res) and im.mode == "RGB"
                np.testing.assert_array_equal(np.asarray(im), images[i])
        rows = read_labels(folder)
        drawn = sample_attributes(domain, n, attribute_rng(domain, seed))
        assert len(rows) == n
        for i, (row, attrs) in enumerate(zip(rows, drawn, strict=True)):
            assert row["file"] == f"{i:05d}.png" and row["domain"] == domain
            assert {k: row[k] for k in attrs} == attrs
            for attr, names in PLANTED_ATTRIBUTES.items():
                assert row[f"{attr}_name"] == names[attrs[attr]]


def test_write_benchmark_subset_of_domains(tmp_path):
    folders = write_benchmark(tmp_path, n=2, resolution=32, domains=("anime",))
    assert list(folders) == ["anime"]
    assert not (tmp_path / "photo").exists()
    header = (tmp_path / "anime" / "labels.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["file", "domain"]
    assert {"skin_tone", "skin_tone_name", "yaw", "mouth_open"} <= set(header)


def test_rewrite_replaces_labels(tmp_path):
    write_benchmark(tmp_path, n=3, resolution=32, domains=("photo",))
    write_benchmark(tmp_path, n=2, resolution=32, seed=1, domains=("photo",))
    rows = read_labels(tmp_path / "photo" / "labels.csv")
    assert rows == [
        {
            **a,
            "file": f"{i:05d}.png",
            "domain": "photo",
            **{f"{k}_name": PLANTED_ATTRIBUTES[k][a[k]] for k in PLANTED_ATTRIBUTES},
        }
        for i, a in enumerate(sample_attributes("photo", 2, attribute_rng("photo", 1)))
    ]


@pytest.mark.parametrize("domain", DOMAINS)
def test_reference_ita_is_ordered(domain):
    ref = syn.reference_ita(domain, resolution=32, n=2)
    assert ref.shape == (6,) and np.all(np.diff(ref) < 0)
