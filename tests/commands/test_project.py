"""``net2fair project`` and ``net2fair sample`` (net2fair/commands/project.py): every
target written and equal to the Python API, samples per dataset and in batches, the
bounded overview, never writing into the input folder.

The runs marked slow start the command in a subprocess as a user would; the others run
in-process through ``net2fair.cli.main``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from net2fair import Translator
from tests.commands.conftest import _cli, _one_line_error
from tests.conftest import run_cli


@pytest.mark.slow
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


@pytest.mark.slow
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


# ------------------------------------------------- 1-4: nothing of the user's replaced


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


# ------------------------------------------------------------------- 6-10: the numbers


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
