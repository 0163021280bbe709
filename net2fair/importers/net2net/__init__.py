"""Import the released net2net dataset-translation models as net2fair model folders.

Rombach, Esser and Ommer released three 256 px dataset-translation models with
"Network-to-Network Translation with Conditional Invertible Neural Networks" (NeurIPS 2020,
github.com/CompVis/net2net): CelebA / CelebA-HQ / FFHQ, photography / anime and
photography / oil portraits. Each is a PyTorch Lightning 0.9 checkpoint holding a ResNet +
BigGAN autoencoder (``first_stage_model.*``) and a conditional flow (``flow.*``).

:func:`import_net2net` reads such a checkpoint without running any code from it
(``torch.load(weights_only=True)``: only tensors, storages and plain containers can be
unpickled; anything else is refused, never retried with plain pickle), accounts for every
key (each is mapped onto a net2fair weight, or dropped for a stated reason; none may be
left over or missing), and writes an ordinary model folder with
:meth:`~net2fair.models.translator.Translator.save`, which builds it aside and puts it in
place only when complete. Two kinds of weight change shape on the way:

- the decoder's spectral norm is folded into plain weights: their code never updates the
  power-iteration vector ``u``, so every forward pass uses one fixed
  ``W = W_bar / sigma(W_bar, u)``, computed here once;
- the flow's label embedder has BatchNorm1d layers after its Linear layers; in eval mode
  each is a fixed affine map, folded into the Linear before it (net2fair's embedder has no
  BatchNorm, so a label's embedding never depends on the batch).

What leaves no trace in the weights (the flow's activation, the encoder's input
normalisation, the dataset names) is read from the run folder's ``configs/*-project.yaml``.

The steps, one module each, in the order :func:`import_net2net` takes them:

- :mod:`.checkpoint`: find the checkpoint and yaml files (:func:`locate`), read the
  checkpoint safely (:func:`load_state_dict`);
- :mod:`.architecture`: the sizes from the weights' shapes, other variants refused
  (:func:`infer_architecture`);
- :mod:`.settings`: the project yaml checked against those sizes (:func:`project_settings`),
  the dataset names, the net2fair config (:func:`build_config`);
- :mod:`.keys`: the weights renamed and folded (:func:`convert_state`);
- :mod:`.stats`: latent statistics from image folders (:func:`latent_statistics_from_folders`);
- :mod:`.core`: the frozen ``Translator`` (:func:`translator_from_checkpoint`) and the model
  folder (:func:`import_net2net`);
- :mod:`.errors`: :class:`Net2NetImportError`, raised by all of them for bad input.

Example::

    net2fair import-net2net logs/2020-11-30T23-32-28_celeba_celebahq_ffhq_256 --out ccfq
"""

from __future__ import annotations

from net2fair.importers.net2net.architecture import (
    DEC,
    ENC,
    GEN,
    Architecture,
    infer_architecture,
    refuse_other_variants,
)
from net2fair.importers.net2net.checkpoint import load_state_dict, locate
from net2fair.importers.net2net.core import (
    ImportResult,
    import_net2net,
    translator_from_checkpoint,
)
from net2fair.importers.net2net.errors import Net2NetImportError
from net2fair.importers.net2net.keys import (
    BN_EPS,
    SN_EPS,
    convert_state,
    fold_batchnorm,
    fold_spectral_norm,
)
from net2fair.importers.net2net.settings import (
    FLOW_TARGET,
    KNOWN_DATASETS,
    KNOWN_RUN_NAMES,
    MODEL_TARGET,
    RELEASED_RUNS,
    ProjectSettings,
    build_config,
    parse_domains,
    project_settings,
    read_project_yaml,
)
from net2fair.importers.net2net.stats import latent_statistics_from_folders

__all__ = [
    "BN_EPS",
    "DEC",
    "ENC",
    "FLOW_TARGET",
    "GEN",
    "KNOWN_DATASETS",
    "KNOWN_RUN_NAMES",
    "MODEL_TARGET",
    "RELEASED_RUNS",
    "SN_EPS",
    "Architecture",
    "ImportResult",
    "Net2NetImportError",
    "ProjectSettings",
    "build_config",
    "convert_state",
    "fold_batchnorm",
    "fold_spectral_norm",
    "import_net2net",
    "infer_architecture",
    "latent_statistics_from_folders",
    "load_state_dict",
    "locate",
    "parse_domains",
    "project_settings",
    "read_project_yaml",
    "refuse_other_variants",
    "translator_from_checkpoint",
]
