"""net2fair.fileio: atomic writes, the output-folder rule, leftovers of killed runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from net2fair.fileio import (
    MANIFEST,
    OutputError,
    atomic_write,
    check_output_folder,
    display_path,
    is_within,
    owner_tag,
    remove_leftovers,
    safe_join,
    staged_folder,
    temp_path_for,
    write_folder_atomically,
)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _dead_tag() -> str:
    return owner_tag().rsplit("-", 1)[0] + f"-{_dead_pid()}"


def _write_output(out: Path, command: str, files: dict[str, str]) -> None:
    with staged_folder(out, command) as tmp:
        for rel, text in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(text)


# ---------------------------------------------------------------------- the output rule
def test_absent_and_empty_folders_are_allowed(tmp_path: Path) -> None:
    assert check_output_folder(tmp_path / "new", "report") == (tmp_path / "new").absolute()
    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty", "report")


def test_staged_folder_writes_a_manifest_of_every_file(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    _write_output(out, "report", {"index.html": "x", "charts/a.png": "y"})
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest == {"command": "report", "files": ["charts/a.png", "index.html"]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]  # no staging left


def test_an_earlier_output_of_the_same_command_is_replaced(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    _write_output(out, "report", {"index.html": "old", "charts/a.png": "old"})
    _write_output(out, "report", {"index.html": "new"})
    assert (out / "index.html").read_text() == "new"
    assert not (out / "charts").exists()


@pytest.mark.parametrize(
    "extra", ["thesis.tex", "sub/", "charts/mine.png", "charts/deeper/"], ids=str
)
def test_a_folder_holding_anything_else_is_refused_and_kept(tmp_path: Path, extra: str) -> None:
    out = tmp_path / "mywork"
    _write_output(out, "report", {"index.html": "x", "charts/a.png": "y"})
    target = out / extra.rstrip("/")
    if extra.endswith("/"):
        target.mkdir(parents=True)
    else:
        target.write_text("the user's")
    with pytest.raises(OutputError, match=extra.rstrip("/")) as err:
        _write_output(out, "report", {"index.html": "z"})
    assert "\n" not in str(err.value)
    assert target.exists() and (out / "index.html").read_text() == "x"


def test_a_user_folder_with_a_report_json_is_not_a_report(tmp_path: Path) -> None:
    """The old rule replaced any folder holding report.json, thesis and all."""
    out = tmp_path / "mywork"
    (out / "sub").mkdir(parents=True)
    (out / "report.json").write_text("{}")
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputError):
        check_output_folder(out, "report")
    assert (out / "thesis.tex").read_text() == "years of work"


def test_another_commands_output_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "o"
    _write_output(out, "project", {"photo/a.png": "x"})
    with pytest.raises(OutputError, match="no earlier `net2fair sample`"):
        check_output_folder(out, "sample")


def test_legacy_names_allow_folders_written_before_manifests(tmp_path: Path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "config.yaml").write_text("a")
    (out / "model.safetensors").write_text("b")
    check_output_folder(out, "model", legacy=["config.yaml", "model.safetensors"])
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="notes.txt"):
        check_output_folder(out, "model", legacy=["config.yaml", "model.safetensors"])


def test_files_and_symlinks_are_not_output_folders(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        check_output_folder(tmp_path / "f", "report")
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(OutputError, match="not a folder"):
        check_output_folder(tmp_path / "link", "report")


@pytest.mark.parametrize("where", ["same", "inside"])
def test_outputs_never_land_inside_the_inputs(tmp_path: Path, where: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.png").write_text("input")
    out = data if where == "same" else data / "projected"
    with pytest.raises(OutputError, match="inside the input folder"):
        check_output_folder(out, "project", inputs=[data])


def test_an_output_folder_may_not_hold_the_input(tmp_path: Path) -> None:
    face = tmp_path / "in" / "face.png"
    face.parent.mkdir()
    face.write_text("input")
    with pytest.raises(OutputError, match="holds the input"):
        check_output_folder(tmp_path, "project", inputs=[face])


def test_a_failure_inside_the_block_leaves_the_old_output(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    _write_output(out, "report", {"index.html": "old"})
    with pytest.raises(RuntimeError, match="boom"), staged_folder(out, "report") as tmp:
        (tmp / "index.html").write_text("half")
        raise RuntimeError("boom")
    assert (out / "index.html").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


def test_write_folder_atomically_replaces_only_model_folders(tmp_path: Path) -> None:
    out = tmp_path / "model"
    write_folder_atomically(out, lambda p: (p / "config.yaml").write_text("1"))
    write_folder_atomically(out, lambda p: (p / "config.yaml").write_text("2"))
    assert (out / "config.yaml").read_text() == "2"
    (out / "mine.txt").write_text("x")
    with pytest.raises(OutputError):
        write_folder_atomically(out, lambda p: (p / "config.yaml").write_text("3"))


# ----------------------------------------------------------------------------- leftovers
def test_leftovers_of_a_dead_writer_are_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    dead = _dead_tag()
    stale_dir = tmp_path / f".rep.net2fair-tmp-{dead}-abcd1234"
    stale_dir.mkdir()
    (stale_dir / "index.html").write_text("half")
    stale_file = tmp_path / f".last.ckpt.{dead}.abcd1234.tmp"
    stale_file.write_text("half")
    live_dir = tmp_path / f".rep.net2fair-tmp-{owner_tag()}-live0000"
    live_dir.mkdir()
    unrelated = tmp_path / ".rep.user-notes"
    unrelated.write_text("mine")
    assert remove_leftovers(tmp_path, "rep") == [stale_dir]
    assert remove_leftovers(tmp_path, "last.ckpt") == [stale_file]
    assert live_dir.exists() and unrelated.exists()


def test_the_next_staged_write_removes_a_killed_runs_staging(tmp_path: Path) -> None:
    stale = tmp_path / f".rep.net2fair-tmp-{_dead_tag()}-abcd1234"
    stale.mkdir()
    _write_output(tmp_path / "rep", "report", {"index.html": "x"})
    assert not stale.exists()


def test_atomic_write_removes_a_killed_writes_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "last.ckpt"
    stale = tmp_path / f".last.ckpt.{_dead_tag()}.abcd1234.tmp"
    stale.write_text("half")
    atomic_write(target, lambda p: p.write_text("full"))
    assert target.read_text() == "full" and not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_atomic_write_gives_plain_write_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "f.json", lambda p: p.write_text("{}"))
    finally:
        os.umask(old)
    assert (tmp_path / "f.json").stat().st_mode & 0o777 == 0o644


def test_temp_names_are_recognised_as_ours(tmp_path: Path) -> None:
    tmp = temp_path_for(tmp_path / "x.json")
    assert tmp.name.startswith(".x.json.") and tmp.name.endswith(".tmp")
    assert owner_tag() in tmp.name


# ---------------------------------------------------------------------------- paths
def test_safe_join_refuses_escapes(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "photo", "a.png") == tmp_path / "photo" / "a.png"
    for bad in ("..", "../x", "/etc/passwd", "a/../../b"):
        with pytest.raises(OutputError, match="outside"):
            safe_join(tmp_path, bad, "a.png")


def test_safe_join_refuses_a_symlink_out(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "photo").symlink_to(tmp_path)
    with pytest.raises(OutputError):
        safe_join(tmp_path / "out", "photo", "a.png")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=3))
def test_safe_join_never_returns_a_path_outside_the_root(parts: list[str]) -> None:
    root = Path("/tmp/net2fair-safe-join-root")
    if any("\x00" in p for p in parts):
        return
    try:
        path = safe_join(root, *parts)
    except OutputError:
        return
    assert is_within(path, root)


def test_display_path_makes_undecodable_names_printable() -> None:
    raw = os.fsdecode(b"caf\xe9.png")
    shown = display_path(raw)
    assert shown == "caf\\xe9.png"
    shown.encode("utf-8")
    assert display_path("café.png") == "café.png"
