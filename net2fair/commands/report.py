"""``net2fair report`` and ``net2fair audit``: the bias projection report and the dataset
audit, each a folder with an index.html."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from net2fair.commands.common import (
    MAX_AUDIT_ALPHA,
    CommandError,
    at_least,
    check_domain,
    check_out,
    command_line,
    load_model,
    write_folder,
)


def cmd_report(args: argparse.Namespace) -> int:
    """Build the bias projection report on a folder and write it to ``--out``."""
    from net2fair import report
    from net2fair.training.engine import resolve_device

    if args.max_images is not None:
        at_least(args.max_images, 1, "--max-images")
    if not Path(args.images).exists():
        raise CommandError(f"{args.images}: no such file or folder", 2)
    check_out(args.out, "report", inputs=[args.images])
    t = load_model(args.model, args.device)
    source = check_domain(t, args.source)
    targets = "all" if (not args.to or "all" in args.to) else [check_domain(t, d) for d in args.to]
    try:
        rep = report.build(
            t,
            args.images,
            source=source,
            targets=targets,
            max_images=args.max_images,
            seed=args.seed,
            layout=args.layout,
            device=resolve_device(args.device),
            progress=not args.quiet,
            command=command_line(sys.argv[1:]),
        )
    except ValueError as e:
        raise CommandError(str(e).splitlines()[0]) from None
    out = write_folder(
        report.write, rep, args.out, "report", report.ReportWriteError, [args.images]
    )
    for line in rep.sentences():
        print(line)
    print(
        f"report on {rep.n} image(s) written to {out / 'index.html'}; "
        f"skipped {rep.data['n_skipped']}"
    )
    return 0


# --------------------------------------------------------------------------------- audit
def cmd_audit(args: argparse.Namespace) -> int:
    """Audit a dataset folder (rare images, resampling weights, images another dataset
    explains better) and write it to ``--out``."""
    from net2fair import audit
    from net2fair.training.engine import resolve_device

    alpha: float | str = "auto"
    if args.alpha != "auto":
        try:
            alpha = float(args.alpha)
        except ValueError:
            msg = f"--alpha must be a number or 'auto', got {args.alpha!r}"
            raise CommandError(msg, 2) from None
        if not 0 <= alpha <= MAX_AUDIT_ALPHA:  # inf gives NaN weights, NaN is no number
            raise CommandError(
                f"--alpha must be 'auto' or a number in [0, {MAX_AUDIT_ALPHA:g}], got {args.alpha}",
                2,
            )
    if not 0 < args.min_ess <= 1:
        raise CommandError(f"--min-ess must be in (0, 1], got {args.min_ess}", 2)
    if not 1 <= args.clip < math.inf:
        raise CommandError(
            f"--clip must be a finite number >= 1 (the weights have mean 1), got {args.clip}", 2
        )
    if not math.isfinite(args.flag_margin):
        raise CommandError(f"--flag-margin must be a finite number, got {args.flag_margin}", 2)
    if args.max_images is not None and args.max_images < 1:
        raise CommandError(f"--max-images must be >= 1, got {args.max_images}", 2)
    if not Path(args.images).exists():
        raise CommandError(f"{args.images}: no such file or folder", 2)
    check_out(args.out, "audit", inputs=[args.images])
    t = load_model(args.model, args.device)
    domain = check_domain(t, args.domain)
    compare = None
    if args.to:
        compare = "all" if "all" in args.to else [check_domain(t, d) for d in args.to]
    try:
        a = audit.run(
            t,
            args.images,
            domain=domain,
            alpha=alpha,
            clip=args.clip,
            min_ess=args.min_ess,
            flag_margin=args.flag_margin,
            weight_flagged=args.weight_flagged,
            compare=compare,
            max_images=args.max_images,
            seed=args.seed,
            device=resolve_device(args.device),
            progress=not args.quiet,
            command=command_line(sys.argv[1:]),
        )
    except ValueError as e:
        raise CommandError(str(e).splitlines()[0]) from None
    out = write_folder(audit.write, a, args.out, "audit", audit.AuditWriteError, [args.images])
    for line in a.sentences():
        print(line)
    print(
        f"audit of {a.n} image(s) written to {out / 'index.html'} (weights in "
        f"{out / 'weights.csv'}); skipped {a.data['n_skipped']}"
    )
    return 0
