"""net2fair: make a dataset's bias visible by projecting images across datasets.

A frozen autoencoder gives every image a latent code z; a conditional invertible network
maps z to a residual v = T(z | y) shared by all datasets; projecting a -> b decodes
T^-1(T(z | a) | b). See :class:`net2fair.Translator`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from net2fair.models.translator import Translator

__all__ = ["Translator", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy, so `net2fair --help` does not pay for importing torch.
    if name == "Translator":
        from net2fair.models.translator import Translator

        return Translator
    raise AttributeError(name)
