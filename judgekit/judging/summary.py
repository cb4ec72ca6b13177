"""The run summary: what a user reads at the end of a run, and what CI gates on."""

from __future__ import annotations

from typing import Any

import numpy as np

from judgekit.judging.decide import TIE, label_rates
from judgekit.judging.results import JudgeRun
from judgekit.judging.views import controls_applied
from judgekit.schema import StrictModel
from judgekit.stats import mean_ci


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
        return "\n".join(lines)


def score_meaning(run: JudgeRun) -> str:
    """What a pairwise mean score is (P(answer_a preferred)), or the pointwise scale."""
    if run.mode == "pairwise":
        return "P(answer_a preferred), swap-corrected"
    values = run.rubric.values
    return f"expected score on {min(values):g}-{max(values):g}"


def summarize(run: JudgeRun) -> RunSummary:
    """Headline numbers: score with CI, verdict rates over all items, invalid counts, speed."""
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
    )
