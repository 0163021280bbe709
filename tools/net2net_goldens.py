"""Regenerate the golden outputs of the net2net importer test from the original code.

Needs a checkout of github.com/CompVis/net2net (no licence: keep it outside this repository,
e.g. extracted to /tmp; nothing of it is copied here). Builds the small variant of the
released dataset-translation models from the original classes (ResNet-18 encoder, BigGAN-256
with chn 8, 3 flow blocks of width 64, K = 3), loads the seeded weights of
``tests/importers/net2net_fixture.py`` into it, and writes to ``tests/fixtures/net2net/``:

- ``manifest.json``: the state dict's keys, shapes and dtypes (the test regenerates the
  weights from them, so no weights are committed);
- ``2020-01-01T00-00-00-project.yaml``: the project config of the small variant;
- ``goldens.safetensors``: z (posterior means), v and logdet of the flow for the source
  label, each target's z and (subsampled) image, the reconstruction, samples.

``--full`` instead compares the full-size creativity configuration (ResNet-101, BigGAN-256
chn 96, 20 flow blocks of width 1024; random weights) with the importer, without writing
anything: about 2.5 minutes and 6 GB of memory on CPU.

Usage::

    git --git-dir=/work/.mirror/CompVis+net2net/repo archive HEAD | tar -x -C /tmp/net2net
    python tools/net2net_goldens.py /tmp/net2net [--full]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
import types
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.importers import net2net_fixture as fx  # noqa: E402


def _install_stand_ins() -> None:
    """What the original modules import from PyTorch Lightning 0.9 and its training script:
    a LightningModule that is a plain nn.Module, and instantiate_from_config."""
    pl = types.ModuleType("pytorch_lightning")

    class LightningModule(nn.Module):
        pass

    pl.LightningModule = LightningModule  # type: ignore[attr-defined]
    sys.modules["pytorch_lightning"] = pl

    translation = types.ModuleType("translation")

    def instantiate_from_config(config: dict) -> object:
        module, cls = config["target"].rsplit(".", 1)
        return getattr(importlib.import_module(module), cls)(**config.get("params", {}))

    translation.instantiate_from_config = instantiate_from_config  # type: ignore[attr-defined]
    sys.modules["translation"] = translation


def model_config(*, small: bool) -> dict:
    """The creativity config (configs/creativity/celeba_celebahq_ffhq_256.yaml), or its
    small variant."""
    return {
        "model": {
            "target": "net2net.models.flows.flow.Net2NetFlow",
            "params": {
                "first_stage_key": "image",
                "cond_stage_key": "class",
                "flow_config": {
                    "target": "net2net.modules.flow.flatflow.ConditionalFlatCouplingFlow",
                    "params": {
                        "conditioning_dim": 3,
                        "embedding_dim": 10,
                        "conditioning_depth": 2,
                        "n_flows": 3 if small else 20,
                        "in_channels": 128,
                        "hidden_dim": 64 if small else 1024,
                        "hidden_depth": 2,
                        "activation": "none",
                        "conditioner_use_bn": True,
                    },
                },
                "cond_stage_config": {
                    "target": "net2net.modules.labels.model.Labelator",
                    "params": {"num_classes": 3, "as_one_hot": True},
                },
                "first_stage_config": {
                    "target": "net2net.models.autoencoder.BigAE",
                    "params": {
                        "encoder_config": {
                            "target": "net2net.modules.autoencoder.encoder.ResnetEncoder",
                            "params": {
                                "in_channels": 3,
                                "in_size": 256,
                                "pretrained": False,
                                "type": "resnet18" if small else "resnet101",
                                "z_dim": 128,
                            },
                        },
                        "decoder_config": {
                            "target": "net2net.modules.autoencoder.decoder.BigGANDecoderWrapper",
                            "params": {"z_dim": 128, "in_size": 256, "use_actnorm_in_dec": True},
                        },
                        "loss_config": {"target": "net2net.modules.autoencoder.loss.DummyLoss"},
                    },
                },
            },
        },
        "data": {
            "target": "translation.DataModuleFromConfig",
            "params": {
                "batch_size": 15,
                "train": {"target": "net2net.data.faces.CCFQTrain", "params": {"size": 256}},
                "validation": {
                    "target": "net2net.data.faces.CCFQValidation",
                    "params": {"size": 256},
                },
            },
        },
    }


def build_original(checkout: Path, *, small: bool) -> nn.Module:
    """The original Net2NetFlow, built from the checkout's classes."""
    sys.path.insert(0, str(checkout))
    _install_stand_ins()
    from net2net.modules.gan import biggan

    if small:  # their generator takes no width argument: chn 8 through its defaults
        biggan.Generator256.__init__.__defaults__ = (140, 1000, 8, False, False)
        biggan.update_G_linear.__defaults__ = (4 * 4 * 16 * 8,)
    cfg = model_config(small=small)["model"]
    return sys.modules["translation"].instantiate_from_config(cfg)


def _eval(model: nn.Module) -> None:
    # their model replaces the first stage's .train, so .eval() on the wrapper skips it
    for m in model.modules():
        nn.Module.train(m, False)


@torch.no_grad()
def original_outputs(model: nn.Module, x: torch.Tensor, v_samples: torch.Tensor) -> dict:
    """What the paper's demo computes (ml4cad.py): posterior mean, residual, every target's
    latent and image, and samples from shared residuals."""
    onehot = model.cond_stage_model.make_one_hot
    n = x.shape[0]
    z = model.first_stage_model.encode(x, return_mode=True)
    c = onehot(torch.full((n,), fx.SOURCE_LABEL, dtype=torch.long))
    v, logdet = model.flow(z, c)
    out = {"z": z.flatten(1), "v": v.flatten(1), "logdet": logdet.reshape(n)}
    out["reconstruction"] = model.first_stage_model.decode(z)
    for k in range(3):
        ck = onehot(torch.full((n,), k, dtype=torch.long))
        zk = model.flow.reverse(v, ck)
        out[f"z_{k}"] = zk.flatten(1)
        out[f"image_{k}"] = model.first_stage_model.decode(zk)
        cs = onehot(torch.full((v_samples.shape[0],), k, dtype=torch.long))
        zs = model.flow.reverse(v_samples[:, :, None, None], cs)
        out[f"sample_z_{k}"] = zs.flatten(1)
        out[f"sample_{k}"] = model.first_stage_model.decode(zs)
    return out


def write_goldens(checkout: Path) -> None:
    model = build_original(checkout, small=True)
    ref = model.state_dict()
    fx.FIXTURES.mkdir(parents=True, exist_ok=True)
    entries = [[k, list(t.shape), str(t.dtype).removeprefix("torch.")] for k, t in ref.items()]
    fx.MANIFEST.write_text(json.dumps(entries, indent=0) + "\n")
    from omegaconf import OmegaConf

    fx.PROJECT_YAML.write_text(OmegaConf.to_yaml(OmegaConf.create(model_config(small=True))))
    model.load_state_dict(fx.seeded_state_dict(), strict=True)
    _eval(model)
    out = original_outputs(model, fx.input_images(), fx.sample_residuals())
    for key in list(out):
        if out[key].dim() == 4:
            out[key] = fx.subsample(out[key])
    save_file({k: v.float().contiguous() for k, v in out.items()}, str(fx.GOLDENS))
    sizes = sum(p.stat().st_size for p in fx.FIXTURES.iterdir())
    print(f"wrote {len(entries)} keys and {len(out)} goldens to {fx.FIXTURES} ({sizes} bytes)")


def compare_full(checkout: Path) -> None:
    """The full-size creativity config with random weights against the importer."""
    from net2fair.importers.net2net import translator_from_checkpoint

    t0 = time.perf_counter()
    torch.manual_seed(0)
    model = build_original(checkout, small=False)
    with torch.no_grad():  # random but well-conditioned: see seeded_tensor
        for k, t in model.state_dict().items():
            t.copy_(fx.seeded_tensor(k, tuple(t.shape), t.dtype))
    _eval(model)
    x, vs = fx.input_images()[:1], fx.sample_residuals()[:1]
    with torch.no_grad():
        # a random 20-block flow on the random encoder's codes (|z| ~ 50) is chaotic: its
        # inverse amplifies rounding by orders of magnitude. Normalise the codes in the
        # first ActNorm and make the later ones identities, as training's data-dependent
        # initialisation would, so the comparison measures the import, not the chaos.
        z = model.first_stage_model.encode(x, return_mode=True)
        for i, block in enumerate(model.flow.sub_layers):
            block.norm_layer.loc.fill_(-float(z.mean()) if i == 0 else 0.0)
            block.norm_layer.scale.fill_(1.0 / float(z.std()) if i == 0 else 1.0)
    ref = original_outputs(model, x, vs)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "2020-11-30T23-32-28_celeba_celebahq_ffhq_256"
        (run / "checkpoints").mkdir(parents=True)
        ckpt = fx.lightning_checkpoint(model.state_dict())
        torch.save(ckpt, run / "checkpoints" / "last.ckpt", _use_new_zipfile_serialization=False)
        del model, ckpt
        t, _ = translator_from_checkpoint(run)
    with torch.inference_mode():
        z = t.encode(x)
        v, logdet = t.flow(z, fx.SOURCE_LABEL)
        got = {"z": z, "v": v, "logdet": logdet, "reconstruction": t.decode(z)}
        zs = t.project_latents(z, t.domains[fx.SOURCE_LABEL])
        samples = t.flow.inverse(vs.repeat(3, 1), torch.arange(3).repeat_interleave(1))
        for k, name in enumerate(t.domains):
            got[f"z_{k}"] = zs[name]
            got[f"image_{k}"] = t.decode(zs[name])
            got[f"sample_z_{k}"] = samples[k : k + 1]
            got[f"sample_{k}"] = t.decode(samples[k : k + 1])
    worst = 0.0
    for key, r in ref.items():
        r = r.reshape(got[key].shape)
        diff = float((got[key] - r).abs().max())
        scale = float(r.abs().max())
        worst = max(worst, diff)
        print(f"{key:16s} max |diff| {diff:.3g} (max |value| {scale:.3g})")
    print(f"largest difference {worst:.3g}; {time.perf_counter() - t0:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="a checkout of CompVis/net2net")
    parser.add_argument("--full", action="store_true", help="compare the full-size config")
    args = parser.parse_args()
    if not (args.checkout / "net2net" / "modules" / "gan" / "biggan.py").is_file():
        parser.error(f"{args.checkout}: not a CompVis/net2net checkout")
    if args.full:
        compare_full(args.checkout)
    else:
        write_goldens(args.checkout)


if __name__ == "__main__":
    main()
