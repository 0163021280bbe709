"""Bias projection reports: what each dataset does to a set of faces, with numbers.

Example::

    from net2fair import report

    rep = report.build("demo", "faces/", source="photo", targets="all", max_images=500)
    print("\\n".join(rep.sentences()))
    report.write(rep, "report-out")  # index.html, report.json, per_image.csv, charts

See :mod:`net2fair.report.measures` for the measures, :mod:`net2fair.report.build` for the
data model and :mod:`net2fair.report.html` for the files written.
"""

from __future__ import annotations

from net2fair.report.build import (
    AttributeSummary,
    GalleryItem,
    Report,
    Shift,
    TargetReport,
    build,
)
from net2fair.report.html import ReportWriteError, write

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
