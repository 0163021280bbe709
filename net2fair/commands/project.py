"""``net2fair project`` and ``net2fair sample``: the model's images, written as folders
with an overview grid."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from net2fair.commands.common import (
    MAX_BATCH,
    MAX_TEMPERATURE,
    OVERVIEW_ROWS,
    CommandError,
    at_least,
    check_domain,
    check_out,
    in_range,
    load_model,
    plan_images,
    staged_output,
)


def cmd_project(args: argparse.Namespace) -> int:
    """Project every image of a folder (or one file) into the target datasets."""
    import torch
    from tqdm import tqdm

    from net2fair.data.images import save_image_atomic
    from net2fair.fileio import safe_join
    from net2fair.pipeline import iter_batches
    from net2fair.viz import image_grid

    in_range(args.alpha, 0.0, 1.0, "--alpha")
    in_range(args.batch_size, 1, MAX_BATCH, "--batch-size")
    out = check_out(args.out, "project", inputs=[args.images])
    torch.manual_seed(args.seed)
    t = load_model(args.model, args.device)
    source = check_domain(t, args.source)
    targets = (
        t.domains if (not args.to or "all" in args.to) else [check_domain(t, d) for d in args.to]
    )
    plan = plan_images(args.images)
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
    with staged_output(out, "project", inputs=[args.images]) as tmp:
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
    """Sample new faces, each sample index sharing one residual across the datasets."""
    import torch
    from tqdm import tqdm

    from net2fair.data.images import save_image_atomic
    from net2fair.fileio import safe_join
    from net2fair.viz import image_grid

    at_least(args.n, 1, "-n")
    in_range(args.batch_size, 1, MAX_BATCH, "--batch-size")
    if not (0 < args.temperature <= MAX_TEMPERATURE):  # also refuses NaN
        raise CommandError(
            f"--temperature must be in (0, {MAX_TEMPERATURE:g}], got {args.temperature}", 2
        )
    out = check_out(args.out, "sample")
    t = load_model(args.model, args.device)
    domains = t.domains if args.domain in (None, "all") else [check_domain(t, args.domain)]
    width = max(4, len(str(args.n - 1)))
    generator = torch.Generator().manual_seed(args.seed)  # batches continue one stream
    rows: list[list] = []
    with staged_output(out, "sample") as tmp:
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
