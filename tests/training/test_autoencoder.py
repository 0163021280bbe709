"""Stage-1 training (net2fair.training.autoencoder): options reach the loss."""

from __future__ import annotations

import csv
from pathlib import Path

from net2fair.config import load_config
from net2fair.training.run import train
from tests.conftest import REPO


def test_chroma_weight_reaches_the_loss_and_is_logged(toy_folders: dict[str, Path], tmp_path):
    cfg = load_config(
        [REPO / "configs" / "tiny.yaml"],
        [
            f"data.domains.discs={toy_folders['discs']}",
            f"data.domains.squares={toy_folders['squares']}",
            "loss.chroma_weight=4.0",
        ],
    )
    train(cfg, out=tmp_path / "run", stage="autoencoder", device="cpu", progress=False)
    with open(tmp_path / "run" / "autoencoder_log.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["chroma"]]
    assert rows, "the chroma term was not computed (loss.chroma_weight ignored?)"
    assert all(float(r["chroma"]) >= 0 for r in rows)
