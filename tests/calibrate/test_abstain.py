"""Abstention threshold: exact bounds, and the guarantee checked on a scripted judge."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from judgekit.calibrate.abstain import (
    clopper_pearson_lower,
    confidence,
    min_testable,
    select_threshold,
)


def test_clopper_pearson_matches_scipy_exact_interval():
    for k, n in [(7, 10), (48, 50), (1, 3), (30, 30)]:
        expected = binomtest(k, n).proportion_ci(confidence_level=0.8, method="exact").low
        assert clopper_pearson_lower(k, n, 0.1) == pytest.approx(expected, abs=1e-12)
    assert clopper_pearson_lower(0, 5, 0.1) == 0.0


def test_min_testable_is_the_first_n_that_can_reject():
    assert min_testable(0.8, 0.1) == 11  # 0.8**11 = 0.086 <= 0.1 < 0.8**10
    assert clopper_pearson_lower(11, 11, 0.1) >= 0.8 > clopper_pearson_lower(10, 10, 0.1)


def test_keeps_nothing_when_no_threshold_meets_the_target():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 200)
    agreed = rng.random(200) < 0.5  # a coin, whatever the confidence
    choice = select_threshold(conf, agreed, target=0.9, alpha=0.1)
    assert choice.threshold is None and choice.n_kept == 0


def test_invalid_verdicts_are_never_kept():
    conf = np.array([np.nan] * 20 + [0.95] * 20)
    agreed = np.array([False] * 20 + [True] * 20)
    choice = select_threshold(conf, agreed, target=0.8, alpha=0.1)
    assert choice.threshold is not None and choice.n_kept == 20


def test_confidence_discounts_order_disagreement():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [np.nan, np.nan]])
    got = confidence(probs, np.array([1.0, 0.0, 1.0]))
    assert got[:2] == pytest.approx([0.9, 0.45]) and np.isnan(got[2])


@pytest.mark.parametrize(
    "target,shift,min_power",
    [(0.8, 0.0, 0.9), (0.7, 0.0, 0.95), (0.8, 0.1, 0.25), (0.9, 0.05, 0.15)],
)
def test_guarantee_holds_at_the_stated_rate(target, shift, min_power):
    """Scripted judge: confidence c ~ U(0.5, 1), right with probability c - shift (over-confident
    by ``shift``). True agreement above threshold t is (1 + t) / 2 - shift, so a threshold
    fails the guarantee when that is below the target. Over 1000 seeds the failure rate must stay
    within alpha (plus 3 binomial standard errors). ``min_power``: share of seeds that keep
    anything (measured 0.97 / 1.00 / 0.32 / 0.21; fixed-sequence testing from the top loses
    power when even the most confident items sit near the target). At (0.8, 0.0) the measured
    failure rate is 0.067: close to alpha, so the test is not trivially conservative."""
    alpha, n, seeds = 0.1, 400, 1000
    failures = kept_any = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        conf = rng.uniform(0.5, 1.0, n)
        agreed = rng.random(n) < conf - shift
        choice = select_threshold(conf, agreed, target=target, alpha=alpha)
        if choice.threshold is None:
            continue
        kept_any += 1
        true_agreement = (1 + max(choice.threshold, 0.5)) / 2 - shift
        failures += true_agreement < target
    rate = failures / seeds
    assert rate <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / seeds), rate
    assert kept_any >= min_power * seeds
