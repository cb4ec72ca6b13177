"""The trust policy: thresholds a card must pass, and the verdict with one line per check."""

from __future__ import annotations

from judgekit.calibrate.card import Interval, TrustThresholds, Verdict


def decide_trust(
    *,
    n: int,
    invalid_rate: float,
    trust_kappa: Interval | None,
    trust_metric: str,
    ceiling_ratio: float | None,
    thresholds: TrustThresholds,
) -> Verdict:
    """Apply every threshold; the reasons list each check with its number, passed or failed."""
    t = thresholds
    checks: list[tuple[bool, str]] = [
        (n >= t.min_n, f"n = {n} (need >= {t.min_n})"),
        (
            invalid_rate <= t.max_invalid_rate,
            f"invalid rate = {invalid_rate:.3f} (need <= {t.max_invalid_rate:.3f})",
        ),
    ]
    if trust_kappa is None:
        checks.append((False, f"{trust_metric}: undefined on these data"))
    else:
        checks.append(
            (
                trust_kappa.low >= t.min_kappa_ci_low,
                f"{trust_metric} = {trust_kappa.format()}: CI lower bound {trust_kappa.low:.3f} "
                f"(need >= {t.min_kappa_ci_low:.3f})",
            )
        )
    reasons = [f"{'PASS' if ok else 'FAIL'}: {text}" for ok, text in checks]
    if ceiling_ratio is None:
        reasons.append("SKIP: human-ceiling ratio (fewer than 2 annotators per item)")
    else:
        ok = ceiling_ratio >= t.min_ceiling_ratio
        checks.append((ok, ""))
        reasons.append(
            f"{'PASS' if ok else 'FAIL'}: judge/human-ceiling ratio = {ceiling_ratio:.3f} "
            f"(need >= {t.min_ceiling_ratio:.3f})"
        )
    return Verdict(trusted=all(ok for ok, _ in checks), reasons=reasons)
