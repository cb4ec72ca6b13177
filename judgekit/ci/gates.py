"""Pass/fail gates on a judge run, for CI: a failure says why and shows the worst items."""

from __future__ import annotations

import numpy as np

from judgekit.data.records import InputError
from judgekit.judging.decide import INVALID, TIE
from judgekit.judging.results import JudgeRun
from judgekit.judging.summary import summarize
from judgekit.judging.views import items_frame
from judgekit.rubrics import Rubric


class GateFailure(AssertionError):
    """A judged quality gate failed; the message carries a table of the worst items."""


def worst_items(run: JudgeRun, n: int = 10) -> str:
    """The n lowest-scoring items (invalid first) as a fixed-width table."""
    frame = items_frame(run)
    answers = {
        item.id: getattr(item, "answer", None) or getattr(item, "answer_b", "")
        for item in run.items or ()
    }
    frame["answer"] = frame["item_id"].map(lambda i: " ".join(str(answers.get(i, "")).split())[:60])
    frame = frame.sort_values("score", na_position="first").head(n)
    lines = [f"{'item':<24} {'score':>7} {'label':>6}  answer"]
    for row in frame.itertuples():
        score = "invalid" if np.isnan(row.score) else f"{row.score:.3f}"
        lines.append(f"{str(row.item_id)[:24]:<24} {score:>7} {row.label!s:>6}  {row.answer}")
    return "\n".join(lines)


def mean_gate(run: JudgeRun, minimum: float) -> str | None:
    """Failure message if the mean item score is below ``minimum`` (None = passed)."""
    mean = summarize(run).mean_score
    if mean is None or mean < minimum:
        shown = "undefined (too few valid items)" if mean is None else f"{mean:.3f}"
        return f"mean score {shown} is below {minimum:g}"
    return None


def check_win_label(rubric: Rubric, label: str) -> None:
    """Refuse (before anything is judged) a win label that no verdict of the rubric can have."""
    known = [*rubric.labels, *(x for x in (TIE, INVALID) if x not in rubric.labels)]
    if rubric.manifest.mode != "pairwise":
        raise InputError(f"--min-win-rate needs a pairwise rubric; {rubric.ref} is pointwise")
    if label not in known:
        raise InputError(f"--win-label {label!r}: verdicts of {rubric.ref} are {known}")


def win_rate_gate(run: JudgeRun, minimum: float, label: str) -> str | None:
    """Failure message if the share of *all* items won by ``label`` is below ``minimum``.

    Invalid items stay in the denominator (``judging.decide.label_rates``): a candidate that
    makes items invalid cannot pass this gate by it.
    """
    summary = summarize(run)
    rates = summary.label_rates
    if label not in rates:
        raise ValueError(f"no win rate for label {label!r}; verdicts are {sorted(rates)}")
    rate, low, high = rates[label]
    if rate < minimum:
        invalid = rates.get("invalid", (0.0, 0.0, 0.0))[0]
        return (
            f"win rate of {label} {rate:.3f} (95% CI {low:.3f}-{high:.3f}) of all "
            f"{summary.n_items} items is below {minimum:g} ({invalid:.1%} of items invalid)"
        )
    return None


def invalid_rate_gate(run: JudgeRun, maximum: float) -> str | None:
    """Failure message if more than ``maximum`` of the items have no valid verdict at all.

    An item counts as invalid only when every variant failed; use
    :func:`invalid_judgment_rate_gate` to also catch variants dropping out of the ensemble.
    """
    rate = summarize(run).invalid_item_rate
    if rate > maximum:
        return f"invalid item rate {rate:.3f} is above {maximum:g}"
    return None


def invalid_judgment_rate_gate(run: JudgeRun, maximum: float) -> str | None:
    """Failure message if more than ``maximum`` of the single judgments are invalid."""
    summary = summarize(run)
    if summary.invalid_judgment_rate > maximum:
        worst = ", ".join(
            f"{k} {v:.3f}" for k, v in summary.invalid_judgment_rate_by_variant.items()
        )
        return (
            f"invalid judgment rate {summary.invalid_judgment_rate:.3f} is above {maximum:g} "
            f"(per variant: {worst})"
        )
    return None


def enforce(run: JudgeRun, failures: list[str | None]) -> None:
    """Raise one GateFailure listing every failed gate and the worst items."""
    failed = [f for f in failures if f is not None]
    if failed:
        raise GateFailure("\n".join(["judge gate failed:", *failed, "", worst_items(run)]))


def assert_mean_at_least(run: JudgeRun, minimum: float) -> None:
    """CI gate: raise GateFailure (with the worst items) if the mean score is lower."""
    enforce(run, [mean_gate(run, minimum)])


def assert_win_rate_at_least(run: JudgeRun, minimum: float, *, label: str = "A") -> None:
    """CI gate for pairwise runs: share of items whose verdict is ``label``."""
    enforce(run, [win_rate_gate(run, minimum, label)])


def assert_invalid_rate_at_most(run: JudgeRun, maximum: float) -> None:
    """CI gate: too many items without a valid verdict means the judge is not reading."""
    enforce(run, [invalid_rate_gate(run, maximum)])


def assert_invalid_judgment_rate_at_most(run: JudgeRun, maximum: float) -> None:
    """CI gate: too many invalid judgments means ensembles are built from what happened to work."""
    enforce(run, [invalid_judgment_rate_gate(run, maximum)])
