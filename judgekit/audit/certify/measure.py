"""The figures of a change certificate from two runs on the same calibration records, and the rule.

Both runs are read the way a card reads one (``calibrate.measure``: ``outputs_from_run``, the
split joined to its human labels, verdicts under the one decision rule, an invalid verdict its
own category), so the certificate scores exactly the verdicts the two configurations report.
Every interval resamples or sums the records' groups (question, article); all are at level
1 - alpha, so each end is a one-sided bound at alpha / 2.

The rule (docs/certify.md): SAFE when the changed agreement with humans is non-inferior (lower
bound of the difference > -delta) and the flip rate's upper bound is <= max_flip_rate; NOT SAFE
when inferiority is shown (upper bound of the difference < -delta) or the flip rate's lower
bound is > max_flip_rate; INCONCLUSIVE otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np

from judgekit.calibrate.measure.agreement import Calibrator, join_split
from judgekit.calibrate.measure.outputs import outputs_from_run
from judgekit.cards.certificate import CertificateRule, CertificateVerdict
from judgekit.cards.model import Interval, LabelType, SplitName
from judgekit.data.records import InputError
from judgekit.data.sets import CalibrationRecord
from judgekit.judging.results import JudgeRun
from judgekit.stats import bootstrap_ci, cohen_kappa, mean_ci, share_ci, spearman
from judgekit.stats.noninferiority import Agreement, noninferiority

INVALID = "invalid"
Metric = Literal["kappa", "spearman"]


def default_metric(label_type: LabelType) -> Metric:
    """Spearman of the expected score with the human mean on an ordinal scale, else kappa."""
    return "spearman" if label_type == "ordinal" else "kappa"


@dataclass(frozen=True)
class Side:
    """One run on the split, aligned with the records: verdict categories and scores."""

    verdicts: list[str]
    scores: np.ndarray
    n_invalid: int


@dataclass(frozen=True)
class Paired:
    """Both runs on the same records, with the humans' labels and the records' groups."""

    human_labels: list[str]
    human_mean: np.ndarray
    groups: np.ndarray
    reference: Side
    changed: Side


def _side(calibrator: Calibrator) -> Side:
    names = [*calibrator.categories, INVALID]
    return Side(
        verdicts=[names[j] for j in calibrator.judge_all],
        scores=np.where(calibrator.valid, calibrator.scores, np.nan),
        n_invalid=int((~calibrator.valid).sum()),
    )


def pair_runs(
    records: Sequence[CalibrationRecord],
    reference: JudgeRun,
    changed: JudgeRun,
    *,
    split: SplitName,
    heldout_fraction: float,
    label_type: LabelType,
) -> Paired:
    """The two runs as paired per-record arrays (records without a human label left out)."""
    sides = []
    for run in (reference, changed):
        outputs = outputs_from_run(run)
        joined = join_split(records, outputs, split, heldout_fraction)
        sides.append(Calibrator(joined, outputs, label_type, np.random.default_rng(0), 1))
    ref = sides[0]
    names = ref.categories
    return Paired(
        human_labels=[names[i] if i >= 0 else INVALID for i in ref.human_idx],
        human_mean=ref.human_mean()
        if label_type == "ordinal"
        else np.full(len(ref.records), np.nan),
        groups=ref.groups,
        reference=_side(ref),
        changed=_side(sides[1]),
    )


def _kappa(h: np.ndarray, j: np.ndarray, *, k: int) -> float:
    return cohen_kappa(h, j, labels=np.arange(k))


def _spearman(h: np.ndarray, s: np.ndarray) -> float:
    """Spearman on the valid scores; 0 (no association) where it is undefined: a judge whose
    scores are constant or all invalid ranks nothing."""
    ok = np.isfinite(s)
    try:
        return spearman(s[ok], h[ok])
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class Figures:
    """The certificate's statistics and verdict."""

    agreement_reference: Interval | None
    agreement_changed: Interval | None
    agreement_difference: Interval
    verdict_kappa: Interval | None
    flip_rate: Interval
    score_shift: Interval | None
    non_inferior: bool
    inferior: bool
    verdict: CertificateVerdict
    reasons: list[str]
    notes: list[str]


def measure(paired: Paired, rule: CertificateRule) -> Figures:
    """Agreement with humans of each side, the non-inferiority test, verdict agreement between
    the sides (kappa, flip rate), the paired score shift, and the verdict under ``rule``."""
    rng = np.random.default_rng(rule.seed)
    level, groups, notes = 1.0 - rule.alpha, paired.groups, []
    ref, new = paired.reference, paired.changed
    categories = sorted({*paired.human_labels, *ref.verdicts, *new.verdicts})
    code = {c: i for i, c in enumerate(categories)}
    h_codes = np.array([code[c] for c in paired.human_labels])
    r_codes, n_codes = (np.array([code[c] for c in s.verdicts]) for s in (ref, new))
    kappa_k = partial(_kappa, k=len(categories))
    if rule.metric == "kappa":
        agreement, human, left, right = kappa_k, h_codes, r_codes, n_codes
    else:
        agreement, human, left, right = _spearman, paired.human_mean, ref.scores, new.scores
    n = len(h_codes)
    boot = dict(rng=rng, groups=groups, n_resamples=rule.n_resamples, level=level)

    def interval(name: str, statistic: Agreement, *arrays: np.ndarray) -> Interval | None:
        try:
            return Interval.of(bootstrap_ci(statistic, *arrays, method="percentile", **boot), n)
        except ValueError as err:
            notes.append(f"{name}: not computed ({err})")
            return None

    agree_ref = interval(f"{rule.metric} (reference)", agreement, human, left)
    agree_new = interval(f"{rule.metric} (changed)", agreement, human, right)
    try:
        test = noninferiority(
            agreement,
            human,
            left,
            right,
            rng=rng,
            delta=rule.delta,
            alpha=rule.alpha,
            groups=groups,
            n_resamples=rule.n_resamples,
        )
    except ValueError as err:
        raise InputError(f"cannot certify on these {n} items: {err}") from err
    flips = r_codes != n_codes
    flip = Interval.of(share_ci(flips, groups=groups, level=level), n)
    kappa = interval("verdict kappa", kappa_k, r_codes, n_codes)
    both = np.isfinite(ref.scores) & np.isfinite(new.scores)
    shift = None
    try:
        diff = new.scores[both] - ref.scores[both]
        shift = Interval.of(mean_ci(diff, level, groups=groups[both]), int(both.sum()))
    except ValueError as err:
        notes.append(f"score shift: not computed ({err})")
    verdict, reasons = decide_change(test.non_inferior, test.inferior, flip, rule)
    return Figures(
        agreement_reference=agree_ref,
        agreement_changed=agree_new,
        agreement_difference=Interval.of(test.difference, n),
        verdict_kappa=kappa,
        flip_rate=flip,
        score_shift=shift,
        non_inferior=test.non_inferior,
        inferior=test.inferior,
        verdict=verdict,
        reasons=reasons,
        notes=notes,
    )


def decide_change(
    non_inferior: bool, inferior: bool, flip: Interval, rule: CertificateRule
) -> tuple[CertificateVerdict, list[str]]:
    """SAFE / NOT SAFE / INCONCLUSIVE under the rule in the module docstring, with reasons."""
    d, a, bound = rule.delta, rule.alpha, rule.max_flip_rate
    flips_ok, flips_far = flip.high <= bound, flip.low > bound
    reasons = [
        f"{'PASS' if non_inferior else 'FAIL'}: non-inferior at margin {d} (alpha {a})"
        if non_inferior or not inferior
        else f"FAIL: inferiority shown: the difference's upper bound is below -{d}",
        f"{'PASS' if flips_ok else 'FAIL'}: flip rate {flip.format()} "
        f"{'<=' if flips_ok else 'not <='} {bound} (upper bound)",
    ]
    if flips_far:
        reasons.append(f"FAIL: flip rate's lower bound {flip.low:.3f} > {bound}")
    if inferior or flips_far:
        return "NOT SAFE", reasons
    if non_inferior and flips_ok:
        return "SAFE", reasons
    return "INCONCLUSIVE", reasons
