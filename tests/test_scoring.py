import math

import pytest

from judgekit.judging.score import score_labels

LABELS = ("1", "2", "3", "4", "5")
VALUES = (1.0, 2.0, 3.0, 4.0, 5.0)


def test_renormalises_over_labels_and_reports_mass() -> None:
    logprobs = {"1": math.log(0.1), "3": math.log(0.2), "5": math.log(0.3)}
    score = score_labels(logprobs, LABELS, VALUES, min_label_mass=0.2)
    assert score.mass == pytest.approx(0.6)
    assert score.probs == pytest.approx({"1": 1 / 6, "2": 0.0, "3": 2 / 6, "4": 0.0, "5": 3 / 6})
    assert score.expected == pytest.approx((1 * 1 + 3 * 2 + 5 * 3) / 6)
    assert score.label == "5"
    assert score.valid and score.invalid_reason is None


def test_below_mass_threshold_is_invalid_not_a_default_label() -> None:
    score = score_labels({"4": math.log(0.05)}, LABELS, VALUES, min_label_mass=0.2)
    assert not score.valid
    assert score.probs is None and score.label is None and score.expected is None
    assert score.mass == pytest.approx(0.05)
    assert "below threshold" in (score.invalid_reason or "")


def test_backend_error_is_invalid_with_its_reason() -> None:
    score = score_labels({}, LABELS, VALUES, min_label_mass=0.2, error="prompt too long")
    assert not score.valid and score.invalid_reason == "prompt too long" and score.mass == 0.0


def test_pairwise_expected_score_is_preference_for_a() -> None:
    score = score_labels(
        {"A": math.log(0.3), "B": math.log(0.1)}, ("A", "B"), (1.0, 0.0), min_label_mass=0.2
    )
    assert score.expected == pytest.approx(0.75)
    assert score.probs is not None and sum(score.probs.values()) == pytest.approx(1.0)


def test_exact_argmax_tie_has_no_label() -> None:
    score = score_labels(
        {"A": math.log(0.4), "B": math.log(0.4)}, ("A", "B"), (1, 0), min_label_mass=0.1
    )
    assert score.valid and score.label is None
    assert score.probs == {"A": 0.5, "B": 0.5} and score.expected == 0.5
