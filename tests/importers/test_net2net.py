"""Importing net2net checkpoints: equivalence with the original code, and bad input.

The goldens in tests/fixtures/net2net were computed by tools/net2net_goldens.py from the
original classes (CompVis/net2net) with the weights that net2net_fixture regenerates here
from a seed per key; this test needs neither the original code nor committed weights.
"""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from net2fair.cli import main
from net2fair.importers.net2net import (
    Net2NetImportError,
    fold_batchnorm,
    fold_spectral_norm,
    import_net2net,
)
from net2fair.models.translator import Translator
from tests.conftest import run_cli
from tests.importers import net2net_fixture as fx

TOL = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(scope="module")
def state() -> OrderedDict[str, torch.Tensor]:
    return fx.seeded_state_dict()


@pytest.fixture(scope="module")
def goldens() -> dict[str, torch.Tensor]:
    return load_file(str(fx.GOLDENS))


@pytest.fixture(scope="module", params=["legacy", "zip"])
def imported(request, tmp_path_factory, state) -> Translator:  # noqa: ANN001
    root = tmp_path_factory.mktemp(request.param)
    run = fx.write_run_folder(root, legacy=request.param == "legacy", state=state)
    out = root / "model"
    if request.param == "zip":
        # the command as a user runs it, in a process of its own (the format Lightning writes)
        proc = run_cli("import-net2net", str(run), "--out", str(out))
        assert "Traceback" not in proc.stderr
    else:
        assert main(["import-net2net", str(run), "--out", str(out)]) == 0
    return Translator.load(out)


def test_fixture_is_small() -> None:
    total = sum(p.stat().st_size for p in fx.FIXTURES.iterdir())
    assert total < 400_000


def test_imported_model_matches_the_original(imported: Translator, goldens) -> None:  # noqa: ANN001
    t = imported
    assert t.domains == ["CelebA", "CelebA-HQ", "FFHQ"]
    assert t.cfg.autoencoder.arch == "net2net" and t.cfg.autoencoder.resnet == "resnet18"
    z = t.encode(fx.input_images())
    torch.testing.assert_close(z, goldens["z"], **TOL)
    v, logdet = t.flow(z, fx.SOURCE_LABEL)
    torch.testing.assert_close(v, goldens["v"], **TOL)
    torch.testing.assert_close(logdet, goldens["logdet"], **TOL)
    rec = fx.subsample(t.decode(z))
    torch.testing.assert_close(rec, goldens["reconstruction"], **TOL)
    zs = t.project_latents(z, t.domains[fx.SOURCE_LABEL])
    for k, name in enumerate(t.domains):
        torch.testing.assert_close(zs[name], goldens[f"z_{k}"], **TOL)
        torch.testing.assert_close(fx.subsample(t.decode(zs[name])), goldens[f"image_{k}"], **TOL)
    samples = t.sample_latents(n=fx.N_SAMPLES, seed=fx.SAMPLE_SEED)
    for k, name in enumerate(t.domains):
        torch.testing.assert_close(samples[name], goldens[f"sample_z_{k}"], **TOL)
        image = fx.subsample(t.decode(samples[name]))
        torch.testing.assert_close(image, goldens[f"sample_{k}"], **TOL)


def test_imported_model_projects_and_samples(imported: Translator) -> None:
    t = imported
    out = t.project(fx.input_images()[:1], source="FFHQ", targets="all")
    assert list(out) == t.domains
    assert all(x.shape == (1, 3, 256, 256) and x.abs().max() <= 1 for x in out.values())
    assert t.sample("CelebA", n=1, seed=0).shape == (1, 3, 256, 256)
    post = t.posterior(fx.input_images()[:1])
    assert post.shape == (1, 3) and torch.allclose(post.sum(1), torch.ones(1))
    assert float(t.stats_count.sum()) == 0  # none until computed from the user's images
    assert "Rombach" in t.cfg.model.provenance


def test_micro_batched_decode_equals_one_at_a_time(imported: Translator) -> None:
    z = torch.randn(5, 128, generator=torch.Generator().manual_seed(3))
    assert imported.autoencoder.max_decode_batch < 5
    together = imported.decode(z)
    single = torch.cat([imported.decode(z[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(together, single, rtol=1e-5, atol=1e-5)


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


def test_fold_batchnorm_equals_linear_then_batchnorm() -> None:
    torch.manual_seed(0)
    lin, bn = torch.nn.Linear(5, 7), torch.nn.BatchNorm1d(7)
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
        bn.weight.normal_()
        bn.bias.normal_()
    bn.eval()
    w, b = fold_batchnorm(lin.weight, lin.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var)
    x = torch.randn(4, 5)
    torch.testing.assert_close(x @ w.T + b, bn(lin(x)), rtol=1e-5, atol=1e-6)


def test_fold_spectral_norm_divides_by_the_power_iteration_estimate() -> None:
    w = torch.randn(6, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    u = torch.randn(6, generator=torch.Generator().manual_seed(1))
    folded = fold_spectral_norm(w, u)
    ratio = w / folded
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio))
    # one power iteration from a random u underestimates the largest singular value
    assert float(ratio.flatten()[0]) <= float(torch.linalg.matrix_norm(w.reshape(6, -1), 2))


# ---------------------------------------------------------------------------- bad input
def _run_cli(args: list[str], capsys) -> tuple[int, str]:  # noqa: ANN001
    code = main(args)
    err = capsys.readouterr().err.strip()
    return code, err


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


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, state) -> dict[str, tuple[Path, list[str], str]]:  # noqa: ANN001
    return _bad_inputs(tmp_path_factory.mktemp("bad"), state)


CASES = [
    "truncated",
    "not a checkpoint",
    "empty",
    "code-running pickle",
    "plain pickle",
    "other flow variant",
    "extra_z_dims decoder",
    "no autoencoder",
    "leftover key",
    "missing key",
    "unknown run, no --domains",
    "--domains of the wrong length",
    "bad --domains name",
    "yaml labels != conditioning size",
    "yaml of another dataset pair",
    "broken yaml",
    "missing file",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    case: str,
    bad_inputs,
    tmp_path,
    capsys,  # noqa: ANN001
) -> None:
    path, extra, phrase = bad_inputs[case]
    out = tmp_path / "out"
    code, err = _run_cli(["import-net2net", str(path), "--out", str(out), *extra], capsys)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and phrase in err, err
    assert not out.exists() and not list(tmp_path.iterdir())
    assert not (path.parent / "pwned").exists()


def test_hostile_pickle_never_runs(bad_inputs, tmp_path) -> None:  # noqa: ANN001
    path = bad_inputs["code-running pickle"][0]
    with pytest.raises(Net2NetImportError, match="refused"):
        import_net2net(path, tmp_path / "m")
    assert not (path.parent / "pwned").exists()


def test_out_is_checked_before_the_checkpoint_is_read(tmp_path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    code, err = _run_cli(["import-net2net", str(tmp_path / "nope.ckpt"), "--out", str(out)], capsys)
    assert code == 2 and "mine.txt" in err
    assert (out / "mine.txt").read_text() == "keep me"
