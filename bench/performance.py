"""Performance figures of net2fair, each measured side by side with its baseline in one run.

    python bench/performance.py                       # every section, default sizes
    python bench/performance.py --only projection --variants loop,batched,contiguous,compile
    python bench/performance.py --only stage1 --profile

Prints one markdown table (section, measure, figure, baseline, ratio, note). Sections,
chosen with ``--only`` (names or letters):

  a  cache       stage-2 training batches drawn from the latent cache vs encoding every
                 batch of images through the frozen autoencoder, with the images in memory
                 and decoded from their files (default config at ``--cache-resolutions``,
                 untrained weights: timing only); and the one-time cost of the cache
  b  projection  one image to all K datasets: per-target loop vs batched
                 (``Translator.project``, channels_last as loaded); a contiguous (NCHW)
                 autoencoder (the layout before channels_last became the default),
                 torch.compile and one thread; at 64 px (``--model``, the shipped demo)
                 and 256 px (``--proj-config`` at that resolution, random weights), under
                 torch.inference_mode
  c  stage1      stage-1 training images/s at 64 px with the full loss, without LPIPS and
                 without the discriminator; the data path (decode into memory, batches
                 from preloaded or lazily decoded files) against the model step;
                 ``--profile`` adds torch.profiler's top 15 ops by self CPU time
  d  report      ``net2fair report`` on ``--report-sizes`` rendered faces, each in a fresh
                 subprocess: images/s and peak resident set (the child's own rusage)
  e  viewer      the Streamlit page under ``streamlit.testing.v1.AppTest``: page load to
                 the first projections (cold caches and a new session) and per change of
                 the strength slider

Every size has an option, so ``--tiny`` style runs take seconds (see
tests/test_bench_scripts.py). Images for sections a and c are rendered into a temporary
folder unless ``--data DIR`` (one subfolder per dataset) is given.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from timing import timed  # bench/timing.py

from net2fair import Translator
from net2fair.config import Config, load_config
from net2fair.data.datasets import MultiDomainDataset
from net2fair.models.autoencoder import DiagonalGaussian
from net2fair.models.losses import AutoencoderLoss
from net2fair.models.translator import build_autoencoder, build_flow
from net2fair.synth.files import write_benchmark
from net2fair.training.autoencoder import _flip
from net2fair.training.cinn import _draw, encode_dataset
from net2fair.training.engine import Runtime, StepBatchSampler, batch_indices, step_generator

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "configs" / "default.yaml"
APP = REPO / "streamlit_app.py"
SECTIONS = {"a": "cache", "b": "projection", "c": "stage1", "d": "report", "e": "viewer"}
VARIANTS = ("loop", "batched", "contiguous", "compile", "threads1")
COLUMNS = ["section", "measure", "figure", "baseline (same run)", "ratio", "note"]


@dataclass
class Row:
    section: str
    measure: str
    figure: str
    baseline: str = ""
    ratio: str = ""
    note: str = ""


def ms(sec: float) -> str:
    return f"{sec * 1000:.1f} ms" if sec < 10 else f"{sec:.1f} s"


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:120]}" if text else type(e).__name__


class Context:
    """What several sections share: arguments, a temporary folder, rendered images."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self._folders: dict[str, Path] | None = None

    def config(self, *overrides: str) -> Config:
        return load_config([DEFAULT_CONFIG], overrides)

    def folders(self) -> dict[str, Path]:
        """Dataset name -> image folder (``--data``, else a fresh render at 64 px)."""
        if self._folders is None:
            if self.args.data:
                subs = sorted(p for p in Path(self.args.data).iterdir() if p.is_dir())
                if len(subs) < 2:
                    raise SystemExit(f"--data {self.args.data}: needs one subfolder per dataset")
                self._folders = {p.name: p for p in subs}
            else:
                self._folders = write_benchmark(
                    self.tmp / "data", n=self.args.data_n, resolution=64, seed=0
                )
        return self._folders

    def file_resolution(self) -> int:
        """Side of the first image file (the rendered faces are 64 px); 0 if none is read."""
        from PIL import Image

        for folder in self.folders().values():
            for p in sorted(folder.rglob("*")):
                if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp"):
                    with Image.open(p) as im:
                        return min(im.size)
        return 0

    def dataset(self, resolution: int, *, preload: bool) -> MultiDomainDataset:
        return MultiDomainDataset(
            list(self.folders().items()), resolution=resolution, split="all", preload=preload
        )


# ---------------------------------------------------------------------- a: latent cache
def section_cache(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    for res in ctx.args.cache_resolutions:
        rows += cache_rows(ctx, res)
    return rows


def cache_rows(ctx: Context, res: int) -> list[Row]:
    """Stage-2 steps from the latent cache against encoding every batch, at ``res`` px.

    Two baselines: batches of images already decoded in memory (the encoder alone), and
    batches decoded from the image files each time (what a trainer without a cache does,
    the paper's code included)."""
    args = ctx.args
    cfg = ctx.config(f"data.resolution={res}")
    data = ctx.dataset(res, preload=True)
    files = ctx.dataset(res, preload=False)
    native = ctx.file_resolution()
    k, d, n = len(data.domain_names), cfg.autoencoder.z_dim, len(data)
    rt = Runtime(torch.device("cpu"))
    torch.manual_seed(0)
    ae = build_autoencoder(cfg).requires_grad_(False).eval()
    # channels_last, as Translator.load runs it: the fastest encoder, so the baselines are
    # not slowed down (`train` builds its cache in the default layout, ~1.2x slower at 64 px)
    ae.to(memory_format=torch.channels_last)
    flow = build_flow(cfg, k)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-4, fused=True)
    b = args.cache_batch or cfg.train.cinn.batch_size

    t0 = time.perf_counter()
    cache = encode_dataset(ae, data, rt, flips=True)
    build_s = time.perf_counter() - t0

    def flow_step(z: torch.Tensor, y: torch.Tensor) -> None:
        loss = -flow.log_prob(z, y).mean() / d
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def from_cache(step: int) -> None:
        idx = batch_indices(n, b, step, 0)
        z, y = _draw(cache, idx, step_generator(0, step), True)
        flow_step(z, y)

    def by_encoding(source: MultiDomainDataset) -> Callable[[int], None]:
        # What stage 2 costs without the cache: every batch goes through the data set and
        # the frozen encoder (no_grad, not inference_mode: z must enter autograd).
        def step_fn(step: int) -> None:
            idx = batch_indices(n, b, step, 0)
            g = step_generator(0, step)
            x = _flip(torch.stack([source[int(i)][0] for i in idx]), g)
            with torch.no_grad():
                z = ae.encode(x.contiguous(memory_format=torch.channels_last)).sample(g)
            flow_step(z, source.labels[idx])

        return step_fn

    from_cache(0)  # ActNorm's data-dependent initialisation, outside the timings
    steps = max(1, args.cache_batches)

    def per_step(fn: Callable[[int], None]) -> float:
        fn(1)
        t0 = time.perf_counter()
        for s in range(steps):
            fn(2 + s)
        return (time.perf_counter() - t0) / steps

    cached = per_step(from_cache)
    in_memory = per_step(by_encoding(data))
    from_files = per_step(by_encoding(files))
    epoch = math.ceil(n / b)
    payback = (
        f"repaid after {build_s / (in_memory - cached):.0f} stage-2 steps"
        if in_memory > cached
        else "never repaid at these sizes"
    )
    where = f"{res} px"
    return [
        Row(
            "a cache",
            f"{where}: stage-2 batch of {b} from the latent cache ({d}-d, flow "
            f"{cfg.flow.n_flows}x{cfg.flow.hidden_dim})",
            f"{ms(cached)} ({b / cached:,.0f} latents/s)",
            f"{ms(in_memory)} encoding each batch (images in memory)",
            f"{in_memory / cached:.1f}x faster",
            f"epoch of {n} images ({epoch} batches): {ms(cached * epoch)} vs "
            f"{ms(in_memory * epoch)}; mean of {steps} batches; goal >= 10x",
        ),
        Row(
            "a cache",
            f"{where}: the same against decoding and encoding each batch from the files"
            + (f" ({native} px files, resized)" if native and native != res else ""),
            f"{ms(cached)}",
            f"{ms(from_files)} decoding + encoding each batch",
            f"{from_files / cached:.1f}x faster",
            f"epoch: {ms(cached * epoch)} vs {ms(from_files * epoch)}",
        ),
        Row(
            "a cache",
            f"{where}: building the cache once ({n} images + mirror images)",
            ms(build_s),
            "",
            "",
            f"{2 * n / build_s:,.0f} encodes/s; {payback}",
        ),
    ]


# ------------------------------------------------------------------------ b: projection
def random_translator(config: Path, resolution: int) -> Translator:
    cfg = load_config([config], [f"data.resolution={resolution}"])
    cfg.model.domains = ["photo", "portrait", "anime"]
    cfg.model.priors = [1 / 3] * 3
    torch.manual_seed(0)
    t = Translator(cfg).freeze()
    t.autoencoder.to(memory_format=torch.channels_last)  # the layout Translator.load gives
    return t


def compiled(t: Translator) -> Translator:
    """A copy whose encoder, decoder and flow passes go through torch.compile."""
    tc = copy.deepcopy(t)
    tc.autoencoder.encoder.compile()
    tc.autoencoder.decoder.compile()
    # project_latents calls flow(...) and flow.inverse(...): compile both entry points.
    tc.flow.forward = torch.compile(tc.flow.forward)
    tc.flow.inverse = torch.compile(tc.flow.inverse)
    return tc


VARIANT_LABELS = {
    "loop": "one target at a time (K calls)",
    "batched": "batched (Translator.project)",
    "contiguous": "batched, contiguous (NCHW) autoencoder instead of channels_last",
    "compile": "batched, torch.compile",
    "threads1": "batched, 1 thread",
}


def variant_fn(t: Translator, x: torch.Tensor, variant: str) -> Callable[[], object]:
    """One projection of ``x`` (1, 3, R, R) from the first dataset to all, as ``variant``."""
    src = t.domains[0]
    if variant == "loop":
        return lambda: [t.project(x, src, d) for d in t.domains]
    if variant == "batched":
        return lambda: t.project(x, src, "all")
    if variant == "contiguous":
        tc = copy.deepcopy(t)
        tc.autoencoder.to(memory_format=torch.contiguous_format)
        return lambda: tc.project(x, src, "all")
    if variant == "compile":
        tc = compiled(t)
        return lambda: tc.project(x, src, "all")
    if variant == "threads1":
        threads = torch.get_num_threads()

        def one_thread() -> None:
            torch.set_num_threads(1)
            try:
                t.project(x, src, "all")
            finally:
                torch.set_num_threads(threads)

        return one_thread
    raise ValueError(f"unknown variant {variant!r}")


def measure_variant(
    t: Translator, x: torch.Tensor, variant: str, repeats: int
) -> tuple[float | None, str]:
    """(median seconds or None, note); a variant that fails here is a finding, not a crash."""
    try:
        fn = variant_fn(t, x, variant)
        with torch.inference_mode():
            t0 = time.perf_counter()
            fn()  # the warm-up call: for torch.compile, the compilation
            warm = time.perf_counter() - t0
            sec = timed(fn, repeats)
    except Exception as e:
        return None, f"failed: {first_line(e)}"
    return sec, f"first call {ms(warm)}" if variant == "compile" else ""


def section_projection(ctx: Context) -> list[Row]:
    args = ctx.args
    rows = []
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"--variants: unknown {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    shipped = Translator.load(args.model)
    threads = torch.get_num_threads()
    for res in args.resolutions:
        if shipped.resolution == res:
            t, what = shipped, f"model '{args.model}'"
        else:
            t, what = random_translator(args.proj_config, res), f"{args.proj_config.name}, random"
        x = torch.rand(1, 3, res, res, generator=torch.Generator().manual_seed(0)) * 2 - 1
        results = {v: measure_variant(t, x, v, args.proj_repeats) for v in variants}
        loop = results.get("loop", (None, ""))[0]
        goal = "< 150 ms" if res <= 64 else "< 1 s" if res <= 256 else ""
        for v in variants:
            sec, note = results[v]
            if v == "batched" and goal:
                note = f"goal {goal}, >= 1.5x vs loop" + (f"; {note}" if note else "")
            rows.append(
                Row(
                    "b projection",
                    f"1 image to {len(t.domains)} datasets, {res} px ({what}): "
                    + VARIANT_LABELS[v],
                    ms(sec) if sec is not None else "-",
                    ms(loop) if loop is not None else "",
                    f"{loop / sec:.2f}x vs loop" if sec and loop else "",
                    note,
                )
            )
    rows.append(
        Row("b projection", "torch threads", str(threads), "", "", f"{os.cpu_count()} CPUs")
    )
    return rows


# ---------------------------------------------------------------------------- c: stage 1
def stage1_step_fn(
    cfg: Config,
    batch: int,
    *,
    lpips: bool,
    disc: bool,
    channels_last: bool = False,
    bf16: bool = False,
):
    """A closure running one stage-1 training step as train_autoencoder does; and the loss.

    ``channels_last`` puts every network and the batch in NHWC layout; ``bf16`` runs the
    autoencoder's forward pass under CPU autocast to bfloat16 (losses stay float32)."""
    torch.manual_seed(0)
    ae = build_autoencoder(cfg)
    lc = cfg.loss
    loss = AutoencoderLoss(
        l1_weight=lc.l1_weight,
        perceptual_weight=lc.perceptual_weight if lpips else 0.0,
        kl_weight=lc.kl_weight,
        disc_weight=lc.disc_weight if disc else 0.0,
        disc_start=0,
        disc_channels=lc.disc_channels,
        disc_layers=lc.disc_layers,
        lpips_net=lc.lpips_net,
    )
    opt_g = torch.optim.Adam(ae.parameters(), lr=1e-4, betas=(0.5, 0.9), fused=True)
    opt_d = torch.optim.Adam(loss.discriminator.parameters(), lr=1e-4, betas=(0.5, 0.9), fused=True)
    r = cfg.data.resolution
    x = torch.rand(batch, 3, r, r, generator=torch.Generator().manual_seed(0)) * 2 - 1
    layout = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        ae.to(memory_format=layout)
        loss.to(memory_format=layout)
    counter = [0]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    def step() -> None:
        g = step_generator(0, counter[0])
        counter[0] += 1
        xb = _flip(x, g).contiguous(memory_format=layout)
        with autocast:
            xrec, q = ae(xb, generator=g)
        xrec = xrec.float()
        kl = DiagonalGaussian(q.mean.float(), q.logvar.float()).kl()  # as train_autoencoder
        g_loss, _ = loss.generator_loss(xb, xrec, kl, step=1, last_layer=ae.last_layer)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        if loss.uses_discriminator(1):
            d_loss, _ = loss.discriminator_loss(xb, xrec.detach(), step=1)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()

    return step, loss


def section_stage1(ctx: Context) -> tuple[list[Row], str]:
    args = ctx.args
    cfg = ctx.config()
    b = args.s1_batch or cfg.train.autoencoder.batch_size
    rows: list[Row] = []
    full_step, full_loss = stage1_step_fn(cfg, b, lpips=True, disc=True)
    full = timed(full_step, args.s1_steps)
    parts = "L1 + KL" + (" + LPIPS" if full_loss.perceptual_available else "") + " + disc"
    rows.append(
        Row(
            "c stage1",
            f"training step, {cfg.data.resolution} px, batch {b}, full loss ({parts})",
            f"{b / full:,.1f} images/s",
            "",
            "",
            f"{ms(full)} per step, median of {args.s1_steps}"
            + ("" if full_loss.perceptual_available else "; LPIPS weights missing"),
        )
    )
    variants = [("without the discriminator", dict(lpips=True, disc=False))]
    if full_loss.perceptual_available:
        variants.insert(0, ("without LPIPS", dict(lpips=False, disc=True)))
    variants += [
        (
            "channels_last (every network and the batch)",
            dict(lpips=True, disc=True, channels_last=True),
        ),
        ("bf16 autocast of the autoencoder on CPU", dict(lpips=True, disc=True, bf16=True)),
        (
            "channels_last + bf16 autocast",
            dict(lpips=True, disc=True, channels_last=True, bf16=True),
        ),
    ]
    for name, kw in variants:
        step, _ = stage1_step_fn(cfg, b, **kw)
        sec = timed(step, args.s1_steps)
        rows.append(
            Row(
                "c stage1",
                f"training step {name}",
                f"{b / sec:,.1f} images/s",
                f"{b / full:,.1f} images/s full loss",
                f"{full / sec:.2f}x",
                f"that term costs {ms(full - sec)} per step ({(full - sec) / full:.0%})"
                if name.startswith("without")
                else f"{ms(sec)} per step, median of {args.s1_steps}",
            )
        )

    # The data path, as train_autoencoder runs it: a DataLoader over the step sampler.
    res = cfg.data.resolution
    t0 = time.perf_counter()
    pre = ctx.dataset(res, preload=True)
    decode_s = time.perf_counter() - t0
    rows.append(
        Row(
            "c stage1",
            f"decode {len(pre)} files into memory (preload, {res} px)",
            f"{len(pre) / decode_s:,.0f} images/s",
            "",
            "",
            f"{ms(decode_s)} once per run",
        )
    )
    lazy = ctx.dataset(res, preload=False)
    nb = max(1, args.s1_data_batches)
    for name, data in (("preloaded", pre), ("decoded per batch (preload off)", lazy)):
        loader = torch.utils.data.DataLoader(
            data,
            batch_sampler=StepBatchSampler(len(data), b, 0, nb + 1, 0, 0, 1),
            num_workers=cfg.data.num_workers,
        )
        it = iter(loader)
        next(it)  # warm-up
        t0 = time.perf_counter()
        for step, (x, _) in enumerate(it, start=1):
            _flip(x, step_generator(0, step))
        sec = (time.perf_counter() - t0) / nb
        rows.append(
            Row(
                "c stage1",
                f"data: a batch of {b}, {name}, flipped",
                f"{ms(sec)} ({b / sec:,.0f} images/s)",
                f"{ms(full)} model step",
                f"{sec / full:.1%} of a step",
                f"mean of {nb} batches, num_workers={cfg.data.num_workers}",
            )
        )

    profile = ""
    if args.profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(max(1, args.profile_steps)):
                full_step()
        profile = (
            f"### stage-1 profile: {args.profile_steps} steps, batch {b}, top 15 ops by "
            "self CPU time\n\n"
            + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
        )
    return rows, profile


# ---------------------------------------------------------------------------- d: report
# Runs the measured command as ITS child and reports that child's rusage. Linux carries
# the high-water RSS of the process that forked across exec, so a child forked straight
# from this (large) benchmark process would report at least this process's own peak.
LAUNCHER = """
import os, subprocess, sys
p = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(p.pid, 0)
code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as f:
    f.write(f"{usage.ru_maxrss} {code}")
sys.exit(code)
"""


def run_measured(cmd: list[str], timeout: float, tmp: Path) -> tuple[float, float]:
    """Run ``cmd`` in a fresh process; return (wall seconds, its peak resident set in MiB)."""
    result = tmp / "rusage.txt"
    result.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(result), *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # on a timeout the whole group goes, the command included
    )
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        raise RuntimeError(f"{' '.join(cmd[:5])} ... ran over {timeout:.0f} s") from None
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not result.is_file():
        tail = " | ".join(err.decode(errors="replace").strip().splitlines()[-3:])
        raise RuntimeError(f"{' '.join(cmd[:5])} ... exited {proc.returncode}: {tail}")
    maxrss = int(result.read_text().split()[0])
    # ru_maxrss is KiB on Linux, bytes on macOS
    return wall, maxrss / (2**20 if sys.platform == "darwin" else 2**10)


def section_report(ctx: Context) -> list[Row]:
    args = ctx.args
    sizes = sorted(args.report_sizes)
    t = Translator.load(args.report_model)
    source = args.report_from or t.domains[0]
    if source not in ("photo", "portrait", "anime"):
        raise SystemExit(f"--report-from {source}: the faces are rendered, use a benchmark dataset")
    root = ctx.tmp / "report"
    t0 = time.perf_counter()
    (rendered,) = write_benchmark(
        root / "all", n=sizes[-1], resolution=t.resolution, seed=1, domains=[source]
    ).values()
    render_s = time.perf_counter() - t0
    files = sorted(p for p in rendered.iterdir() if p.suffix == ".png")
    rows, runs = [], []
    # What any report process holds before its first image: python, torch, net2fair.
    floor_cmd = [sys.executable, "-c", "import torch, net2fair.cli, net2fair.report"]
    _, floor = run_measured(floor_cmd, args.report_timeout, root)
    for n in sizes:
        folder = root / f"n{n}"
        folder.mkdir()
        for p in files[:n]:  # the first n renders: a smaller set is a prefix of a larger one
            try:
                os.link(p, folder / p.name)
            except OSError:
                shutil.copy2(p, folder / p.name)
        cmd = [
            sys.executable,
            "-m",
            "net2fair",
            "report",
            args.report_model,
            str(folder),
            "--from",
            source,
            "--out",
            str(root / f"out{n}"),
            "--device",
            "cpu",
            "-q",
        ]
        wall, peak = run_measured(cmd, args.report_timeout, root)
        runs.append((n, wall, peak))
    n0, _, p0 = runs[0]
    for n, wall, peak in runs:
        above = (peak - floor) / max(1e-9, p0 - floor)
        rows.append(
            Row(
                "d report",
                f"net2fair report, {n} faces, {source} -> all ({t.resolution} px, fresh process)",
                f"{n / wall:,.1f} images/s; peak RSS {peak:,.0f} MiB",
                "" if n == n0 else f"{p0:,.0f} MiB at {n0}",
                "" if n == n0 else f"{peak / p0:.2f}x memory",
                f"{wall:.1f} s wall incl. start-up"
                + ("" if n == n0 else f"; goal <= 1.2x; above the floor {above:.2f}x"),
            )
        )
    rows.append(
        Row(
            "d report",
            "peak RSS floor: a process that only imports torch and net2fair",
            f"{floor:,.0f} MiB",
            "",
            "",
            "included in every peak above",
        )
    )
    if len(runs) > 1:
        (n1, w1, _), (n2, w2, _) = runs[0], runs[-1]
        rows.append(
            Row(
                "d report",
                f"marginal rate between {n1} and {n2} faces (start-up removed)",
                f"{(n2 - n1) / (w2 - w1):,.1f} images/s" if w2 > w1 else "- (timing noise)",
                "",
                "",
                f"rendering {sizes[-1]} faces took {render_s:.1f} s (not counted)",
            )
        )
    return rows


# ---------------------------------------------------------------------------- e: viewer
VIEWER_PARTS = (
    "analyse",
    "project_row",
    "typicality_reference",
    "reference_faces",
    "benchmark_examples",
    "training_examples",
    "translation_frames",
    "make_gif",
    "shared_samples",
    "sample_sheet",
    "enlarge",
    "png_bytes",
    "labelled_strip",
)


def section_viewer(ctx: Context) -> list[Row]:
    args = ctx.args
    t0 = time.perf_counter()
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from net2fair import viewer as V

    import_s = time.perf_counter() - t0
    spent: dict[str, float] = dict.fromkeys(VIEWER_PARTS, 0.0)
    real = {name: getattr(V, name) for name in VIEWER_PARTS}
    # When the first projection row is computed: a browser shows it then, while AppTest
    # returns only after the whole script (typicality, animation, samples) has run.
    first_row: list[float] = []

    def timing(name: str) -> Callable:
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return real[name](*a, **kw)
            finally:
                spent[name] += time.perf_counter() - t0
                if name == "project_row" and not first_row:
                    first_row.append(time.perf_counter())

        return wrapper

    argv = sys.argv
    sys.argv = ["streamlit_app.py", "--model", args.viewer_model]
    try:
        for name in VIEWER_PARTS:
            setattr(V, name, timing(name))

        def page() -> AppTest:
            at = AppTest.from_file(str(APP), default_timeout=args.viewer_timeout).run()
            if at.exception:
                raise RuntimeError(f"the page raised: {at.exception[0].value}")
            if "view" not in at.session_state:
                raise RuntimeError("the page showed no projections")
            return at

        def reset() -> None:
            for name in spent:
                spent[name] = 0.0
            first_row.clear()

        cold, cold_first, warm = [], [], []
        for _ in range(max(1, args.viewer_repeats)):
            st.cache_data.clear()
            st.cache_resource.clear()
            reset()
            t0 = time.perf_counter()
            page()
            cold.append(time.perf_counter() - t0)
            cold_first.append(first_row[0] - t0)
        parts = dict(spent)  # of the last cold load
        for _ in range(max(1, args.viewer_repeats)):
            t0 = time.perf_counter()
            at = page()
            warm.append(time.perf_counter() - t0)
        slider = []
        reset()
        # A new strength every time: each change misses the projection cache, as a user's does.
        for i in range(max(1, args.viewer_repeats)):
            alpha = round(0.95 - 0.05 * (i % 18), 2)
            t0 = time.perf_counter()
            at.slider(key="alpha").set_value(alpha).run()
            slider.append(time.perf_counter() - t0)
            if at.exception or at.session_state["view"]["alpha"] != alpha:
                raise RuntimeError("the strength slider did not update the projections")
    finally:
        sys.argv = argv
        for name, fn in real.items():
            setattr(V, name, fn)
    c, cf, w, s = (statistics.median(v) for v in (cold, cold_first, warm, slider))
    n = len(cold)

    def top(d: dict[str, float], per: int = 1) -> str:
        best = sorted(d.items(), key=lambda kv: -kv[1])[:4]
        return ", ".join(f"{k} {ms(v / per)}" for k, v in best if v > 0)

    return [
        Row(
            "e viewer",
            f"page load to first projections, cold caches (model '{args.viewer_model}')",
            ms(cf),
            "",
            "",
            f"median of {n}; the first projection row is ready then (model load, examples, "
            f"analyse, project_row); importing streamlit took {ms(import_s)} once",
        ),
        Row(
            "e viewer",
            "whole page, cold caches (typicality, animation, samples too)",
            ms(c),
            f"{ms(cf)} to projections",
            f"{c / cf:.1f}x",
            f"median of {n}; biggest parts of the last: {top(parts)}",
        ),
        Row(
            "e viewer",
            "page load to first projections, a new session (caches warm)",
            ms(w),
            f"{ms(c)} cold",
            f"{c / w:.1f}x faster",
            f"median of {n}",
        ),
        Row(
            "e viewer",
            "per change of the strength slider",
            ms(s),
            f"{ms(c)} cold page",
            f"{c / s:.1f}x faster",
            f"median of {len(slider)}; the whole script reruns; per change: "
            + top(spent, len(slider)),
        ),
    ]


# ------------------------------------------------------------------------------- main
def markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [r.section, r.measure, r.figure, r.baseline, r.ratio, r.note]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--only", default="a,b,c,d,e", help="sections: names or letters, comma list")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--data", type=Path, help="image folder with one subfolder per dataset")
    ap.add_argument("--data-n", type=int, default=128, help="rendered images per dataset")
    g = ap.add_argument_group("a: latent cache")
    g.add_argument("--cache-batches", type=int, default=10, help="timed stage-2 batches")
    g.add_argument("--cache-batch", type=int, help="batch size (default: the config's, 256)")
    g.add_argument(
        "--cache-resolutions",
        type=int_list,
        default=[64, 256],
        help="image sizes of the autoencoder (the default config, random weights)",
    )
    g = ap.add_argument_group("b: projection")
    g.add_argument("--model", default="demo", help="the trained model timed at its resolution")
    g.add_argument("--resolutions", type=int_list, default=[64, 256])
    g.add_argument("--proj-config", type=Path, default=DEFAULT_CONFIG)
    g.add_argument("--variants", default=",".join(VARIANTS), help=f"of {', '.join(VARIANTS)}")
    g.add_argument("--proj-repeats", type=int, default=20)
    g = ap.add_argument_group("c: stage-1 training")
    g.add_argument("--s1-batch", type=int, help="batch size (default: the config's, 64)")
    g.add_argument("--s1-steps", type=int, default=5, help="timed steps per variant")
    g.add_argument("--s1-data-batches", type=int, default=10)
    g.add_argument("--profile", action="store_true", help="torch.profiler over a few steps")
    g.add_argument("--profile-steps", type=int, default=3)
    g = ap.add_argument_group("d: report memory")
    g.add_argument("--report-sizes", type=int_list, default=[1000, 10000])
    g.add_argument("--report-model", default="demo")
    g.add_argument("--report-from", help="the rendered faces' dataset (default: the model's first)")
    g.add_argument("--report-timeout", type=float, default=3600)
    g = ap.add_argument_group("e: viewer")
    g.add_argument("--viewer-model", default="demo")
    g.add_argument("--viewer-repeats", type=int, default=3)
    g.add_argument("--viewer-timeout", type=float, default=600)
    args = ap.parse_args(argv)
    chosen = []
    for s in (v.strip().lower() for v in args.only.split(",") if v.strip()):
        name = SECTIONS.get(s, s)
        if name not in SECTIONS.values():
            ap.error(f"--only: unknown section {s!r} (use {', '.join(SECTIONS.values())})")
        chosen.append(name)
    args.sections = [s for s in SECTIONS.values() if s in chosen]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    header = (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, CPU only; sections: {', '.join(args.sections)}"
    )
    rows: list[Row] = []
    extra: list[str] = []
    with tempfile.TemporaryDirectory(prefix="net2fair-perf-") as tmp:
        ctx = Context(args, Path(tmp))
        for name in args.sections:
            t0 = time.perf_counter()
            if name == "cache":
                rows += section_cache(ctx)
            elif name == "projection":
                rows += section_projection(ctx)
            elif name == "stage1":
                r, profile = section_stage1(ctx)
                rows += r
                if profile:
                    extra.append(profile)
            elif name == "report":
                rows += section_report(ctx)
            elif name == "viewer":
                rows += section_viewer(ctx)
            print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    print(header + "\n")
    print(markdown(rows))
    for block in extra:
        print("\n" + block)


if __name__ == "__main__":
    main()
