"""The card's ensemble section: learned ensemble vs each variant, mean and majority (dev and the
card's split, bootstrap CIs), its calibration there, and abstention thresholds per target.

The choice of combination is made on dev (the learned ensemble scored on its out-of-fold
predictions), never on the split being reported, so the reported kappa of the chosen method is
out of sample. Items that share a group (question, article) are one unit wherever a threshold is
certified or an interval drawn: the records' groups go to ``select_threshold`` and ``share_ci``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from judgekit.bias.ensemble import aggregate_variants
from judgekit.bias.position import combine_orders
from judgekit.calibrate.fit.ensemble import FittedEnsemble, ensemble_probs
from judgekit.calibrate.measure.abstain import (
    CONFIDENCE_RULE,
    confidence,
    order_agreement,
    select_threshold,
)
from judgekit.calibrate.measure.agreement import Calibrator, join_split
from judgekit.calibrate.measure.outputs import JudgeOutputs
from judgekit.cards.model import (
    AbstentionPolicy,
    EnsembleCard,
    Interval,
    LabelType,
    MethodAgreement,
    SplitName,
)
from judgekit.data.sets import CalibrationRecord
from judgekit.stats import cohen_kappa, share_ci

DEFAULT_TARGETS = (0.7, 0.8, 0.9)
LEARNED = "learned ensemble"
VARIANT = "variant "
#: Card method name -> the run's ``Controls.ensemble`` that reproduces it.
COMBINATIONS = {"plain mean": "mean", "majority": "majority"}


def per_variant_probs(outputs: JudgeOutputs) -> dict[str, np.ndarray]:
    """Each variant's distribution, orders combined with the run's swap method."""
    variants = dict.fromkeys(key.rsplit("|", 1)[0] for key in outputs.order_probs)
    out = {}
    for v in variants:
        ab, ba = outputs.order_probs.get(f"{v}|AB"), outputs.order_probs.get(f"{v}|BA")
        if ab is not None and ba is not None:
            out[v] = combine_orders(
                ab, ba, method=outputs.controls.swap_method, labels=outputs.labels
            )
        else:
            out[v] = outputs.order_probs.get(f"{v}|AB", outputs.order_probs.get(f"{v}|-"))
    return out


def candidates(outputs: JudgeOutputs, fitted: FittedEnsemble) -> dict[str, np.ndarray]:
    """Items x labels distributions of every combination compared in the card."""
    variants = per_variant_probs(outputs)
    cube = np.stack(list(variants.values()), axis=1)
    return {
        **{f"{VARIANT}{v}": p for v, p in variants.items()},
        **{name: aggregate_variants(cube, method=m) for name, m in COMBINATIONS.items()},
        LEARNED: ensemble_probs(fitted.model, outputs),
    }


def _with_probs(outputs: JudgeOutputs, probs: np.ndarray, name: str) -> JudgeOutputs:
    scores = probs @ np.asarray(outputs.values, dtype=float)
    return replace(outputs, probs=probs, scores=scores, source=f"{outputs.source}, {name}")


def _oof_probs(outputs: JudgeOutputs, fitted: FittedEnsemble, full: np.ndarray) -> np.ndarray:
    """The learned ensemble's distributions with dev rows replaced by their out-of-fold ones."""
    probs = full.copy()
    row = {item_id: i for i, item_id in enumerate(outputs.item_ids)}
    probs[[row[i] for i in fitted.dev_ids]] = fitted.oof
    return probs


def _kappa(c: Calibrator) -> float | None:
    """Point kappa with invalid verdicts as their own category (as the card's headline)."""
    try:
        return cohen_kappa(c.human_idx, c.judge_all, labels=np.arange(c.k + 1))
    except ValueError:
        return None


def _abstention(
    c: Calibrator,
    conf: np.ndarray,
    dev: Calibrator,
    dev_conf: np.ndarray,
    target: float,
    alpha: float,
) -> AbstentionPolicy:
    dev_agreed = dev.judge_all == dev.human_idx
    dev_groups = [r.group for r in dev.records]
    choice = select_threshold(dev_conf, dev_agreed, groups=dev_groups, target=target, alpha=alpha)
    n = len(c.records)
    if choice.threshold is None:
        return AbstentionPolicy(
            target=target,
            alpha=alpha,
            threshold=None,
            n_calibration=choice.n,
            n_kept_calibration=0,
            lower_bound=None,
            method=choice.method,
            n_groups_calibration=choice.n_groups,
            n=n,
            n_kept=0,
            coverage=0.0,
            agreement_kept=None,
            met=None,
            reason=f"no threshold certifies agreement >= {target:g} at alpha {alpha:g} on "
            f"{choice.n} dev items ({choice.n_groups} groups, {choice.method}): the guarantee "
            "cannot be met, nothing is kept",
        )
    kept = np.isfinite(conf) & (np.nan_to_num(conf, nan=-1.0) >= choice.threshold)
    agreed = c.judge_all[kept] == c.human_idx[kept]
    groups = [r.group for r, k in zip(c.records, kept, strict=True) if k]
    interval = Interval.of(share_ci(agreed, groups=groups), int(kept.sum())) if kept.any() else None
    met = None if interval is None else interval.estimate >= target
    return AbstentionPolicy(
        target=target,
        alpha=alpha,
        threshold=choice.threshold,
        n_calibration=choice.n,
        n_kept_calibration=choice.n_kept,
        lower_bound=choice.lower_bound,
        method=choice.method,
        n_groups_calibration=choice.n_groups,
        n=n,
        n_kept=int(kept.sum()),
        coverage=float(kept.mean()),
        agreement_kept=interval,
        met=met,
        reason=f"threshold {choice.threshold:.2f}: on {choice.n_kept} kept dev items "
        f"({choice.n_groups_kept} groups) the {1 - alpha:.0%} lower bound ({choice.method}) is "
        f"{choice.lower_bound:.3f} >= {target:g}",
    )


def ensemble_card(
    records: Sequence[CalibrationRecord],
    outputs: JudgeOutputs,
    fitted: FittedEnsemble,
    *,
    split: SplitName,
    label_type: LabelType,
    rng: np.random.Generator,
    heldout_fraction: float = 0.5,
    n_resamples: int = 2000,
    targets: Sequence[float] = DEFAULT_TARGETS,
    alpha: float = 0.1,
) -> EnsembleCard:
    """Compare the combinations on dev and on ``split``, choose on dev, add abstention."""
    dev = join_split(records, outputs, "dev", heldout_fraction)
    joined = join_split(records, outputs, split, heldout_fraction)
    rows: list[MethodAgreement] = []
    learned_full = ensemble_probs(fitted.model, outputs)
    for name, probs in candidates(outputs, fitted).items():
        dev_probs = _oof_probs(outputs, fitted, learned_full) if name == LEARNED else probs
        dev_c = Calibrator(dev, _with_probs(outputs, dev_probs, name), label_type, rng, 1)
        c = Calibrator(joined, _with_probs(outputs, probs, name), label_type, rng, n_resamples)
        try:
            held: Interval | None = c.kappas()[0]
        except ValueError:  # kappa undefined on this split (e.g. one category only)
            held = None
        rows.append(
            MethodAgreement(
                method=name,
                dev_kappa=_kappa(dev_c),
                heldout_kappa=held,
                n_invalid=int((~c.valid).sum()),
            )
        )
    best = max(rows, key=lambda r: r.dev_kappa if r.dev_kappa is not None else -np.inf)
    runner_up = max(
        (r for r in rows if r is not best),
        key=lambda r: r.dev_kappa if r.dev_kappa is not None else -np.inf,
    )
    reason = (
        f"highest dev kappa ({best.dev_kappa:.3f}; next: {runner_up.method} "
        f"{runner_up.dev_kappa:.3f}); the learned ensemble is scored on dev out-of-fold"
    )
    learned = _with_probs(outputs, learned_full, LEARNED)
    c = Calibrator(joined, learned, label_type, rng, n_resamples)
    reliability, ece = c.reliability()
    agreement = order_agreement(outputs)
    oof = _oof_probs(outputs, fitted, learned_full)
    dev_c = Calibrator(dev, _with_probs(outputs, oof, LEARNED), label_type, rng, 1)
    dev_conf = confidence(dev_c.probs, agreement[np.maximum(dev.rows, 0)])
    dev_conf = np.where(dev.rows >= 0, dev_conf, np.nan)
    conf = confidence(c.probs, agreement[np.maximum(joined.rows, 0)])
    conf = np.where(joined.rows >= 0, conf, np.nan)
    return EnsembleCard(
        model=fitted.model,
        comparison=rows,
        chosen=best.method,
        reason=reason,
        reliability=reliability,
        expected_calibration_error=ece,
        confidence_rule=CONFIDENCE_RULE,
        calibration_confidence=[float(x) if np.isfinite(x) else None for x in dev_conf],
        calibration_agreed=[bool(x) for x in dev_c.judge_all == dev_c.human_idx],
        calibration_ids=[r.id for r in dev.records],
        calibration_groups=[r.group for r in dev.records],
        abstention=[_abstention(c, conf, dev_c, dev_conf, t, alpha) for t in targets],
    )
