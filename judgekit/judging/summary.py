"""The run summary: what a user reads at the end of a run, and what CI gates on."""

from __future__ import annotations

from typing import Any

import numpy as np

from judgekit.judging.decide import TIE
from judgekit.judging.results import JudgeRun
from judgekit.schema import StrictModel
from judgekit.stats import mean_ci, proportion_ci


class RunSummary(StrictModel):
    """Headline numbers of one judge run.

    Two invalid rates, because they differ: ``invalid_item_rate`` counts items with no usable
    verdict at all (every variant failed), ``invalid_judgment_rate`` counts single judgments
    (item x variant x order). An ensemble silently loses a variant when one of its judgments
    fails; ``n_partial_items`` counts the valid items whose ensemble is missing a variant.
    Pairwise ``label_rates`` are for "A", "B" and "tie" (see ``judging.decide``); pointwise
    ``n_ties`` counts items whose top labels tie exactly (they have no label).
    """

    rubric: str
    rubric_hash: str
    mode: str
    judge_model: str
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
    label_rates: dict[str, tuple[float, float, float]]
    mean_label_mass: float
    prompt_tokens: int
    cached_tokens: int
    cache_hit_rate: float
    seconds: float
    items_per_second: float
    controls: dict[str, str]
    backend_stats: dict[str, Any] | None = None

    def format(self) -> str:
        """Plain-text block for the terminal."""
        lines = [
            f"rubric          {self.rubric} ({self.rubric_hash[:12]})",
            f"judge           {self.judge_model}",
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
            lines.append(f"mean score      {self.mean_score:.3f}  95% CI [{low:.3f}, {high:.3f}]")
        for label, (rate, low, high) in self.label_rates.items():
            lines.append(f"rate {label:<10} {rate:.3f}  95% CI [{low:.3f}, {high:.3f}]")
        lines += [
            f"label mass      {self.mean_label_mass:.3f} (mean)",
            f"prefix cache    {self.cache_hit_rate:.1%} of {self.prompt_tokens} new prompt tokens",
            f"speed           {self.items_per_second:.2f} items/s ({self.seconds:.1f} s)",
            "controls        " + ", ".join(f"{k}={v}" for k, v in self.controls.items()),
        ]
        if self.backend_stats:
            shown = ", ".join(f"{k}={v}" for k, v in self.backend_stats.items() if v)
            lines.append(f"backend         {shown}")
        return "\n".join(lines)


def summarize(run: JudgeRun) -> RunSummary:
    """Headline numbers: score with CI or win rates, invalid counts, cache hits, speed."""
    scores = run.final_scores
    valid = ~np.isnan(scores)
    fresh = [j for j in run.judgments if not j.from_store]
    prompt_tokens = sum(j.num_prompt_tokens for j in fresh)
    cached_tokens = sum(j.num_cached_tokens for j in fresh)
    mean = mean_ci(scores[valid]) if valid.sum() >= 2 else None
    decisions = run.decisions
    rates = {}
    if run.rubric.manifest.mode == "pairwise" and valid.any():
        for label in ("A", "B", TIE):
            ci = proportion_ci(decisions.labels.count(label), int(valid.sum()))
            rates[label] = (ci.estimate, ci.low, ci.high)
    n_variants = len(run.table.variants)
    partial = valid & (run.valid_variants < n_variants)
    by_variant: dict[str, list[bool]] = {}
    for j in run.judgments:
        by_variant.setdefault(j.variant, []).append(not j.valid)
    n_invalid = sum(not j.valid for j in run.judgments)
    return RunSummary(
        rubric=run.rubric.ref,
        rubric_hash=run.rubric.hash,
        mode=run.rubric.manifest.mode,
        judge_model=run.judge.model,
        n_items=len(run.items),
        n_valid_items=int(valid.sum()),
        n_judgments=len(run.judgments),
        n_invalid_judgments=n_invalid,
        invalid_item_rate=1 - float(valid.mean()) if len(valid) else 0.0,
        invalid_judgment_rate=n_invalid / len(run.judgments) if run.judgments else 0.0,
        invalid_judgment_rate_by_variant={k: float(np.mean(v)) for k, v in by_variant.items()},
        n_partial_items=int(partial.sum()),
        n_ties=int(decisions.ties.sum()),
        n_from_store=len(run.judgments) - len(fresh),
        mean_score=mean.estimate if mean else None,
        mean_score_ci=(mean.low, mean.high) if mean else None,
        label_rates=rates,
        mean_label_mass=float(np.mean([j.label_mass for j in run.judgments]))
        if run.judgments
        else 0.0,
        prompt_tokens=prompt_tokens,
        cached_tokens=cached_tokens,
        cache_hit_rate=cached_tokens / prompt_tokens if prompt_tokens else 0.0,
        seconds=run.seconds,
        items_per_second=len(run.items) / run.seconds if run.seconds > 0 else 0.0,
        controls=run.controls_applied(),
        backend_stats=run.backend_stats,
    )
