"""The one error the importer raises for bad input, and the one-line form of a caught one."""

from __future__ import annotations


class Net2NetImportError(ValueError):
    """A checkpoint or run folder that cannot be imported; one line naming the file."""

    # shown, and pickled, under the package it is imported from (as when it was one module)
    __module__ = "net2fair.importers.net2net"


def _one_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message (its class name if it has none),
    non-printable characters escaped, cut to 160 characters."""
    line = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), type(err).__name__)
    line = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in line)
    return line if len(line) <= 160 else line[:157] + "..."
