"""The audit's data model on hand-made figures: summary, sentences, flags, audit.json."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from net2fair.audit.model import AttributeBalance, Audit, AuditImage, binned_balance


def _audit(**kw: object) -> Audit:
    ll = np.array([-10.0, -12.0, -30.0, -11.0])
    w = np.array([0.8, 1.0, 0.0, 2.2])
    rows = [
        {"path": f"f{i}.png", "weight": float(w[i]), "log_likelihood": float(ll[i]),
         "posterior_a": 0.9, "flag": i == 2, "better_dataset": "b" if i == 2 else "",
         "log_bayes_factor": 5.0 if i == 2 else -3.0}
        for i in range(4)
    ]  # fmt: skip
    base = dict(
        domain="a", domains=["a", "b"], root="faces", alpha=0.5, alpha_rule="auto",
        min_ess=0.5, weight_flagged=False, clip=2.2, flag_margin=0.0, seed=0, command=None,
        created="now", model={"name": "m", "resolution": 32}, data={"n_used": 4},
        versions={"net2fair": "x"}, rows=rows, columns=list(rows[0]), weights=w,
        log_likelihood=ll, least_typical=[AuditImage("f2.png", np.zeros((2, 2, 3)), -30.0)],
        most_typical=[], flagged_examples=[], z_dim=8,
    )  # fmt: skip
    return Audit(**{**base, **kw})


def test_summary_counts_flags_clips_and_the_effective_size():
    a = _audit()
    s = a.summary()
    assert a.n == 4 and a.n_flagged == 1 and a.n_clipped == 1
    assert s["flagged_by_dataset"] == {"b": 1} and s["flagged_share"] == 0.25
    assert s["weights"]["effective_sample_size"] == pytest.approx(16.0 / (0.64 + 1 + 4.84))
    assert s["log_likelihood"]["min"] == -30.0
    assert s["bits_per_dim"]["mean"] == pytest.approx(15.75 / (8 * math.log(2)))
    assert [r["path"] for r in a.flagged()] == ["f2.png"]


def test_sentences_say_what_flagged_images_get():
    lines = _audit().sentences()
    assert lines[0].startswith("4 images of a: log p(z | a) ranges from -30.0 to -10.0")
    assert "chosen to keep 50% of the sample" in lines[1]
    assert "(b: 1)" in lines[2] and "weight 0" in lines[2]
    given = _audit(alpha_rule="given", weight_flagged=True).sentences()
    assert "chosen to keep" not in given[1] and "weight 0" not in given[2]


def test_to_dict_is_strict_json_without_thumbnails():
    d = _audit(attributes=[AttributeBalance("glasses", ["no", "yes"], [0.8, 0.2], [0.5, 0.5])])
    out = d.to_dict()
    text = json.dumps(out, allow_nan=False)
    assert out["format"] == "net2fair-audit" and "rows" not in out and "pixels" not in text
    assert out["least_typical"] == [{"path": "f2.png", "log_likelihood": -30.0, "weight": None}]
    assert out["flagged"][0]["better_dataset"] == "b"
    [attr] = out["attributes"]
    assert attr["tv_to_uniform_before"] == pytest.approx(0.3)
    assert attr["tv_to_uniform_after"] == pytest.approx(0.0)
    assert attr["tv_before_after"] == pytest.approx(0.3)


def test_binned_balance_bins_a_continuous_attribute():
    values = np.array([0.0, 0.1, 0.5, 0.9, 1.0, 1.0])
    b = binned_balance("yaw", values, np.array([1.0, 1.0, 1.0, 1.0, 0.0, 2.0]), bins=2)
    assert b.kind == "continuous" and len(b.categories) == 2
    assert b.before == pytest.approx([2 / 6, 4 / 6])
    assert b.after == pytest.approx([2 / 6, 4 / 6])
    flat = binned_balance("x", np.ones(3), np.ones(3))
    assert sum(flat.before) == pytest.approx(1.0)
