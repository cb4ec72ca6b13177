"""Drift on pinned anchors: has the judge (or its serving stack) changed since we trusted it?

Anchors are a sample of a calibration set's items stored with the judge's verdicts on them and
the judge's full identity (model, fingerprint, engine settings, rubric hash and answer cue,
variants). They live in their own JSON file, keyed by the calibration card they belong to
(``<card key>.anchors.json`` beside the card) or any key the user picks, so a card format change
never breaks them.

A check re-judges the anchors and compares item by item: the shift of each item's score, a
paired sign test and sign-flip permutation test on the shifts, and the share of flipped labels
(a verdict turning invalid is a flip). Shifts smaller than ``tolerance`` count as zero: float
kernels are not bit-reproducible across batch shapes, and that noise is not drift. The alarm
rings when a threshold is crossed, and names every identity field that changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from pydantic import Field

from judgekit.backends.base import Backend
from judgekit.data.sets import CalibrationRecord
from judgekit.judging.run import judge
from judgekit.rubrics import Rubric, load_rubric
from judgekit.schema import Controls, JudgeIdentity, PairwiseItem, PointwiseItem, StrictModel
from judgekit.stats import permutation_test, sign_test


class AnchorItem(StrictModel):
    item: PointwiseItem | PairwiseItem
    score: float | None = Field(description="Expected score (pairwise: P(A)); None = invalid.")
    label: str | None


class Anchors(StrictModel):
    """Anchor items with the verdicts and identity of the judge that produced them."""

    key: str
    created: str
    set_name: str | None
    rubric: str
    rubric_hash: str
    answer_cue: str
    variants: list[str]
    controls: Controls
    judge: JudgeIdentity
    anchors: list[AnchorItem]


class DriftThresholds(StrictModel):
    """When the alarm rings; any one crossed is enough."""

    max_flip_rate: float = 0.05
    max_mean_shift: float = Field(default=0.05, description="|mean score shift|, score units.")
    alpha: float = Field(default=0.01, description="Paired permutation test level.")
    tolerance: float = Field(default=1e-3, description="Per-item shifts below this count as 0.")


class ItemShift(StrictModel):
    item_id: str
    before: float | None
    after: float | None
    label_before: str | None
    label_after: str | None


class DriftReport(StrictModel):
    key: str
    rubric: str
    n: int
    n_compared: int = Field(description="Items valid both times.")
    mean_shift: float
    max_abs_shift: float
    n_shifted: int
    n_flipped: int
    flip_rate: float
    p_sign: float
    p_permutation: float
    identity_changes: list[str]
    thresholds: DriftThresholds
    alarm: bool
    reasons: list[str]
    largest_shifts: list[ItemShift]

    def format(self) -> str:
        lines = [
            f"drift on {self.n} anchors ({self.rubric}, key {self.key[:12]}): "
            f"{'ALARM' if self.alarm else 'no alarm'}",
            f"mean shift {self.mean_shift:+.4f} (max |shift| {self.max_abs_shift:.4f}, "
            f"{self.n_shifted} of {self.n_compared} items moved), flipped labels "
            f"{self.n_flipped}/{self.n} = {self.flip_rate:.3f}",
            f"paired tests: sign p={self.p_sign:.3g}, permutation p={self.p_permutation:.3g}",
        ]
        lines += [f"  {r}" for r in self.reasons]
        if self.identity_changes:
            lines.append("judge identity changed: " + "; ".join(self.identity_changes))
        return "\n".join(lines)


def sample_records(
    records: Sequence[CalibrationRecord], n: int, rng: np.random.Generator
) -> list[CalibrationRecord]:
    """``n`` records drawn without replacement, kept in the set's order."""
    chosen = np.sort(rng.choice(len(records), size=min(n, len(records)), replace=False))
    return [records[i] for i in chosen]


def anchors_path(directory: Path | str, key: str) -> Path:
    return Path(directory) / f"{key}.anchors.json"


def default_key(rubric: Rubric, identity: JudgeIdentity, set_name: str | None) -> str:
    payload = json.dumps([rubric.hash, identity.fingerprint, set_name, "anchors"])
    return hashlib.sha256(payload.encode()).hexdigest()


def _verdicts(
    items: Sequence[PointwiseItem | PairwiseItem],
    rubric: Rubric,
    backend: Backend,
    variants: Sequence[str] | None,
    controls: Controls,
) -> tuple[list[AnchorItem], JudgeIdentity]:
    run = judge(list(items), rubric, backend=backend, variants=variants, controls=controls)
    v = run.verdicts
    return [
        AnchorItem(item=item, score=None if np.isnan(s) else float(s), label=label)
        for item, s, label in zip(items, v.scores, v.labels, strict=True)
    ], run.judge


def pin_anchors(
    items: Sequence[PointwiseItem | PairwiseItem],
    rubric: str | Rubric,
    *,
    backend: Backend,
    variants: Sequence[str] | None = None,
    controls: Controls | None = None,
    key: str | None = None,
    set_name: str | None = None,
) -> Anchors:
    """Judge the anchor items now and keep the verdicts with the judge's identity."""
    rubric = load_rubric(rubric)
    controls = controls or Controls()
    anchored, identity = _verdicts(items, rubric, backend, variants, controls)
    return Anchors(
        key=key or default_key(rubric, identity, set_name),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        set_name=set_name,
        rubric=rubric.ref,
        rubric_hash=rubric.hash,
        answer_cue=rubric.criteria[0].answer_cue,
        variants=list(variants or rubric.variants),
        controls=controls,
        judge=identity,
        anchors=anchored,
    )


def identity_changes(before: JudgeIdentity, after: JudgeIdentity, prefix: str = "") -> list[str]:
    """One line per changed field: model, fingerprint (weights) and each engine setting."""
    changes = [
        f"{prefix}{name}: {getattr(before, name)!r} -> {getattr(after, name)!r}"
        for name in ("backend", "model", "fingerprint")
        if getattr(before, name) != getattr(after, name)
    ]
    for name in sorted(before.settings.keys() | after.settings.keys()):
        old, new = before.settings.get(name), after.settings.get(name)
        if old != new:
            changes.append(f"{prefix}{name}: {old!r} -> {new!r}")
    return changes


def _rubric_changes(anchors: Anchors, rubric: Rubric, variants: Sequence[str]) -> list[str]:
    changes = []
    if rubric.hash != anchors.rubric_hash:
        changes.append(
            f"rubric {rubric.ref} hash: {anchors.rubric_hash[:12]} -> {rubric.hash[:12]}"
        )
    if rubric.criteria[0].answer_cue != anchors.answer_cue:
        changes.append(f"answer cue: {anchors.answer_cue!r} -> {rubric.criteria[0].answer_cue!r}")
    if list(variants) != anchors.variants:
        changes.append(f"variants: {anchors.variants} -> {list(variants)}")
    return changes


def compare(
    anchors: Anchors,
    after: Sequence[AnchorItem],
    *,
    identity_changed: list[str],
    thresholds: DriftThresholds,
    rng: np.random.Generator,
    top: int = 10,
) -> DriftReport:
    """The drift figures of re-judged anchors ``after`` against the stored ones (same order)."""
    before_scores = np.array([np.nan if a.score is None else a.score for a in anchors.anchors])
    after_scores = np.array([np.nan if a.score is None else a.score for a in after])
    both = ~np.isnan(before_scores) & ~np.isnan(after_scores)
    shift = after_scores[both] - before_scores[both]
    shift = np.where(np.abs(shift) < thresholds.tolerance, 0.0, shift)
    flipped = sum(a.label != b.label for a, b in zip(anchors.anchors, after, strict=True))
    n = len(after)
    mean_shift = float(shift.mean()) if shift.size else 0.0
    p_perm = permutation_test(shift, rng=rng) if shift.any() else 1.0
    reasons = []
    if flipped / n > thresholds.max_flip_rate:
        reasons.append(f"flipped labels {flipped}/{n} > {thresholds.max_flip_rate}")
    if abs(mean_shift) > thresholds.max_mean_shift:
        reasons.append(f"|mean shift| {abs(mean_shift):.4f} > {thresholds.max_mean_shift}")
    if p_perm < thresholds.alpha:
        reasons.append(f"paired permutation test p={p_perm:.3g} < {thresholds.alpha}")
    order = np.argsort(-np.abs(np.nan_to_num(after_scores - before_scores, nan=np.inf)))
    largest = [
        ItemShift(
            item_id=anchors.anchors[i].item.id,
            before=anchors.anchors[i].score,
            after=after[i].score,
            label_before=anchors.anchors[i].label,
            label_after=after[i].label,
        )
        for i in order[:top]
    ]
    return DriftReport(
        key=anchors.key,
        rubric=anchors.rubric,
        n=n,
        n_compared=int(both.sum()),
        mean_shift=mean_shift,
        max_abs_shift=float(np.abs(shift).max()) if shift.size else 0.0,
        n_shifted=int((shift != 0).sum()),
        n_flipped=int(flipped),
        flip_rate=flipped / n,
        p_sign=sign_test(shift),
        p_permutation=p_perm,
        identity_changes=identity_changed,
        thresholds=thresholds,
        alarm=bool(reasons),
        reasons=reasons,
        largest_shifts=largest,
    )


def check_drift(
    anchors: Anchors,
    rubric: str | Rubric,
    *,
    backend: Backend,
    variants: Sequence[str] | None = None,
    thresholds: DriftThresholds | None = None,
    rng: np.random.Generator,
) -> DriftReport:
    """Re-judge the anchors (with the anchors' variants unless given) and compare."""
    rubric = load_rubric(rubric)
    variants = list(variants or anchors.variants)
    after, identity = _verdicts(
        [a.item for a in anchors.anchors], rubric, backend, variants, anchors.controls
    )
    changed = identity_changes(anchors.judge, identity) + _rubric_changes(anchors, rubric, variants)
    return compare(
        anchors,
        after,
        identity_changed=changed,
        thresholds=thresholds or DriftThresholds(),
        rng=rng,
    )
