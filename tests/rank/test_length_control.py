"""AlpacaEval's length-controlled win rate: the GLM against statsmodels, the prediction by hand."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy.special import expit

from judgekit.rank import Battles, length_controlled_win_rates

TOL = 1e-6


def _annotations(seed: int, n: int = 300) -> tuple[Battles, dict[str, float], dict[str, tuple]]:
    """Two models against a baseline; soft preferences that like longer answers."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(size=n)
    questions = [f"q{i}" for i in range(n)]
    rows, truth = [], {}
    for model, quality, extra in (("short", -0.5, -200.0), ("long", 0.2, 400.0)):
        own = rng.gamma(4, 100, n) + extra
        base = rng.gamma(4, 100, n) + 100
        own = np.clip(own, 10, None)
        z = quality + 0.8 * np.tanh((own - base) / 300) - 0.7 * difficulty
        pref = expit(z + rng.normal(scale=1.0, size=n))
        truth[model] = (pref, base - own)
        rows += [
            (q, model, "base", p, lo, lb)
            for q, p, lo, lb in zip(questions, pref, own, base, strict=True)
        ]
    q, a, b, y, la, lb = zip(*rows, strict=True)
    battles = Battles.build(q, a, b, np.array(y), lengths=np.column_stack([la, lb]))
    return battles, dict(zip(questions, difficulty, strict=True)), truth


@pytest.mark.parametrize("with_difficulty", [True, False])
def test_glm_matches_statsmodels(with_difficulty: bool) -> None:
    battles, difficulty, truth = _annotations(0)
    results = length_controlled_win_rates(
        battles,
        "base",
        difficulty=difficulty if with_difficulty else None,
        n_resamples=50,
        rng=np.random.default_rng(0),
    )
    diff = np.array(list(difficulty.values()))
    for result in results:
        pref, delta = truth[result.model]
        columns = [np.tanh(delta / delta.std(ddof=1))] + ([diff] if with_difficulty else [])
        exog = np.column_stack([*columns, np.ones(delta.size)])
        fit = sm.GLM(pref, exog, family=sm.families.Binomial()).fit(tol=1e-14)
        assert result.weights["length"] == pytest.approx(fit.params[0], abs=TOL)
        assert result.weights["model"] == pytest.approx(fit.params[-1], abs=TOL)
        slope = fit.params[1] if with_difficulty else 0.0
        predicted = expit(fit.params[-1] + slope * diff)
        assert result.win_rate == pytest.approx(100 * predicted.mean(), abs=1e-6)
        sem = 100 * predicted.std(ddof=1) / np.sqrt(predicted.size)
        assert result.standard_error == pytest.approx(sem, abs=1e-8)
        assert result.low <= result.win_rate <= result.high
        assert result.n_failed == 0


def test_length_control_moves_the_verbose_model_down() -> None:
    battles, _, truth = _annotations(1)
    lc = {r.model: r.win_rate for r in length_controlled_win_rates(battles, "base")}
    raw = {m: 100 * pref.mean() for m, (pref, _) in truth.items()}
    assert lc["long"] < raw["long"]
    assert lc["short"] > raw["short"]


def test_needs_lengths_and_every_difficulty() -> None:
    no_lengths = Battles.build(["q"], ["m"], ["base"], [0.7])
    with pytest.raises(ValueError, match="answer lengths"):
        length_controlled_win_rates(no_lengths, "base")
    battles, difficulty, _ = _annotations(2, n=20)
    difficulty.pop("q3")
    with pytest.raises(ValueError, match="no difficulty for 1 question"):
        length_controlled_win_rates(battles, "base", difficulty=difficulty)
