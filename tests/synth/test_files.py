"""The benchmark as image folders: write_benchmark and read_labels."""

from __future__ import annotations

import numpy as np
from PIL import Image

from net2fair.synth.files import read_labels, write_benchmark
from net2fair.synth.priors import DOMAINS, PLANTED_ATTRIBUTES, attribute_rng, sample_attributes
from net2fair.synth.render import render_batch


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
