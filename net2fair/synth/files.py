"""The synthetic benchmark as image folders: ``OUT/<dataset>/00000.png ...`` and a
``labels.csv`` per folder with every image's attributes (what ``net2fair synth`` writes).

Example::

    folders = write_benchmark("data/synth64", n=3000, resolution=64)
    labels = read_labels(folders["anime"])  # one dict per image
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from net2fair.fileio import atomic_write
from net2fair.synth.priors import DOMAINS, PLANTED_ATTRIBUTES, SHARED_ATTRIBUTES, check_domain
from net2fair.synth.render import iter_faces, validate_resolution

logger = logging.getLogger(__name__)

#: the columns of ``labels.csv``: file, dataset, the shared attributes, then every planted
#: attribute as its category index and its category name
LABEL_COLUMNS: tuple[str, ...] = (
    "file",
    "domain",
    *SHARED_ATTRIBUTES,
    *[c for attr in PLANTED_ATTRIBUTES for c in (attr, f"{attr}_name")],
)


def write_benchmark(
    out_dir: str | Path,
    *,
    n: int = 1000,
    resolution: int = 64,
    seed: int = 0,
    priors: Mapping | None = None,
    domains: Sequence[str] = DOMAINS,
    progress: bool = False,
) -> dict[str, Path]:
    """Write the benchmark: ``out_dir/<domain>/00000.png ...`` and ``labels.csv``.

    Every file is written under a temporary name and moved into place; ``labels.csv`` is
    written last, so a folder with a labels file is complete.

    Arguments:
        out_dir: destination folder (created).
        n: images PER dataset.
        resolution: image side, 32..256.
        seed: with the domain, fixes every image and label (see
            :func:`~net2fair.synth.render.render_batch`).
        priors: planted-attribute priors; default the packaged ones.
        domains: which datasets to write.
        progress: show a tqdm bar per dataset.

    Returns:
        dataset -> its folder.
    """
    validate_resolution(resolution)
    for d in domains:
        check_domain(d)
    width = max(5, len(str(max(n - 1, 0))))
    folders = {}
    for domain in domains:
        folder = Path(out_dir) / domain
        folder.mkdir(parents=True, exist_ok=True)
        # An old labels file would vouch for images that are about to be replaced.
        (folder / "labels.csv").unlink(missing_ok=True)
        rows = []
        faces = iter_faces(domain, n, resolution, seed, priors)
        for i, (img, attrs) in enumerate(
            tqdm(faces, total=n, desc=f"synth {domain}", disable=not progress)
        ):
            name = f"{i:0{width}d}.png"
            pil = Image.fromarray(img)
            atomic_write(folder / name, lambda p, pil=pil: pil.save(p, format="PNG"))
            row = {"file": name, "domain": domain}
            for attr in SHARED_ATTRIBUTES:
                row[attr] = repr(attrs[attr])
            for attr, names in PLANTED_ATTRIBUTES.items():
                row[attr] = attrs[attr]
                row[f"{attr}_name"] = names[attrs[attr]]
            rows.append(row)

        def write_csv(path: Path, rows: list[dict] = rows) -> None:
            with open(path, "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=LABEL_COLUMNS)
                writer.writeheader()
                writer.writerows(rows)

        atomic_write(folder / "labels.csv", write_csv)
        logger.debug("wrote %d %s faces at %d px to %s", n, domain, resolution, folder)
        folders[domain] = folder
    return folders


def read_labels(folder: str | Path) -> list[dict]:
    """Read ``folder/labels.csv`` (or the CSV file itself) written by :func:`write_benchmark`.

    Returns:
        one dict per image: ``file``, ``domain`` and the ``*_name`` columns as str, the
        shared attributes as float (``mouth_open`` as int), category indices as int.
    """
    path = Path(folder)
    if path.is_dir():
        path = path / "labels.csv"
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            rec: dict = {"file": row["file"], "domain": row["domain"]}
            for attr in SHARED_ATTRIBUTES:
                rec[attr] = int(row[attr]) if attr == "mouth_open" else float(row[attr])
            for attr in PLANTED_ATTRIBUTES:
                rec[attr] = int(row[attr])
                rec[f"{attr}_name"] = row[f"{attr}_name"]
            out.append(rec)
    return out
