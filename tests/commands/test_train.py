"""``net2fair train`` (net2fair/commands/train.py): the run and model folders it writes,
a killed run resumed to the same weights, --resume keeping the run's own settings, folders
it must not write into, training options end to end.

The runs marked slow start the command in a subprocess as a user would; the refusals
(bad arguments, config errors) run in-process through ``net2fair.cli.main`` (the ``cli``
fixture of tests/conftest.py, ``_cli`` of tests/commands/conftest.py): the same exit codes
and lines, without starting Python and torch for each.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from net2fair import Translator
from tests.commands.conftest import TINY, _cli, _dead_tag, _one_line_error
from tests.conftest import REPO, run_cli, write_toy_domain


@pytest.mark.slow
def test_model_folder_has_the_documented_files(tiny_model: Path):
    for name in ("config.yaml", "model.safetensors", "metrics.json", "samples.png"):
        assert (tiny_model / name).is_file(), name
    metrics = json.loads((tiny_model / "metrics.json").read_text())
    assert metrics["autoencoder"]["steps"] == 8 and metrics["cinn"]["steps"] == 8
    assert "val_psnr" in metrics["autoencoder"] and "val_bits_per_dim" in metrics["cinn"]
    run = tiny_model.parent
    for name in (
        "config.yaml",
        "autoencoder_log.csv",
        "cinn_log.csv",
        "autoencoder/last.ckpt",
        "cinn/last.ckpt",
        "latents_train.safetensors",
    ):
        assert (run / name).exists(), name
    header = (run / "autoencoder_log.csv").read_text().splitlines()[0]
    assert header.startswith("step,") and "val_psnr" in header


def _train_args(toy_folders, out: Path, ae_steps: int) -> list[str]:
    return [
        "train",
        str(REPO / "configs" / "tiny.yaml"),
        "--domain",
        f"discs={toy_folders['discs']}",
        "--domain",
        f"squares={toy_folders['squares']}",
        "--out",
        str(out),
        "--device",
        "cpu",
        "-q",
        "--ae-steps",
        str(ae_steps),
        "train.autoencoder.ckpt_every=5",
        "train.autoencoder.val_every=1000",
    ]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(toy_folders, tmp_path):
    steps = 60
    full = tmp_path / "full"
    run_cli(*_train_args(toy_folders, full, steps))

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "net2fair", *_train_args(toy_folders, killed, steps)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt = killed / "autoencoder" / "last.ckpt"
    deadline = time.time() + 120
    while time.time() < deadline and not ckpt.exists() and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "model").exists(), "the run finished before it could be killed"
    run_cli("train", "--resume", str(killed), "--device", "cpu", "-q")

    a = load_file(str(full / "model" / "model.safetensors"))
    b = load_file(str(killed / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ma = json.loads((full / "model" / "metrics.json").read_text())
    mb = json.loads((killed / "model" / "metrics.json").read_text())
    assert mb["autoencoder"]["steps"] == ma["autoencoder"]["steps"] == steps


@pytest.mark.slow
def test_missing_or_empty_dataset_folder_is_a_config_error(toy_folders, tmp_path, cli):
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder in (tmp_path / "missing", empty):
        proc = cli(
            "train",
            str(REPO / "configs" / "tiny.yaml"),
            "--domain",
            f"discs={toy_folders['discs']}",
            "--domain",
            f"other={folder}",
            "--out",
            str(tmp_path / "run"),
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert str(folder) in proc.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_extending_stage_one_re_encodes_and_restarts_stage_two(toy_folders, tmp_path):
    run = tmp_path / "ext"
    run_cli(*_train_args(toy_folders, run, 8))
    before = load_file(str(run / "latents_train.safetensors"))["mu"]
    proc = run_cli("train", "--resume", str(run), "--ae-steps", "12", "--device", "cpu")
    after = load_file(str(run / "latents_train.safetensors"))["mu"]
    assert not torch.equal(before, after), "the latent cache of the old autoencoder was reused"
    assert "stage 2 starts again" in proc.stderr
    metrics = json.loads((run / "model" / "metrics.json").read_text())
    assert metrics["autoencoder"]["steps"] == 12


@pytest.mark.slow
def test_bf16_training_on_cpu_runs_end_to_end(toy_folders, tmp_path):
    run = tmp_path / "bf16"
    proc = run_cli(*_train_args(toy_folders, run, 10), "train.precision=bf16")
    # the autocast is on (a run before bf16 worked on CPU trained in float32 silently)
    assert "bf16" in proc.stderr and ("autocast on CPU" in proc.stderr or "emulated" in proc.stderr)
    log = (run / "autoencoder_log.csv").read_text().splitlines()
    l1 = log[0].split(",").index("l1")
    values = [float(r.split(",")[l1]) for r in log[1:] if r.split(",")[l1]]
    assert values and all(math.isfinite(v) for v in values)
    t = Translator.load(run / "model")
    assert next(t.autoencoder.parameters()).dtype == torch.float32
    assert torch.isfinite(t.sample("discs", n=2, seed=0)).all()


def _equivariance_residual_of(run: Path, folders: list[Path]) -> float:
    """Held-out residual of the equivariance fit for a run's stage-1 checkpoint: the same
    warps (seeded) of the same toy images for every run."""
    from net2fair.config import load_config
    from net2fair.data.images import list_images, load_image, to_tensor
    from net2fair.models.equivariance import equivariance_residual, random_similarity
    from net2fair.models.translator import build_autoencoder

    cfg = load_config([run / "config.yaml"])
    ae = build_autoencoder(cfg)
    ae.load_state_dict(torch.load(run / "autoencoder" / "last.ckpt", weights_only=True)["model"])
    ae.eval()
    paths = [p for f in folders for p in list_images(f)[0]]
    x = torch.stack([to_tensor(load_image(p), cfg.data.resolution) for p in paths])
    warped, params = random_similarity(
        x, torch.Generator().manual_seed(123), max_shift=0.1, max_scale=0.15, max_rotation=20.0
    )
    with torch.no_grad():
        return float(equivariance_residual(ae.encode(x).mean, ae.encode(warped).mean, params))


@pytest.mark.slow
def test_equivariance_prior_trains_end_to_end_and_makes_the_code_move_linearly(
    toy_folders, tmp_path, cli
):
    # the two trainings in-process (cli): the tests above run `train` as a user does
    common = [
        "--stage",
        "autoencoder",
        "train.autoencoder.log_every=10",
        "loss.disc_start=100000",
        "loss.equivariance_shift=0.1",
        "loss.equivariance_scale=0.15",
        "loss.equivariance_rotation=20",
    ]
    plain, prior = tmp_path / "plain", tmp_path / "prior"
    proc = cli(*_train_args(toy_folders, plain, 150), *common)
    assert proc.returncode == 0, proc.stderr
    proc = cli(
        *_train_args(toy_folders, prior, 150),
        *common,
        "loss.equivariance_weight=2.0",
        "loss.equivariance_start=30",
        "loss.equivariance_ramp=20",
    )
    assert proc.returncode == 0, proc.stderr
    log = (prior / "autoencoder_log.csv").read_text().splitlines()
    col = log[0].split(",").index("equivariance")
    values = [float(r.split(",")[col]) for r in log[1:] if r.split(",")[col]]
    # logged from the first logging step at or after the start (step 40 of 10, 20, ...)
    assert len(values) == 12 and all(math.isfinite(v) and v >= 0 for v in values)
    plain_log = (plain / "autoencoder_log.csv").read_text().splitlines()
    assert not any(r.split(",")[col] for r in plain_log[1:]), "weight 0 must not compute it"
    # on the toy discs and squares (which move around their images) the prior makes the
    # code follow the warps linearly, measured on the same warps for both runs
    folders = [toy_folders["discs"], toy_folders["squares"]]
    assert _equivariance_residual_of(prior, folders) < 0.5 * _equivariance_residual_of(
        plain, folders
    )


@pytest.mark.slow
def test_equivariance_prior_config_errors_are_one_line(toy_folders, tmp_path, cli):
    for override, words in [
        ("loss.equivariance_weight=-1", "loss.equivariance_weight must be"),
        ("loss.equivariance_rotation=200", "loss.equivariance_rotation must be"),
    ]:
        proc = cli(*_train_args(toy_folders, tmp_path / "x", 4), override)
        assert proc.returncode == 2 and words in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    proc = cli(
        *_train_args(toy_folders, tmp_path / "y", 4),
        "loss.equivariance_weight=1",
        "train.autoencoder.batch_size=4",
    )
    assert proc.returncode == 2 and "batch_size must be >= 6" in proc.stderr


# ------------------------------------------------- 1-4: nothing of the user's replaced


def test_a_dataset_named_dot_dot_never_reaches_the_disk(
    capsys: pytest.CaptureFixture, toy_folders: dict[str, Path], tmp_path: Path
) -> None:
    args = ("train", TINY, "--domain", f"..={toy_folders['discs']}")
    args += ("--domain", f"squares={toy_folders['squares']}", "--out", str(tmp_path / "r"))
    line = _one_line_error(capsys, 2, *args)
    assert "'..'" in line
    assert not (tmp_path / "r").exists()


def test_train_refuses_a_folder_it_did_not_write(
    capsys: pytest.CaptureFixture, toy_folders: dict[str, Path], tmp_path: Path
) -> None:
    run = tmp_path / "u1"
    (run / "model").mkdir(parents=True)
    (run / "model" / "notes.txt").write_text("mine")
    args = ("train", TINY, "--domain", f"discs={toy_folders['discs']}")
    args += ("--domain", f"squares={toy_folders['squares']}", "--out", str(run))
    line = _one_line_error(capsys, 2, *args)
    assert "not empty" in line
    assert (run / "model" / "notes.txt").read_text() == "mine"


def test_train_refuses_a_run_folder_inside_the_data(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    a = write_toy_domain(tmp_path / "a", "disc", 4)
    b = write_toy_domain(tmp_path / "b", "square", 4)
    line = _one_line_error(
        capsys, 2, "train", TINY, f"--domain=a={a}", f"--domain=b={b}", "--out", str(a / "run")
    )
    assert "dataset folder" in line


# ---------------------------------------------------------------------- 5: --resume


@pytest.fixture(scope="module")
def finished_run(tiny_model: Path) -> Path:
    """The session's finished tiny run (configs/tiny.yaml, trained by ``net2fair train`` in
    a subprocess). Shared: the tests here only read it or resume a copy of it."""
    return tiny_model.parent


@pytest.mark.parametrize(
    "extra",
    [
        ["--resolution", "64"],
        ["--seed", "3"],
        ["loss.l1_weight=2"],
        [TINY],
        ["--domain", "c=/tmp"],
        ["--out", "elsewhere"],
    ],
    ids=lambda e: e[0],
)
def test_resume_refuses_changes_to_the_runs_config(
    capsys: pytest.CaptureFixture, finished_run: Path, extra: list[str]
) -> None:
    before = (finished_run / "config.yaml").read_text()
    line = _one_line_error(capsys, 2, "train", "--resume", str(finished_run), *extra)
    assert "--resume" in line and "only --ae-steps, --cinn-steps" in line
    assert (finished_run / "config.yaml").read_text() == before


def test_resume_with_new_stage1_steps_keeps_the_stage2_steps(
    capsys: pytest.CaptureFixture, finished_run: Path, tmp_path: Path
) -> None:
    from net2fair.training.run import load_run_config

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    cinn_steps = load_run_config(run).train.cinn.steps
    ae_steps = load_run_config(run).train.autoencoder.steps
    assert _cli(capsys, "train", "--resume", str(run), "--ae-steps", str(ae_steps + 4))[0] == 0
    cfg = load_run_config(run)
    assert cfg.train.autoencoder.steps == ae_steps + 4
    assert cfg.train.cinn.steps == cinn_steps  # was reset to the default 4,000


def test_resume_refuses_what_is_not_a_run(
    capsys: pytest.CaptureFixture, finished_run: Path, tmp_path: Path
) -> None:
    line = _one_line_error(capsys, 2, "train", "--resume", str(finished_run / "model"))
    assert "is a model folder" in line
    _one_line_error(capsys, 2, "train", "--resume", str(tmp_path))


def test_resume_on_a_config_that_no_longer_fits_the_checkpoint(
    capsys: pytest.CaptureFixture, finished_run: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    cfg = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(cfg.replace("z_dim: 16", "z_dim: 12"))
    assert "z_dim: 12" in (run / "config.yaml").read_text()
    line = _one_line_error(capsys, 1, "train", "--resume", str(run), "--ae-steps", "40")
    assert "does not match the run's config.yaml" in line


def test_a_killed_trainings_temporary_checkpoint_is_removed_on_resume(
    capsys: pytest.CaptureFixture, finished_run: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    stale = run / "autoencoder" / f".last.ckpt.{_dead_tag()}.0123abcd.tmp"
    stale.write_bytes(b"half a checkpoint")
    from net2fair.training.run import load_run_config

    ae_steps = load_run_config(run).train.autoencoder.steps
    assert _cli(capsys, "train", "--resume", str(run), "--ae-steps", str(ae_steps + 4))[0] == 0
    assert not stale.exists()
