"""Stage-1 training (net2fair.training.autoencoder): options reach the loss."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from net2fair.config import Config, load_config
from net2fair.models.autoencoder import level_channels
from net2fair.training.checkpoint import load_checkpoint
from net2fair.training.run import train
from tests.conftest import REPO


def _train_tiny(toy_folders: dict[str, Path], run: Path, *overrides: str) -> Config:
    """Stage 1 of configs/tiny.yaml on the toy folders, with ``overrides``."""
    folders = [f"data.domains.{name}={folder}" for name, folder in toy_folders.items()]
    cfg = load_config([REPO / "configs" / "tiny.yaml"], [*folders, *overrides])
    train(cfg, out=run, stage="autoencoder", device="cpu", progress=False)
    return cfg


def test_chroma_and_eye_weights_reach_the_loss_and_are_logged(
    toy_folders: dict[str, Path], tmp_path
):
    _train_tiny(toy_folders, tmp_path / "run", "loss.chroma_weight=4.0", "loss.eye_weight=1.0")
    with open(tmp_path / "run" / "autoencoder_log.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["chroma"]]
    assert rows, "the chroma term was not computed (loss.chroma_weight ignored?)"
    assert all(float(r["chroma"]) >= 0 for r in rows)
    assert all(float(r["eye"]) > 0 for r in rows), "loss.eye_weight ignored?"


def test_betas_and_decoder_blocks_reach_the_optimizer_and_the_model(
    toy_folders: dict[str, Path], tmp_path
):
    cfg = _train_tiny(
        toy_folders,
        tmp_path / "run",
        "train.autoencoder.betas=[0.8,0.95]",
        "autoencoder.decoder_res_blocks=[2]",
        "train.autoencoder.steps=2",
    )
    state = load_checkpoint(tmp_path / "run" / "autoencoder" / "last.ckpt", torch.device("cpu"))
    for key in ("opt_g", "opt_d"):
        assert tuple(state[key]["param_groups"][0]["betas"]) == (0.8, 0.95)
    # two blocks at every decoder level of the tiny config: conv1 of each block is a key
    blocks = {k for k in state["model"] if k.startswith("decoder.body.") and "conv1" in k}
    n_blocks = 2 * len(level_channels(list(cfg.autoencoder.channels), cfg.data.resolution))
    assert len(blocks) == 2 * n_blocks  # weight and bias of each
