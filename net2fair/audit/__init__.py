"""Dataset audit: which images a dataset under-represents, resampling weights that
rebalance it, flags for images another dataset explains better, and where each dataset
changes faces.

Example::

    from net2fair import audit

    a = audit.run("demo", "faces/", domain="portrait", compare="all")  # alpha "auto", clip 10
    print("\\n".join(a.sentences()))
    audit.write(a, "audit-out")  # weights.csv, audit.json, index.html

Train with the weights (``weights.csv`` rows follow the folder's sorted order)::

    rows = list(csv.DictReader(open("audit-out/weights.csv")))
    sampler = WeightedRandomSampler([float(r["weight"]) for r in rows], len(rows))
    loader = DataLoader(MyImages([root / r["path"] for r in rows]), sampler=sampler)
"""

from __future__ import annotations

from net2fair.audit.core import (
    DEFAULT_ALPHA,
    DEFAULT_CLIP,
    AttributeBalance,
    Audit,
    AuditImage,
    auto_alpha,
    effective_sample_size,
    resampling_weights,
    run,
)
from net2fair.audit.html import AuditWriteError, write

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_CLIP",
    "AttributeBalance",
    "Audit",
    "AuditImage",
    "AuditWriteError",
    "auto_alpha",
    "effective_sample_size",
    "resampling_weights",
    "run",
    "write",
]
