"""The commands and the viewer keep the output rule end to end: a refusal is one line
(never a traceback) and leaves the user's files as they were; nothing is written outside
the output folder (no ~/.streamlit, no folder named '~', no report inside the faces)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from net2fair.fileio import OutputError
from tests.conftest import REPO, write_toy_domain

CLI = Callable[..., subprocess.CompletedProcess]


def _one_line(proc: subprocess.CompletedProcess) -> str:
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("net2fair: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[-1]


def test_a_file_saved_into_out_while_synth_runs_is_kept_with_a_one_line_error(
    tmp_path: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the refusal before the swap was an OutputError traceback
    import net2fair.synth.files as files

    out = tmp_path / "bench"
    real = files.write_benchmark

    def write_benchmark(folder: Path, **kwargs: object) -> list[str]:
        got = real(folder, **kwargs)
        out.mkdir(exist_ok=True)
        (out / "notes.txt").write_text("mine")  # the user, meanwhile
        return got

    monkeypatch.setattr(files, "write_benchmark", write_benchmark)
    proc = cli("synth", out, "--n", "1", "--resolution", "32", "-q")
    assert proc.returncode == 1
    line = _one_line(proc)
    assert str(out) in line and "notes.txt" in line
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["bench"]


def test_sample_into_dot_dot_replaces_the_earlier_output(
    tmp_path: Path, cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "samples"
    assert cli("sample", "demo", "-n", "1", "--out", out, "-q").returncode == 0
    monkeypatch.chdir(out / "photo")
    proc = cli("sample", "demo", "-n", "1", "--out", "..", "-q")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "anime",
        "photo",
        "portrait",
        "samples.png",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["samples"]


def _fake_run(run: Path) -> None:
    """A run folder (config.yaml and marker) whose datasets are gone: what resume reads."""
    from net2fair.config import load_config, to_yaml, validate_config
    from net2fair.fileio import MANIFEST

    cfg = load_config([str(REPO / "configs" / "tiny.yaml")], [], validate=False)
    cfg.data.domains["a"] = str(run.parent / "gone-a")
    cfg.data.domains["b"] = str(run.parent / "gone-b")
    validate_config(cfg)
    (run / "model").mkdir(parents=True)
    (run / "config.yaml").write_text(to_yaml(cfg))
    (run / MANIFEST).write_text('{"command": "train", "files": []}\n')


def test_resume_refuses_a_model_folder_holding_the_users_files_before_training(
    tmp_path: Path, cli: CLI
) -> None:
    # the model folder was checked only when the trained model was saved, after all the
    # training: an OutputError traceback
    run = tmp_path / "run"
    _fake_run(run)
    (run / "model" / "notes.txt").write_text("mine")
    proc = cli("train", "--resume", run, "-q")
    assert proc.returncode == 2
    line = _one_line(proc)
    assert str(run / "model") in line and "notes.txt" in line
    assert (run / "model" / "notes.txt").read_text() == "mine"


def test_resume_of_the_autoencoder_alone_does_not_look_at_model(tmp_path: Path, cli: CLI) -> None:
    run = tmp_path / "run"
    _fake_run(run)
    (run / "model" / "notes.txt").write_text("mine")
    proc = cli("train", "--resume", run, "--stage", "autoencoder", "-q")
    assert "model" not in _one_line(proc).split("error: ")[1].split(":")[0]


def test_view_writes_no_streamlit_credentials(monkeypatch: pytest.MonkeyPatch, cli: CLI) -> None:
    # at a terminal, a first `net2fair view` stopped at Streamlit's e-mail prompt and
    # wrote ~/.streamlit/credentials.toml
    started: list[list[str]] = []

    class Proc:
        def __init__(self, cmd: list[str], **kwargs: object) -> None:
            started.append(cmd)

        def wait(self, timeout: float | None = None) -> int:
            return 0

        def poll(self) -> int:
            return 0

    monkeypatch.setattr(subprocess, "Popen", Proc)
    assert cli("view", "demo").returncode == 0
    cmd = started[0]
    assert cmd[cmd.index("--server.showEmailPrompt") + 1] == "false"
    assert cmd[cmd.index("--browser.gatherUsageStats") + 1] == "false"


@pytest.fixture()
def no_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """The report would be built (minutes on a real folder) before its folder is checked."""
    import net2fair.report as report

    def build(*args: object, **kwargs: object) -> None:
        raise AssertionError("the report was built before its output folder was checked")

    monkeypatch.setattr(report, "build", build)


def test_viewer_report_refuses_a_folder_inside_the_faces(tmp_path: Path, no_build: None) -> None:
    from net2fair import viewer

    faces = write_toy_domain(tmp_path / "faces", "disc", 2)
    with pytest.raises(OutputError, match="inside the input"):
        viewer.run_report(None, faces, source="photo", out_dir=faces / "report")
    assert not (faces / "report").exists()


def test_viewer_report_reads_tilde_as_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_build: None
) -> None:
    from net2fair import viewer

    home = tmp_path / "home"
    (home / "faces").mkdir(parents=True)
    (home / "rep").write_text("a file of the user's")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError, match=str(home / "rep")):
        viewer.run_report(None, "~/faces", source="photo", out_dir="~/rep")
    assert not (tmp_path / "~").exists()
