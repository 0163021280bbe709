"""The tutorial notebook: generated from its source, committed without outputs, and it runs.

The notebook is executed top to bottom with nbclient in a kernel on this interpreter
(the project's venv), the way a class would run it; any error in any cell fails the test.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
FIXTURES = REPO.parent / "shared" / "fixtures" / "real-faces"
#: the issue's promise: top to bottom in under 3 minutes on 2 CPU cores (it takes ~20 s)
TIME_BUDGET_S = 180


def _builder():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("build_tutorial", EXAMPLES / "build_tutorial.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_percent_format_parses_into_cells():
    text = (
        "# %% [markdown]\n# # Title\n#\n# Some *text*.\n\n"
        "# %%\nx = 1\n\n\n# %%\n\n# %% [markdown]\n#no space\n"
        "# %%\ny = x + 1\n# a comment stays code\n"
    )
    assert _builder().parse_percent(text) == [
        ("markdown", "# Title\n\nSome *text*."),
        ("code", "x = 1"),
        ("markdown", "no space"),
        ("code", "y = x + 1\n# a comment stays code"),
    ]


def test_markdown_cell_with_code_line_is_an_error():
    with pytest.raises(ValueError, match="must be a comment"):
        _builder().parse_percent("# %% [markdown]\n# fine\nx = 1\n")


def test_committed_notebook_is_generated_from_source_and_has_no_outputs():
    builder = _builder()
    committed = (EXAMPLES / "tutorial.ipynb").read_text(encoding="utf-8")
    assert committed == builder.render((EXAMPLES / "tutorial.py").read_text(encoding="utf-8")), (
        "examples/tutorial.ipynb is stale: run python examples/build_tutorial.py"
    )
    nb = nbformat.reads(committed, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) >= 10
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert builder.main(["--check"]) == 0


@pytest.fixture
def kernel_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec for THIS interpreter, so the notebook runs in the project's venv and
    not in whatever 'python3' kernel a user-level Jupyter install points at."""
    spec = tmp_path / "jupyter" / "kernels" / "net2fair-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "net2fair test", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    # Inline figures (the kernel's default) unless CI forced a backend; temp files in tmp_path.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    return "net2fair-test"


@pytest.mark.slow
def test_tutorial_runs_top_to_bottom(kernel_name: str):
    nb = nbformat.read(EXAMPLES / "tutorial.ipynb", as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=TIME_BUDGET_S,
        resources={"metadata": {"path": str(EXAMPLES)}},
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    elapsed = time.perf_counter() - start
    assert elapsed < TIME_BUDGET_S, f"tutorial took {elapsed:.0f} s"

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    # priors chart, faces per dataset, one projection, projection sheet, shared samples,
    # slider, posterior faces, real photo (when the fixtures are there), ITA chart, gallery
    assert len(figures) >= 9 + FIXTURES.is_dir(), f"only {len(figures)} inline figures"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "index.html" in text and "per_image.csv" in text
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "<table" in html  # the posterior/typicality table
    md = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "| skin_tone |" in md  # the priors table
    assert "Projected into anime, skin tone lightens" in md
    if FIXTURES.is_dir():
        assert "real photo: " in text and "skipping" not in text
