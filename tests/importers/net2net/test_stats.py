"""Latent statistics from image folders at import (net2fair/importers/net2net/stats.py)."""

from __future__ import annotations

import torch

from net2fair.importers.net2net import import_net2net
from net2fair.models.translator import Translator
from tests.importers import net2net_fixture as fx


def test_latent_statistics_from_image_folders(tmp_path, state) -> None:  # noqa: ANN001
    from PIL import Image

    run = fx.write_run_folder(tmp_path, legacy=False, state=state)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i, x in enumerate(fx.input_images()):
            arr = ((x.permute(1, 2, 0) + 1) * 127.5).clamp(0, 255).byte().numpy()
            Image.fromarray(arr).rotate(10 * i).save(tmp_path / name / f"{i}.png")
    out = tmp_path / "model"
    result = import_net2net(
        run, out, stats_folders={"CelebA": tmp_path / "a", "FFHQ": tmp_path / "b"}
    )
    assert result.stats_counts == {"CelebA": 2, "FFHQ": 2}
    t = Translator.load(out)
    assert t.stats_count.tolist() == [2.0, 0.0, 2.0]
    # the importer accumulates in float64, a plain float32 mean rounds differently
    codes = t.encode(sorted((tmp_path / "a").iterdir()))
    torch.testing.assert_close(t.stats_mean[0], codes.mean(0), rtol=1e-5, atol=1e-4)
