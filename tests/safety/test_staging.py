"""The staging mechanism of :mod:`net2fair.fileio` under the ways users and systems break
it: ``..`` in ``--out``, a kill by SIGTERM, a failed swap, a file that appears in the
output while the command runs, folders made for an output that was never written."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from net2fair import fileio
from net2fair.fileio import MANIFEST, OutputError, staged_folder
from tests.conftest import REPO


def _earlier_output(out: Path, command: str = "cmd") -> None:
    with staged_folder(out, command) as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "a.txt").write_text("old")
        (tmp / "top.txt").write_text("old")


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_dot_dot_in_out_names_the_parent_and_stages_beside_it(tmp_path: Path) -> None:
    # `--out ..` from inside an earlier output's subfolder: the staging folder went inside
    # the output (out.parent of '.../sub/..' is '.../sub') and the swap refused it
    out = tmp_path / "o"
    _earlier_output(out)
    with staged_folder(out / "sub" / "..", "cmd") as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "new.txt"]
    assert _hidden(tmp_path) == []


def test_check_output_folder_returns_a_normalised_path(tmp_path: Path) -> None:
    got = fileio.check_output_folder(tmp_path / "a" / ".." / "b", "cmd")
    assert got == tmp_path / "b"


def test_parent_folders_made_for_a_failed_output_are_removed(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), staged_folder(tmp_path / "typo" / "deep" / "out", "cmd"):
        raise RuntimeError("the work failed")
    assert list(tmp_path.iterdir()) == []


def test_parent_folders_that_existed_are_kept(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    with pytest.raises(RuntimeError), staged_folder(tmp_path / "mine" / "a" / "out", "cmd"):
        raise RuntimeError("the work failed")
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]
    assert list((tmp_path / "mine").iterdir()) == []


def test_sigterm_mid_write_leaves_no_staging_folder(tmp_path: Path) -> None:
    # `kill PID` (or a scheduler's time limit) used to end the process at once, leaving the
    # hidden staging folder (the whole half-written output) beside --out
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from net2fair.fileio import staged_folder
        try:
            with staged_folder({str(tmp_path / "out")!r}, "cmd") as tmp:
                (tmp / "half.bin").write_bytes(b"x" * 1000)
                os.kill(os.getpid(), signal.SIGTERM)
                signal.pause()  # the default action would end the process here
        except KeyboardInterrupt:
            sys.exit(130)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], timeout=120)
    assert proc.returncode == 130
    assert list(tmp_path.iterdir()) == []


def test_sigterm_handler_is_restored_after_the_block(tmp_path: Path) -> None:
    import signal

    before = signal.getsignal(signal.SIGTERM)
    with staged_folder(tmp_path / "out", "cmd") as tmp:
        (tmp / "f").write_text("x")
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_failed_swap_puts_the_earlier_output_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "o"
    _earlier_output(out)
    real = os.replace

    def replace(src: str | Path, dst: str | Path) -> None:
        if "net2fair-tmp-" in Path(src).name:  # the new folder into place
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(fileio.os, "replace", replace)
    with pytest.raises(OSError), staged_folder(out, "cmd") as tmp:
        (tmp / "new.txt").write_text("new")
    monkeypatch.undo()
    assert (out / "top.txt").read_text() == "old"
    assert (out / "sub" / "a.txt").read_text() == "old"
    assert _hidden(tmp_path) == []


def test_a_file_put_in_the_output_just_before_the_swap_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the last check passes, then the user saves a file into the old output: it was
    # deleted with the old output
    out = tmp_path / "o"
    _earlier_output(out)
    real = fileio.check_output_folder
    calls = []

    def check(*args: object, **kwargs: object) -> Path:
        got = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:  # the check just before the swap
            (out / "notes.txt").write_text("mine")
        return got

    monkeypatch.setattr(fileio, "check_output_folder", check)
    with pytest.raises(OutputError, match="notes.txt"), staged_folder(out, "cmd") as tmp:
        (tmp / "new.txt").write_text("new")
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "top.txt").read_text() == "old"
    assert _hidden(tmp_path) == []


def test_a_symlink_out_is_refused_naming_the_link(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(OutputError, match="symbolic link"):
        fileio.check_output_folder(tmp_path / "link", "cmd")


MODEL_LEGACY = ("config.yaml", "model.safetensors", "metrics.json", "samples.png")


@pytest.mark.parametrize(
    "mine", [["config.yaml"], ["metrics.json"], ["samples.png", "config.yaml"]]
)
def test_a_users_folder_with_a_model_file_name_is_not_an_old_model(
    tmp_path: Path, mine: list[str]
) -> None:
    # a folder holding only the user's config.yaml passed as a pre-manifest model folder
    # and was replaced by the next model written there (import-net2net --out, train)
    out = tmp_path / "mine"
    out.mkdir()
    for name in mine:
        (out / name).write_text("the user's")
    with pytest.raises(OutputError, match="no earlier"):
        fileio.write_folder_atomically(
            out, lambda tmp: (tmp / "model.safetensors").write_text("w"), legacy=MODEL_LEGACY
        )
    assert sorted(p.name for p in out.iterdir()) == sorted(mine)
    assert all((out / name).read_text() == "the user's" for name in mine)


def test_a_model_folder_from_before_manifests_is_still_replaced(tmp_path: Path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    for name in ("config.yaml", "model.safetensors", "metrics.json"):
        (out / name).write_text("old")
    fileio.write_folder_atomically(
        out, lambda tmp: (tmp / "model.safetensors").write_text("new"), legacy=MODEL_LEGACY
    )
    assert (out / "model.safetensors").read_text() == "new"
    assert not (out / "config.yaml").exists()
