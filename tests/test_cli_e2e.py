"""End to end, as a user: the real commands in subprocesses on tiny data.

The refusals (bad arguments, config errors) run in-process through ``net2fair.cli.main``
(the ``cli`` fixture of tests/conftest.py): the same exit codes and lines, without
starting Python and torch for each."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from net2fair import Translator
from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.slow


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


def test_project_writes_every_target_and_matches_python_api(tiny_model, toy_folders, tmp_path):
    out = tmp_path / "projected"
    proc = run_cli(
        "project",
        str(tiny_model),
        str(toy_folders["discs"]),
        "--from",
        "discs",
        "--to",
        "all",
        "--out",
        str(out),
        "--device",
        "cpu",
        "-q",
    )
    assert "projected 24 image(s)" in proc.stdout
    inputs = sorted(p.name for p in toy_folders["discs"].glob("*.png"))
    for target in ("discs", "squares"):
        written = sorted(p.name for p in (out / target).glob("*.png"))
        assert written == inputs
        assert Image.open(out / target / inputs[0]).size == (32, 32)
    assert (out / "overview.png").is_file()

    # Translator.load reproduces the command's projections bit for bit, given the same
    # batch (CPU convolutions may round differently at another batch size).
    t = Translator.load(tiny_model)
    paths = [toy_folders["discs"] / name for name in inputs]
    proj = t.project(paths, source="discs", targets="all")
    for target, images in proj.items():
        for name, expected in zip(inputs, Translator.to_pil(images)):
            got = Image.open(out / target / name).convert("RGB")
            assert list(expected.getdata()) == list(got.getdata()), (target, name)


def test_sample_writes_n_per_domain(tiny_model, tmp_path, cli):
    out = tmp_path / "samples"
    run_cli(
        "sample",
        str(tiny_model),
        "--domain",
        "squares",
        "-n",
        "5",
        "--out",
        str(out),
        "--seed",
        "3",
        "--device",
        "cpu",
    )
    files = sorted((out / "squares").glob("*.png"))
    assert len(files) == 5 and Image.open(files[0]).size == (32, 32)
    assert not (out / "discs").exists()
    # every dataset when --domain is left out (in-process: the command ran as a user's above)
    proc = cli("sample", tiny_model, "-n", "2", "--out", tmp_path / "all", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "all" / "discs").glob("*.png"))) == 2
    assert len(list((tmp_path / "all" / "squares").glob("*.png"))) == 2


def test_bad_arguments_exit_nonzero_with_one_line(tiny_model, toy_folders, tmp_path, cli):
    proc = cli(
        "project",
        str(tiny_model),
        str(toy_folders["discs"]),
        "--from",
        "cats",
        "--out",
        str(tmp_path / "x"),
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip().splitlines()[-1].startswith("net2fair: error: unknown dataset 'cats'")
    )
    assert "Traceback" not in proc.stderr
    proc = cli(
        "train",
        "--domain",
        f"only={toy_folders['discs']}",
        "--out",
        str(tmp_path / "r"),
    )
    assert proc.returncode == 2 and "at least two datasets" in proc.stderr
    proc = cli("train", "data.resoltion=64")
    assert proc.returncode == 2 and "did you mean data.resolution" in proc.stderr
    proc = cli("project", str(tmp_path / "nope"), "x.png", "--from", "a", "--out", "o")
    assert proc.returncode == 1 and "no such model folder" in proc.stderr
    assert "Traceback" not in proc.stderr


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


def test_synth_writes_folders_with_labels_deterministically(tmp_path):
    for name in ("a", "b"):
        proc = run_cli("synth", str(tmp_path / name), "--n", "4", "--resolution", "32", "-q")
        assert "wrote 4 images for each of photo, portrait, anime" in proc.stdout
    for domain in ("photo", "portrait", "anime"):
        files = sorted((tmp_path / "a" / domain).glob("*.png"))
        assert len(files) == 4 and Image.open(files[0]).size == (32, 32)
        rows = (tmp_path / "a" / domain / "labels.csv").read_text().splitlines()
        assert len(rows) == 5 and "skin_tone" in rows[0]
        for f in files:
            assert f.read_bytes() == (tmp_path / "b" / domain / f.name).read_bytes()


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


def test_report_command_writes_every_output_and_escapes_names(
    tiny_model, toy_folders, tmp_path, cli
):
    images = tmp_path / "faces"
    images.mkdir()
    for i, src in enumerate(sorted(toy_folders["discs"].glob("*.png"))[:5]):
        (images / f"{i}.png").write_bytes(src.read_bytes())
    hostile = "<img src=x onerror=alert(1)>.png"
    (images / hostile).write_bytes(src.read_bytes())
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "rep"
    proc = run_cli(
        "report",
        str(tiny_model),
        str(images),
        "--from",
        "discs",
        "--out",
        str(out),
        "--device",
        "cpu",
        "-q",
        "--seed",
        "1",
    )
    assert "report on 6 image(s)" in proc.stdout
    assert "broken.png" in proc.stderr and "Traceback" not in proc.stderr
    for name in ("index.html", "report.json", "per_image.csv"):
        assert (out / name).is_file()
    page = (out / "index.html").read_text()
    assert "<img src=x onerror" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert json.loads((out / "report.json").read_text())["seed"] == 1
    proc = cli("report", str(tiny_model), str(images), "--from", "nope", "--out", tmp_path / "r2")
    assert proc.returncode == 2 and "unknown dataset 'nope'" in proc.stderr


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
