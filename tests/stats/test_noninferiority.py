"""The non-inferiority test of certify-change: decisions on known cases, and its size at the
margin and power on clustered data by simulation (the benchmark's scenarios, fewer seeds)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.noninferiority import DESIGNS, SCENARIOS, kappa_flip, rejection_rate
from judgekit.stats import cohen_kappa
from judgekit.stats.noninferiority import noninferiority


def _kappa(h: np.ndarray, j: np.ndarray) -> float:
    return cohen_kappa(h, j, labels=[0, 1])


def test_identical_judges_are_non_inferior_and_a_reversed_one_inferior() -> None:
    rng = np.random.default_rng(0)
    human = rng.integers(0, 2, 200)
    judge = np.where(rng.random(200) < 0.85, human, 1 - human)
    groups = np.repeat(np.arange(50), 4)
    same = noninferiority(_kappa, human, judge, judge, rng=rng, delta=0.05, groups=groups)
    assert same.difference.estimate == 0.0 and same.non_inferior and not same.inferior
    reversed_ = noninferiority(_kappa, human, judge, 1 - judge, rng=rng, delta=0.05, groups=groups)
    assert reversed_.inferior and not reversed_.non_inferior
    assert reversed_.difference.estimate == pytest.approx(
        _kappa(human, 1 - judge) - _kappa(human, judge)
    )
    assert reversed_.difference.level == 0.95 and "over 50 groups" in reversed_.difference.method
    with pytest.raises(ValueError, match="alpha"):
        noninferiority(_kappa, human, judge, judge, rng=rng, delta=0.05, alpha=0.5)


def test_margin_parameter_costs_exactly_delta() -> None:
    """The kappa scenario's population difference at the margin, by a large sample."""
    rng = np.random.default_rng(1)
    sampler = SCENARIOS["kappa"][0]
    big = type(DESIGNS[0])(20000, 10)
    human, ref, new, _ = sampler(big, kappa_flip(0.05), rng)
    assert _kappa(human, new) - _kappa(human, ref) == pytest.approx(-0.05, abs=0.006)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["kappa", "spearman"])
def test_size_at_the_margin_and_power_when_harmless(scenario: str) -> None:
    """150 seeds, 50 clusters of 4: rejections at the margin stay within alpha (0.05) plus
    binomial noise (sd 0.018), and a harmless change is certified most of the time."""
    _, at_margin, _, harmless = SCENARIOS[scenario]
    design, run = DESIGNS[1], {"delta": 0.05, "alpha": 0.05, "seeds": 150, "resamples": 300}
    assert rejection_rate(scenario, design, at_margin(0.05), **run) <= 0.09
    assert rejection_rate(scenario, design, harmless, **run) >= 0.6
