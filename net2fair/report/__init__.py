"""Bias projection reports: what each dataset does to a set of faces, with numbers.

Example::

    from net2fair import report

    rep = report.build("demo", "faces/", source="photo", targets="all", max_images=500)
    print("\\n".join(rep.sentences()))
    report.write(rep, "report-out")  # index.html, report.json, per_image.csv, charts

See :mod:`net2fair.report.measures` for the measures, :mod:`net2fair.report.model` for the
data model, :mod:`net2fair.report.build` for how it is filled (images are read through
:mod:`net2fair.pipeline`) and :mod:`net2fair.report.html` for the files written.
"""

from __future__ import annotations

from net2fair.report.build import build
from net2fair.report.html import ReportWriteError, write
from net2fair.report.model import (
    AttributeSummary,
    GalleryItem,
    Report,
    Shift,
    TargetReport,
)

__all__ = [
    "AttributeSummary",
    "GalleryItem",
    "Report",
    "ReportWriteError",
    "Shift",
    "TargetReport",
    "build",
    "write",
]
