"""End to end on the real vLLM engine with the embedded SmolLM2 judge (one engine per session)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from judgekit import judge, summarize
from judgekit.bias import PointwiseLengthModel
from judgekit.judging.plan import plan_requests
from judgekit.rubrics import load_rubric
from judgekit.schema import Judgment, PairwiseItem, PointwiseItem

pytestmark = pytest.mark.engine


def _check_judgments(judgments: list[Judgment], labels: tuple[str, ...], rubric_hash: str) -> None:
    for j in judgments:
        assert j.rubric_hash == rubric_hash and j.judge_model and j.judge_fingerprint
        assert 0.0 < j.label_mass <= 1.0
        assert j.engine_settings["enable_prefix_caching"] is True
        if j.valid:
            assert j.label_probs is not None and set(j.label_probs) == set(labels)
            assert math.fsum(j.label_probs.values()) == pytest.approx(1.0, abs=1e-9)
        else:
            assert j.label_probs is None and j.invalid_reason


def test_pointwise_on_pandalm_answers(engine, pandalm_answers: list[PointwiseItem]) -> None:
    rubric = load_rubric("overall_quality@v1")
    run = judge(pandalm_answers, rubric, backend=engine, batch_size=32)
    assert len(run.judgments) == len(pandalm_answers) * 3
    _check_judgments(run.judgments, rubric.labels, rubric.hash)
    summary = summarize(run)
    assert summary.n_items == 20 and summary.n_invalid_judgments == 0
    assert 1.0 <= summary.mean_score <= 5.0
    # two answers per question, three variants: the prefix cache must have been hit
    assert summary.cached_tokens > 0 and summary.cache_hit_rate > 0.3
    assert sum(j.num_cached_tokens > 0 for j in run.judgments) >= len(run.judgments) // 2
    # a frozen length model (as a calibration card stores it) shifts scores by exactly its slope
    model = PointwiseLengthModel.from_dict(
        {
            "intercept": 0.0,
            "slope": 0.5,
            "slope_se": 0.1,
            "slope_ci_low": 0.3,
            "slope_ci_high": 0.7,
            "human_coef": None,
            "centre": 5.0,
            "n": 100,
            "n_invalid": 0,
        }
    )
    corrected = dataclasses.replace(run, length_model=model)
    n_chars = np.array([len(item.answer) for item in pandalm_answers], dtype=float)
    np.testing.assert_allclose(
        corrected.final_scores, run.item_scores - 0.5 * (np.log(n_chars) - 5.0), rtol=1e-12
    )
    assert summarize(corrected).controls["length"] == "frozen (from calibration)"


def test_pairwise_both_orders_on_pandalm(engine, pandalm_pairs: list[PairwiseItem]) -> None:
    rubric = load_rubric("pairwise_preference@v1")
    run = judge(pandalm_pairs, rubric, backend=engine)
    assert len(run.judgments) == 20 * 3 * 2
    assert {j.order for j in run.judgments} == {"AB", "BA"}
    _check_judgments(run.judgments, rubric.labels, rubric.hash)
    assert summarize(run).cache_hit_rate > 0.2
    frame = run.items_frame()
    assert len(frame) == 20 and frame["p_A"].add(frame["p_B"]).dropna().round(9).eq(1).all()
    verdicts = run.item_verdicts()
    assert all(v.controls["position_swap"] == "soft" and v.n_judgments == 6 for v in verdicts)
    # recompute the item verdict by hand: per variant, the geometric mean of P(A|AB) and the
    # un-swapped P(A|BA) (renormalised), then the mean over the three variants
    probs = {(j.item_id, j.variant, j.order): j.label_probs for j in run.judgments}
    for verdict in verdicts:
        per_variant = []
        for variant in rubric.variants:
            ab, ba = probs[verdict.item_id, variant, "AB"], probs[verdict.item_id, variant, "BA"]
            if ab is None or ba is None:
                continue
            a, b = math.sqrt(ab["A"] * ba["B"]), math.sqrt(ab["B"] * ba["A"])
            per_variant.append(a / (a + b))
        expected = sum(per_variant) / len(per_variant)
        assert verdict.label_probs["A"] == pytest.approx(expected, abs=1e-12)


def test_label_slot_is_resolved_in_context(engine) -> None:
    """Digits and letters need different prompt endings for SmolLM2's tokenizer."""
    point = load_rubric("overall_quality@v1")
    pair = load_rubric("pairwise_preference@v1")
    item = PointwiseItem(id="x", question="q", answer="a")
    duo = PairwiseItem(id="y", question="q", answer_a="a", answer_b="b")
    digit_slot = engine.answer_slot(plan_requests(point, [item])[0].request)
    letter_slot = engine.answer_slot(plan_requests(pair, [duo])[0].request)
    assert digit_slot.tail == "Score: " and set(digit_slot.token_ids) == set(point.labels)
    assert letter_slot.tail == "Answer:" and set(letter_slot.token_ids) == {"A", "B"}


def test_over_long_prompt_is_counted_invalid(engine) -> None:
    rubric = load_rubric("overall_quality@v1")
    items = [
        PointwiseItem(id="long", question="q", answer="word " * 5000),
        PointwiseItem(id="short", question="q", answer="fine"),
    ]
    run = judge(items, rubric, backend=engine, variants=["direct"])
    by_id = {j.item_id: j for j in run.judgments}
    assert not by_id["long"].valid and "max_model_len" in by_id["long"].invalid_reason
    assert by_id["short"].valid
    assert summarize(run).n_invalid_judgments == 1 and summarize(run).n_valid_items == 1
