"""Attribute estimators for the synthetic face benchmark.

The benchmark (:mod:`net2fair.synth.render`) knows the attributes of the faces it
renders, but not of the faces a model produces. :class:`AttributeEstimator` reads them
back from pixels: one small CNN with a head per categorical attribute (the planted ones,
``mouth_open`` and the dataset style ``domain``) and one regression head for the
continuous shared attributes (``x``, ``y``, ``size``, ``yaw``, ``roll``).

It is trained on rendered faces (:func:`net2fair.synth.train_estimators.train_estimators`)
and saved as a folder: ``config.json`` (architecture, attribute names and categories,
resolution, accuracies measured at training time) and ``model.safetensors``, whose
SHA-256 ``config.json`` records.

Example::

    est = load_estimators()  # the shipped ones, net2fair/assets/estimators
    pred = est.predict(images)  # images: (B, 3, H, W) in [-1, 1] or uint8 (B, H, W, 3)
    pred["skin_tone"]  # (B,) category indices; pred["yaw"]: (B,) float, natural units
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from net2fair import __version__
from net2fair.data.images import uint8_to_tensor
from net2fair.fileio import sha256_file, write_folder_atomically
from net2fair.synth.priors import DOMAINS, PLANTED_ATTRIBUTES, SHARED_ATTRIBUTES

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

#: Continuous shared attributes, in the order of the regression head's outputs.
CONTINUOUS_ATTRIBUTES: tuple[str, ...] = tuple(k for k in SHARED_ATTRIBUTES if k != "mouth_open")

#: Categorical attributes: name -> category names. ``domain`` is the style a face is drawn
#: in; ``mouth_open`` is shared content but binary.
CATEGORICAL_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    **PLANTED_ATTRIBUTES,
    "mouth_open": ("closed", "open"),
    "domain": DOMAINS,
}

MIN_RESOLUTION, MAX_RESOLUTION = 32, 128
_POOL = 4  # features are pooled to a 4x4 grid, not to 1x1, so that position survives


class EstimatorLoadError(RuntimeError):
    """An estimator folder that cannot be used; the message names the file and the problem."""


def _conv(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.SiLU(),
    ]


def _stage(c_in: int, c_out: int, *, refine: bool) -> nn.Sequential:
    # A strided conv halves the side; the optional second conv widens the receptive field at
    # that scale, which small features (eye size, frames, wrinkles) need. The first stage
    # skips it: at full resolution it would cost as much as the rest of the network.
    layers = _conv(c_in, c_out, 2)
    if refine:
        layers += _conv(c_out, c_out, 1)
    return nn.Sequential(*layers)


class AttributeEstimator(nn.Module):
    """A CNN that reads every benchmark attribute, and the dataset style, from a face.

    Input ``(B, 3, H, W)`` in [-1, 1] with ``H == W`` in 32..128 (training resolution
    64 by default). Four stride-2 stages (the last three with a second 3x3 conv), adaptive
    average pooling to a 4x4 grid, one shared hidden layer, then a linear head per
    categorical attribute and one regression head for :data:`CONTINUOUS_ATTRIBUTES`, whose
    targets are standardised with the ``cont_mean`` / ``cont_std`` buffers.

    Arguments:
        resolution: the side the estimator is trained at; :meth:`predict` resizes to it.
        widths: channels of the four stages.
        hidden: width of the shared hidden layer.
        categories: categorical attribute -> category names; default
            :data:`CATEGORICAL_ATTRIBUTES`.
        continuous: continuous attribute names; default :data:`CONTINUOUS_ATTRIBUTES`.
    """

    def __init__(
        self,
        *,
        resolution: int = 64,
        widths: Sequence[int] = (32, 64, 128, 128),
        hidden: int = 256,
        categories: Mapping[str, Sequence[str]] | None = None,
        continuous: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
            raise ValueError(
                f"resolution must be in {MIN_RESOLUTION}..{MAX_RESOLUTION}, got {resolution}"
            )
        if len(widths) != 4 or any(int(w) < 1 for w in widths):
            raise ValueError(f"widths must be four positive channel counts, got {list(widths)}")
        self.resolution = int(resolution)
        self.widths = [int(w) for w in widths]
        self.hidden = int(hidden)
        cats = CATEGORICAL_ATTRIBUTES if categories is None else categories
        self.categories: dict[str, list[str]] = {k: list(v) for k, v in cats.items()}
        self.continuous: list[str] = list(
            CONTINUOUS_ATTRIBUTES if continuous is None else continuous
        )
        for name, names in self.categories.items():
            if len(names) < 2:
                raise ValueError(f"categorical attribute {name!r} needs >= 2 categories")
        clash = set(self.categories) & set(self.continuous)
        if clash:
            raise ValueError(f"attributes both categorical and continuous: {sorted(clash)}")
        #: Held-out metrics measured at training time; saved in config.json.
        self.metrics: dict = {}

        chans = [3, *self.widths]
        self.features = nn.Sequential(
            *(_stage(chans[i], chans[i + 1], refine=i > 0) for i in range(4))
        )
        self.pool = nn.AdaptiveAvgPool2d(_POOL)
        self.trunk = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.1),
            nn.Linear(self.widths[-1] * _POOL * _POOL, self.hidden),
            nn.SiLU(),
        )
        self.heads = nn.ModuleDict(
            {name: nn.Linear(self.hidden, len(names)) for name, names in self.categories.items()}
        )
        self.regressor = nn.Linear(self.hidden, len(self.continuous))
        k = len(self.continuous)
        self.register_buffer("cont_mean", torch.zeros(k))
        self.register_buffer("cont_std", torch.ones(k))

    # ------------------------------------------------------------------------------ basics
    @property
    def device(self) -> torch.device:
        return self.cont_mean.device

    def set_target_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the mean and standard deviation ``(K,)`` of the continuous targets."""
        if mean.shape != self.cont_mean.shape or std.shape != self.cont_std.shape:
            raise ValueError(
                f"expected mean and std of shape {tuple(self.cont_mean.shape)}, "
                f"got {tuple(mean.shape)} and {tuple(std.shape)}"
            )
        if not bool((std > 0).all()):
            raise ValueError(f"standard deviations must be > 0, got {std.tolist()}")
        self.cont_mean.copy_(mean)
        self.cont_std.copy_(std)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw head outputs.

        Arguments:
            x: ``(B, 3, H, W)`` in [-1, 1], ``H, W`` in 32..128.

        Returns:
            ``{categorical name: logits (B, K_name)}`` and ``"continuous"``: ``(B, C)``
            standardised predictions of :attr:`continuous`, in that order.
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(x.shape)}")
        h = self.trunk(self.pool(self.features(x)))
        out = {name: head(h) for name, head in self.heads.items()}
        out["continuous"] = self.regressor(h)
        return out

    def prepare(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``(B, 3, H, W)`` floats in [-1, 1], or uint8 pixels ``(B, H, W, 3)`` (array or
        tensor), or one image of either kind -> ``(B, 3, R, R)`` float32 on the device.

        Images not at the training resolution R are resized with antialiasing.
        """
        if isinstance(images, np.ndarray) or images.dtype == torch.uint8:
            x = uint8_to_tensor(images)
        else:
            x = images
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                "expected images (B, 3, H, W) in [-1, 1] or uint8 pixels (B, H, W, 3), "
                f"got shape {tuple(images.shape)}"
            )
        x = x.to(self.device, torch.float32)
        if tuple(x.shape[-2:]) != (self.resolution, self.resolution):
            x = F.interpolate(
                x, size=(self.resolution, self.resolution), mode="bilinear", antialias=True
            )
        return x

    # ------------------------------------------------------------------------- inference
    @torch.inference_mode()
    def _outputs(self, images: torch.Tensor | np.ndarray, batch_size: int) -> dict:
        was_training = self.training
        self.eval()
        try:
            x = self.prepare(images)
            parts = [self(chunk) for chunk in x.split(batch_size)]
        finally:
            self.train(was_training)
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    @torch.inference_mode()
    def predict_proba(
        self, images: torch.Tensor | np.ndarray, *, batch_size: int = 256
    ) -> dict[str, torch.Tensor]:
        """Class probabilities ``{categorical name: (B, K_name)}``, rows summing to 1."""
        out = self._outputs(images, batch_size)
        return {name: out[name].softmax(dim=1) for name in self.categories}

    @torch.inference_mode()
    def predict(
        self, images: torch.Tensor | np.ndarray, *, batch_size: int = 256
    ) -> dict[str, torch.Tensor]:
        """Read every attribute.

        Arguments:
            images: see :meth:`prepare`.

        Returns:
            ``{categorical name: (B,) int64 class index}`` (including ``domain`` and
            ``mouth_open``) and ``{continuous name: (B,) float32 in natural units}``.
        """
        out = self._outputs(images, batch_size)
        pred = {name: out[name].argmax(dim=1) for name in self.categories}
        cont = out["continuous"] * self.cont_std + self.cont_mean
        for i, name in enumerate(self.continuous):
            pred[name] = cont[:, i]
        return pred

    # --------------------------------------------------------------------------- storage
    def config(self) -> dict:
        """Everything needed to rebuild the module, plus the training-time metrics."""
        return {
            "class": type(self).__name__,
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "resolution": self.resolution,
            "widths": self.widths,
            "hidden": self.hidden,
            "categories": self.categories,
            "continuous": self.continuous,
            "metrics": self.metrics,
        }

    def save(self, path: str | Path) -> Path:
        """Write the estimator folder ``path`` atomically: ``config.json`` and
        ``model.safetensors``. An existing folder is replaced only once the new one is
        complete."""

        def fill(tmp: Path) -> None:
            tensors = {k: t.detach().cpu().contiguous() for k, t in self.state_dict().items()}
            save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
            cfg = self.config()
            cfg["weights_sha256"] = sha256_file(tmp / WEIGHTS_FILE)
            (tmp / CONFIG_FILE).write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")

        path = write_folder_atomically(
            path, fill, command="estimators", legacy=(CONFIG_FILE, WEIGHTS_FILE)
        )
        logger.info("saved attribute estimator to %s", path)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> AttributeEstimator:
        """Load an estimator folder written by :meth:`save`; eval mode, no gradients.

        Raises:
            EstimatorLoadError: a missing folder or file, unreadable JSON, a checksum
                mismatch, or weights that do not fit the config; one line naming the file.
        """
        folder = Path(path)
        if not folder.is_dir():
            what = "not a folder" if folder.exists() else "no such folder"
            raise EstimatorLoadError(f"{folder}: {what} (expected an estimator folder)")
        missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / f).is_file()]
        if missing:
            raise EstimatorLoadError(f"{folder}: estimator folder is missing {', '.join(missing)}")
        cfg_path, weights = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise EstimatorLoadError(f"{cfg_path}: unreadable config ({e})") from None
        if not isinstance(cfg, dict) or cfg.get("class") != cls.__name__:
            raise EstimatorLoadError(f"{cfg_path}: not an {cls.__name__} config")
        version = cfg.get("format_version")
        if version != FORMAT_VERSION:
            raise EstimatorLoadError(
                f"{cfg_path}: format version {version!r}, this package reads {FORMAT_VERSION}"
            )
        expected = cfg.get("weights_sha256")
        if not expected or sha256_file(weights) != expected:
            raise EstimatorLoadError(
                f"{weights}: checksum does not match {CONFIG_FILE} (file truncated or modified)"
            )
        try:
            state = load_file(str(weights))
        except (SafetensorError, OSError, ValueError) as e:
            raise EstimatorLoadError(f"{weights}: unreadable weights ({e})") from None
        try:
            model = cls(
                resolution=int(cfg["resolution"]),
                widths=cfg["widths"],
                hidden=int(cfg["hidden"]),
                categories=cfg["categories"],
                continuous=cfg["continuous"],
            )
        except (KeyError, TypeError, ValueError) as e:
            raise EstimatorLoadError(f"{cfg_path}: invalid config ({e!r})") from None
        model.metrics = dict(cfg.get("metrics") or {})
        own = model.state_dict()
        lost, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if lost or extra:
            raise EstimatorLoadError(
                f"{weights}: weights do not match {CONFIG_FILE} "
                f"(missing {len(lost)} e.g. {lost[:3]}, unexpected {len(extra)} e.g. {extra[:3]})"
            )
        for key, t in state.items():
            if t.shape != own[key].shape:
                raise EstimatorLoadError(
                    f"{weights}: '{key}' has shape {tuple(t.shape)}, {CONFIG_FILE} implies "
                    f"{tuple(own[key].shape)}"
                )
        model.load_state_dict(state, strict=True)
        model.requires_grad_(False)
        return model.to(device).eval()


def load_estimators(device: str | torch.device = "cpu") -> AttributeEstimator | None:
    """The shipped attribute estimators (``net2fair/assets/estimators``), or None (with a
    warning) when not installed."""
    path = Path(str(resources.files("net2fair") / "assets" / "estimators"))
    if not (path / WEIGHTS_FILE).is_file():
        logger.warning("attribute estimators not found at %s; attribute figures left out", path)
        return None
    return AttributeEstimator.load(path, device=device)
