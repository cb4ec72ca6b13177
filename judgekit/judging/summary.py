"""The run summary: what a user reads at the end of a run, and what CI gates on.

A multi-criterion run adds each criterion's mean score, a checklist run its mean pass ratio;
``by`` adds every figure per slice of a meta column (``slice_summary``), with intervals that
resample clusters (items sharing a group), so a slice of 16 summaries of one article is not
read as 16 independent items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import Field

from judgekit.data.items import InputError
from judgekit.judging.decide import TIE, label_rates, rate_names, verdict_categories
from judgekit.judging.results import JudgeRun
from judgekit.judging.views import controls_applied
from judgekit.schema import StrictModel
from judgekit.stats import ConfidenceInterval, bootstrap_ci, mean_ci

Figure = tuple[float, float, float]


class CriterionSummary(StrictModel):
    """One criterion of a multi-criterion run: its mean score (95% CI) over valid items."""

    n_valid_items: int
    invalid_item_rate: float
    mean_score: float | None
    mean_score_ci: tuple[float, float] | None


class SliceSummary(StrictModel):
    """Every headline figure of one slice (the items whose meta ``column`` equals ``value``),
    as (estimate, low, high) with cluster-resampled 95% intervals (None: fewer than 2 groups).
    ``label_rates`` are shares of all the slice's items, invalid included."""

    column: str
    value: str
    n_items: int
    n_groups: int
    n_valid_items: int
    invalid_item_rate: Figure | None
    mean_score: Figure | None
    label_rates: dict[str, Figure | None]
    criteria: dict[str, Figure | None] = Field(default_factory=dict)
    mean_pass_ratio: Figure | None = None


class RunSummary(StrictModel):
    """Headline numbers of one judge run.

    Two invalid rates, because they differ: ``invalid_item_rate`` counts items with no usable
    verdict at all (every variant failed), ``invalid_judgment_rate`` counts single judgments
    (item x variant x order). An ensemble silently loses a variant when one of its judgments
    fails; ``n_partial_items`` counts the valid items whose ensemble is missing a variant.
    ``label_rates`` are shares of *all* items per verdict ("A", "B", "tie" and "invalid" for
    pairs; each label, "tie" and "invalid" pointwise; see ``judging.decide.label_rates``), as
    (rate, low, high). ``card`` is the calibration card whose controls the run applied (None:
    the numbers are not certified by any card).
    """

    rubric: str
    rubric_hash: str
    mode: str
    judge_model: str
    judge_name: str | None = None
    n_items: int
    n_valid_items: int
    n_judgments: int
    n_invalid_judgments: int
    invalid_item_rate: float
    invalid_judgment_rate: float
    invalid_judgment_rate_by_variant: dict[str, float]
    n_partial_items: int
    n_ties: int
    n_from_store: int
    mean_score: float | None
    mean_score_ci: tuple[float, float] | None
    score_meaning: str
    label_rates: dict[str, tuple[float, float, float]]
    mean_label_mass: float
    prompt_tokens: int
    cached_tokens: int
    cache_hit_rate: float
    seconds: float
    items_per_second: float | None
    controls: dict[str, str]
    card: str | None = None
    backend_stats: dict[str, Any] | None = None
    criteria: dict[str, CriterionSummary] = Field(default_factory=dict)
    mean_pass_ratio: float | None = None
    slices: dict[str, list[SliceSummary]] = Field(default_factory=dict)

    def format(self) -> str:
        """Plain-text block for the terminal."""
        judge = f"{self.judge_name} ({self.judge_model})" if self.judge_name else self.judge_model
        lines = [
            f"rubric          {self.rubric} ({self.rubric_hash[:12]})",
            f"judge           {judge}",
            f"items           {self.n_items} ({self.n_valid_items} valid, "
            f"{self.n_partial_items} with a partial ensemble, {self.n_ties} ties)",
            f"judgments       {self.n_judgments} ({self.n_invalid_judgments} invalid, "
            f"{self.n_from_store} from the store)",
            f"invalid rate    items {self.invalid_item_rate:.1%}, judgments "
            f"{self.invalid_judgment_rate:.1%} ("
            + ", ".join(f"{k} {v:.1%}" for k, v in self.invalid_judgment_rate_by_variant.items())
            + ")",
        ]
        if self.mean_score is not None and self.mean_score_ci is not None:
            low, high = self.mean_score_ci
            lines.append(
                f"mean score      {self.mean_score:.3f}  95% CI [{low:.3f}, {high:.3f}]  "
                f"({self.score_meaning})"
            )
        for label, (rate, low, high) in self.label_rates.items():
            lines.append(f"rate {label:<10} {rate:.3f}  95% CI [{low:.3f}, {high:.3f}]")
        for name, c in self.criteria.items():
            shown = (
                f"{c.mean_score:.3f}  95% CI [{c.mean_score_ci[0]:.3f}, {c.mean_score_ci[1]:.3f}]"
                if c.mean_score is not None and c.mean_score_ci is not None
                else "n/a"
            )
            lines.append(f"  {name:<13} {shown}  ({c.invalid_item_rate:.1%} invalid)")
        if self.mean_pass_ratio is not None:
            lines.append(f"pass ratio      {self.mean_pass_ratio:.3f} (mean over valid items)")
        speed = (
            f"{self.items_per_second:.2f} items/s ({self.seconds:.1f} s)"
            if self.items_per_second is not None
            else f"every judgment from the store ({self.seconds:.1f} s)"
        )
        lines += [
            f"label mass      {self.mean_label_mass:.3f} (mean)",
            f"prefix cache    {self.cache_hit_rate:.1%} of {self.prompt_tokens} new prompt tokens",
            f"speed           {speed}",
            "controls        " + ", ".join(f"{k}={v}" for k, v in self.controls.items()),
            f"calibration     {self.card}"
            if self.card
            else "calibration     none: these numbers are not certified by a calibration card "
            "(judgekit calibrate ... makes one; pass it with --card)",
        ]
        if self.backend_stats:
            shown = ", ".join(f"{k}={v}" for k, v in self.backend_stats.items() if v)
            if shown:
                lines.append(f"backend         {shown}")
        for column, slices in self.slices.items():
            lines += ["", *format_slices(column, slices)]
        return "\n".join(lines)


def _figure(f: Figure | None, digits: int = 3) -> str:
    if f is None:
        return "n/a"
    if np.isnan(f[1]):
        return f"{f[0]:.{digits}f} [one group: no interval]"
    return f"{f[0]:.{digits}f} [{f[1]:.{digits}f}, {f[2]:.{digits}f}]"


def format_slices(column: str, slices: Sequence[SliceSummary]) -> list[str]:
    """Per-slice figures as text lines (95% intervals resample the slice's groups)."""
    lines = [f"by {column} (95% CIs resample groups)"]
    for s in slices:
        lines.append(
            f"  {s.value[:24]:<24} n={s.n_items} ({s.n_groups} groups)  "
            f"mean {_figure(s.mean_score)}  invalid {_figure(s.invalid_item_rate)}"
        )
        rates = "  ".join(f"{k} {_figure(v)}" for k, v in s.label_rates.items() if v and v[0])
        lines.append(f"  {'':<24} rates: {rates}")
        if s.criteria:
            shown = "  ".join(f"{k} {_figure(v)}" for k, v in s.criteria.items())
            lines.append(f"  {'':<24} criteria: {shown}")
        if s.mean_pass_ratio is not None:
            lines.append(f"  {'':<24} pass ratio {_figure(s.mean_pass_ratio)}")
    return lines


def score_meaning(run: JudgeRun) -> str:
    """What a pairwise mean score is (P(answer_a preferred)), or the pointwise scale."""
    if run.mode == "pairwise":
        meaning = "P(answer_a preferred), swap-corrected"
    else:
        values = run.rubric.values
        meaning = f"expected score on {min(values):g}-{max(values):g}"
    if run.rubric.manifest.checklist:
        return "mean P(pass) over the item's checks"
    if run.rubric.multi:
        return f"overall: the criteria's weighted mean; {meaning}"
    return meaning


def summarize(run: JudgeRun, *, by: Sequence[str] = ()) -> RunSummary:
    """Headline numbers: score with CI, verdict rates over all items, invalid counts, speed;
    per criterion for a multi-criterion run; per slice of each meta column in ``by``."""
    v = run.verdicts
    scores = v.scores
    valid = v.valid
    fresh = [j for j in run.judgments if not j.from_store]
    prompt_tokens = sum(j.num_prompt_tokens for j in fresh)
    cached_tokens = sum(j.num_cached_tokens for j in fresh)
    groups = np.array(v.groups, dtype=object)
    # items sharing a question are one cluster: a CI needs two clusters at least
    enough = len(set(groups[valid])) >= 2
    mean = mean_ci(scores[valid], groups=groups[valid]) if enough else None
    categories = [label for label in run.rubric.labels if label != TIE]
    rates = {
        name: (r.rate, r.low, r.high)
        for name, r in label_rates(v.labels, valid, v.ties, categories, v.groups).items()
    }
    partial = valid & (v.n_valid_variants < v.n_variants)
    by_variant: dict[str, list[bool]] = {}
    for j in run.judgments:
        by_variant.setdefault(j.variant, []).append(not j.valid)
    n_invalid = sum(not j.valid for j in run.judgments)
    n = len(v)
    return RunSummary(
        rubric=run.rubric.ref,
        rubric_hash=run.rubric.hash,
        mode=run.mode,
        judge_model=run.judge.model,
        judge_name=run.judge_name,
        n_items=n,
        n_valid_items=int(valid.sum()),
        n_judgments=len(run.judgments),
        n_invalid_judgments=n_invalid,
        invalid_item_rate=1 - float(valid.mean()) if n else 0.0,
        invalid_judgment_rate=n_invalid / len(run.judgments) if run.judgments else 0.0,
        invalid_judgment_rate_by_variant={k: float(np.mean(x)) for k, x in by_variant.items()},
        n_partial_items=int(partial.sum()),
        n_ties=int(v.ties.sum()),
        n_from_store=len(run.judgments) - len(fresh),
        mean_score=mean.estimate if mean else None,
        mean_score_ci=(mean.low, mean.high) if mean else None,
        score_meaning=score_meaning(run),
        label_rates=rates,
        mean_label_mass=float(np.mean([j.label_mass for j in run.judgments]))
        if run.judgments
        else 0.0,
        prompt_tokens=prompt_tokens,
        cached_tokens=cached_tokens,
        cache_hit_rate=cached_tokens / prompt_tokens if prompt_tokens else 0.0,
        seconds=run.seconds,
        items_per_second=n / run.seconds if fresh and run.seconds > 0 else None,
        controls=controls_applied(run),
        card=run.card.path if run.card is not None else None,
        backend_stats=run.backend_stats,
        criteria=_criteria(run),
        mean_pass_ratio=_mean(v.pass_ratio[valid]) if v.pass_ratio is not None else None,
        slices={column: slice_summary(run, column) for column in by},
    )


def _mean(x: np.ndarray) -> float | None:
    return float(np.mean(x)) if len(x) else None


def _criteria(run: JudgeRun) -> dict[str, CriterionSummary]:
    """Declared criteria's mean scores (a checklist's checks differ per item: none)."""
    table = run.verdicts.criteria
    if table is None or run.rubric.manifest.checklist:
        return {}
    out = {}
    for name in table.criteria:
        scores = table.column(name, table.verdicts.scores, len(run.verdicts))
        valid = np.isfinite(scores)
        mean = mean_ci(scores[valid]) if valid.sum() >= 2 else None
        out[name] = CriterionSummary(
            n_valid_items=int(valid.sum()),
            invalid_item_rate=1 - float(valid.mean()) if len(valid) else 0.0,
            mean_score=mean.estimate if mean else None,
            mean_score_ci=(mean.low, mean.high) if mean else None,
        )
    return out


def clustered_interval(values: np.ndarray, groups: Sequence[str]) -> ConfidenceInterval | None:
    """The mean of ``values`` with a 95% bootstrap interval that resamples whole clusters
    (``groups``), so items sharing an article or question move together; None with fewer than
    two clusters. The one place slices get their intervals (seeded: the same run, the same
    interval)."""
    keys, index = np.unique(np.asarray(groups, dtype=object), return_inverse=True)
    if len(keys) < 2:
        return None
    sums = np.bincount(index, weights=np.asarray(values, dtype=float), minlength=len(keys))
    counts = np.bincount(index, minlength=len(keys)).astype(float)
    return bootstrap_ci(lambda s, c: s.sum() / c.sum(), sums, counts, rng=np.random.default_rng(0))


def _as_figure(values: np.ndarray, groups: Sequence[str]) -> Figure | None:
    ci = clustered_interval(values, groups) if len(values) else None
    if ci is None:
        return (float(np.mean(values)), float("nan"), float("nan")) if len(values) else None
    return (ci.estimate, ci.low, ci.high)


def slice_values(meta: Sequence[Mapping[str, Any]], by: str) -> list[str]:
    """Each item's slice: its meta value in column ``by`` as text ("(none)" when missing)."""
    return [str(row.get(by)) if row.get(by) is not None else "(none)" for row in meta]


def slice_summary(run: JudgeRun, by: str) -> list[SliceSummary]:
    """Every headline figure per value of meta column ``by`` (InputError when no item has it),
    in order of first appearance; intervals from ``clustered_interval`` over
    ``run.verdicts.groups``."""
    if not any(by in row for row in run.meta):
        columns = sorted({key for row in run.meta for key in row})
        raise InputError(f"--by {by}: no such meta column; the run's meta columns are {columns}")
    v = run.verdicts
    groups = np.asarray(v.groups, dtype=object)
    values = slice_values(run.meta, by)
    categories = verdict_categories(v.labels, v.valid, v.ties)
    names = rate_names([label for label in run.rubric.labels if label != TIE])
    table = v.criteria
    out = []
    for value in dict.fromkeys(values):
        chosen = np.array([x == value for x in values], dtype=bool)
        valid = v.valid & chosen
        per_criterion = {}
        if table is not None and not run.rubric.manifest.checklist:
            for name in table.criteria:
                scores = table.column(name, table.verdicts.scores, len(v))
                ok = chosen & np.isfinite(scores)
                per_criterion[name] = _as_figure(scores[ok], groups[ok])
        out.append(
            SliceSummary(
                column=by,
                value=value,
                n_items=int(chosen.sum()),
                n_groups=len(set(groups[chosen])),
                n_valid_items=int(valid.sum()),
                invalid_item_rate=_as_figure((~v.valid[chosen]).astype(float), groups[chosen]),
                mean_score=_as_figure(v.scores[valid], groups[valid]),
                label_rates={
                    name: _as_figure(
                        np.array([c == name for c in np.asarray(categories)[chosen]], float),
                        groups[chosen],
                    )
                    for name in names
                },
                criteria=per_criterion,
                mean_pass_ratio=_as_figure(v.pass_ratio[valid], groups[valid])
                if v.pass_ratio is not None
                else None,
            )
        )
    return out
