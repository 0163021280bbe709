"""The ``net2fair`` command: a thin layer over the package API.

Every command exits non-zero with a one-line reason on bad input: 2 for a usage or
configuration mistake, 1 when the work itself could not be done.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

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


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def _common(p: argparse.ArgumentParser, *, seed: bool = True) -> None:
    p.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="where to run: auto picks CUDA when present",
    )
    if seed:
        p.add_argument(
            "--seed", type=int, default=0, help="random seed (CPU runs are reproducible)"
        )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _load_model(model: str, device: str):  # noqa: ANN202
    from net2fair.models.translator import Translator
    from net2fair.training.engine import resolve_device

    return Translator.load(model, device=resolve_device(device))


def _check_domain(t, name: str) -> str:  # noqa: ANN001
    from net2fair.models.translator import UnknownDomainError

    try:
        return t.domains[t.domain_index(name)]
    except UnknownDomainError as e:
        raise CommandError(str(e), 2) from None


def _plan_images(source: str):  # noqa: ANN202
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


def _check_out(out: str, command: str, inputs: Sequence[str] = ()) -> Path:
    """The output rule, checked before any work: ``out`` is new, empty, or an earlier
    output of this command and nothing else (it is then replaced)."""
    from net2fair.fileio import OutputError, check_output_folder

    try:
        return check_output_folder(out, command, inputs=inputs)
    except OutputError as e:
        raise CommandError(str(e), 2) from None


def _at_least(value: float, lowest: float, option: str) -> None:
    if not value >= lowest:  # also refuses NaN
        raise CommandError(f"{option} must be at least {lowest:g}, got {value}", 2)


def _in_range(value: float, lowest: float, highest: float, option: str) -> None:
    if not lowest <= value <= highest:  # also refuses NaN
        raise CommandError(f"{option} must be in [{lowest:g}, {highest:g}], got {value}", 2)


#: options a resumed run accepts; everything else comes from the run's config.yaml
RESUME_OPTIONS = "--ae-steps, --cinn-steps, --stage, --device, -q"


# --------------------------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    from net2fair.config import load_config, validate_config
    from net2fair.training.run import train

    files = [a for a in args.items if "=" not in a]
    overrides = [a for a in args.items if "=" in a]
    for option, value in (("--ae-steps", args.ae_steps), ("--cinn-steps", args.cinn_steps)):
        if value is not None:
            _at_least(value, 0, option)
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


# ------------------------------------------------------------------------------- project
def cmd_project(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from net2fair.data.images import save_image_atomic
    from net2fair.fileio import safe_join, staged_folder
    from net2fair.pipeline import iter_batches
    from net2fair.viz import image_grid

    _in_range(args.alpha, 0.0, 1.0, "--alpha")
    _in_range(args.batch_size, 1, MAX_BATCH, "--batch-size")
    out = _check_out(args.out, "project", inputs=[args.images])
    torch.manual_seed(args.seed)
    t = _load_model(args.model, args.device)
    source = _check_domain(t, args.source)
    targets = (
        t.domains if (not args.to or "all" in args.to) else [_check_domain(t, d) for d in args.to]
    )
    plan = _plan_images(args.images)
    overview: list[list] = []
    used_names: set[Path] = set()

    def out_name(rel: Path) -> Path:
        # face.jpg and face.png both exist in real folders: keep the full name for the second
        name = rel.with_suffix(".png")
        if name in used_names:
            name = rel.with_name(rel.name + ".png")
        used_names.add(name)
        return name

    bar = tqdm(
        total=plan.wanted, desc="images", disable=args.quiet, dynamic_ncols=True, file=sys.stderr
    )
    # full-size decoding (draft=False): the projections are this command's output
    batches = iter_batches(plan, t.resolution, args.batch_size, progress=bar.update, draft=False)
    # Built aside and renamed into place at the end: an interrupted run leaves nothing.
    with staged_folder(out, "project", inputs=[args.images]) as tmp:
        try:
            for batch in batches:
                rels = [out_name(p.relative_to(plan.root)) for p in batch.paths]
                x = batch.tensor(t.device)
                proj = t.project(x, source=source, targets=targets, alpha=args.alpha)
                for i, rel in enumerate(rels):
                    for name in targets:
                        save_image_atomic(proj[name][i].cpu(), safe_join(tmp, name, rel))
                    if len(overview) < OVERVIEW_ROWS:
                        overview.append([x[i].cpu(), *[proj[n][i].cpu() for n in targets]])
        finally:
            bar.close()
        skipped = len(plan.skipped) + len(plan.scanned)
        if plan.used == 0:
            raise CommandError(f"no usable image in {args.images} ({skipped} skipped)")
        grid = image_grid(overview, col_labels=[f"input ({source})", *targets])
        grid.save(tmp / "overview.png")
    print(
        f"projected {plan.used} image(s) from '{source}' to {', '.join(targets)}; "
        f"skipped {skipped}; written to {out}"
    )
    return 0


# -------------------------------------------------------------------------------- sample
def cmd_sample(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from net2fair.data.images import save_image_atomic
    from net2fair.fileio import safe_join, staged_folder
    from net2fair.viz import image_grid

    _at_least(args.n, 1, "-n")
    _in_range(args.batch_size, 1, MAX_BATCH, "--batch-size")
    if not (0 < args.temperature <= MAX_TEMPERATURE):  # also refuses NaN
        raise CommandError(
            f"--temperature must be in (0, {MAX_TEMPERATURE:g}], got {args.temperature}", 2
        )
    out = _check_out(args.out, "sample")
    t = _load_model(args.model, args.device)
    domains = t.domains if args.domain in (None, "all") else [_check_domain(t, args.domain)]
    width = max(4, len(str(args.n - 1)))
    generator = torch.Generator().manual_seed(args.seed)  # batches continue one stream
    rows: list[list] = []
    with staged_folder(out, "sample") as tmp:
        starts = range(0, args.n, args.batch_size)
        for start in tqdm(
            starts, desc="samples", disable=args.quiet, dynamic_ncols=True, file=sys.stderr
        ):
            b = min(args.batch_size, args.n - start)
            shared = t.sample_shared(
                domains, n=b, temperature=args.temperature, generator=generator
            )
            for name in domains:
                for i, img in enumerate(shared[name].cpu()):
                    path = safe_join(tmp, name, f"sample_{start + i:0{width}d}.png")
                    save_image_atomic(img, path)
            for i in range(min(b, OVERVIEW_ROWS - len(rows))):
                rows.append([shared[d][i].cpu() for d in domains])
        image_grid(rows, col_labels=domains).save(tmp / "samples.png")
    shown = f"; samples.png shows the first {len(rows)}" if args.n > len(rows) else ""
    print(
        f"wrote {args.n} sample(s) for {', '.join(domains)} to {out} "
        f"(each row of samples.png shares one residual{shown})"
    )
    return 0


# --------------------------------------------------------------------------------- synth
def cmd_synth(args: argparse.Namespace) -> int:
    from net2fair.fileio import staged_folder
    from net2fair.synth.files import write_benchmark

    _at_least(args.n, 1, "--n")
    _in_range(args.resolution, 32, 256, "--resolution")
    out = _check_out(args.out, "synth")
    t0 = time.perf_counter()
    with staged_folder(out, "synth") as tmp:
        folders = write_benchmark(
            tmp, n=args.n, resolution=args.resolution, seed=args.seed, progress=not args.quiet
        )
    dt = time.perf_counter() - t0
    print(
        f"wrote {args.n} images for each of {', '.join(folders)} at {args.resolution} px "
        f"to {args.out} in {dt:.1f} s (labels.csv in each folder)"
    )
    return 0


# -------------------------------------------------------------------------------- report
def _write_folder(
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


def cmd_report(args: argparse.Namespace) -> int:
    import shlex

    from net2fair import report
    from net2fair.training.engine import resolve_device

    if args.max_images is not None:
        _at_least(args.max_images, 1, "--max-images")
    if not Path(args.images).exists():
        raise CommandError(f"{args.images}: no such file or folder", 2)
    _check_out(args.out, "report", inputs=[args.images])
    t = _load_model(args.model, args.device)
    source = _check_domain(t, args.source)
    targets = "all" if (not args.to or "all" in args.to) else [_check_domain(t, d) for d in args.to]
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
            command=" ".join(shlex.quote(a) for a in ["net2fair", *sys.argv[1:]]),
        )
    except ValueError as e:
        raise CommandError(str(e).splitlines()[0]) from None
    out = _write_folder(
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
    import shlex

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
    _check_out(args.out, "audit", inputs=[args.images])
    t = _load_model(args.model, args.device)
    domain = _check_domain(t, args.domain)
    compare = None
    if args.to:
        compare = "all" if "all" in args.to else [_check_domain(t, d) for d in args.to]
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
            command=" ".join(shlex.quote(a) for a in ["net2fair", *sys.argv[1:]]),
        )
    except ValueError as e:
        raise CommandError(str(e).splitlines()[0]) from None
    out = _write_folder(audit.write, a, args.out, "audit", audit.AuditWriteError, [args.images])
    for line in a.sentences():
        print(line)
    print(
        f"audit of {a.n} image(s) written to {out / 'index.html'} (weights in "
        f"{out / 'weights.csv'}); skipped {a.data['n_skipped']}"
    )
    return 0


# ---------------------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    from net2fair.demo import run_demo
    from net2fair.training.engine import resolve_device

    _in_range(args.n, 1, MAX_EVAL_FACES, "--n")
    _check_out(args.out, "demo")
    t0 = time.perf_counter()
    result = run_demo(
        args.out, model="demo", n=args.n, seed=args.seed, device=resolve_device(args.device)
    )
    print(
        f"net2fair demo: {args.n} rendered faces per dataset projected into every dataset "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    for line in result.headlines:
        print(f"  {line}")
    print("  from the bias report on the photo faces:")
    for line in result.report_sentences:
        if "skin tone" in line:
            print(f"    {line}")
    print(
        f"outputs in {result.out}/: projections.png, samples.png, summary.md, summary.json, "
        f"report/index.html"
    )
    return 0


# ----------------------------------------------------------------------------- benchmark
def _is_benchmark_json(path: Path) -> bool:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"pairs", "model"} <= set(data)


def cmd_benchmark(args: argparse.Namespace) -> int:
    import os

    import torch

    from net2fair.synth.benchmark import format_table, run_benchmark
    from net2fair.synth.estimators import load_estimators
    from net2fair.synth.priors import DOMAINS
    from net2fair.training.checkpoint import atomic_write

    _in_range(args.n, 1, MAX_EVAL_FACES, "--n")
    if args.json:  # refuse an unusable destination before the work, not after
        dest = Path(args.json)
        if dest.is_dir():
            raise CommandError(f"{dest}: --json names a folder; give a file name", 2)
        if dest.exists() and not _is_benchmark_json(dest):
            raise CommandError(
                f"{dest}: exists and is not an earlier benchmark result; --json replaces only "
                "those: give a new file name",
                2,
            )
        parent = next(p for p in (dest.parent, *dest.parent.parents) if p.exists())
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise CommandError(f"{dest}: cannot write here ({parent} is not a writable folder)")
    t0 = time.perf_counter()
    t = _load_model(args.model, args.device)
    foreign = [d for d in t.domains if d not in DOMAINS]
    if foreign:
        raise CommandError(
            f"{args.model}: the bias benchmark needs a model trained on the synthetic datasets "
            f"({', '.join(DOMAINS)}; see `net2fair synth`), this one has {', '.join(foreign)}",
            2,
        )
    estimators = load_estimators(t.device)
    if estimators is None:
        raise CommandError(
            "the attribute estimators (net2fair/assets/estimators) are not installed; "
            "reinstall net2fair or train them with python -m net2fair.synth.train_estimators"
        )
    torch.manual_seed(args.seed)
    result = run_benchmark(
        t, estimators=estimators, n=args.n, seed=args.seed, projection=args.projection
    )
    extra = f" --projection {args.projection}" if args.projection != "flow" else ""
    print(f"$ net2fair benchmark {args.model} --n {args.n} --seed {args.seed}{extra}\n")
    print(format_table(result))
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    if args.json:
        payload = result.to_json()
        atomic_write(Path(args.json), lambda p: p.write_text(payload))
        print(f"figures written to {args.json}")
    return 0


# ------------------------------------------------------------------------- import-net2net
def cmd_import_net2net(args: argparse.Namespace) -> int:
    from net2fair.fileio import OutputError
    from net2fair.importers.net2net import Net2NetImportError, import_net2net
    from net2fair.training.engine import resolve_device

    stats: dict[str, str] = {}
    for spec in args.stats or []:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder or name in stats:
            raise CommandError(f"--stats expects NAME=DIR once per dataset, got '{spec}'", 2)
        stats[name] = folder
    try:
        result = import_net2net(
            args.source,
            args.out,
            domains=args.domains,
            stats_folders=stats,
            device=resolve_device(args.device) if stats else "cpu",
        )
    except (Net2NetImportError, OutputError) as e:
        raise CommandError(str(e), 2) from None
    a = result.architecture
    print(
        f"imported {result.checkpoint} ({a.resnet} encoder, BigGAN-{a.resolution} decoder "
        f"chn {a.chn}, z_dim {a.z_dim}, {a.n_flows} flow blocks) with datasets "
        f"{', '.join(result.domains)}; model written to {result.model_dir}"
    )
    for note in result.notes:
        print(f"  note: {note}")
    print("  weights: trained and released by the net2net authors (github.com/CompVis/net2net)")
    return 0


# ---------------------------------------------------------------------------------- view
def cmd_view(args: argparse.Namespace) -> int:
    import subprocess

    from net2fair.viewer import PAGE as app

    if not app.is_file():
        raise CommandError(f"{app}: the viewer page is missing from the installed package")
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.address",
        args.address,
        "--server.port",
        str(args.port),
        "--browser.gatherUsageStats",
        "false",
        "--server.maxUploadSize",
        "20",
        "--client.toolbarMode",
        "minimal",
        "--",
        "--model",
        args.model,
    ]
    if args.models_dir:
        cmd += ["--models-dir", args.models_dir]
    if args.examples:
        cmd += ["--examples", args.examples]
    proc = subprocess.Popen(cmd, preexec_fn=_die_with_parent)

    def stop(signum: int, frame: object) -> None:
        # the server is our child: stopping `net2fair view` stops it too, never orphaned
        proc.terminate()

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                proc.terminate()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _die_with_parent() -> None:
    """In the viewer's server process (Linux): get SIGTERM when `net2fair view` dies,
    even by SIGKILL, so no server is left listening."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        try:
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM))
        except (OSError, AttributeError):
            pass


# ---------------------------------------------------------------------------------- main
EXAMPLES = {
    "train": """examples:
  net2fair train --domain photo=photos/ --domain anime=anime/ --resolution 64 --out runs/pair
  net2fair train configs/default.yaml data.domains.photo=data/photos data.domains.anime=data/anime
  net2fair train --resume runs/pair              # continue where it stopped""",
    "project": """examples:
  net2fair project runs/pair/model face.png --from photo --to all --out projected/
  net2fair project demo faces/ --from photo --to anime --alpha 0.5 --out half/""",
    "sample": """examples:
  net2fair sample runs/pair/model --domain anime -n 16 --out samples/
  net2fair sample demo -n 4 --out samples/       # the same residuals in every dataset""",
    "synth": """examples:
  net2fair synth bench-data --n 2000 --resolution 64 --seed 0""",
    "report": """examples:
  net2fair report demo faces/ --from photo --out report/          # every dataset of the model
  net2fair report runs/pair/model photos/ --from photo --to anime --max-images 500 --out rep/""",
    "audit": """examples:
  net2fair audit demo portraits/ --domain portrait --out audit/
  net2fair audit runs/pair/model photos/ --domain photo --to anime --clip 5 --out a/""",
    "demo": """examples:
  net2fair demo                          # writes net2fair-demo/
  net2fair demo --out demo-out --n 200 --seed 1""",
    "benchmark": """examples:
  net2fair benchmark                                  # the shipped demo model, 200 faces each
  net2fair benchmark runs/demo/model --n 500 --json bias.json
  net2fair benchmark demo --projection gaussian-ot    # a linear baseline without the flow""",
    "import-net2net": """examples:
  net2fair import-net2net logs/2020-11-30T23-32-28_celeba_celebahq_ffhq_256 --out ccfq
  net2fair import-net2net epoch=000004.ckpt --domains Photography,Anime --out anime
  net2fair import-net2net RUN --out ccfq --stats CelebA=celeba/ --stats FFHQ=ffhq/""",
    "view": """examples:
  net2fair view                 # the shipped demo model
  net2fair view runs/pair/model --models-dir runs/ --examples ../shared/fixtures/real-faces""",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="net2fair",
        description="Make a dataset's bias visible: project faces across datasets.",
        formatter_class=_Formatter,
    )
    from net2fair import __version__

    parser.add_argument("--version", action="version", version=f"net2fair {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, helptext: str, fn: Callable) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=helptext,
            description=helptext,
            epilog=EXAMPLES.get(name),
            formatter_class=_Formatter,
        )
        p.set_defaults(fn=fn)
        return p

    p = add("train", "train the autoencoder and the cINN on two or more image folders", cmd_train)
    p.add_argument(
        "items",
        nargs="*",
        metavar="CONFIG.yaml|key=value",
        help="config files (merged in order) and key=value overrides",
    )
    p.add_argument(
        "--domain", action="append", metavar="NAME=DIR", help="a dataset: name and image folder"
    )
    p.add_argument("--resolution", type=int, help="image size (power of two, 32-256)")
    p.add_argument(
        "--out", help="run folder, new or empty (default runs/<name>); --resume continues one"
    )
    p.add_argument("--resume", metavar="RUN", help="continue the run in this folder")
    p.add_argument(
        "--stage",
        default="all",
        choices=["all", "autoencoder", "cinn"],
        help="train only one stage (cinn needs train.autoencoder_from or a finished stage 1)",
    )
    p.add_argument("--ae-steps", type=int, help="override train.autoencoder.steps")
    p.add_argument("--cinn-steps", type=int, help="override train.cinn.steps")
    _common(p, seed=False)
    p.add_argument(
        "--seed", type=int, default=None, help="override seed (default from the config: 0)"
    )

    p = add("project", "project images from one dataset onto others", cmd_project)
    p.add_argument("model", help="model folder, or 'demo'")
    p.add_argument("images", help="an image file or a folder (recursive)")
    p.add_argument("--from", dest="source", required=True, help="the dataset the images come from")
    p.add_argument("--to", action="append", help="target dataset (repeatable) or 'all' (default)")
    p.add_argument(
        "--alpha", type=float, default=1.0, help="strength: 0 = input, 1 = full projection"
    )
    p.add_argument("--out", required=True, help=OUT_HELP)
    p.add_argument("--batch-size", type=int, default=32, help="images per batch")
    _common(p)

    p = add(
        "sample",
        "sample new faces; each sample index shares one residual across datasets",
        cmd_sample,
    )
    p.add_argument("model", help="model folder, or 'demo'")
    p.add_argument("--domain", default="all", help="a dataset name, or 'all'")
    p.add_argument("-n", type=int, default=8, help="samples per dataset")
    p.add_argument(
        "--temperature", type=float, default=1.0, help="scale of the residual (lower: more typical)"
    )
    p.add_argument("--out", required=True, help=OUT_HELP)
    p.add_argument("--batch-size", type=int, default=64, help="samples per batch")
    _common(p)

    p = add(
        "synth",
        "write the synthetic benchmark (photo, portrait, anime) as image folders",
        cmd_synth,
    )
    p.add_argument("out", help=OUT_HELP)
    p.add_argument("--n", type=int, default=1000, help="images per dataset")
    p.add_argument("--resolution", type=int, default=64)
    _common(p)

    p = add("report", "bias projection report: what each dataset does to these faces", cmd_report)
    p.add_argument("model", help="model folder, or 'demo'")
    p.add_argument("images", help="an image file or a folder (recursive)")
    p.add_argument("--from", dest="source", required=True, help="the dataset the images come from")
    p.add_argument("--to", action="append", help="target dataset (repeatable) or 'all' (default)")
    p.add_argument("--out", required=True, help=OUT_HELP)
    p.add_argument("--max-images", type=int, default=None, help="use at most this many images")
    p.add_argument(
        "--layout",
        default="auto",
        choices=["auto", "ffhq", "synthetic"],
        help="face geometry for the skin region: FFHQ-aligned photos or the benchmark",
    )
    _common(p)

    p = add(
        "audit",
        "audit a dataset folder: rare images, resampling weights, images another dataset "
        "explains better",
        cmd_audit,
    )
    p.add_argument("model", help="model folder, or 'demo'")
    p.add_argument("images", help="the dataset's image folder (recursive) or one image")
    p.add_argument("--domain", required=True, help="the dataset these images belong to")
    p.add_argument("--out", required=True, help=OUT_HELP)
    p.add_argument(
        "--alpha",
        default="auto",
        help="weights ∝ p(z | domain)^-alpha (0: uniform); auto: the strongest alpha <= 1 "
        "that keeps --min-ess of the sample",
    )
    p.add_argument("--clip", type=float, default=10.0, help="largest weight (weights have mean 1)")
    p.add_argument(
        "--min-ess",
        type=float,
        default=0.5,
        help="auto alpha: the effective sample size to keep, as a share of the folder",
    )
    p.add_argument(
        "--flag-margin",
        type=float,
        default=0.0,
        help="flag when another dataset's log-density is higher by more than this (nats)",
    )
    p.add_argument(
        "--weight-flagged",
        action="store_true",
        help="weight flagged images too (default: weight 0, the weights fit the others)",
    )
    p.add_argument(
        "--to",
        action="append",
        help="also map the folder into this dataset (repeatable, or 'all') for change maps",
    )
    p.add_argument("--max-images", type=int, default=None, help="use at most this many images")
    _common(p)

    p = add("demo", "the main job on the shipped demo model and a fresh synthetic set", cmd_demo)
    p.add_argument("--out", default="net2fair-demo", help=OUT_HELP)
    p.add_argument("--n", type=int, default=60, help="evaluation faces per dataset")
    _common(p)

    p = add(
        "benchmark",
        "the bias benchmark: do projections between the synthetic datasets take on the target's "
        "planted biases and keep the face? (models trained on `net2fair synth` data)",
        cmd_benchmark,
    )
    p.add_argument("model", nargs="?", default="demo", help="model folder, or 'demo'")
    p.add_argument("--n", type=int, default=200, help="fresh evaluation faces per dataset")
    p.add_argument(
        "--projection",
        choices=["flow", "mean-shift", "gaussian-ot"],
        default="flow",
        help="what carries codes between datasets: the model's flow, or a linear baseline "
        "from the datasets' code statistics",
    )
    p.add_argument("--json", metavar="FILE", help="also write the figures here (atomically)")
    _common(p)

    p = add(
        "import-net2net",
        "import a released net2net dataset-translation model (run folder or .ckpt) as a "
        "model folder; no code in the checkpoint is run",
        cmd_import_net2net,
    )
    p.add_argument("source", help="the net2net run folder (checkpoints/, configs/) or a .ckpt")
    p.add_argument("--out", required=True, help="the model folder to write (new or empty)")
    p.add_argument(
        "--domains",
        help="dataset names in label order, comma-separated; none: the paper's labels",
    )
    p.add_argument(
        "--stats",
        action="append",
        metavar="NAME=DIR",
        help="compute this dataset's latent statistics from an image folder (repeatable); "
        "reports need them for the latent Frechet distance",
    )
    _common(p)

    p = add("view", "start the Streamlit comparison viewer", cmd_view)
    p.add_argument("model", nargs="?", default="demo", help="model folder, or 'demo'")
    p.add_argument("--address", default="127.0.0.1", help="listen address (localhost by default)")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--models-dir", help="also offer the model folders found under this folder")
    p.add_argument("--examples", help="a folder of example faces (one subfolder per dataset)")
    return parser


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
