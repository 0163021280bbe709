"""``net2fair train``: a new run from config files, overrides and ``--domain`` folders,
or ``--resume`` of a stopped one."""

from __future__ import annotations

import argparse
from pathlib import Path

from net2fair.commands.common import CommandError, at_least

#: options a resumed run accepts; everything else comes from the run's config.yaml
RESUME_OPTIONS = "--ae-steps, --cinn-steps, --stage, --device, -q"


def cmd_train(args: argparse.Namespace) -> int:
    """Train the autoencoder and the cINN (or one stage); print what was written."""
    from net2fair.config import load_config, validate_config
    from net2fair.training.run import train

    files = [a for a in args.items if "=" not in a]
    overrides = [a for a in args.items if "=" in a]
    for option, value in (("--ae-steps", args.ae_steps), ("--cinn-steps", args.cinn_steps)):
        if value is not None:
            at_least(value, 0, option)
    if args.resume:
        given = [f"'{a}'" for a in args.items]
        given += [
            option
            for option, value in (
                ("--domain", args.domain),
                ("--resolution", args.resolution),
                ("--seed", args.seed),
                ("--out", args.out),
            )
            if value is not None
        ]
        if given:
            raise CommandError(
                f"--resume {args.resume} continues the run with its own config.yaml; "
                f"{', '.join(given)} cannot change it (with --resume only {RESUME_OPTIONS} "
                "are allowed; start a new run with --out to change the rest)",
                2,
            )
        result = train(
            resume=args.resume,
            stage=args.stage,
            device=args.device,
            progress=not args.quiet,
            autoencoder_steps=args.ae_steps,
            cinn_steps=args.cinn_steps,
        )
    else:
        seen: set[str] = set()
        for spec in args.domain or []:
            name, sep, folder = spec.partition("=")
            if not sep or not name or not folder:
                raise CommandError(f"--domain expects NAME=DIR, got '{spec}'", 2)
            if name in seen:
                # a later override would silently replace the first folder
                raise CommandError(f"--domain '{name}' given twice; dataset names must differ", 2)
            seen.add(name)
        if args.resolution is not None:
            overrides.append(f"data.resolution={args.resolution}")
        if args.seed is not None:
            overrides.append(f"seed={args.seed}")
        cfg = load_config(files, overrides, validate=False)
        # set directly, not as data.domains.NAME=DIR overrides: a name with a dot would
        # become a nested key, and '..' an empty one
        for spec in args.domain or []:
            name, _, folder = spec.partition("=")
            cfg.data.domains[name] = str(Path(folder).resolve())
        validate_config(cfg)
        out = args.out or f"runs/{cfg.name}"
        result = train(
            cfg,
            out=out,
            stage=args.stage,
            device=args.device,
            progress=not args.quiet,
            autoencoder_steps=args.ae_steps,
            cinn_steps=args.cinn_steps,
        )
    import os

    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun only the first process reports
    data = result.metrics.get("data", {})
    if "used" in data:
        counts = ", ".join(f"{k}={v}" for k, v in data.get("train", {}).items())
        print(
            f"data: {data['used']} image(s) used (training split: {counts}); "
            f"skipped {data['skipped']}"
        )
    if result.model_dir is not None:
        m = result.metrics
        print(f"model written to {result.model_dir}")
        ae, ci = m.get("autoencoder", {}), m.get("cinn", {})
        if "val_psnr" in ae:
            print(
                f"  autoencoder: reconstruction PSNR {ae['val_psnr']:.2f} dB, L1 {ae['val_l1']:.4f}"
            )
        if "val_bits_per_dim" in ci:
            print(f"  cINN: validation {ci['val_bits_per_dim']:.4f} bits/dim")
    else:
        print(f"stage '{args.stage}' finished in {result.run_dir}")
    return 0
