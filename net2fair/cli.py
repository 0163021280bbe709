"""The ``net2fair`` command: a thin layer over the package API.

Every command exits non-zero with a one-line reason on bad input: 2 for a usage or
configuration mistake, 1 when the work itself could not be done.

This module is the entry point (``net2fair = "net2fair.cli:main"``): it parses the
arguments and turns every known failure into that one line. The parser lives in
:mod:`net2fair.commands.parser` and the commands in :mod:`net2fair.commands`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from net2fair.commands.common import (
    MAX_AUDIT_ALPHA,
    MAX_BATCH,
    MAX_EVAL_FACES,
    MAX_TEMPERATURE,
    OUT_HELP,
    OVERVIEW_ROWS,
    CommandError,
)
from net2fair.commands.models import cmd_import_net2net, cmd_view
from net2fair.commands.parser import EXAMPLES, build_parser
from net2fair.commands.project import cmd_project, cmd_sample
from net2fair.commands.report import cmd_audit, cmd_report
from net2fair.commands.synth import cmd_benchmark, cmd_demo, cmd_synth
from net2fair.commands.train import RESUME_OPTIONS, cmd_train

__all__ = [
    "EXAMPLES",
    "MAX_AUDIT_ALPHA",
    "MAX_BATCH",
    "MAX_EVAL_FACES",
    "MAX_TEMPERATURE",
    "OUT_HELP",
    "OVERVIEW_ROWS",
    "RESUME_OPTIONS",
    "CommandError",
    "build_parser",
    "cmd_audit",
    "cmd_benchmark",
    "cmd_demo",
    "cmd_import_net2net",
    "cmd_project",
    "cmd_report",
    "cmd_sample",
    "cmd_synth",
    "cmd_train",
    "cmd_view",
    "main",
]


def _known_errors() -> tuple[type[BaseException], ...]:
    from net2fair.config import ConfigError
    from net2fair.data.images import ImageError
    from net2fair.models.translator import ModelLoadError, UnknownDomainError
    from net2fair.training.autoencoder import TrainingDiverged
    from net2fair.training.checkpoint import CheckpointError
    from net2fair.training.engine import DeviceError
    from net2fair.training.run import RunError

    return (
        ConfigError,
        ImageError,
        ModelLoadError,
        UnknownDomainError,
        TrainingDiverged,
        CheckpointError,
        DeviceError,
        RunError,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``net2fair ARGV``; the exit status: 0, 1 (the work failed) or 2 (usage)."""
    parser = build_parser()
    # key=value overrides may stand anywhere among train's options
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command == "train" and all("=" in e and not e.startswith("-") for e in extra):
            args.items += extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    import os

    quiet_rank = os.environ.get("RANK", "0") != "0"
    logging.basicConfig(
        level=logging.WARNING if quiet_rank else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.fn(args) or 0)
    except CommandError as e:
        print(f"net2fair: error: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("net2fair: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        from net2fair.config import ConfigError
        from net2fair.models.translator import UnknownDomainError
        from net2fair.training.run import RunFolderError

        if isinstance(e, _known_errors()):
            code = 2 if isinstance(e, (ConfigError, UnknownDomainError, RunFolderError)) else 1
            print(
                f"net2fair: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                file=sys.stderr,
            )
            return code
        if isinstance(e, OSError):
            where = f"{e.filename}: " if getattr(e, "filename", None) else ""
            print(f"net2fair: error: {where}{e.strerror or e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    raise SystemExit(main())
