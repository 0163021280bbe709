"""Resampling weights: mean 1, the clip respected, and falling as the likelihood rises."""

from __future__ import annotations

import math

import numpy as np
import pytest

from net2fair.audit import auto_alpha, effective_sample_size, resampling_weights
from net2fair.audit.weights import weighted_distribution


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 1.0, 3.0])
@pytest.mark.parametrize("clip", [1.0, 1.5, 10.0, math.inf])
def test_mean_one_clip_respected_and_order_kept(alpha, clip):
    rng = np.random.default_rng(int(alpha * 10) + (0 if math.isinf(clip) else int(clip)))
    ll = rng.normal(-40.0, 12.0, size=500)
    w = resampling_weights(ll, alpha, clip)
    assert w.shape == ll.shape
    assert w.mean() == pytest.approx(1.0, abs=1e-9)
    assert w.max() <= clip * (1 + 1e-9)
    assert np.all(w > 0)
    order = np.argsort(ll)
    # a more likely image never gets a larger weight
    assert np.all(np.diff(w[order]) <= 1e-12)


def test_unclipped_weights_follow_the_density_power():
    ll = np.array([-10.0, -12.0, -15.0, -11.0])
    w = resampling_weights(ll, alpha=0.5, clip=math.inf)
    # w_i / w_j = exp(-0.5 (ll_i - ll_j))
    assert w[1] / w[0] == pytest.approx(math.exp(1.0))
    assert w[2] / w[0] == pytest.approx(math.exp(2.5))
    assert w.mean() == pytest.approx(1.0)


def test_clipping_spreads_the_cut_mass_in_proportion():
    # one very rare image: it sits at the clip, the others keep their ratios
    ll = np.array([-100.0, -10.0, -10.0, -12.0, -11.0])
    w = resampling_weights(ll, alpha=1.0, clip=2.0)
    assert w[0] == pytest.approx(2.0)
    assert w[3] / w[1] == pytest.approx(math.exp(2.0))
    assert w[4] / w[1] == pytest.approx(math.exp(1.0))
    assert w.mean() == pytest.approx(1.0)


def test_alpha_zero_and_clip_one_give_uniform_weights():
    ll = np.array([-3.0, -50.0, 7.0])
    assert np.allclose(resampling_weights(ll, 0.0, 10.0), 1.0)
    assert np.allclose(resampling_weights(ll, 1.0, 1.0), 1.0)


def test_extreme_likelihood_ranges_do_not_overflow():
    ll = np.array([-5000.0, 0.0, 4000.0, 10.0])
    w = resampling_weights(ll, 1.0, 10.0)
    assert np.all(np.isfinite(w)) and w.mean() == pytest.approx(1.0)
    assert w[0] == pytest.approx(min(10.0, 4.0))  # the rarest takes what the clip allows


@pytest.mark.parametrize(
    "ll, alpha, clip, match",
    [
        ([], 0.5, 10, "no log-likelihoods"),
        ([1.0, float("nan")], 0.5, 10, "finite"),
        ([1.0], -0.1, 10, "alpha"),
        ([1.0], 0.5, 0.5, "clip"),
    ],
)
def test_bad_arguments_are_refused(ll, alpha, clip, match):
    with pytest.raises(ValueError, match=match):
        resampling_weights(ll, alpha, clip)


def test_effective_sample_size_and_weighted_distribution():
    assert effective_sample_size(np.ones(50)) == pytest.approx(50)
    assert effective_sample_size(np.array([50.0] + [0.0] * 49)) == pytest.approx(1)
    p = weighted_distribution(["a", "b", "b"], ["a", "b", "c"], np.array([2.0, 1.0, 1.0]))
    assert p.tolist() == pytest.approx([0.5, 0.5, 0.0])


@pytest.mark.parametrize("spread", [2.0, 17.0, 60.0])
def test_auto_alpha_keeps_the_requested_effective_sample_size(spread):
    ll = np.random.default_rng(1).normal(-50.0, spread, size=400)
    a = auto_alpha(ll, clip=10.0, min_ess_share=0.5)
    assert 0.0 < a <= 1.0
    share = effective_sample_size(resampling_weights(ll, a, 10.0)) / ll.size
    if a < 1.0:  # the strongest alpha that still keeps half the sample
        assert share == pytest.approx(0.5, abs=0.01)
        assert effective_sample_size(resampling_weights(ll, a * 1.1, 10.0)) / ll.size < 0.5
    else:
        assert share >= 0.5
    # wider likelihood spreads need gentler weights
    if spread > 2.0:
        assert a < auto_alpha(ll / spread * 2.0, clip=10.0, min_ess_share=0.5)
