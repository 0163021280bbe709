"""Shared by the net2net importer tests: the fixture's seeded weights and the corpus of
bad checkpoints and run folders (read-only, so built once per session)."""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from tests.importers import net2net_fixture as fx


@pytest.fixture(scope="session")
def state() -> OrderedDict[str, torch.Tensor]:
    return fx.seeded_state_dict()


def _save(path: Path, state: OrderedDict, *, legacy: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(fx.lightning_checkpoint(state), path, _use_new_zipfile_serialization=not legacy)
    return path


class _RunsCode:
    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))

    def __init__(self, marker: Path) -> None:
        self.marker = marker


def _bad_inputs(tmp: Path, state: OrderedDict) -> dict[str, tuple[Path, list[str], str]]:
    """name -> (file, extra options, a phrase the one-line error holds)."""
    cases: dict[str, tuple[Path, list[str], str]] = {}
    good = _save(tmp / "good" / "model.ckpt", state)
    data = good.read_bytes()
    (tmp / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    cases["truncated"] = (tmp / "truncated.ckpt", [], "not a")
    (tmp / "notes.ckpt").write_text("hello, not a checkpoint\n")
    cases["not a checkpoint"] = (tmp / "notes.ckpt", [], "not a")
    (tmp / "empty.ckpt").write_bytes(b"")
    cases["empty"] = (tmp / "empty.ckpt", [], "empty")
    hostile = tmp / "hostile.ckpt"
    torch.save({"state_dict": {"x": _RunsCode(tmp / "pwned")}}, hostile)
    cases["code-running pickle"] = (hostile, [], "refused")
    with open(tmp / "plain.pkl", "wb") as f:
        pickle.dump({"state_dict": _RunsCode(tmp / "pwned")}, f)
    cases["plain pickle"] = (tmp / "plain.pkl", [], "refused")
    variant = OrderedDict(state)
    variant["flow.conditioning_layers.0.weight"] = torch.zeros(10, 10, 1, 1)
    cases["other flow variant"] = (_save(tmp / "cond.ckpt", variant), [], "conditioning layers")
    variant = OrderedDict(state)
    variant["first_stage_model.decoder.decoder.extra_linears.0.module.weight_bar"] = torch.zeros(2)
    cases["extra_z_dims decoder"] = (_save(tmp / "extra.ckpt", variant), [], "extra latent")
    no_ae = OrderedDict((k, v) for k, v in state.items() if not k.startswith("first_stage"))
    cases["no autoencoder"] = (_save(tmp / "noae.ckpt", no_ae), [], "no autoencoder")
    extra = OrderedDict(state)
    extra["flow.sub_layers.0.activation.alpha"] = torch.tensor(0.9)
    cases["leftover key"] = (_save(tmp / "left.ckpt", extra), [], "accounts for")
    missing = OrderedDict(state)
    del missing["flow.sub_layers.1.coupling.t.0.main.2.bias"]
    cases["missing key"] = (_save(tmp / "missing.ckpt", missing), [], "missing")
    cases["unknown run, no --domains"] = (good, [], "--domains")
    cases["--domains of the wrong length"] = (good, ["--domains", "a,b"], "3 labels")
    cases["bad --domains name"] = (good, ["--domains", "a,b,all"], "reserved")
    run = fx.write_run_folder(tmp / "yaml2", legacy=False, state=state)
    yaml = run / "configs" / fx.PROJECT_YAML.name
    yaml.write_text(yaml.read_text().replace("num_classes: 3", "num_classes: 2"))
    cases["yaml labels != conditioning size"] = (run, [], "2 labels")
    run = fx.write_run_folder(tmp / "yaml3", legacy=False, state=state)
    yaml = run / "configs" / fx.PROJECT_YAML.name
    yaml.write_text(yaml.read_text().replace("CCFQTrain", "FacesHQAndAnimeTrain"))
    cases["yaml of another dataset pair"] = (run, [], "2 labels")
    run = fx.write_run_folder(tmp / "yaml4", legacy=False, state=state)
    (run / "configs" / fx.PROJECT_YAML.name).write_text("model: [unclosed\n")
    cases["broken yaml"] = (run, [], "YAML")
    cases["missing file"] = (tmp / "nope.ckpt", [], "no such file")
    return cases


@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory, state) -> dict[str, tuple[Path, list[str], str]]:  # noqa: ANN001
    return _bad_inputs(tmp_path_factory.mktemp("bad"), state)
