"""Planning battles as pairwise items and reading item verdicts back as battles."""

from __future__ import annotations

import numpy as np
import pytest

from judgekit.rank import Answer, battles_from_verdicts, plan_battles
from judgekit.schema import ItemVerdict


def _answers() -> list[Answer]:
    return [
        Answer(
            question_id=f"q{q}",
            question=f"question {q}",
            model=m,
            answer=f"{m} says {q}",
            category="math" if q < 2 else "code",
        )
        for q in range(3)
        for m in ("base", "x", "y")
    ]


def _verdict(item_id: str, label: str | None, flip: bool | None) -> ItemVerdict:
    probs = (
        None
        if label is None
        else {"A": 0.8 if label == "A" else 0.1, "B": 0.2 if label == "A" else 0.9}
    )
    return ItemVerdict(
        item_id=item_id,
        group=item_id,
        rubric="pairwise_preference",
        rubric_version=2,
        rubric_hash="h",
        judge_model="judge",
        label_probs=probs,
        score=None,
        score_uncorrected=None,
        label=label,
        tie=False,
        valid=label is not None,
        n_judgments=2,
        n_valid_judgments=2 if label else 0,
        n_variants=1,
        n_valid_variants=1 if label else 0,
        partial=False,
        p_a_ab=None,
        p_a_ba=None,
        flip=flip,
        controls={},
    )


def test_baseline_plan_puts_each_candidate_against_the_baseline() -> None:
    plan = plan_battles(_answers(), baseline="base")
    assert len(plan.items) == 6
    first = plan.items[0]
    assert (first.id, first.question, first.answer_a, first.answer_b) == (
        "q0::x::base",
        "question 0",
        "x says 0",
        "base says 0",
    )
    assert {(b.model_a, b.model_b) for b in plan.battles} == {("x", "base"), ("y", "base")}


def test_all_pairs_or_sampled_pairs() -> None:
    assert len(plan_battles(_answers()).items) == 9
    sampled = plan_battles(_answers(), pairs_per_question=1, rng=np.random.default_rng(0))
    assert len(sampled.items) == 3
    with pytest.raises(ValueError, match="two answers from 'x'"):
        plan_battles([*_answers(), _answers()[1]])


def test_verdicts_become_battles_missing_and_invalid_are_counted() -> None:
    plan = plan_battles(_answers(), baseline="base")
    ids = [b.item_id for b in plan.battles]
    verdicts = {
        ids[0]: _verdict(ids[0], "A", flip=False),
        ids[1]: _verdict(ids[1], "B", flip=True),
        ids[2]: _verdict(ids[2], None, flip=None),
        ids[3]: "tie",
        ids[4]: 0.7,
    }
    battles = battles_from_verdicts(plan, verdicts)
    np.testing.assert_array_equal(battles.outcome, [1.0, 0.0, np.nan, 0.5, 0.7, np.nan])
    np.testing.assert_array_equal(battles.flip, [0.0, 1.0, np.nan, np.nan, np.nan, np.nan])
    assert battles.category.tolist() == ["math", "math", "math", "math", "code", "code"]
    probs = battles_from_verdicts(plan, verdicts, use="probability")
    assert probs.outcome[0] == pytest.approx(0.8) and probs.outcome[1] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="not in the plan"):
        battles_from_verdicts(plan, {"other": "A"})
