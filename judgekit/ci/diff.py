"""Candidate vs baseline: two judge runs on the same items, compared item by item.

Each run is read back from its judgments file and aggregated exactly as the run itself did
(position swap, variant ensemble, as recorded in its manifest), so the per-item scores compared
here are the ones the runs reported.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from judgekit.data.records import InputError, manifest_path, read_judgments
from judgekit.judging.aggregate import Controls, combine, item_table
from judgekit.judging.run_manifest import RunManifest
from judgekit.rubrics import load_rubric
from judgekit.schema import StrictModel
from judgekit.stats import bootstrap_ci, permutation_test, sign_test


class ItemChange(StrictModel):
    item_id: str
    baseline: float
    candidate: float
    diff: float


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
    regressions: list[ItemChange]
    improvements: list[ItemChange]

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
        if self.regressions:
            rows += ["", "| biggest regressions | baseline | candidate |", "|---|---|---|"]
            rows += [
                f"| `{c.item_id}` | {c.baseline:.3f} | {c.candidate:.3f} |"
                for c in self.regressions
            ]
        return "\n".join(rows) + "\n"


def run_item_scores(path: Path | str) -> tuple[str, str, pd.Series]:
    """(rubric ref, rubric hash, item score per item id) of a judgments file."""
    path = Path(path)
    judgments = read_judgments(path)
    if not judgments:
        raise InputError(f"{path}: no judgments")
    first = judgments[0]
    rubric = load_rubric(f"{first.rubric}@v{first.rubric_version}")
    if rubric.hash != first.rubric_hash:
        raise InputError(
            f"{path}: judged with {rubric.ref} hash {first.rubric_hash[:12]}, "
            f"but the installed {rubric.ref} has hash {rubric.hash[:12]}"
        )
    meta = manifest_path(path)
    controls = (
        RunManifest.model_validate_json(meta.read_text()).controls if meta.is_file() else Controls()
    )
    ids = list(dict.fromkeys(j.item_id for j in judgments))
    probs = combine(item_table(judgments, rubric.labels, ids, rubric.variants), controls)
    scores = probs @ np.asarray(rubric.values, dtype=float)
    return rubric.ref, rubric.hash, pd.Series(scores, index=ids)


def diff_runs(
    baseline: Path | str,
    candidate: Path | str,
    *,
    rng: np.random.Generator,
    n_resamples: int = 2000,
    top: int = 10,
) -> RunDiff:
    """Paired difference (candidate - baseline) over the items both runs judged validly."""
    ref_a, hash_a, a = run_item_scores(baseline)
    ref_b, hash_b, b = run_item_scores(candidate)
    if hash_a != hash_b:
        raise InputError(f"runs used different rubrics: {ref_a} ({hash_a[:12]}) vs {ref_b}")
    common = a.index.intersection(b.index)
    pair = pd.DataFrame({"a": a[common], "b": b[common]})
    valid = pair.dropna()
    if len(valid) < 2:
        raise InputError("fewer than two items have valid verdicts in both runs")
    diff = (valid["b"] - valid["a"]).to_numpy()
    ci = bootstrap_ci(np.mean, diff, rng=rng, n_resamples=n_resamples)
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
        p_sign=sign_test(diff),
        p_permutation=permutation_test(diff, rng=rng),
        regressions=[c for c in changes[:top] if c.diff < 0],
        improvements=[c for c in reversed(changes[-top:]) if c.diff > 0],
    )


def write_diff(result: RunDiff, json_path: Path | None, markdown_path: Path | None) -> None:
    if json_path is not None:
        json_path.write_text(json.dumps(result.model_dump(mode="json"), indent=2) + "\n")
    if markdown_path is not None:
        markdown_path.write_text(result.markdown())
