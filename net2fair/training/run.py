"""A training run: both stages, one run folder, a model folder at the end.

RUN/
  config.yaml              the resolved config (what --resume reads back)
  autoencoder/last.ckpt    stage-1 state (model, discriminator, optimisers, step, RNG)
  autoencoder/recon_*.png  reconstructions at each validation
  autoencoder_log.csv      every stage-1 figure
  latents_train.safetensors, latents_val.safetensors   the frozen encoder's cache
  cinn/last.ckpt, cinn/samples_*.png, cinn_log.csv
  model/                   the trained model folder (config, weights, metrics, samples)
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from net2fair import __version__
from net2fair.config import Config, ConfigError, config_from_yaml_text, to_yaml
from net2fair.data.datasets import MultiDomainDataset
from net2fair.fileio import (
    MANIFEST,
    OutputError,
    atomic_write,
    check_output_folder,
    is_within,
    read_manifest,
)
from net2fair.models.translator import (
    MODEL_EXTRA_FILES,
    MODEL_FILES,
    Translator,
    resolve_model_path,
)
from net2fair.training.autoencoder import train_autoencoder
from net2fair.training.checkpoint import load_checkpoint
from net2fair.training.cinn import (
    autoencoder_fingerprint,
    latent_cache,
    latent_statistics,
    train_cinn,
)
from net2fair.training.engine import Runtime, setup_runtime, teardown
from net2fair.viz import image_grid

logger = logging.getLogger(__name__)

STAGES = ("all", "autoencoder", "cinn")


class RunError(RuntimeError):
    """A run folder problem (exists already, nothing to resume, ...)."""


class RunFolderError(RunError):
    """The run folder given cannot be used (a usage mistake: exit code 2 on the CLI)."""


@dataclass
class RunResult:
    run_dir: Path
    model_dir: Path | None
    metrics: dict


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` is a training run folder (written by :func:`train`)."""
    path = Path(path)
    if not (path / "config.yaml").is_file() or (path / "model.safetensors").exists():
        return False
    manifest = read_manifest(path)
    if manifest is not None:
        return manifest.get("command") == "train"
    # runs from before the marker: a stage folder or a latent cache beside the config
    return any((path / n).exists() for n in ("autoencoder", "cinn", "latents_train.safetensors"))


def load_run_config(run_dir: Path) -> Config:
    """The saved config of a run folder, to train further; a folder that is not a run is
    refused, and so is a run trained with a since-retired option (:data:`RETIRED_KEYS
    <net2fair.config.RETIRED_KEYS>`)."""
    run_dir = Path(run_dir)
    if (run_dir / "model.safetensors").is_file():
        hint = f" (its run is {run_dir.parent})" if is_run_folder(run_dir.parent) else ""
        raise RunFolderError(
            f"{run_dir}: is a model folder, not a run folder{hint}; resume the run folder"
        )
    if not is_run_folder(run_dir):
        raise RunFolderError(f"{run_dir}: not a run folder (no run config.yaml to resume from)")
    path = run_dir / "config.yaml"
    return config_from_yaml_text(path.read_text(encoding="utf-8"), str(path), resume=True)


def check_new_run_folder(run_dir: Path, cfg: Config) -> None:
    """A fresh run needs an absent or empty folder outside every dataset folder.

    Raises:
        RunFolderError: it holds a run already, or anything else (nothing of the user's is
            written over), or it lies inside a dataset folder or holds one.
    """
    run_dir = Path(run_dir)
    for name, folder in cfg.data.domains.items():
        src = Path(folder)
        if src.exists() and (is_within(run_dir, src) or is_within(src, run_dir)):
            where = "lies inside" if is_within(run_dir, src) else "holds"
            raise RunFolderError(
                f"{run_dir}: the run folder {where} the '{name}' dataset folder {src}; "
                "choose a run folder apart from the data"
            )
    if run_dir.is_symlink() or (run_dir.exists() and not run_dir.is_dir()):
        raise RunFolderError(f"{run_dir}: exists and is not a folder; choose another --out")
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return
    if is_run_folder(run_dir):
        raise RunFolderError(
            f"{run_dir}: already holds a run; use --resume {run_dir} or another --out"
        )
    raise RunFolderError(
        f"{run_dir}: folder exists and is not empty (and is not a net2fair run); a run needs a "
        "new or empty folder: choose another --out"
    )


def check_model_folder(run_dir: Path) -> None:
    """The run's ``model/`` is replaced at the end of training: refuse, before any step,
    a ``model/`` holding anything that is not an earlier model (the user's own files).

    Raises:
        RunFolderError: one line naming the folder and what it holds.
    """
    try:
        check_output_folder(
            Path(run_dir) / "model",
            "model",
            legacy=(*MODEL_FILES, *MODEL_EXTRA_FILES),
            option="the run's model folder",
        )
    except OutputError as e:
        raise RunFolderError(
            f"{str(e).splitlines()[0]}; training writes its model there at the end: move "
            "those files out first"
        ) from None


def _load_datasets(cfg: Config, progress: bool) -> tuple[MultiDomainDataset, MultiDomainDataset]:
    domains = list(cfg.data.domains.items())
    kw = dict(
        resolution=cfg.data.resolution,
        val_fraction=cfg.data.val_fraction,
        preload=cfg.data.preload,
        progress=progress,
    )
    try:
        train = MultiDomainDataset(domains, split="train", **kw)
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        # a missing or empty folder is a configuration mistake: one line, exit code 2
        raise ConfigError(str(e).splitlines()[0]) from None
    try:
        val = MultiDomainDataset(domains, split="val", **kw)
    except ValueError:
        # Tiny folders can have an empty validation split: validate on training images.
        logger.warning("validation split is empty for some dataset; validating on training images")
        val = train
    return train, val


def _autoencoder_from(cfg: Config, rt: Runtime):  # noqa: ANN202
    from net2fair.training.autoencoder import build_autoencoder

    src = Path(cfg.train.autoencoder_from)
    ae = build_autoencoder(cfg)
    if (src / "autoencoder" / "last.ckpt").is_file():
        ae.load_state_dict(load_checkpoint(src / "autoencoder" / "last.ckpt")["model"])
    else:
        t = Translator.load(resolve_model_path(src))
        ae.load_state_dict(t.autoencoder.state_dict())
    return ae.to(rt.device)


def sample_sheet(
    t: Translator, val: MultiDomainDataset, per_domain: int = 2, seed: int = 0
) -> Image.Image:
    """Inputs, reconstructions, projections into every dataset, then shared-residual samples."""
    rows, labels = [], []
    for k, name in enumerate(t.domains):
        idx = (val.labels == k).nonzero().flatten()[:per_domain].tolist()
        if not idx:
            continue
        x = torch.stack([val[i][0] for i in idx]).to(t.device)
        rec = t.decode(t.encode(x))
        proj = t.project(x, source=name, targets="all")
        for j in range(len(idx)):
            rows.append([x[j], rec[j], *[proj[d][j] for d in t.domains]])
            labels.append(name)
    shared = t.sample_shared("all", n=per_domain, seed=seed)
    for j in range(per_domain):
        rows.append([None, None, *[shared[d][j] for d in t.domains]])
        labels.append("sample")
    return image_grid(rows, col_labels=["input", "recon", *t.domains], row_labels=labels)


def train(
    cfg: Config | None = None,
    *,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    stage: str = "all",
    device: str = "auto",
    progress: bool = True,
    autoencoder_steps: int | None = None,
    cinn_steps: int | None = None,
) -> RunResult:
    """Train both stages (or one) into a run folder; return where the model was written.

    A new run (``cfg`` and ``out``) needs an absent or empty ``out``. ``resume`` continues
    the run folder it names with its own saved config: ``cfg`` must then be None, and only
    the step counts may change (``autoencoder_steps``, ``cinn_steps``: extend a run).
    """
    if stage not in STAGES:
        raise ConfigError(f"--stage must be one of {', '.join(STAGES)}, got '{stage}'")
    for name, value in (("autoencoder_steps", autoencoder_steps), ("cinn_steps", cinn_steps)):
        if value is not None and value < 0:
            raise ConfigError(f"{name} must be >= 0, got {value}")
    if resume is not None:
        if cfg is not None or out is not None:
            raise ConfigError(
                "a resumed run uses its own config.yaml: give no config or output folder "
                "(only the step counts may change)"
            )
        run_dir = Path(resume)
        cfg = load_run_config(run_dir)
        if autoencoder_steps is not None:
            cfg.train.autoencoder.steps = autoencoder_steps
        if cinn_steps is not None:
            cfg.train.cinn.steps = cinn_steps
    else:
        if cfg is None or out is None:
            raise ConfigError("train needs a config and an output folder")
        if autoencoder_steps is not None:
            cfg.train.autoencoder.steps = autoencoder_steps
        if cinn_steps is not None:
            cfg.train.cinn.steps = cinn_steps
        run_dir = Path(out)
        check_new_run_folder(run_dir, cfg)
    if stage != "autoencoder":
        check_model_folder(run_dir)
    if len(cfg.data.domains) < 2:
        names = ", ".join(cfg.data.domains) or "none"
        raise ConfigError(
            f"need at least two datasets to train, got {len(cfg.data.domains)}: {names}"
        )
    rt = setup_runtime(device, cfg.train.precision)
    try:
        return _train(cfg, run_dir, rt, resume is not None, stage, progress and rt.is_main)
    finally:
        teardown(rt)


def _train(
    cfg: Config, run_dir: Path, rt: Runtime, resume: bool, stage: str, progress: bool
) -> RunResult:
    t_start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    # Each dataset already logged its "skipped <path>: <reason>" lines while scanning.
    train_data, val_data = _load_datasets(cfg, progress)
    cfg.model.domains = list(train_data.domain_names)
    cfg.model.priors = [float(train_data.priors[d]) for d in train_data.domain_names]
    cfg.model.package_version = __version__
    cfg.model.provenance = cfg.model.provenance or "; ".join(
        f"{name}: {folder} ({train_data.counts[name]} training images)"
        for name, folder in cfg.data.domains.items()
    )
    if rt.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        text = to_yaml(cfg)
        atomic_write(run_dir / "config.yaml", lambda p: p.write_text(text, encoding="utf-8"))
        if not (run_dir / MANIFEST).exists():  # marks the folder as a run (see is_run_folder)
            marker = json.dumps({"command": "train", "files": []}) + "\n"
            atomic_write(run_dir / MANIFEST, lambda p: p.write_text(marker, encoding="utf-8"))
    rt.barrier()
    metrics: dict = {
        "data": {
            "train": train_data.counts,
            "val": val_data.counts,
            # distinct files: the two splits scan the same folders
            "used": len({*train_data.paths, *val_data.paths}),
            "skipped": len({p for p, _ in (*train_data.skipped, *val_data.skipped)}),
        }
    }
    if cfg.train.autoencoder_from:
        ae = _autoencoder_from(cfg, rt)
        metrics["autoencoder"] = {"from": cfg.train.autoencoder_from}
    else:
        ae, ae_metrics = train_autoencoder(
            cfg, run_dir, rt, train_data, val_data, resume=resume, progress=progress
        )
        metrics["autoencoder"] = {"steps": cfg.train.autoencoder.steps, **ae_metrics}
    if stage == "autoencoder":
        return RunResult(run_dir, None, metrics)
    ae.requires_grad_(False).eval()
    fingerprint = autoencoder_fingerprint(ae)
    train_cache = latent_cache(
        ae,
        train_data,
        rt,
        run_dir / "latents_train.safetensors",
        flips=cfg.data.flip,
        progress=progress,
        fingerprint=fingerprint,
    )
    val_cache = latent_cache(
        ae,
        val_data,
        rt,
        run_dir / "latents_val.safetensors",
        flips=False,
        progress=False,
        fingerprint=fingerprint,
    )
    k = len(cfg.model.domains)

    def assemble(flow: torch.nn.Module) -> Translator:
        t = Translator(cfg).to(rt.device)
        t.autoencoder.load_state_dict(ae.state_dict())
        t.flow.load_state_dict(flow.state_dict())
        mean, cov, count = latent_statistics(train_cache, k)
        t.stats_mean.copy_(mean)
        t.stats_cov.copy_(cov)
        t.stats_count.copy_(count)
        return t.freeze()

    def on_validate(flow: torch.nn.Module, step: int) -> None:
        sample_sheet(assemble(flow), val_data, seed=cfg.seed).save(
            run_dir / "cinn" / f"samples_{step:06d}.png"
        )

    flow, cinn_metrics = train_cinn(
        cfg,
        run_dir,
        rt,
        train_cache,
        val_cache,
        k,
        resume=resume,
        progress=progress,
        on_validate=on_validate,
        fingerprint=fingerprint,
    )
    metrics["cinn"] = {"steps": cfg.train.cinn.steps, **cinn_metrics}
    metrics["seconds"] = round(time.perf_counter() - t_start, 1)
    model_dir = run_dir / "model"
    if rt.is_main:
        t = assemble(flow)
        try:
            t.save(model_dir, metrics=metrics, samples=sample_sheet(t, val_data, seed=cfg.seed))
        except OutputError as e:  # a file of the user's appeared in model/ while training
            raise RunError(
                f"{str(e).splitlines()[0]}; the checkpoints are intact: move those files out "
                f"and run: net2fair train --resume {run_dir}"
            ) from None
        except OSError as e:
            # Translator.save builds the folder aside and renames it: nothing partial remains.
            raise RunError(
                f"{model_dir}: could not write the model folder ({e.strerror or e}); the "
                f"checkpoints are intact, free some space and run: net2fair train --resume "
                f"{run_dir}"
            ) from None
        atomic_write(
            run_dir / "metrics.json", lambda p: p.write_text(json.dumps(metrics, indent=2))
        )
    rt.barrier()
    return RunResult(run_dir, model_dir, metrics)
