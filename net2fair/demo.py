"""``net2fair demo``: the main job on the embedded default, offline, in well under a minute.

Loads the model shipped with the package (trained on the synthetic benchmark), renders a
fresh evaluation set with the seed, projects every face into every dataset and writes:

    OUT/projections.png   rows of faces: the input, then its projection into each dataset
    OUT/samples.png       shared residuals decoded in every dataset ("the same person")
    OUT/summary.md        the bias benchmark table for this evaluation set
    OUT/summary.json      the same figures, machine-readable
    OUT/report/           the bias projection report of the rendered photo faces
                          (index.html, report.json, per_image.csv, charts)
    OUT/faces/photo/      those faces, as the report's input
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from net2fair.data.images import save_image_atomic, uint8_to_tensor
from net2fair.fileio import check_output_folder, staged_folder
from net2fair.models.translator import Translator
from net2fair.synth.benchmark import BenchmarkResult, format_table, run_benchmark
from net2fair.synth.estimators import load_estimators
from net2fair.synth.render import render_batch
from net2fair.viz import image_grid

logger = logging.getLogger(__name__)


@dataclass
class DemoResult:
    out: Path
    benchmark: BenchmarkResult
    headlines: list[str]
    report_sentences: list[str]


def headlines(result: BenchmarkResult) -> list[str]:
    """A few plain sentences: how each projection moves skin tone and the planted biases."""
    lines = []
    for p in result.pairs:
        if p.source == p.target:
            continue
        shift = p.ita_after - p.ita_before
        direction = "lighter" if shift > 0 else "darker"
        text = (
            f"{p.source} -> {p.target}: skin tone {p.ita_before:.0f} -> {p.ita_after:.0f} "
            f"ITA degrees ({direction} by {abs(shift):.0f})"
        )
        if p.target_accuracy is not None:
            ratios = [r for r in p.bias_ratio.values() if not math.isnan(r)]
            text += (
                f"; {p.target_accuracy:.0%} read as {p.target}; planted-bias gap closed "
                f"by {1 - sum(ratios) / max(1, len(ratios)):.0%} on average"
            )
        lines.append(text)
    return lines


def run_demo(
    out: str | Path = "net2fair-demo",
    *,
    model: str | Path = "demo",
    n: int = 60,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> DemoResult:
    """Run the demo end to end and write its outputs into ``out``.

    ``out`` is built aside and renamed into place at the end; it must be new, empty or an
    earlier demo output (see :func:`net2fair.fileio.check_output_folder`).
    """
    out = check_output_folder(out, "demo")
    t = Translator.load(model, device=device)
    with staged_folder(out, "demo") as tmp:
        result, lines, sentences = _write_demo(t, tmp, n=n, seed=seed)
    return DemoResult(out, result, lines, sentences)


def _write_demo(
    t: Translator, out: Path, *, n: int, seed: int
) -> tuple[BenchmarkResult, list[str], list[str]]:
    torch.manual_seed(seed)
    rows, labels = [], []
    for d in t.domains:
        images, _ = render_batch(d, 3, t.resolution, seed=seed + 7_000_001)
        x = uint8_to_tensor(images).to(t.device)
        proj = t.project(x, source=d, targets="all")
        for i in range(len(x)):
            rows.append([x[i].cpu(), *[proj[b][i].cpu() for b in t.domains]])
            labels.append(d)
    grid = image_grid(rows, col_labels=["input", *t.domains], row_labels=labels, scale=2)
    grid.save(out / "projections.png", format="PNG")
    shared = t.sample_shared("all", n=4, temperature=0.8, seed=seed)
    sheet = image_grid(
        [[shared[d][i].cpu() for d in t.domains] for i in range(4)], col_labels=t.domains, scale=2
    )
    sheet.save(out / "samples.png", format="PNG")

    estimators = load_estimators(t.device)
    result = run_benchmark(t, estimators=estimators, n=n, seed=seed)
    lines = headlines(result)
    table = format_table(result)
    text = "# net2fair demo\n\n" + "\n".join(f"- {h}" for h in lines) + "\n\n" + table + "\n"
    (out / "summary.md").write_text(text, encoding="utf-8")
    (out / "summary.json").write_text(result.to_json(), encoding="utf-8")

    # The bias report on the photo dataset's faces: the dataset whose priors are uniform
    # over skin tones, so every other dataset's bias shows as a shift away from it.
    from net2fair import report
    from net2fair.synth.benchmark import EVAL_SEED_OFFSET

    faces, _ = render_batch("photo", n, t.resolution, seed=seed + EVAL_SEED_OFFSET)
    for i, img in enumerate(uint8_to_tensor(faces)):
        save_image_atomic(img, out / "faces" / "photo" / f"{i:04d}.png")
    rep = report.build(
        t,
        out / "faces" / "photo",
        source="photo",
        targets="all",
        seed=seed,
        device=t.device,
        estimators=estimators,
        command=f"net2fair demo --n {n} --seed {seed}",
    )
    # the folder is being built under a staging name: name it as the user will find it
    rep.data["input"] = "faces/photo (beside this report's folder)"
    report.write(rep, out / "report")
    return result, lines, rep.sentences()
