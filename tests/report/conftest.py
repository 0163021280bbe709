"""Fixtures of the report tests: the tiny model and one report built on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from net2fair import report
from net2fair.models.translator import Translator


@pytest.fixture(scope="session")
def model(tiny_model: Path) -> Translator:
    return Translator.load(tiny_model)


@pytest.fixture(scope="session")
def built(tiny_model: Path, toy_folders: dict[str, Path]) -> report.Report:
    # change="auto": LPIPS when its weights load, the default path users get
    return report.build(
        tiny_model,
        toy_folders["discs"],
        source="discs",
        batch_size=7,
        command="net2fair report tiny discs --from discs",
    )
