"""Write ``examples/tutorial.ipynb`` from its source ``examples/tutorial.py``.

The source is a plain Python script in the "percent" format that Jupytext, VS Code and
Spyder read as a notebook: ``# %%`` starts a code cell, ``# %% [markdown]`` a Markdown
cell whose lines are comments. The notebook is generated from it with outputs stripped,
so the two never drift apart; a test fails when the committed notebook is stale.

    python examples/build_tutorial.py            # rewrite tutorial.ipynb
    python examples/build_tutorial.py --check    # exit 1 if tutorial.ipynb is out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "tutorial.py"
NOTEBOOK = HERE / "tutorial.ipynb"

_MARKER = re.compile(r"^# %%(?P<kind>\s*\[(?:markdown|md)\])?\s*$")


def _trim(lines: list[str]) -> list[str]:
    """Drop the blank lines at both ends of a cell (formatters put them between cells)."""
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def _uncomment(line: str) -> str:
    if line.startswith("# "):
        return line[2:]
    if line.startswith("#"):
        return line[1:]
    raise ValueError(f"a Markdown cell line must be a comment, got {line!r}")


def parse_percent(text: str) -> list[tuple[str, str]]:
    """Split a percent-format script into cells: ``[(kind, source)]``, kind ``"code"`` or
    ``"markdown"``. Text before the first marker becomes a code cell unless it is blank;
    empty cells are dropped."""
    cells: list[tuple[str, list[str]]] = [("code", [])]
    for line in text.splitlines():
        m = _MARKER.match(line)
        if m:
            cells.append(("markdown" if m.group("kind") else "code", []))
        else:
            cells[-1][1].append(line)
    out = []
    for kind, lines in cells:
        lines = _trim(lines)
        if kind == "markdown":
            lines = [_uncomment(line) for line in lines]
        if lines:
            out.append((kind, "\n".join(lines)))
    return out


def build_notebook(text: str) -> nbformat.NotebookNode:
    """A notebook (nbformat 4, no outputs, stable cell ids) from percent-format source."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for i, (kind, source) in enumerate(parse_percent(text)):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        # Stable ids keep the generated file identical from run to run.
        nb.cells.append(make(source, id=f"cell-{i:02d}"))
    nbformat.validate(nb)
    return nb


def render(text: str) -> str:
    """The notebook file's exact text for the given source."""
    return nbformat.writes(build_notebook(text)) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the notebook is stale")
    args = parser.parse_args(argv)
    wanted = render(SOURCE.read_text(encoding="utf-8"))
    have = NOTEBOOK.read_text(encoding="utf-8") if NOTEBOOK.is_file() else None
    if args.check:
        if have != wanted:
            print(f"{NOTEBOOK.name} is out of date: run python examples/build_tutorial.py")
            return 1
        print(f"{NOTEBOOK.name} is up to date")
        return 0
    if have != wanted:
        NOTEBOOK.write_text(wanted, encoding="utf-8")
        print(f"wrote {NOTEBOOK}")
    else:
        print(f"{NOTEBOOK.name} already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
