"""Issue 20: nothing written outside --out, nothing of the user's deleted, numbers checked,
--resume means the run's own settings, no orphaned viewer, no leftovers.

Argument checks run in-process through ``net2fair.cli.main``; what needs a real process
(a signal, a kill) runs the command in a subprocess as a user would.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from net2fair.cli import main
from net2fair.fileio import owner_tag
from tests.conftest import REPO, run_cli, write_toy_domain

TINY = str(REPO / "configs" / "tiny.yaml")


def _cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    """Run the command in-process; return (exit code, last line of stderr)."""
    code = main([*args, "-q"] if args[0] != "view" else list(args))
    err = capsys.readouterr().err.strip().splitlines()
    return code, (err[-1] if err else "")


def _one_line_error(capsys: pytest.CaptureFixture, code: int, *args: str) -> str:
    got, line = _cli(capsys, *args)
    assert got == code, (got, line)
    assert line.startswith("net2fair: error: "), line
    return line


def _dead_tag() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return owner_tag().rsplit("-", 1)[0] + f"-{proc.pid}"


@pytest.fixture()
def faces(tmp_path: Path) -> Path:
    return write_toy_domain(tmp_path / "faces", "disc", 5)


# ------------------------------------------------- 1-4: nothing of the user's replaced
def test_report_keeps_a_user_folder_holding_report_json(
    capsys: pytest.CaptureFixture, tiny_model: Path, faces: Path, tmp_path: Path
) -> None:
    mywork = tmp_path / "mywork"
    (mywork / "sub").mkdir(parents=True)
    (mywork / "report.json").write_text("{}")
    (mywork / "thesis.tex").write_text("chapter 1")
    args = ("report", str(tiny_model), str(faces), "--from", "discs", "--out", str(mywork))
    line = _one_line_error(capsys, 2, *args)
    assert "mywork" in line
    assert (mywork / "thesis.tex").read_text() == "chapter 1" and (mywork / "sub").is_dir()


def test_audit_keeps_a_user_folder_holding_audit_json(
    capsys: pytest.CaptureFixture, tiny_model: Path, faces: Path, tmp_path: Path
) -> None:
    mywork = tmp_path / "mywork"
    mywork.mkdir()
    (mywork / "audit.json").write_text("{}")
    (mywork / "notes.md").write_text("mine")
    args = ("audit", str(tiny_model), str(faces), "--domain", "discs", "--out", str(mywork))
    _one_line_error(capsys, 2, *args)
    assert (mywork / "notes.md").read_text() == "mine"


def test_report_rerun_replaces_its_own_output(
    capsys: pytest.CaptureFixture, tiny_model: Path, faces: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rep"
    args = ("report", str(tiny_model), str(faces), "--from", "discs", "--out", str(out))
    assert _cli(capsys, *args)[0] == 0
    assert _cli(capsys, *args)[0] == 0
    assert (out / "index.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces", "rep"]


@pytest.mark.parametrize("where", ["input", "inside"])
def test_project_never_writes_into_its_input_folder(
    capsys: pytest.CaptureFixture, tiny_model: Path, faces: Path, where: str
) -> None:
    before = {p.name: p.read_bytes() for p in faces.iterdir()}
    out = faces if where == "input" else faces / "projected"
    args = ("project", str(tiny_model), str(faces), "--from", "discs", "--out", str(out))
    line = _one_line_error(capsys, 2, *args)
    assert "input folder" in line
    assert {p.name: p.read_bytes() for p in faces.iterdir()} == before


def test_project_replaces_only_its_own_output(
    capsys: pytest.CaptureFixture, tiny_model: Path, faces: Path, tmp_path: Path
) -> None:
    out = tmp_path / "proj"
    args = ("project", str(tiny_model), str(faces), "--from", "discs", "--out", str(out))
    assert _cli(capsys, *args)[0] == 0
    assert len(list((out / "squares").glob("*.png"))) == 5
    assert _cli(capsys, *args)[0] == 0  # a re-run replaces the earlier projections
    (out / "mine.txt").write_text("x")
    _one_line_error(capsys, 2, *args)
    assert (out / "mine.txt").exists()


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


# ------------------------------------------------------------------- 6-10: the numbers
@pytest.mark.parametrize(
    "args",
    [
        ["project", "{m}", "{f}", "--from", "discs", "--out", "{o}", "--batch-size", "0"],
        ["project", "{m}", "{f}", "--from", "discs", "--out", "{o}", "--batch-size", "-5"],
        ["project", "{m}", "{f}", "--from", "discs", "--out", "{o}", "--alpha", "nan"],
        ["sample", "{m}", "-n", "0", "--out", "{o}"],
        ["sample", "{m}", "-n", "2", "--out", "{o}", "--temperature", "nan"],
        ["sample", "{m}", "-n", "2", "--out", "{o}", "--temperature", "1e308"],
        ["sample", "{m}", "-n", "2", "--out", "{o}", "--temperature", "-1"],
        ["sample", "{m}", "-n", "2", "--out", "{o}", "--batch-size", "0"],
        ["audit", "{m}", "{f}", "--domain", "discs", "--out", "{o}", "--alpha", "inf"],
        ["audit", "{m}", "{f}", "--domain", "discs", "--out", "{o}", "--alpha", "nan"],
        ["audit", "{m}", "{f}", "--domain", "discs", "--out", "{o}", "--clip", "inf"],
        ["demo", "--n", "0", "--out", "{o}"],
        ["synth", "{o}", "--n", "-1"],
        ["synth", "{o}", "--n", "0"],
        ["synth", "{o}", "--resolution", "0"],
        ["report", "{m}", "{f}", "--from", "discs", "--out", "{o}", "--max-images", "0"],
        ["benchmark", "--n", "0"],
    ],
    ids=lambda a: " ".join(a[:1] + a[-2:]),
)
def test_bad_numbers_are_one_line_usage_errors_and_write_nothing(
    capsys: pytest.CaptureFixture, tiny_model: Path, faces: Path, tmp_path: Path, args: list[str]
) -> None:
    out = tmp_path / "out"
    filled = [a.format(m=tiny_model, f=faces, o=out) for a in args]
    _one_line_error(capsys, 2, *filled)
    assert not out.exists()


def test_sample_in_batches_gives_the_same_images_as_one_batch(
    capsys: pytest.CaptureFixture, tiny_model: Path, tmp_path: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert _cli(capsys, "sample", str(tiny_model), "-n", "7", "--out", str(a))[0] == 0
    args = ("sample", str(tiny_model), "-n", "7", "--batch-size", "3", "--out", str(b))
    assert _cli(capsys, *args)[0] == 0
    names = sorted(p.relative_to(a).as_posix() for p in a.rglob("sample_*.png"))
    assert len(names) == 14
    for name in names:
        assert Image.open(a / name).tobytes() == Image.open(b / name).tobytes(), name


def test_sample_overview_is_bounded(
    capsys: pytest.CaptureFixture, tiny_model: Path, tmp_path: Path
) -> None:
    from net2fair.cli import OVERVIEW_ROWS

    out = tmp_path / "s"
    assert _cli(capsys, "sample", str(tiny_model), "-n", "40", "--out", str(out))[0] == 0
    assert len(list((out / "discs").glob("*.png"))) == 40
    # 16 rows of 32 px thumbnails, not 40: the sheet does not grow with -n
    rows_px = Image.open(out / "samples.png").height
    assert rows_px < 40 * 32 and OVERVIEW_ROWS == 16


# ------------------------------------------------------- 8: odd file names, no traceback
@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse non-UTF-8 names")
@pytest.mark.parametrize("command", ["report", "audit"])
def test_a_non_utf8_file_name_is_shown_escaped(
    tiny_model: Path, faces: Path, tmp_path: Path, command: str
) -> None:
    shutil.copy(next(faces.glob("*.png")), os.path.join(os.fsencode(faces), b"caf\xe9.png"))
    out = tmp_path / "out"
    opt = "--from" if command == "report" else "--domain"
    proc = run_cli(command, str(tiny_model), str(faces), opt, "discs", "--out", str(out), "-q")
    assert "Traceback" not in proc.stderr
    table = out / ("per_image.csv" if command == "report" else "weights.csv")
    assert "caf\\xe9.png" in table.read_text(encoding="utf-8")


# ------------------------------------------------------------- 11: the viewer's server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["TERM", "KILL"])
def test_stopping_the_viewer_stops_its_server(tiny_model: Path, sig: signal.Signals) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "net2fair", "view", str(tiny_model), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "STREAMLIT_SERVER_HEADLESS": "true"},
    )
    try:
        deadline = time.time() + 90
        while not _listening(port):
            assert proc.poll() is None, "net2fair view exited early"
            assert time.time() < deadline, "the viewer never listened"
            time.sleep(0.5)
        proc.send_signal(sig)
        proc.wait(30)
        deadline = time.time() + 20
        while _listening(port) and time.time() < deadline:
            time.sleep(0.5)
        assert not _listening(port), "the Streamlit server was left listening"
    finally:
        if proc.poll() is None:
            proc.kill()


# --------------------------------------------- 12: what a killed run left is removed
def test_a_killed_reports_staging_folder_is_removed_by_the_next_run(
    capsys: pytest.CaptureFixture, tiny_model: Path, faces: Path, tmp_path: Path
) -> None:
    # what `kill -9` during the write leaves: a staging folder named after a dead process
    stale = tmp_path / f".rep.net2fair-tmp-{_dead_tag()}-0123abcd"
    (stale / "charts").mkdir(parents=True)
    (stale / "index.html").write_text("half a report")
    out = tmp_path / "rep"
    args = ("report", str(tiny_model), str(faces), "--from", "discs", "--out", str(out))
    assert _cli(capsys, *args)[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces", "rep"]


# ------------------------------------------------- the sweep over the commands' numbers
NUMBER = st.one_of(
    st.integers(-3, 5).map(str),
    st.sampled_from(
        ["0", "-0", "nan", "inf", "-inf", "1e308", "1e-320", "0.5", "x", "", "3.0", "32"]
    ),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    command=st.sampled_from(["project", "sample", "audit", "synth"]),
    a=NUMBER,
    b=NUMBER,
)
def test_any_number_gives_a_result_or_a_one_line_error(
    capsys: pytest.CaptureFixture,
    tiny_model: Path,
    faces: Path,
    tmp_path_factory: pytest.TempPathFactory,
    command: str,
    a: str,
    b: str,
) -> None:
    out = tmp_path_factory.mktemp("sweep") / "out"
    m, f = str(tiny_model), str(faces)
    argv = {
        "project": ["project", m, f, "--from", "discs", f"--alpha={a}", f"--batch-size={b}"],
        "sample": ["sample", m, f"-n={a}", f"--temperature={b}", "--batch-size=2"],
        "audit": ["audit", m, f, "--domain", "discs", f"--alpha={a}", f"--clip={b}"],
        "synth": [command, str(out), f"--n={a}", f"--resolution={b}"],
    }[command]
    if command != "synth":
        argv += ["--out", str(out)]
    try:
        code = main([*argv, "-q"])
    except SystemExit as e:  # argparse: not a number at all
        code = e.code
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code in (0, 2), (argv, code, err[-3:])
    if code == 2:
        assert "Traceback" not in "\n".join(err)
        assert err[-1].startswith(("net2fair: error: ", "net2fair ")), err
        assert not out.exists() or command == "synth" and not any(out.iterdir())
    else:
        assert out.is_dir()
        for value in (a, b):
            try:
                assert math.isfinite(float(value))
            except ValueError:
                pass
