"""Length bias: scripted judges with a known length term, and the rule that applies a model."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy.special import expit

from judgekit.bias.length import (
    LengthDecision,
    PairwiseLengthModel,
    PointwiseLengthModel,
    fit_pairwise_length,
    fit_pointwise_length,
    human_preference,
    length_decision,
    length_slope,
    pairwise_length_slope,
    slope_ci_bootstrap,
)

B0, B1 = 0.3, 1.2  # pairwise judge: logit p(A) = B0 + B1 * tanh((len_a - len_b) / s)
BETA = 0.4  # pointwise judge: score = human + BETA * log(len) + noise


def _lengths(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.lognormal(5.5, 0.6, n).round() + 1, rng.lognormal(5.5, 0.6, n).round() + 1


def _scripted_pairwise(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    len_a, len_b = _lengths(rng, n)
    d = len_a - len_b
    pref = expit(B0 + B1 * np.tanh(d / np.std(d)))
    return pref, len_a, len_b


def test_soft_judge_recovered_exactly_and_removed() -> None:
    pref, len_a, len_b = _scripted_pairwise(np.random.default_rng(0), 5000)
    model = fit_pairwise_length(pref, len_a, len_b)
    assert model.scale == pytest.approx(np.std(len_a - len_b))
    assert model.slope == pytest.approx(B1, abs=1e-8)
    assert model.intercept == pytest.approx(B0, abs=1e-8)
    assert model.slope_ci_low < B1 < model.slope_ci_high
    assert (model.n, model.n_invalid) == (5000, 0)

    corrected = model.correct(pref, len_a, len_b)
    np.testing.assert_allclose(corrected, expit(B0), atol=1e-10)
    assert model.length_controlled_win_rate(pref, len_a, len_b) == pytest.approx(expit(B0))
    assert np.mean(pref) != pytest.approx(expit(B0), abs=1e-3)  # raw win rate is biased
    slope_after, _, _ = pairwise_length_slope(corrected, len_a, len_b, scale=model.scale)
    assert abs(slope_after) < 1e-8


def test_bernoulli_judge_recovers_slope_on_large_sample() -> None:
    rng = np.random.default_rng(1)
    pref, len_a, len_b = _scripted_pairwise(rng, 100_000)
    wins = rng.binomial(1, pref).astype(float)
    model = fit_pairwise_length(wins, len_a, len_b)
    assert model.slope_se < 0.015
    assert abs(model.slope - B1) < 3 * model.slope_se
    assert model.slope_ci_low < B1 < model.slope_ci_high


def test_heterogeneous_quality_attenuates_the_slope() -> None:
    # Documented limitation: item-level quality spread makes the marginal slope smaller than the
    # per-item length term, so the correction removes most but not all of it (never overshoots).
    rng = np.random.default_rng(2)
    _, len_a, len_b = _scripted_pairwise(rng, 100_000)
    d = len_a - len_b
    pref = expit(rng.normal(B0, 1.0, d.size) + B1 * np.tanh(d / np.std(d)))
    model = fit_pairwise_length(pref, len_a, len_b)
    assert 0.7 * B1 < model.slope < B1
    after, _, _ = pairwise_length_slope(model.correct(pref, len_a, len_b), len_a, len_b)
    assert 0 < after < 0.2 * B1


def test_correction_is_frozen_and_serialisable() -> None:
    rng = np.random.default_rng(3)
    pref, len_a, len_b = _scripted_pairwise(rng, 2000)
    model = fit_pairwise_length(rng.binomial(1, pref).astype(float) * 0.8 + 0.1, len_a, len_b)
    old = model.correct(pref, len_a, len_b)

    # A new candidate judged later, with very different lengths: old scores must not move.
    new_pref, new_a, new_b = _scripted_pairwise(rng, 500)
    both = model.correct(
        np.concatenate([pref, new_pref]),
        np.concatenate([len_a, new_a * 5]),
        np.concatenate([len_b, new_b]),
    )
    np.testing.assert_array_equal(both[:2000], old)

    restored = PairwiseLengthModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert restored == model
    np.testing.assert_array_equal(restored.correct(pref, len_a, len_b), old)


def test_pairwise_invalid_rows_excluded_and_counted() -> None:
    pref, len_a, len_b = _scripted_pairwise(np.random.default_rng(4), 1000)
    pref_nan = pref.copy()
    pref_nan[:7] = np.nan
    model = fit_pairwise_length(pref_nan, len_a, len_b)
    clean = fit_pairwise_length(pref[7:], len_a[7:], len_b[7:])
    assert (model.n, model.n_invalid) == (993, 7)
    assert model.slope == pytest.approx(clean.slope, abs=1e-10)
    corrected = model.correct(pref_nan, len_a, len_b)
    assert np.isnan(corrected[:7]).all() and np.isfinite(corrected[7:]).all()
    assert np.isfinite(model.length_controlled_win_rate(pref_nan, len_a, len_b))


def test_pairwise_degenerate_inputs_raise() -> None:
    len_a, len_b = _lengths(np.random.default_rng(5), 200)
    separable = (len_a > len_b).astype(float)
    with pytest.raises(ValueError, match="converge"):
        fit_pairwise_length(separable, len_a, len_b)
    with pytest.raises(ValueError, match="scale"):
        fit_pairwise_length(np.full(3, 0.5), np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="valid rows"):
        fit_pairwise_length(np.full(3, np.nan), np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit_pairwise_length(np.full(200, 2.0), len_a, len_b)


def _scripted_pointwise(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    n_tokens = rng.lognormal(5.0, 0.7, n).round() + 1
    log_len = np.log(n_tokens)
    # Longer answers really are somewhat better, so the human covariate matters.
    human = rng.normal(3.0, 1.0, n) + 0.5 * (log_len - log_len.mean())
    score = human + BETA * log_len + rng.normal(0, 0.3, n)
    return score, n_tokens, human


def test_pointwise_recovers_beta_and_correction_removes_it() -> None:
    score, n_tokens, human = _scripted_pointwise(np.random.default_rng(6), 20_000)
    model = fit_pointwise_length(score, n_tokens, human)
    assert model.slope_se < 0.005
    assert abs(model.slope - BETA) < 3 * model.slope_se
    assert model.slope_ci_low < BETA < model.slope_ci_high
    assert model.human_coef == pytest.approx(1.0, abs=0.01)
    assert model.centre == pytest.approx(np.mean(np.log(n_tokens)))

    after = length_slope(model.correct(score, n_tokens), n_tokens, human)
    assert abs(after[0]) < 1e-10 and after[1] < 0 < after[2]

    # Without the human covariate, genuine quality differences masquerade as bias: 0.4 + 0.5.
    naive = length_slope(score, n_tokens)
    assert naive[0] == pytest.approx(BETA + 0.5, abs=0.03)


def test_pointwise_frozen_serialisable_and_invalid_counted() -> None:
    rng = np.random.default_rng(7)
    score, n_tokens, human = _scripted_pointwise(rng, 3000)
    score[:4] = np.nan
    model = fit_pointwise_length(score, n_tokens, human)
    assert (model.n, model.n_invalid) == (2996, 4)
    old = model.correct(score, n_tokens)
    assert np.isnan(old[:4]).all()
    np.testing.assert_allclose(
        old[4:], score[4:] - model.slope * (np.log(n_tokens[4:]) - model.centre)
    )
    new_score, new_tokens, _ = _scripted_pointwise(rng, 100)
    both = model.correct(np.concatenate([score, new_score]), np.concatenate([n_tokens, new_tokens]))
    np.testing.assert_array_equal(both[:3000], old)

    restored = PointwiseLengthModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert restored == model
    no_human = fit_pointwise_length(score, n_tokens)
    assert no_human.human_coef is None
    assert PointwiseLengthModel.from_dict(json.loads(json.dumps(no_human.to_dict()))) == no_human


def test_pointwise_bootstrap_ci_matches_classical() -> None:
    score, n_tokens, human = _scripted_pointwise(np.random.default_rng(8), 2000)
    model = fit_pointwise_length(score, n_tokens, human)
    low, high = slope_ci_bootstrap(score, n_tokens, human, np.random.default_rng(9), 1000)
    # Homoscedastic errors: item resampling must agree with the classical OLS interval.
    width = model.slope_ci_high - model.slope_ci_low
    assert abs(low - model.slope_ci_low) < 0.1 * width
    assert abs(high - model.slope_ci_high) < 0.1 * width
    again = slope_ci_bootstrap(score, n_tokens, human, np.random.default_rng(9), 1000)
    assert again == (low, high)


def test_pointwise_too_few_rows_raise() -> None:
    with pytest.raises(ValueError, match="valid rows"):
        fit_pointwise_length(np.array([1.0, 2.0]), np.array([10.0, 20.0]))
    with pytest.raises(ValueError, match="positive"):
        fit_pointwise_length(np.array([1.0, 2.0, 3.0]), np.array([10.0, 0.0, 5.0]))


# --------------------------------------------------------------------------- the human covariate


def _pandalm_arrays(rows: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real PandaLM answer lengths (characters) and the human plurality as +1 A / -1 B / 0 tie
    (NaN where the three annotators all differ)."""
    len_a = np.array([len(str(r["response1"])) for r in rows], dtype=float)
    len_b = np.array([len(str(r["response2"])) for r in rows], dtype=float)
    side = {"0": 0.0, "1": 1.0, "2": -1.0}
    human = np.full(len(rows), np.nan)
    for i, r in enumerate(rows):
        votes = [str(r[f"annotator{k}"]) for k in (1, 2, 3)]
        top = max(set(votes), key=votes.count)
        if votes.count(top) > 1:
            human[i] = side[top]
    return len_a, len_b, human


def test_human_covariate_fit_matches_statsmodels() -> None:
    """Hard outcomes of a judge with a human-class intercept: our Newton fit is the GLM's."""
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(10)
    len_a, len_b = _lengths(rng, 3000)
    human = rng.choice([1.0, -1.0, 0.0], size=3000, p=[0.45, 0.45, 0.1])
    x = np.tanh((len_a - len_b) / np.std(len_a - len_b))
    wins = rng.binomial(1, expit(0.1 + 0.7 * x + 1.3 * human - 0.4 * (human == 0))).astype(float)
    model = fit_pairwise_length(wins, len_a, len_b, human=human)
    design = np.column_stack([np.ones_like(x), x, human, (human == 0).astype(float)])
    glm = sm.GLM(wins, design, family=sm.families.Binomial()).fit()
    fitted = [model.intercept, model.slope, model.human_coef, model.tie_coef]
    np.testing.assert_allclose(fitted, glm.params, atol=1e-8)
    assert model.slope_se == pytest.approx(glm.bse[1], rel=1e-6)
    assert model.slope_ci_low < 0.7 < model.slope_ci_high
    no_ties = fit_pairwise_length(wins[human != 0], len_a[human != 0], len_b[human != 0],
                                  human=human[human != 0])  # fmt: skip
    assert no_ties.tie_coef is None and no_ties.human_coef is not None


def test_human_covariate_needs_both_preferences_and_known_labels() -> None:
    len_a, len_b = _lengths(np.random.default_rng(11), 50)
    with pytest.raises(ValueError, match="both A and B"):
        fit_pairwise_length(np.full(50, 0.6), len_a, len_b, human=np.ones(50))
    np.testing.assert_array_equal(
        human_preference(["A", "B", "tie", None]), [1.0, -1.0, 0.0, np.nan]
    )
    with pytest.raises(ValueError, match="row 1: human pairwise label 'a'"):
        human_preference(["A", "a"])


def test_never_length_judge_on_pandalm_has_no_slope_given_the_human_label(
    pandalm_rows: list[dict],
) -> None:
    """On PandaLM humans prefer the longer answer, so a judge that only follows the humans
    shows a length slope in the marginal (AlpacaEval) model; with the human label it has none."""
    len_a, len_b, human = _pandalm_arrays(pandalm_rows)
    decisive = np.isfinite(human) & (human != 0) & (len_a != len_b)
    longer_wins = np.mean(np.sign(len_a - len_b)[decisive] == human[decisive])
    assert (decisive.sum(), longer_wins) == (887, pytest.approx(0.6753, abs=1e-4))

    rng = np.random.default_rng(0)
    pref = expit(1.5 * np.nan_to_num(human) + rng.normal(0.0, 1.0, human.size))
    marginal = fit_pairwise_length(pref, len_a, len_b)
    given = fit_pairwise_length(pref, len_a, len_b, human=human)
    assert (marginal.slope, marginal.slope_ci_low) == pytest.approx((0.773, 0.517), abs=1e-3)
    assert given.slope == pytest.approx(0.077, abs=1e-3)
    assert given.slope_ci_low < 0 < given.slope_ci_high
    assert given.human_coef == pytest.approx(1.21, abs=0.01)
    assert given.tie_coef == pytest.approx(0.0, abs=1e-3)  # ties sit midway, as simulated
    assert (given.n, given.n_invalid) == (999, 0)


def test_old_stored_pairwise_model_loads_without_the_human_term() -> None:
    """Cards made before the human covariate stored these coefficients; they still load as the
    marginal model, and the rule never applies them."""
    old = {
        "intercept": 0.1, "slope": 0.95, "slope_se": 0.2, "slope_ci_low": 0.56,
        "slope_ci_high": 1.34, "scale": 700.0, "n": 480, "n_invalid": 0,
    }  # fmt: skip
    model = PairwiseLengthModel.from_dict(old)
    assert model.human_coef is None and model.tie_coef is None and model.decision is None
    assert model.to_dict() == {**old, "human_coef": None, "tie_coef": None}
    decision = length_decision(model, (0.7, 0.8), metric="kappa", n_folds=5)
    assert not decision.apply and "without the human label" in decision.reason


def _model(slope: float, low: float, high: float, human_coef: float | None = 1.0):
    return PairwiseLengthModel(
        intercept=0.0, slope=slope, slope_se=(high - low) / 3.92, slope_ci_low=low,
        slope_ci_high=high, scale=500.0, n=400, n_invalid=0, human_coef=human_coef,
    )  # fmt: skip


def test_length_decision_rule() -> None:
    real = _model(1.2, 0.7, 1.7)
    # The no-effect model: slope 0.019 [-0.32, 0.36] moved a card's kappa; never applied.
    nothing = length_decision(_model(0.019, -0.32, 0.36), (0.1, 0.3), metric="kappa", n_folds=5)
    assert nothing == LengthDecision(
        apply=False,
        reason="no measurable length effect on dev: slope 0.019 [-0.32, 0.36] covers 0",
        metric="kappa", cv_before=0.1, cv_after=0.3, n_folds=5,
    )  # fmt: skip
    drops = length_decision(real, (0.75, 0.70), metric="kappa", n_folds=5)
    assert not drops.apply
    assert drops.reason == "the correction lowers kappa from 0.750 to 0.700 (5 group folds on dev)"
    unmeasured = length_decision(real, "fold 2: no fit", metric="kappa", n_folds=5)
    assert not unmeasured.apply and unmeasured.reason.endswith("fold 2: no fit")
    kept = length_decision(real, (0.75, 0.75), metric="kappa", n_folds=5)
    assert kept.apply and kept.reason.startswith("slope 1.2 [0.7, 1.7] excludes 0")
    negative = length_decision(_model(-0.9, -1.4, -0.4), (0.5, 0.6), metric="kappa", n_folds=4)
    assert negative.apply  # a judge that favours short answers is corrected too
    pointwise = PointwiseLengthModel(0.0, 0.4, 0.05, 0.3, 0.5, None, 5.0, 100, 0)
    assert not length_decision(pointwise, (0.5, 0.6), metric="qwk", n_folds=5).apply
    assert length_decision(replace(pointwise, human_coef=0.9), (0.5, 0.6), metric="qwk",
                           n_folds=5).apply  # fmt: skip


def test_decision_is_kept_beside_the_coefficients() -> None:
    model = replace(_model(1.2, 0.7, 1.7), decision=LengthDecision(True, "why"))
    assert "decision" not in model.to_dict()
    assert PairwiseLengthModel.from_dict(model.to_dict(), model.decision) == model
