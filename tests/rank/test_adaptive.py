"""Adaptive comparisons on simulated tournaments: stable ranking, far fewer battles."""

from __future__ import annotations

import numpy as np

from judgekit.rank import adaptive_rank, outcome_oracle, propose, simulate_battles


def test_stops_stable_with_fewer_battles_than_all_pairs() -> None:
    rng = np.random.default_rng(0)
    theta = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])[rng.permutation(6)]
    models = [f"m{i:02d}" for i in range(6)]
    questions = [str(q) for q in range(300)]
    run = adaptive_rank(models, questions, outcome_oracle(theta, rng), budget=4000, rng=rng)
    assert run.stopped == "stable"
    assert run.steps[-1].stable and run.steps[-1].worst_flip <= 0.05 / 5  # Bonferroni, 6 models
    assert len(run.battles) < 15 * 300 / 4  # under a quarter of judging every pair
    order = [int(r.model[1:]) for r in run.leaderboard.rows]
    assert order == list(np.argsort(-theta))


def test_proposals_go_to_the_least_sure_adjacent_pair_on_new_questions() -> None:
    rng = np.random.default_rng(1)
    battles = simulate_battles(np.array([0.0, 0.05, 3.0]), 20, rng, repeats=1)
    proposals, step, _ = propose(battles, [str(q) for q in range(40)], 6, rng)
    assert not step.stable
    assert set(step.worst_pair) == {"m00", "m01"}
    assert all({a, b} == {"m00", "m01"} and int(q) >= 20 for q, a, b in proposals)
    assert len({q for q, _, _ in proposals}) == 6


def test_budget_and_invalid_verdicts_are_respected() -> None:
    rng = np.random.default_rng(2)
    judge = outcome_oracle(np.array([0.0, 0.01, 0.02]), rng)
    calls = []

    def sometimes_abstains(q: str, a: str, b: str) -> float | None:
        calls.append(q)
        return None if len(calls) % 5 == 0 else judge(q, a, b)

    run = adaptive_rank(
        ["m00", "m01", "m02"],
        [str(q) for q in range(500)],
        sometimes_abstains,
        budget=120,
        rng=rng,
        prior=1.0,
    )
    assert run.stopped == "budget"
    assert len(run.battles) == len(calls) == 120
    assert int(np.isnan(run.battles.outcome).sum()) == 24
