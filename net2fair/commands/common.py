"""What every command shares: the one-line error, the limits on numbers, the output rule,
and the model and image loading glue.

Only the standard library is imported here at module level; the package is imported
inside the functions so that ``net2fair --help`` stays fast.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from net2fair.models.translator import Translator
    from net2fair.pipeline import InputPlan

logger = logging.getLogger("net2fair")

#: rows in overview.png / samples.png (the image files hold every result)
OVERVIEW_ROWS = 16
MAX_BATCH = 4096
MAX_TEMPERATURE = 10.0
MAX_AUDIT_ALPHA = 10.0
#: benchmark and demo faces per dataset: they hold the faces in memory (about 0.1 GB per
#: thousand at 64 px), and at 10,000 the sampling error of every share is under 1%
MAX_EVAL_FACES = 10_000
OUT_HELP = (
    "output folder, built aside and put in place at the end; it must be new, empty, or an "
    "earlier output of this same command holding nothing else (that one is replaced), and "
    "may not lie inside the input folder"
)


class CommandError(Exception):
    """A user-facing failure: ``code`` 2 for usage/config mistakes, 1 otherwise."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def load_model(model: str, device: str) -> Translator:
    """The :class:`~net2fair.models.translator.Translator` in ``model`` (a folder or
    'demo') on the device ``--device`` names."""
    from net2fair.models.translator import Translator
    from net2fair.training.engine import resolve_device

    return Translator.load(model, device=resolve_device(device))


def check_domain(t: Translator, name: str) -> str:
    """The model's dataset called ``name``; an unknown name is a usage error."""
    from net2fair.models.translator import UnknownDomainError

    try:
        return t.domains[t.domain_index(name)]
    except UnknownDomainError as e:
        raise CommandError(str(e), 2) from None


def plan_images(source: str) -> InputPlan:
    """Every image of a folder (or one file) through :mod:`net2fair.pipeline`; a missing
    path is a usage error."""
    from net2fair.pipeline import plan_inputs

    try:
        plan = plan_inputs(source)
    except FileNotFoundError as e:
        raise CommandError(str(e).splitlines()[0], 2) from None
    for folder in plan.scanned:  # this command has always named these, and counted them
        logger.warning("skipped %s: is a folder named like an image; scanning it", folder)
    return plan


def check_out(out: str, command: str, inputs: Sequence[str] = ()) -> Path:
    """The output rule, checked before any work: ``out`` is new, empty, or an earlier
    output of this command and nothing else (it is then replaced)."""
    from net2fair.fileio import OutputError, check_output_folder

    try:
        return check_output_folder(out, command, inputs=inputs)
    except OutputError as e:
        raise CommandError(str(e), 2) from None


@contextmanager
def staged_output(out: str | Path, command: str, inputs: Sequence[str] = ()) -> Iterator[Path]:
    """:func:`net2fair.fileio.staged_folder` for a command: a refusal (``out`` changed
    while the command ran, or a name that would land outside it) is a one-line error;
    ``out`` is then as it was."""
    from net2fair.fileio import OutputError, staged_folder

    try:
        with staged_folder(out, command, inputs=inputs) as tmp:
            yield tmp
    except OutputError as e:
        raise CommandError(str(e).splitlines()[0]) from None


def at_least(value: float, lowest: float, option: str) -> None:
    """Refuse ``value`` (a usage error naming ``option``) below ``lowest``, or NaN."""
    if not value >= lowest:  # also refuses NaN
        raise CommandError(f"{option} must be at least {lowest:g}, got {value}", 2)


def in_range(value: float, lowest: float, highest: float, option: str) -> None:
    """Refuse ``value`` (a usage error naming ``option``) outside ``[lowest, highest]``,
    or NaN."""
    if not lowest <= value <= highest:  # also refuses NaN
        raise CommandError(f"{option} must be in [{lowest:g}, {highest:g}], got {value}", 2)


def command_line(argv: Sequence[str]) -> str:
    """The command line to record in a report or audit, shell-quoted."""
    import shlex

    return " ".join(shlex.quote(a) for a in ["net2fair", *argv])


def write_folder(
    write: Callable, obj: object, out: str, what: str, refused: type, inputs: list[str]
) -> Path:
    """Write a report or audit folder; a refused folder or a full disk is a one-line error
    (the writers remove their half-built folder, so nothing was changed)."""
    try:
        return write(obj, out, inputs=inputs)
    except refused as e:
        raise CommandError(str(e).splitlines()[0]) from None
    except OSError as e:
        raise CommandError(
            f"{out}: could not write the {what} ({e.strerror or e}); nothing was changed"
        ) from None
