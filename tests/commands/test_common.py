"""The limits every command puts on its numbers (net2fair/commands/common.py): a bad
number is a one-line usage error that writes nothing, and any number gives a result or
such an error. In-process through ``net2fair.cli.main``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from net2fair.cli import main
from tests.commands.conftest import _one_line_error

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
