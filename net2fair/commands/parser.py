"""The ``net2fair`` argument parser: every command, its options, help and examples.

The command modules import only the standard library at module level, so building the
parser (and ``net2fair --help``) stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from net2fair.commands.common import OUT_HELP
from net2fair.commands.models import cmd_import_net2net, cmd_view
from net2fair.commands.project import cmd_project, cmd_sample
from net2fair.commands.report import cmd_audit, cmd_report
from net2fair.commands.synth import cmd_benchmark, cmd_demo, cmd_synth
from net2fair.commands.train import cmd_train


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
    """The parser of the ``net2fair`` command; each subcommand sets ``fn``, its function."""
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
