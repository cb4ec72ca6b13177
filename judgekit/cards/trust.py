"""The trust policy: thresholds a card must pass, and the verdict with one line per check.

The verdict stored in a card is what calibration decided under its own thresholds; a gate
re-decides from the stored figures under the gate's thresholds (``card_verdict``), so relaxed
thresholds at calibration time cannot carry a card through a stricter gate.
"""

from __future__ import annotations

from judgekit.cards.model import CalibrationCard, Interval, TrustThresholds, Verdict


def decide_trust(
    *,
    n: int,
    invalid_rate: float,
    trust_kappa: Interval | None,
    trust_metric: str,
    ceiling_ratio: float | None,
    n_annotators: int,
    thresholds: TrustThresholds,
) -> Verdict:
    """Apply every threshold; the reasons list each check with its number, passed or failed.

    A figure that should exist but does not (no agreement figure; no human ceiling although
    items have 2+ annotators) fails: a computation that broke must never read as a pass. Only a
    set with fewer than 2 annotators per item skips the ceiling check, as it cannot have one.
    """
    t = thresholds
    checks: list[tuple[bool, str]] = [
        (n >= t.min_n, f"n = {n} (need >= {t.min_n})"),
        (
            invalid_rate <= t.max_invalid_rate,
            f"invalid rate = {invalid_rate:.3f} (need <= {t.max_invalid_rate:.3f})",
        ),
    ]
    if trust_kappa is None:
        checks.append((False, f"{trust_metric}: missing (undefined on these data)"))
    else:
        checks.append(
            (
                trust_kappa.low >= t.min_kappa_ci_low,
                f"{trust_metric} = {trust_kappa.format()}: CI lower bound {trust_kappa.low:.3f} "
                f"(need >= {t.min_kappa_ci_low:.3f})",
            )
        )
    reasons = [f"{'PASS' if ok else 'FAIL'}: {text}" for ok, text in checks]
    if ceiling_ratio is not None:
        ok = ceiling_ratio >= t.min_ceiling_ratio
        checks.append((ok, ""))
        reasons.append(
            f"{'PASS' if ok else 'FAIL'}: judge/human-ceiling ratio = {ceiling_ratio:.3f} "
            f"(need >= {t.min_ceiling_ratio:.3f})"
        )
    elif n_annotators >= 2:
        checks.append((False, ""))
        reasons.append(
            f"FAIL: judge/human-ceiling ratio: missing although items have up to {n_annotators} "
            "annotators (not computed; see the card's notes)"
        )
    else:
        reasons.append("SKIP: human-ceiling ratio (fewer than 2 annotators per item)")
    return Verdict(trusted=all(ok for ok, _ in checks), reasons=reasons)


def card_verdict(card: CalibrationCard, thresholds: TrustThresholds) -> Verdict:
    """Trust re-decided from the card's stored figures under ``thresholds`` (a gate's own)."""
    return decide_trust(
        n=card.n,
        invalid_rate=card.invalid_rate,
        trust_kappa=card.trust_figure(),
        trust_metric=card.trust_metric,
        ceiling_ratio=card.human_ceiling.ratio if card.human_ceiling is not None else None,
        n_annotators=card.n_annotators,
        thresholds=thresholds,
    )
