"""Importing net2net checkpoints end to end (net2fair/importers/net2net/core.py):
equivalence with the original code, and bad input refused in one line.

The goldens in tests/fixtures/net2net were computed by tools/net2net_goldens.py from the
original classes (CompVis/net2net) with the weights that net2net_fixture regenerates here
from a seed per key; this test needs neither the original code nor committed weights.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from net2fair.cli import main
from net2fair.models.translator import Translator
from tests.conftest import run_cli
from tests.importers import net2net_fixture as fx

TOL = {"rtol": 1e-5, "atol": 1e-5}


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


# ---------------------------------------------------------------------------- bad input


def _run_cli(args: list[str], capsys) -> tuple[int, str]:  # noqa: ANN001
    code = main(args)
    err = capsys.readouterr().err.strip()
    return code, err


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


def test_out_is_checked_before_the_checkpoint_is_read(tmp_path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    code, err = _run_cli(["import-net2net", str(tmp_path / "nope.ckpt"), "--out", str(out)], capsys)
    assert code == 2 and "mine.txt" in err
    assert (out / "mine.txt").read_text() == "keep me"
