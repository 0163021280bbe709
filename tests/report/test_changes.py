"""Change maps: per-pixel averages of a folder's change from reconstruction to projection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from net2fair.colour import srgb_to_lab
from net2fair.models.translator import Translator
from net2fair.report.changes import (
    ChangeAccumulator,
    colour_shift_image,
    lab_to_srgb,
    write_change_figure,
)


def test_projection_onto_its_own_dataset_changes_nothing():
    from net2fair.synth.render import render_batch

    t = Translator.load("demo")
    images, _ = render_batch("photo", 6, t.resolution, seed=123_457)
    z = t.encode(images)
    recon = t.decode(z)
    own = t.decode(t.project_latents(z, "photo", ["photo"])["photo"])
    other = t.decode(t.project_latents(z, "photo", ["anime"])["anime"])
    same = ChangeAccumulator("photo", "photo", "synthetic")
    same.update(recon, own)
    moved = ChangeAccumulator("photo", "anime", "synthetic")
    moved.update(recon, other)
    m_same, m_moved = same.result(), moved.result()
    assert m_same.mean_abs.max() < 2e-3
    assert np.abs(m_same.mean_dlab).max() < 0.5
    assert m_moved.mean_abs.mean() > 0.05  # anime really changes these faces
    assert m_moved.mean_abs.mean() > 100 * m_same.mean_abs.mean()


def test_change_maps_average_exactly(tmp_path: Path):
    a = torch.zeros(2, 3, 8, 8)
    b = torch.zeros(2, 3, 8, 8)
    b[0, :, :4] = 1.0  # first image: the top half turns from grey to white
    acc = ChangeAccumulator("x", "y", "ffhq")
    acc.update(a, b)
    m = acc.result()
    assert m.n == 2
    assert np.allclose(m.mean_abs[:4], 0.25)
    assert m.mean_abs[4:].max() == 0.0
    assert m.mean_dlab[:4, :, 0].min() > 10  # lighter where it changed
    assert m.mean_source.max() == 128 and m.mean_target[:4].min() == 191
    assert write_change_figure([m], tmp_path / "c.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="shapes differ"):
        acc.update(a, b[:1])


def test_lab_to_srgb_inverts_srgb_to_lab():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(50, 3), dtype=np.uint8)
    back = lab_to_srgb(srgb_to_lab(pixels)) * 255.0
    assert np.abs(back - pixels).max() < 0.5


def test_colour_shift_image_is_grey_without_a_shift_and_shares_a_given_scale():
    img, scale = colour_shift_image(np.zeros((4, 4, 3)))
    assert scale == 1.0 and img.dtype == np.uint8
    assert np.ptp(img) == 0 and np.ptp(img[0, 0]) == 0  # one grey everywhere
    dlab = np.zeros((4, 4, 3))
    dlab[..., 1] = 20.0  # redder
    img, scale = colour_shift_image(dlab, scale=40.0)
    assert scale == 40.0 and img[0, 0, 0] > img[0, 0, 1]


def test_an_empty_accumulator_has_no_map_and_a_map_serialises(tmp_path: Path):
    acc = ChangeAccumulator("x", "y", "ffhq")
    assert acc.result() is None
    acc.update(torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.5))
    m = acc.result()
    d = m.to_dict()
    assert d["source"] == "x" and d["target"] == "y" and d["n"] == 1
    assert m.sentence().startswith("y changes")
    with pytest.raises(ValueError, match="no change maps"):
        write_change_figure([], tmp_path / "none.png")
