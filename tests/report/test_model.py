"""The report's data model: shifts, targets, sentences and report.json."""

from __future__ import annotations

import json
import math

import pytest

from net2fair import report
from net2fair.report.model import Shift, reconstruction_sentence


def test_the_reconstruction_sentence_names_speckle_only_above_the_threshold():
    base = {"dataset": "photo", "n": 10, "psnr": 25.0}
    assert "adds colour speckle" in reconstruction_sentence({**base, "colour_noise_ratio": 2.5})
    assert "adds no colour speckle" in reconstruction_sentence({**base, "colour_noise_ratio": 0.9})


def _shift(**kw: object) -> Shift:
    base = dict(
        measure="ita", label="skin tone", subject="skin tone", group="skin and colour",
        unit="ITA degrees", kind="shift", before=10.0, after=12.0, shift=2.0, low=0.5,
        high=3.5, n=20, sentence="",
    )  # fmt: skip
    return Shift(**{**base, **kw})


def test_a_shift_is_clear_only_when_its_interval_excludes_zero():
    assert _shift().clear
    assert _shift(low=-3.0, high=-0.1, shift=-1.0).clear
    assert not _shift(low=-0.5).clear
    assert not _shift(n=0).clear
    assert not _shift(kind="level").clear  # a level is no change of anything


def test_lookups_name_what_exists(built: report.Report):
    t = built.target("squares")
    assert t.shift("ita").measure == "ita"
    with pytest.raises(KeyError, match="have"):
        t.shift("nope")
    with pytest.raises(KeyError, match="discs"):
        built.target("nope")


def test_sentences_cover_every_non_source_target(built: report.Report):
    lines = built.sentences()
    assert lines[0] == reconstruction_sentence(built.reconstruction)
    assert any(s.startswith("Projected into squares, skin tone") for s in lines)
    assert not any(s.startswith("Projected into discs") for s in lines)


def test_to_dict_is_strict_json_without_thumbnails(built: report.Report):
    d = built.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert d["format"] == "net2fair-report" and d["format_version"] == 1
    assert d["headline"] == built.sentences()
    assert d["grid_images"] == built.grid_names
    assert "rows" not in d and "grid_inputs" not in d
    td = d["per_target"][0]
    assert {"measures", "attributes", "most_changed", "least_changed"} <= set(td)
    assert set(td["most_changed"][0]) == {"name", "change"}
    assert "NaN" not in text
    # non-finite figures become null, never NaN
    level = next(m for m in td["measures"] if m["kind"] == "level")
    assert level["before"] is None and not math.isnan(level["after"])
