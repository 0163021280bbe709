"""``net2fair synth`` (net2fair/commands/synth.py), run in a subprocess as a user would."""

from __future__ import annotations

import pytest
from PIL import Image

from tests.conftest import run_cli


@pytest.mark.slow
def test_synth_writes_folders_with_labels_deterministically(tmp_path):
    for name in ("a", "b"):
        proc = run_cli("synth", str(tmp_path / name), "--n", "4", "--resolution", "32", "-q")
        assert "wrote 4 images for each of photo, portrait, anime" in proc.stdout
    for domain in ("photo", "portrait", "anime"):
        files = sorted((tmp_path / "a" / domain).glob("*.png"))
        assert len(files) == 4 and Image.open(files[0]).size == (32, 32)
        rows = (tmp_path / "a" / domain / "labels.csv").read_text().splitlines()
        assert len(rows) == 5 and "skin_tone" in rows[0]
        for f in files:
            assert f.read_bytes() == (tmp_path / "b" / domain / f.name).read_bytes()
