"""Candidate vs baseline: two judge runs on the same items, compared item by item.

Each run is read back with the one run reader (``judging.read.read_run``): the per-item scores
compared are the final ones each run reported (swap, ensemble, a card's frozen corrections).
Items that share a question are one cluster: the interval resamples clusters. ``by`` compares
every slice of a meta column too (which categories regressed?), with cluster-resampled
intervals (``judging.summary.clustered_interval``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from judgekit.data.records import InputError
from judgekit.judging.read import read_run
from judgekit.judging.results import JudgeRun
from judgekit.judging.summary import clustered_interval, slice_values
from judgekit.schema import StrictModel
from judgekit.stats import bootstrap_ci, permutation_test, sign_test


class ItemChange(StrictModel):
    item_id: str
    baseline: float
    candidate: float
    diff: float


class DiffSlice(StrictModel):
    """The paired difference on the items of one slice (baseline meta ``column`` = ``value``);
    ``mean_diff_ci`` resamples the slice's groups (None: fewer than two groups)."""

    column: str
    value: str
    n: int
    mean_baseline: float
    mean_candidate: float
    mean_diff: float
    mean_diff_ci: tuple[float, float] | None
    candidate_better: int
    baseline_better: int


class RunDiff(StrictModel):
    """Paired comparison of two runs: what a CI comment needs."""

    baseline: str
    candidate: str
    rubric: str
    n_common: int
    n_only_baseline: int
    n_only_candidate: int
    n_invalid_pairs: int
    mean_baseline: float
    mean_candidate: float
    mean_diff: float
    mean_diff_ci: tuple[float, float]
    candidate_better: int
    baseline_better: int
    unchanged: int
    p_sign: float
    p_permutation: float
    mismatches: list[str]
    regressions: list[ItemChange]
    improvements: list[ItemChange]
    slices: list[DiffSlice] = Field(default_factory=list)

    def table(self) -> str:
        low, high = self.mean_diff_ci
        lines = [
            f"rubric {self.rubric}: {self.n_common} items in both runs "
            f"({self.n_invalid_pairs} without a valid verdict in one run, excluded)",
            f"baseline   {self.mean_baseline:.3f}   {self.baseline}",
            f"candidate  {self.mean_candidate:.3f}   {self.candidate}",
            f"difference {self.mean_diff:+.3f}  95% CI [{low:+.3f}, {high:+.3f}]  "
            f"sign p={self.p_sign:.3g}  permutation p={self.p_permutation:.3g}",
            f"items      {self.candidate_better} better, {self.baseline_better} worse, "
            f"{self.unchanged} unchanged",
        ]
        lines += [f"MISMATCH   {m}" for m in self.mismatches]
        if self.slices:
            lines += ["", f"by {self.slices[0].column} (95% CIs resample groups):"]
            for c in self.slices:
                ci = (
                    f"[{c.mean_diff_ci[0]:+.3f}, {c.mean_diff_ci[1]:+.3f}]"
                    if c.mean_diff_ci
                    else "[one group: no interval]"
                )
                lines.append(
                    f"  {c.value[:24]:<24} n={c.n:<4} {c.mean_baseline:.3f} -> "
                    f"{c.mean_candidate:.3f}  diff {c.mean_diff:+.3f} {ci}  "
                    f"{c.candidate_better} better, {c.baseline_better} worse"
                )
        if self.regressions:
            lines += ["", "biggest regressions:", f"{'item':<28} {'baseline':>9} {'candidate':>9}"]
            lines += [
                f"{c.item_id[:28]:<28} {c.baseline:>9.3f} {c.candidate:>9.3f}"
                for c in self.regressions
            ]
        return "\n".join(lines)

    def markdown(self) -> str:
        low, high = self.mean_diff_ci
        rows = [
            f"**judgekit diff** — `{self.rubric}`, {self.n_common} paired items",
            "",
            "| | mean score |",
            "|---|---|",
            f"| baseline | {self.mean_baseline:.3f} |",
            f"| candidate | {self.mean_candidate:.3f} |",
            f"| difference | {self.mean_diff:+.3f} (95% CI {low:+.3f} to {high:+.3f}) |",
            "",
            f"{self.candidate_better} items better, {self.baseline_better} worse; "
            f"sign test p = {self.p_sign:.3g}, permutation p = {self.p_permutation:.3g}.",
        ]
        rows += [
            f"\n**Judged differently** (compared with --allow-mismatch): {m}"
            for m in self.mismatches
        ]
        if self.regressions:
            rows += ["", "| biggest regressions | baseline | candidate |", "|---|---|---|"]
            rows += [
                f"| `{c.item_id}` | {c.baseline:.3f} | {c.candidate:.3f} |"
                for c in self.regressions
            ]
        return "\n".join(rows) + "\n"


def _mismatches(a: JudgeRun, b: JudgeRun) -> list[str]:
    """What differs between two runs' judges, controls and corrections (empty = comparable)."""
    found = [
        f"judge {key}: {getattr(a.judge, key)!r} vs {getattr(b.judge, key)!r}"
        for key in ("model", "fingerprint", "settings")
        if getattr(a.judge, key) != getattr(b.judge, key)
    ]
    if a.controls != b.controls:
        found.append(f"controls: {a.controls.model_dump()} vs {b.controls.model_dump()}")
    keys = (a.card.key if a.card else None, b.card.key if b.card else None)
    if keys[0] != keys[1]:
        found.append(f"calibration card: {keys[0]} vs {keys[1]}")
    return found


def _scores(run: JudgeRun) -> pd.Series:
    return pd.Series(run.verdicts.scores, index=list(run.verdicts.item_ids))


def diff_runs(
    baseline: Path | str,
    candidate: Path | str,
    *,
    rng: np.random.Generator,
    n_resamples: int = 2000,
    top: int = 10,
    allow_mismatch: bool = False,
    by: str | None = None,
) -> RunDiff:
    """Paired difference (candidate - baseline) over the items both runs judged validly.

    Runs must share the rubric; they must also share the judge (model, fingerprint, engine
    settings) and the controls, else a difference in scores could be a difference in judging:
    ``allow_mismatch`` compares them anyway and lists what differs in ``mismatches``.
    ``by``: also compare each slice of this meta column (the baseline's values).
    """
    base, cand = read_run(baseline, content=False), read_run(candidate, content=False)
    ref_a, a, b = base.rubric.ref, _scores(base), _scores(cand)
    if base.rubric.hash != cand.rubric.hash:
        raise InputError(
            f"runs used different rubrics: {ref_a} ({base.rubric.hash[:12]}) vs {cand.rubric.ref}"
        )
    mismatches = _mismatches(base, cand)
    if mismatches and not allow_mismatch:
        raise InputError(
            "runs were judged differently (pass --allow-mismatch to compare anyway): "
            + "; ".join(mismatches)
        )
    common = a.index.intersection(b.index)
    pair = pd.DataFrame({"a": a[common], "b": b[common]})
    valid = pair.dropna()
    if len(valid) < 2:
        raise InputError("fewer than two items have valid verdicts in both runs")
    diff = (valid["b"] - valid["a"]).to_numpy()
    group_of = dict(zip(base.verdicts.item_ids, base.verdicts.groups, strict=True))
    groups = [group_of[i] for i in valid.index]  # items sharing a question: one cluster
    ci = bootstrap_ci(np.mean, diff, rng=rng, n_resamples=n_resamples, groups=groups)
    changes = [
        ItemChange(item_id=str(i), baseline=r.a, candidate=r.b, diff=r.b - r.a)
        for i, r in valid.iterrows()
    ]
    changes.sort(key=lambda c: c.diff)
    return RunDiff(
        baseline=str(baseline),
        candidate=str(candidate),
        rubric=ref_a,
        n_common=len(common),
        n_only_baseline=len(a.index.difference(b.index)),
        n_only_candidate=len(b.index.difference(a.index)),
        n_invalid_pairs=len(pair) - len(valid),
        mean_baseline=float(valid["a"].mean()),
        mean_candidate=float(valid["b"].mean()),
        mean_diff=float(diff.mean()),
        mean_diff_ci=(ci.low, ci.high),
        candidate_better=int((diff > 0).sum()),
        baseline_better=int((diff < 0).sum()),
        unchanged=int((diff == 0).sum()),
        p_sign=sign_test(diff, groups=groups),
        p_permutation=permutation_test(diff, rng=rng, groups=groups),
        mismatches=mismatches,
        regressions=[c for c in changes[:top] if c.diff < 0],
        improvements=[c for c in reversed(changes[-top:]) if c.diff > 0],
        slices=_slices(base, valid, by) if by is not None else [],
    )


def _slices(base: JudgeRun, valid: pd.DataFrame, by: str) -> list[DiffSlice]:
    """Paired differences per value of the baseline's meta column ``by``."""
    ids = list(base.verdicts.item_ids)
    meta = dict(zip(ids, base.meta, strict=True)) if base.meta else {}
    if not any(by in row for row in meta.values()):
        columns = sorted({k for row in meta.values() for k in row})
        raise InputError(f"--by {by}: no such meta column in the baseline; it has {columns}")
    group = dict(zip(ids, base.verdicts.groups, strict=True))
    values = slice_values([meta[i] for i in valid.index], by)
    out = []
    for value in dict.fromkeys(values):
        rows = valid[[v == value for v in values]]
        diff = (rows["b"] - rows["a"]).to_numpy()
        ci = clustered_interval(diff, [group[i] for i in rows.index])
        out.append(
            DiffSlice(
                column=by,
                value=value,
                n=len(rows),
                mean_baseline=float(rows["a"].mean()),
                mean_candidate=float(rows["b"].mean()),
                mean_diff=float(diff.mean()),
                mean_diff_ci=(ci.low, ci.high) if ci is not None else None,
                candidate_better=int((diff > 0).sum()),
                baseline_better=int((diff < 0).sum()),
            )
        )
    return out


def write_diff(result: RunDiff, json_path: Path | None, markdown_path: Path | None) -> None:
    if json_path is not None:
        json_path.write_text(json.dumps(result.model_dump(mode="json"), indent=2) + "\n")
    if markdown_path is not None:
        markdown_path.write_text(result.markdown())
