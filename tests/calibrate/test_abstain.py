"""Abstention threshold: exact bounds, the guarantee checked on a scripted judge, and on
clustered items (the group betting test)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from judgekit.calibrate.measure.abstain import (
    CLOPPER_PEARSON,
    GROUP_BETTING,
    clopper_pearson_lower,
    confidence,
    group_log_evalue,
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


# --- clustered calibration items ----------------------------------------------------------------


def _clustered(seed: int, rate: float, icc: float, n_groups: int = 80) -> tuple[np.ndarray, ...]:
    """Groups of 1-10 items whose agreement rates share a Beta(mean ``rate``, ICC ``icc``)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 11, n_groups)
    codes = np.repeat(np.arange(n_groups), sizes)
    a, b = rate * (1 - icc) / icc, (1 - rate) * (1 - icc) / icc
    agreed = rng.random(codes.size) < rng.beta(a, b, n_groups)[codes]
    return np.ones(codes.size), agreed, codes


def test_singleton_groups_keep_clopper_pearson():
    rng = np.random.default_rng(3)
    conf = rng.uniform(0.5, 1.0, 400)
    agreed = rng.random(400) < conf
    plain = select_threshold(conf, agreed, target=0.8, alpha=0.1)
    same = select_threshold(
        conf, agreed, target=0.8, alpha=0.1, groups=[f"q{i}" for i in range(400)]
    )
    assert same == plain and plain.threshold is not None
    assert plain.method == CLOPPER_PEARSON and plain.n_groups == 400


def test_item_certificate_over_certifies_clustered_items_and_the_group_test_does_not():
    """A judge exactly at the target (population agreement 0.85) on 80 groups of 1-10 items with
    ICC 0.3: any certificate is wrong. Over 400 seeds the item-level Clopper-Pearson certifies in
    0.210 of them, well past alpha = 0.1 (+3 standard errors: 0.145), the group test in 0.005."""
    item = group = 0
    for seed in range(400):
        conf, agreed, codes = _clustered(seed, 0.85, 0.3)
        item += select_threshold(conf, agreed, target=0.85).threshold is not None
        group += select_threshold(conf, agreed, target=0.85, groups=codes).threshold is not None
    assert item / 400 > 0.145
    assert group / 400 <= 0.1


def test_group_test_certifies_a_clear_margin():
    """The same clustered design with true agreement 0.95 against target 0.85: certified in
    most seeds (measured 0.96), with the bound and group counts reported."""
    certified = 0
    for seed in range(100):
        conf, agreed, codes = _clustered(seed, 0.95, 0.3)
        choice = select_threshold(conf, agreed, target=0.85, groups=codes)
        if choice.threshold is not None:
            certified += 1
            assert choice.method == GROUP_BETTING and choice.n_groups == 80
            assert 0.85 <= choice.lower_bound <= agreed.mean()
            assert choice.n_groups_kept == 80 and choice.n_kept == len(codes)
    assert certified >= 60


def test_group_evalue_has_expectation_at_most_one_under_the_null():
    """Betting's validity in one number: at the null boundary (E[k_g - t n_g] = 0) the average
    capital over 4,000 seeds is 1 within noise (measured 1.03 +- 0.05), and 1/alpha is reached
    in at most alpha of them (measured 0.0125)."""
    capital, rejected = [], 0
    for seed in range(4000):
        rng = np.random.default_rng(seed)
        sizes = rng.integers(1, 11, 60)
        hits = rng.binomial(sizes, rng.beta(0.8 * 2, 0.2 * 2, 60))  # mean rate 0.8, ICC 1/3
        log_e = group_log_evalue(sizes, hits, 0.8, 0.1, 10.0)
        capital.append(np.exp(log_e))
        rejected += log_e >= np.log(10)
    assert np.mean(capital) <= 1 + 3 * np.std(capital) / np.sqrt(4000)
    assert rejected / 4000 <= 0.1


def test_group_evalue_by_hand():
    """Two groups, target 0.5, bound 2: x = (2 - 0.5 * 2) / 2 = 0.5, then (0 - 0.5) / 2 = -0.25.
    Each stake is sqrt(2 ln(1/alpha) / (G * running variance)) capped at 0.95 / target; the
    running variance starts at the prior 1/4 and adds the squared deviation of each group seen
    from the running mean."""
    alpha = 0.1
    s1 = min(0.95 / 0.5, np.sqrt(2 * np.log(10) / (2 * 0.25 / 1)))
    var = (0.25 + (0.5 - 0.5) ** 2) / 2
    s2 = min(0.95 / 0.5, np.sqrt(2 * np.log(10) / (2 * var)))
    expected = np.log1p(s1 * 0.5) + np.log1p(s2 * -0.25)
    got = group_log_evalue(np.array([2, 1]), np.array([2, 0]), 0.5, alpha, 2.0)
    assert got == pytest.approx(expected, abs=1e-12)


def test_max_group_size_must_bound_the_groups():
    conf, agreed, codes = _clustered(0, 0.9, 0.3)
    with pytest.raises(ValueError, match="largest group"):
        select_threshold(conf, agreed, target=0.8, groups=codes, max_group_size=3)
