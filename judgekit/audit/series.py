"""A score series across runs of one rubric and judge (e.g. nightly), and its change point.

Method (documented in docs/drift.md): with runs 1..m in the given order, every split point k
(runs before k vs runs from k on) is tested with a two-sided Mann-Whitney U test on the pooled
valid item scores of the two sides; the smallest p-value is Bonferroni-corrected for the m - 1
splits tested. A change point is flagged when the corrected p is below ``alpha``. Item scores
are treated as independent draws, which ignores that nightly runs may judge the same items; the
paired design for the same items is the anchor check (``audit.drift``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy import stats

from judgekit.audit.drift import identity_changes
from judgekit.calibrate.report.plots import figure_png
from judgekit.data.records import InputError
from judgekit.judging.read import read_run
from judgekit.schema import StrictModel
from judgekit.stats import mean_ci


class RunPoint(StrictModel):
    path: str
    n_valid: int
    mean: float
    ci_low: float
    ci_high: float
    identity_changes: list[str]


class ChangePoint(StrictModel):
    index: int
    p_value: float
    p_adjusted: float
    mean_before: float
    mean_after: float


class SeriesReport(StrictModel):
    rubric: str
    method: str
    alpha: float
    points: list[RunPoint]
    change_point: ChangePoint | None
    best_split: ChangePoint | None


def change_point(
    samples: Sequence[np.ndarray], alpha: float = 0.05
) -> tuple[ChangePoint | None, ChangePoint | None]:
    """(flagged change point or None, best split) over runs' score samples, in order."""
    m = len(samples)
    if m < 2:
        return None, None
    best: ChangePoint | None = None
    for k in range(1, m):
        before, after = np.concatenate(samples[:k]), np.concatenate(samples[k:])
        p = float(stats.mannwhitneyu(before, after, alternative="two-sided").pvalue)
        if best is None or p < best.p_value:
            best = ChangePoint(
                index=k,
                p_value=p,
                p_adjusted=min(1.0, p * (m - 1)),
                mean_before=float(before.mean()),
                mean_after=float(after.mean()),
            )
    assert best is not None
    return (best if best.p_adjusted < alpha else None), best


def run_series(paths: Sequence[Path | str], *, alpha: float = 0.05) -> SeriesReport:
    """Read the runs (judgments files with their manifests); all must use the same rubric."""
    if len(paths) < 2:
        raise InputError("a series needs two or more runs")
    points, samples, rubric, previous = [], [], None, None
    for path in paths:
        run = read_run(path, content=False)
        ref, digest, scores = run.rubric.ref, run.rubric.hash, run.verdicts.scores
        if rubric is not None and digest != rubric[1]:
            raise InputError(f"{path}: rubric {ref} ({digest[:12]}) differs from {rubric[0]}")
        rubric = (ref, digest)
        valid = scores[np.isfinite(scores)]
        if valid.size < 2:
            raise InputError(f"{path}: fewer than two valid item scores")
        changed = identity_changes(previous, run.judge) if previous is not None else []
        previous = run.judge
        ci = mean_ci(valid)
        points.append(
            RunPoint(
                path=str(path),
                n_valid=int(valid.size),
                mean=ci.estimate,
                ci_low=ci.low,
                ci_high=ci.high,
                identity_changes=changed,
            )
        )
        samples.append(valid)
    flagged, best = change_point(samples, alpha)
    assert rubric is not None
    return SeriesReport(
        rubric=rubric[0],
        method="Mann-Whitney U at each split, Bonferroni over m-1 splits",
        alpha=alpha,
        points=points,
        change_point=flagged,
        best_split=best,
    )


def plot_series(report: SeriesReport) -> bytes:
    """Mean score per run with its 95% CI; the flagged change point as a dashed line."""
    fig = Figure(figsize=(max(4.0, 0.6 * len(report.points) + 2), 3.2))
    ax = fig.add_subplot()
    x = np.arange(1, len(report.points) + 1)
    means = np.array([p.mean for p in report.points])
    errors = np.array(
        [[p.mean - p.ci_low for p in report.points], [p.ci_high - p.mean for p in report.points]]
    )
    ax.errorbar(x, means, yerr=errors, fmt="o-", capsize=3)
    if report.change_point is not None:
        ax.axvline(
            report.change_point.index + 0.5,
            color="red",
            linestyle="--",
            label=f"change point (adj. p={report.change_point.p_adjusted:.2g})",
        )
        ax.legend(fontsize="small")
    ax.set_xticks(x)
    ax.set_xlabel("run")
    ax.set_ylabel("mean item score")
    ax.set_title(f"Score series: {report.rubric}")
    return figure_png(fig)


def series_markdown(report: SeriesReport) -> str:
    lines = [
        f"Score series `{report.rubric}` ({report.method}, alpha {report.alpha})",
        "",
        "| run | file | valid items | mean [95% CI] | identity changes |",
        "|---|---|---|---|---|",
    ]
    for i, p in enumerate(report.points, start=1):
        lines.append(
            f"| {i} | `{p.path}` | {p.n_valid} | {p.mean:.3f} [{p.ci_low:.3f}, {p.ci_high:.3f}] | "
            f"{'; '.join(p.identity_changes) or '-'} |"
        )
    cp = report.change_point
    lines += [
        "",
        "no change point"
        if cp is None
        else f"change point before run {cp.index + 1}: mean {cp.mean_before:.3f} -> "
        f"{cp.mean_after:.3f}, p={cp.p_value:.3g} (Bonferroni {cp.p_adjusted:.3g})",
    ]
    return "\n".join(lines) + "\n"
