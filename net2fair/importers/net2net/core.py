"""The import itself: a net2net run folder or checkpoint -> a frozen ``Translator`` ->
an ordinary net2fair model folder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from net2fair.config import ConfigError
from net2fair.importers.net2net.architecture import Architecture, infer_architecture
from net2fair.importers.net2net.checkpoint import load_state_dict, locate
from net2fair.importers.net2net.errors import Net2NetImportError, _one_line
from net2fair.importers.net2net.keys import convert_state
from net2fair.importers.net2net.settings import (
    build_config,
    parse_domains,
    project_settings,
    read_project_yaml,
)
from net2fair.importers.net2net.stats import latent_statistics_from_folders

if TYPE_CHECKING:
    from net2fair.models.translator import Translator


@dataclass
class ImportResult:
    """What :func:`import_net2net` wrote."""

    model_dir: Path
    checkpoint: Path
    domains: list[str]
    architecture: Architecture
    notes: list[str]
    #: images used per dataset for the latent statistics (empty: none computed)
    stats_counts: dict[str, int] = field(default_factory=dict)


def translator_from_checkpoint(
    source: str | Path, *, domains: str | Sequence[str] | None = None
) -> tuple[Translator, ImportResult]:
    """Read a net2net run folder or checkpoint into a frozen net2fair ``Translator``.

    Arguments:
        source: the run folder (with ``checkpoints/`` and ``configs/``) or a ``.ckpt``.
        domains: dataset names in label order (a list, or "a,b,c"); default: the paper's
            labels for the three released runs.

    Returns:
        The translator (CPU, eval mode, no latent statistics) and an :class:`ImportResult`
        whose ``model_dir`` is not set yet.

    Raises:
        Net2NetImportError: one line naming the file and the reason.
    """
    from net2fair.models.translator import Translator

    ckpt, yamls = locate(source)
    data = read_project_yaml(yamls)
    sd, meta = load_state_dict(ckpt)
    arch = infer_architecture(sd, ckpt)
    settings = project_settings(data, arch, yamls[-1] if yamls else None, ckpt)
    state = convert_state(sd, arch, ckpt)
    del sd
    if isinstance(domains, str):
        names = parse_domains(domains, arch.num_classes, ckpt)
    elif domains is not None:
        names = parse_domains(",".join(domains), arch.num_classes, ckpt)
    else:
        names = list(settings.labels) if settings.labels else None
    if names is None:
        raise Net2NetImportError(
            f"{ckpt}: not one of the released runs, so the dataset names are unknown; pass "
            f"--domains with {arch.num_classes} names in label order"
        )
    what = f"epoch {meta['epoch']}, step {meta['global_step']}" if "epoch" in meta else ""
    provenance = (
        f"imported from the net2net checkpoint {ckpt.name} ({ckpt.parent.parent.name}"
        f"{'; ' + what if what else ''}); weights trained and released by Rombach, Esser and "
        "Ommer (github.com/CompVis/net2net) on their datasets"
    )
    cfg = build_config(arch, settings, names, provenance)
    try:
        from net2fair.config import validate_config

        validate_config(cfg)
        t = Translator(cfg)
    except (ConfigError, ValueError) as e:
        raise Net2NetImportError(f"{ckpt}: {_one_line(e)}") from None
    expected = t.state_dict()
    for key in list(expected):
        if key.startswith("stats_"):
            state[key] = expected[key]
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise Net2NetImportError(
            f"{ckpt}: the weights do not fill the model (missing {len(missing)} e.g. "
            f"{missing[:2]}, unexpected {len(extra)} e.g. {extra[:2]})"
        )
    for key, ref in expected.items():
        got = state[key]
        if tuple(got.shape) != tuple(ref.shape):
            raise Net2NetImportError(
                f"{ckpt}: '{key}' has shape {tuple(got.shape)}, the architecture needs "
                f"{tuple(ref.shape)}"
            )
        got = got.to(ref.dtype)
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise Net2NetImportError(f"{ckpt}: '{key}' holds NaN or infinite values")
        state[key] = got
    t.load_state_dict(state, strict=True)
    t.freeze()
    result = ImportResult(
        model_dir=Path(),
        checkpoint=ckpt,
        domains=names,
        architecture=arch,
        notes=settings.notes,
    )
    return t, result


def import_net2net(
    source: str | Path,
    out: str | Path,
    *,
    domains: str | Sequence[str] | None = None,
    stats_folders: Mapping[str, str | Path] | None = None,
    device: str | torch.device = "cpu",
) -> ImportResult:
    """Import a released net2net model into the model folder ``out``.

    ``out`` is checked first (new, empty, or an earlier model folder), then the checkpoint
    is read and converted, the latent statistics computed (on ``device``) when
    ``stats_folders`` are given, and the folder written atomically: on any error nothing is
    written to ``out``.

    Raises:
        Net2NetImportError: bad input (one line naming the file and the reason).
        net2fair.fileio.OutputError: ``out`` may not be written.
    """
    from net2fair.fileio import check_output_folder
    from net2fair.models.translator import MODEL_EXTRA_FILES, MODEL_FILES

    legacy = (*MODEL_FILES, *MODEL_EXTRA_FILES)
    check_output_folder(out, "model", legacy=legacy)
    t, result = translator_from_checkpoint(source, domains=domains)
    if stats_folders:
        t = t.to(device)
        try:
            result.stats_counts = latent_statistics_from_folders(t, stats_folders)
        except (ValueError, FileNotFoundError, NotADirectoryError) as e:
            raise Net2NetImportError(_one_line(e)) from None
        shown = ", ".join(f"{k} ({n} images)" for k, n in result.stats_counts.items())
        t.cfg.model.provenance += f"; latent statistics computed at import from {shown}"
    else:
        result.notes.append(
            "no per-dataset latent statistics: reports skip the latent Frechet distance and "
            "the benchmark's linear baselines need them (compute them with --stats NAME=DIR)"
        )
    metrics = {
        "imported_from": "net2net",
        "checkpoint": result.checkpoint.name,
        "latent_statistics": result.stats_counts,
    }
    result.model_dir = t.save(out, metrics=metrics)
    return result
