"""Ranking by judging: battles planned from answers, judged in both orders, read back, ranked.

The scripted judge prefers the stronger model by a known margin, whichever side it is shown on,
so the leaderboard's order and its zero position-flip rate are known. The engine proves the
same machinery in test_rank_engine.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scripted import ScriptedBackend

from judgekit.data.records import InputError
from judgekit.rank import RankOptions, rank_answers, read_answers

STRENGTH = {"m1": 3.0, "m2": 2.0, "m3": 1.0, "m4": 0.0}


def _script(item_id: str, variant: str, order: str) -> dict[str, float]:
    """The stronger model wins, whichever side it is on; on question q5 the order reverses."""
    question, a, b = item_id.split("::")
    first, second = (a, b) if order == "AB" else (b, a)
    sign = -1.0 if question == "q5" else 1.0
    p = 1 / (1 + math.exp(sign * (STRENGTH[second] - STRENGTH[first])))
    return {"A": p, "B": 1 - p}


def _answers(path: Path, n_questions: int = 6) -> Path:
    rows = [
        {
            "question_id": f"q{q}",
            "question": f"Question {q}?",
            "model": m,
            "answer": f"{m} says {q}",
        }
        for q in range(n_questions)
        for m in STRENGTH
    ]
    rows[0]["answer"] = ""  # a model may answer nothing
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_judged_battles_rank_the_stronger_model_first(tmp_path: Path) -> None:
    answers = read_answers([_answers(tmp_path / "answers.jsonl")])
    assert answers[0].answer == ""
    backend = ScriptedBackend(_script)
    ranked = rank_answers(
        answers,
        "pairwise_preference@v2",
        backend=backend,
        options=RankOptions(n_resamples=100),
        output=tmp_path / "battles.jsonl",
    )
    (board,) = ranked.leaderboards
    assert [r.model for r in board.rows] == ["m1", "m2", "m3", "m4"]
    assert board.n_battles == 6 * 6 and board.n_questions == 6
    assert all(r.n_battles == 18 and r.flip_rate == 0.0 and r.n_invalid == 0 for r in board.rows)
    assert backend.calls == 6 * 6 * 2 * 3  # every battle in both orders x 3 variants
    assert len((tmp_path / "battles.jsonl").read_text().splitlines()) == backend.calls
    assert board.judge is not None and board.judge.card.startswith("none")


def test_battles_against_a_baseline(tmp_path: Path) -> None:
    answers = read_answers([_answers(tmp_path / "answers.jsonl")])
    ranked = rank_answers(
        answers,
        "pairwise_preference@v2",
        backend=ScriptedBackend(_script),
        options=RankOptions(baseline="m4", scale="win_rate", n_resamples=100),
    )
    (board,) = ranked.leaderboards
    assert board.n_battles == 3 * 6  # every other model against the baseline, per question
    top = board.rows[0]
    assert top.model == "m1" and top.observed_win_rate == pytest.approx(100 * 5 / 6)


def test_an_answer_without_a_question_id_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "m9.jsonl"
    rows = [
        {"question_id": "q", "question": "Q?", "answer": "x"},
        {"question": "Q?", "answer": "y"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError, match=r"m9.jsonl: row 2: field 'question_id'"):
        read_answers([path])
    path.write_text(json.dumps(rows[0]) + "\n")
    assert [a.model for a in read_answers([path])] == ["m9"]  # a per-model file names its model


def test_a_pointwise_rubric_is_refused(tmp_path: Path) -> None:
    answers = read_answers([_answers(tmp_path / "answers.jsonl")])
    with pytest.raises(ValueError, match="not a pairwise rubric"):
        rank_answers(answers, "overall_quality@v2", backend=ScriptedBackend(_script))
