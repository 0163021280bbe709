"""Bad inputs through every command, crash-safe writes, one-line errors.

The commands that do their work run in subprocesses as a user would start them; the
refusals (argument and config mistakes, a folder with no usable image) run in-process
through ``net2fair.cli.main`` (the ``cli`` fixture), with the same exit codes and lines.
The failing-writer cases run ``net2fair.cli.main`` in a subprocess after patching the
writer (a full disk cannot be made on demand), or patch it in-process for the library calls.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image

import net2fair.models.translator as translator_module
from net2fair import Translator, viewer
from net2fair.data.images import ImageError
from net2fair.fileio import MANIFEST
from net2fair.training.checkpoint import load_checkpoint
from tests.badinputs import expected_size, write_bad_inputs
from tests.conftest import REPO, run_cli, write_toy_domain

pytestmark = pytest.mark.slow

TINY = str(REPO / "configs" / "tiny.yaml")
N_DISCS = 6
ENOSPC = "No space left on device"


def _no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout


def _last_line(proc: subprocess.CompletedProcess) -> str:
    return proc.stderr.strip().splitlines()[-1]


def _skip_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("skipped ")]


def _assert_every_bad_file_named(stderr: str, folder: Path, bad: list[str], *, dirs: bool) -> None:
    lines = _skip_lines(stderr)
    for rel in bad:
        if not dirs and (folder / rel).is_dir():
            continue  # the report scans a folder named like an image instead of listing it
        hits = [ln for ln in lines if ln.startswith(f"skipped {folder / rel}: ")]
        assert hits, f"{rel} is not named in a 'skipped <path>: <reason>' line"
        assert all(len(ln.split(": ", 1)[1]) > 3 for ln in hits), hits


def _assert_no_usable_file_skipped(stderr: str, folder: Path, usable: list[str]) -> None:
    named = {ln[len("skipped ") :].split(": ", 1)[0] for ln in _skip_lines(stderr)}
    wrongly = sorted(rel for rel in usable if str(folder / rel) in named)
    assert not wrongly, f"usable images were skipped: {wrongly}"


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A folder mixing the bad-input corpus, the odd-but-valid one and plain valid images;
    two of the valid ones (dup.jpg, dup.png) would map to the same output name."""
    folder = tmp_path_factory.mktemp("messy") / "messy"
    kinds = write_bad_inputs(folder)
    write_toy_domain(folder, "disc", N_DISCS)
    src = folder / "disc_000.png"
    Image.open(src).save(folder / "dup.jpg")
    Image.open(src).save(folder / "dup.png")
    valid = [f"disc_{i:03d}.png" for i in range(N_DISCS)] + ["dup.jpg", "dup.png"]
    return {"folder": folder, "kinds": kinds, "usable": kinds["odd_valid"] + valid}


@pytest.fixture(scope="module")
def only_bad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("onlybad") / "bad"
    kinds = write_bad_inputs(folder)
    for rel in kinds["odd_valid"]:
        (folder / rel).unlink()
    return folder


@pytest.fixture(scope="module")
def messy_run(
    messy: dict, toy_folders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, subprocess.CompletedProcess]:
    run = tmp_path_factory.mktemp("messyrun") / "run"
    proc = run_cli(
        "train",
        TINY,
        f"--domain=messy={messy['folder']}",
        f"--domain=squares={toy_folders['squares']}",
        "--out",
        str(run),
        "--device",
        "cpu",
        "-q",
    )
    return run, proc


# ------------------------------------------------------------------- bad inputs, commands


def test_train_uses_every_usable_image_and_names_every_bad_one(messy, messy_run, toy_folders):
    run, proc = messy_run
    _no_traceback(proc)
    folder, kinds = messy["folder"], messy["kinds"]
    _assert_every_bad_file_named(proc.stderr, folder, kinds["bad"], dirs=True)
    _assert_no_usable_file_skipped(proc.stderr, folder, messy["usable"])
    data = json.loads((run / "model" / "metrics.json").read_text())["data"]
    n_usable = len(messy["usable"])
    assert data["train"]["messy"] + data["val"]["messy"] == n_usable
    n_squares = len(list(toy_folders["squares"].glob("*.png")))
    assert data["used"] == n_usable + n_squares
    assert data["skipped"] >= len(kinds["bad"])
    summary = [ln for ln in proc.stdout.splitlines() if ln.startswith("data: ")]
    assert summary == [
        f"data: {n_usable + n_squares} image(s) used (training split: "
        f"messy={data['train']['messy']}, squares={data['train']['squares']}); "
        f"skipped {data['skipped']}"
    ]


def test_project_writes_one_png_per_usable_image_and_target(messy, messy_run, tmp_path):
    run, _ = messy_run
    folder, kinds = messy["folder"], messy["kinds"]
    out = tmp_path / "proj"
    proc = run_cli(
        *("project", str(run / "model"), str(folder), "--from", "messy"),
        *("--out", str(out), "--device", "cpu", "-q"),
    )
    _no_traceback(proc)
    _assert_every_bad_file_named(proc.stderr, folder, kinds["bad"], dirs=True)
    _assert_no_usable_file_skipped(proc.stderr, folder, messy["usable"])
    n = len(messy["usable"])
    for target in ("messy", "squares"):
        written = sorted(p for p in (out / target).rglob("*.png"))
        assert len(written) == n, (target, len(written))
        # dup.jpg and dup.png both keep an output of their own
        assert (out / target / "dup.png").is_file() and (out / target / "dup.png.png").is_file()
        assert not list((out / target).rglob(".*"))  # no temporary file left
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith(f"projected {n} image(s)") and "; skipped " in last


def test_report_measures_every_usable_image(messy, messy_run, tmp_path):
    run, _ = messy_run
    folder, kinds = messy["folder"], messy["kinds"]
    out = tmp_path / "rep"
    proc = run_cli(
        *("report", str(run / "model"), str(folder), "--from", "messy"),
        *("--out", str(out), "--device", "cpu", "-q"),
    )
    _no_traceback(proc)
    _assert_every_bad_file_named(proc.stderr, folder, kinds["bad"], dirs=False)
    _assert_no_usable_file_skipped(proc.stderr, folder, messy["usable"])
    with open(out / "per_image.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    n = len(messy["usable"])
    assert len(rows) == n * 2  # every image into both datasets
    assert sorted({r["file"] for r in rows}) == sorted(messy["usable"])
    rep = json.loads((out / "report.json").read_text())
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith(f"report on {n} image(s)")
    assert last.endswith(f"; skipped {rep['data']['n_skipped']}")
    assert rep["data"]["n_skipped"] >= len([r for r in kinds["bad"] if r != "dir.jpg"])


def test_a_folder_of_only_bad_files_fails_with_one_line(
    only_bad, messy_run, toy_folders, tmp_path, cli
):
    run, _ = messy_run
    common = ("--device", "cpu", "-q")
    for cmd, code in (("project", 1), ("report", 1)):
        out = tmp_path / cmd
        proc = cli(
            cmd, str(run / "model"), str(only_bad), "--from", "messy", "--out", str(out), *common,
        )  # fmt: skip
        _no_traceback(proc)
        assert proc.returncode == code, proc.stderr
        assert _last_line(proc).startswith(f"net2fair: error: no usable image in {only_bad}")
        assert not out.exists() or not any(out.rglob("*.png"))
    proc = cli(
        "train", TINY, f"--domain=bad={only_bad}", f"--domain=squares={toy_folders['squares']}",
        "--out", str(tmp_path / "run"), *common,
    )  # fmt: skip
    _no_traceback(proc)
    assert proc.returncode == 2
    assert _last_line(proc).startswith("net2fair: error: dataset 'bad': no usable image in")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------- viewer upload


def test_upload_of_odd_but_valid_files_is_converted(tmp_path):
    # tests/viewer covers the bad files; the odd-but-valid ones must come through upright.
    kinds = write_bad_inputs(tmp_path / "c")
    checked = 0
    for rel in kinds["odd_valid"]:
        path = tmp_path / "c" / rel
        if path.suffix.lower().lstrip(".") not in viewer.UPLOAD_TYPES or not os.access(
            path, os.R_OK
        ):
            continue
        img = viewer.read_upload(path.read_bytes(), path.name)
        assert img.mode == "RGB" and img.size == expected_size(rel), rel
        checked += 1
    assert checked >= 15
    with pytest.raises(ImageError) as e:
        viewer.read_upload(b"", "empty.png")
    assert e.value.reason == "empty file"


# ------------------------------------------------------------------------- crash safety


def test_non_finite_loss_stops_with_step_and_terms_and_keeps_checkpoint(toy_folders, tmp_path):
    run = tmp_path / "run"
    proc = run_cli(
        "train", TINY, f"--domain=discs={toy_folders['discs']}",
        f"--domain=squares={toy_folders['squares']}", "--out", str(run), "--device", "cpu", "-q",
        "train.autoencoder.lr=1e30", "train.autoencoder.ckpt_every=1", check=False,
    )  # fmt: skip
    _no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    line = _last_line(proc)
    assert line.startswith("net2fair: error: autoencoder loss is not finite at step 1 (")
    for term in ("l1=nan", "kl=", "total=nan"):
        assert term in line
    state = load_checkpoint(run / "autoencoder" / "last.ckpt")
    assert state["step"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (run / "model").exists()


def _main_with(patch: str, args: list[str]) -> subprocess.CompletedProcess:
    """Run ``net2fair ARGS`` in a subprocess after executing ``patch`` (a failing writer)."""
    script = textwrap.dedent(patch) + textwrap.dedent(
        f"""
        import sys
        from net2fair.cli import main
        sys.exit(main({args!r}))
        """
    )
    return subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300
    )


FULL_DISK_MODEL = """
import errno
import net2fair.models.translator as tr
def full(tensors, path, metadata=None):
    open(path, "wb").write(b"\\0" * 100)
    raise OSError(errno.ENOSPC, "No space left on device")
tr.save_file = full
"""


def test_full_disk_at_the_end_of_training_then_resume(toy_folders, tmp_path):
    run = tmp_path / "run"
    args = [
        "train", TINY, f"--domain=discs={toy_folders['discs']}",
        f"--domain=squares={toy_folders['squares']}", "--out", str(run), "--device", "cpu", "-q",
    ]  # fmt: skip
    proc = _main_with(FULL_DISK_MODEL, args)
    _no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    line = _last_line(proc)
    assert line.startswith(f"net2fair: error: {run / 'model'}: could not write the model folder")
    assert ENOSPC in line and f"--resume {run}" in line
    assert not (run / "model").exists()
    # no temporary left behind (the run's own marker file is not one)
    assert not [p.name for p in run.iterdir() if p.name.startswith(".") and p.name != MANIFEST]
    assert load_checkpoint(run / "cinn" / "last.ckpt")["step"] == 8
    proc = run_cli("train", "--resume", str(run), "--device", "cpu", "-q")
    Translator.load(run / "model")


def test_full_disk_while_saving_a_model_keeps_the_old_folder(messy_run, tmp_path, monkeypatch):
    run, _ = messy_run
    t = Translator.load(run / "model")
    folder = t.save(tmp_path / "model")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def full(tensors: dict, path: str, metadata: dict | None = None) -> None:
        Path(path).write_bytes(b"\0" * 100)
        raise OSError(errno.ENOSPC, ENOSPC)

    monkeypatch.setattr(translator_module, "save_file", full)
    with pytest.raises(OSError, match=ENOSPC):
        t.save(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    Translator.load(folder)


FULL_DISK_REPORT = """
import errno
import net2fair.report.html as h
def full(report, path):
    open(path, "w").write("file,target\\n")
    raise OSError(errno.ENOSPC, "No space left on device")
h.write_csv = full
"""


def test_full_disk_while_writing_a_report_keeps_the_old_one(messy_run, toy_folders, tmp_path, cli):
    run, _ = messy_run
    out = tmp_path / "rep"
    args = [
        "report", str(run / "model"), str(toy_folders["squares"]), "--from", "squares",
        "--out", str(out), "--device", "cpu", "-q", "--max-images", "4",
    ]  # fmt: skip
    assert cli(*args).returncode == 0  # the report the full disk must leave alone
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    proc = _main_with(FULL_DISK_REPORT, args)
    _no_traceback(proc)
    assert proc.returncode == 1
    assert _last_line(proc) == (
        f"net2fair: error: {out}: could not write the report ({ENOSPC}); nothing was changed"
    )
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


# ------------------------------------------------------------------ configs and arguments


def test_argument_mistakes_are_one_line_errors_with_exit_code_2(
    messy_run, toy_folders, tmp_path, cli
):
    run, _ = messy_run
    model, images = str(run / "model"), str(toy_folders["squares"])
    domains = [f"--domain=discs={toy_folders['discs']}", f"--domain=b={toy_folders['squares']}"]
    out = str(tmp_path / "o")
    cases = [
        (["project", model, images, "--from", "squares", "--to", "cats", "--out", out],
         "unknown dataset 'cats'; this model knows: messy, squares"),
        (["report", model, images, "--from", "squares", "--to", "cats", "--out", out],
         "unknown dataset 'cats'"),
        (["sample", model, "--domain", "cats", "--out", out], "unknown dataset 'cats'"),
        (["train", TINY, *domains, "--resolution", "48", "--out", out],
         "data.resolution must be a power of two from 32 to 256, got 48"),
        (["train", TINY, *domains, "train.autoencoder.lr=fast", "--out", out],
         "bad value for config key 'train.autoencoder.lr'"),
        (["train", TINY, *domains, "train.autoencoder.stepz=3", "--out", out],
         "did you mean train.autoencoder.steps"),
        (["train", TINY, *domains, f"--domain=discs={toy_folders['squares']}", "--out", out],
         "--domain 'discs' given twice"),
        (["train", TINY, domains[0], f"--domain=b={toy_folders['squares'] / 'square_000.png'}",
          "--out", out], "is not a folder"),
    ]  # fmt: skip
    for args, message in cases:
        proc = cli(*args, "--device", "cpu", "-q")
        _no_traceback(proc)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("net2fair:")]
        assert len(lines) == 1 and message in lines[0], (args, proc.stderr)
    assert not Path(out).exists()
