"""Regression slices of two public leaderboards, with the numbers their publishers' code gives.

Arena-Hard-Auto: 178 battles (questions 0-19, claude-3-opus and gpt-4o against the baseline
claude-3-haiku) of data/arena_hard_battles.jsonl at lmarena/arena-hard-auto commit 57a9881
(Apache-2.0), run-length encoded below in file order. Expected values: the publisher's
``utils_math.py`` (commit d99b139): ``compute_mle_elo(battles, baseline_model=haiku)`` and
``get_bootstrap_result(battles, compute_mle_elo, 20, haiku)`` after ``np.random.seed(42)``;
its resamples draw rows with numpy's legacy generator and are not anchored at the baseline
(its ``kwargs[baseline_model]`` never reaches ``compute_mle_elo``), so the mean model sits at
1000 in each resample. judgekit reproduces them with the same draws and ``unit="battle"`` to
1e-6 Elo points (measured; scikit-learn stops at its tolerance of 1e-8).

AlpacaEval 2: 24 annotations each of Qwen-14B-Chat and claude-2.1 against gpt4_1106_preview
(results/<model>/weighted_alpaca_eval_gpt4_turbo/annotations.json at tatsu-lab/alpaca_eval
commit cd543a1, Apache-2.0; instruction index, preference). Expected values: the publisher's
``metrics.winrate.get_winrate`` on those rows.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from judgekit.rank import Battles, counts_from_indices, fit_strengths, rank_battles

HAIKU = "claude-3-haiku-20240307"
NAMES = {"opus": "claude-3-opus-20240229", "4o": "gpt-4o"}
ARENA_HARD_RUNS = [
    (0, "opus", "model_b", 6),
    (1, "opus", "model_b", 2),
    (3, "opus", "model_b", 6),
    (6, "opus", "model_a", 4),
    (8, "opus", "model_b", 3),
    (8, "opus", "model_a", 3),
    (4, "opus", "model_b", 1),
    (4, "opus", "model_a", 1),
    (5, "opus", "model_b", 6),
    (2, "opus", "model_b", 1),
    (2, "opus", "model_a", 1),
    (9, "opus", "model_b", 1),
    (9, "opus", "model_a", 1),
    (7, "opus", "model_b", 6),
    (13, "opus", "model_b", 6),
    (10, "opus", "model_b", 6),
    (12, "opus", "model_b", 1),
    (12, "opus", "tie", 1),
    (14, "opus", "model_b", 4),
    (11, "opus", "model_b", 6),
    (18, "opus", "model_a", 2),
    (17, "opus", "model_b", 4),
    (19, "opus", "model_b", 6),
    (16, "opus", "model_a", 1),
    (16, "opus", "model_b", 3),
    (15, "opus", "model_b", 6),
    (6, "4o", "model_b", 1),
    (6, "4o", "tie", 1),
    (0, "4o", "model_b", 6),
    (1, "4o", "model_a", 2),
    (4, "4o", "model_b", 6),
    (3, "4o", "model_b", 2),
    (7, "4o", "model_b", 6),
    (5, "4o", "model_b", 6),
    (9, "4o", "model_a", 4),
    (2, "4o", "model_b", 2),
    (10, "4o", "model_b", 4),
    (8, "4o", "model_b", 3),
    (8, "4o", "model_a", 3),
    (13, "4o", "model_b", 6),
    (12, "4o", "tie", 1),
    (12, "4o", "model_a", 1),
    (14, "4o", "model_b", 2),
    (11, "4o", "model_b", 6),
    (19, "4o", "tie", 1),
    (19, "4o", "model_a", 3),
    (18, "4o", "model_b", 6),
    (17, "4o", "model_b", 6),
    (16, "4o", "model_a", 6),
    (15, "4o", "model_b", 6),
]
ARENA_HARD_ELO = {"claude-3-opus-20240229": 1296.7290021907838, "gpt-4o": 1212.0923784201498}
ARENA_HARD_Q025 = {
    "claude-3-opus-20240229": 1071.6085182596994,
    "gpt-4o": 957.5824925978636,
    HAIKU: 755.884705779664,
}
ARENA_HARD_Q975 = {
    "claude-3-opus-20240229": 1245.511615731163,
    "gpt-4o": 1117.9700782525426,
    HAIKU: 855.7761034993384,
}
ALPACA_PREFERENCES = {
    "Qwen-14B-Chat": [
        1.0000556221,
        1.0000114788,
        1.000001578,
        1.0003859661,
        1.0001355208,
        1.0000630276,
        1.0000011189,
        1.0071214277,
        1.0000217826,
        1.0000007002,
        1.000000769,
        1.0000030895,
        1.0000047109,
        1.0000102895,
        1.0000010845,
        1.0017007223,
        1.0015011822,
        1.0000288571,
        1.5,
        1.5,
        1.5,
        1.5,
        1.5,
        1.5,
    ],
    "claude-2.1": [
        1.0000630276,
        1.0000164425,
        1.000209883,
        1.0109869438,
        1.0011335687,
        1.0474258723,
        1.9724147156,
        1.0049054052,
        1.0015487612,
        1.000003612,
        1.0028895803,
        1.0000961024,
        1.0000902803,
        1.0015011824,
        1.0000186317,
        1.0618759822,
        1.0080619915,
        1.0000060489,
        1.0600866427,
        1.0244230919,
        1.115960723,
        1.0004583129,
        1.5,
        1.5,
    ],
}
ALPACA_INDEX = {
    "Qwen-14B-Chat": [*range(18), 199, 263, 370, 638, 707, 713],
    "claude-2.1": [*range(22), 199, 370],
}
ALPACA_EXPECTED = {  # win_rate, standard_error, discrete_win_rate
    "Qwen-14B-Chat": (12.546037199166667, 4.509026209490463, 12.5),
    "claude-2.1": (9.642403342083332, 4.751819034425013, 8.333333333333332),
}
ELO = 400 / math.log(10)


def _arena_hard_battles() -> Battles:
    rows = [(str(q), HAIKU, NAMES[m], w) for q, m, w, n in ARENA_HARD_RUNS for _ in range(n)]
    question, model_a, model_b, winner = zip(*rows, strict=True)
    outcome = [{"model_a": 1.0, "model_b": 0.0, "tie": 0.5}[w] for w in winner]
    return Battles.build(question, model_a, model_b, outcome)


def test_arena_hard_scores_and_intervals_with_the_publishers_draws() -> None:
    battles = _arena_hard_battles()
    assert len(battles) == 178
    legacy = np.random.RandomState(42)  # what np.random.seed(42) + DataFrame.sample draw
    draws = np.array([legacy.randint(0, len(battles), len(battles)) for _ in range(20)])
    fit = fit_strengths(battles, unit="battle", counts=counts_from_indices(draws, len(battles)))
    haiku = battles.models.index(HAIKU)
    for model, elo in ARENA_HARD_ELO.items():
        m = battles.models.index(model)
        assert 1000 + ELO * (fit.theta[m] - fit.theta[haiku]) == pytest.approx(elo, abs=1e-5)
    boot = 1000 + ELO * (fit.boot - fit.boot.mean(axis=1, keepdims=True))
    for model in ARENA_HARD_Q025:
        m = battles.models.index(model)
        assert np.quantile(boot[:, m], 0.025) == pytest.approx(ARENA_HARD_Q025[model], abs=1e-5)
        assert np.quantile(boot[:, m], 0.975) == pytest.approx(ARENA_HARD_Q975[model], abs=1e-5)


def test_alpaca_eval_win_rate_standard_error_and_discrete_win_rate() -> None:
    rows = [
        (f"i{i}", model, "gpt4_1106_preview", p - 1.0)
        for model, prefs in ALPACA_PREFERENCES.items()
        for i, p in zip(ALPACA_INDEX[model], prefs, strict=True)
    ]
    battles = Battles.build(*zip(*rows, strict=True))
    board = rank_battles(
        battles, baseline="gpt4_1106_preview", n_resamples=50, rng=np.random.default_rng(0)
    )
    rows_by_model = {r.model: r for r in board.rows}
    for model, (win_rate, se, discrete) in ALPACA_EXPECTED.items():
        row = rows_by_model[model]
        assert row.observed_win_rate == pytest.approx(win_rate, abs=1e-9)
        assert row.standard_error == pytest.approx(se, abs=1e-9)
        assert row.discrete_win_rate == pytest.approx(discrete, abs=1e-12)
