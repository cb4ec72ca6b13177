"""Drift maths without an engine: anchor comparison, identity naming, change points in a series."""

from __future__ import annotations

import numpy as np
import pytest

from judgekit.audit.drift import AnchorItem, Anchors, DriftThresholds, compare, identity_changes
from judgekit.audit.series import change_point
from judgekit.judging.aggregate import Controls
from judgekit.schema import JudgeIdentity, PointwiseItem

IDENTITY = JudgeIdentity(
    backend="vllm", model="m", fingerprint="f1", settings={"dtype": "float32", "vllm": "0.32.0"}
)


def anchors(scores: list[float | None], labels: list[str | None]) -> Anchors:
    return Anchors(
        key="k",
        created="now",
        set_name=None,
        rubric="overall_quality@v1",
        rubric_hash="h",
        answer_cue="Score:",
        variants=["direct"],
        controls=Controls(),
        judge=IDENTITY,
        anchors=[
            AnchorItem(item=PointwiseItem(id=str(i), question="q", answer="a"), score=s, label=lab)
            for i, (s, lab) in enumerate(zip(scores, labels, strict=True))
        ],
    )


def test_identity_changes_name_each_field() -> None:
    after = IDENTITY.model_copy(
        update={"fingerprint": "f2", "settings": {"dtype": "bfloat16", "vllm": "0.32.0"}}
    )
    assert identity_changes(IDENTITY, after) == [
        "fingerprint: 'f1' -> 'f2'",
        "dtype: 'float32' -> 'bfloat16'",
    ]
    assert identity_changes(IDENTITY, IDENTITY) == []


def test_compare_same_verdicts_no_alarm_and_shifted_alarm() -> None:
    base = anchors([3.0, 4.0, 2.0, 5.0] * 5, ["3", "4", "2", "5"] * 5)
    rng = np.random.default_rng(0)
    noise = [a.model_copy(update={"score": a.score + 1e-5}) for a in base.anchors]
    same = compare(base, noise, identity_changed=[], thresholds=DriftThresholds(), rng=rng)
    assert not same.alarm and same.n_shifted == 0 and same.p_permutation == 1.0
    shifted = [
        a.model_copy(update={"score": a.score + 0.3, "label": "5" if i < 4 else a.label})
        for i, a in enumerate(base.anchors)
    ]
    report = compare(base, shifted, identity_changed=["x"], thresholds=DriftThresholds(), rng=rng)
    assert report.alarm and report.n_flipped == 3  # item 3 was already "5"
    assert report.mean_shift == pytest.approx(0.3) and report.flip_rate == pytest.approx(0.15)
    assert report.p_sign == pytest.approx(2 * 0.5**20)
    assert len(report.reasons) == 3 and report.identity_changes == ["x"]


def test_invalid_verdict_counts_as_flip() -> None:
    base = anchors([3.0, 4.0], ["3", "4"])
    after = [base.anchors[0], base.anchors[1].model_copy(update={"score": None, "label": None})]
    report = compare(
        base, after, identity_changed=[], thresholds=DriftThresholds(), rng=np.random.default_rng(0)
    )
    assert report.n_flipped == 1 and report.n_compared == 1 and report.alarm


def test_change_point_found_at_planted_split() -> None:
    rng = np.random.default_rng(1)
    runs = [rng.normal(3.0, 0.5, 40) for _ in range(5)] + [
        rng.normal(3.6, 0.5, 40) for _ in range(3)
    ]
    flagged, best = change_point(runs, alpha=0.05)
    assert flagged is not None and flagged.index == 5 and flagged.p_adjusted < 1e-6
    stable = [rng.normal(3.0, 0.5, 40) for _ in range(8)]
    flagged, best = change_point(stable, alpha=0.05)
    assert flagged is None and best is not None and best.p_adjusted >= 0.05
