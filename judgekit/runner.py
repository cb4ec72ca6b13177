"""The judge run: the one place that knows the pipeline's order.

rubric -> prompts (grouped by shared prefix) -> backend batches -> label scores -> judgments
(written as each batch finishes) -> per-item aggregation (swap, ensemble) -> summary.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from judgekit.aggregate import Controls, combine, item_table
from judgekit.backends.base import Backend
from judgekit.prompts import PlannedRequest, batches, plan_requests
from judgekit.records import JudgmentWriter, read_items
from judgekit.rubric import Rubric, load_rubric
from judgekit.schema import Item, JudgeIdentity, Judgment, LabelLogprobs
from judgekit.scoring import score_labels
from judgekit.stats import mean_ci, proportion_ci
from judgekit.summary import RunSummary

ProgressCallback = Callable[[int, int], None]


@dataclass
class JudgeRun:
    """Everything a run produced: per-request judgments, per-item verdicts and timings."""

    rubric: Rubric
    judge: JudgeIdentity
    controls: Controls
    items: list[Item]
    judgments: list[Judgment]
    seconds: float
    item_probs: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        table = item_table(self.judgments, self.rubric.labels, [item.id for item in self.items])
        self.item_probs = combine(table, self.controls)

    @property
    def item_scores(self) -> np.ndarray:
        """Expected score per item (pointwise) or P(A preferred) (pairwise); NaN if invalid."""
        return self.item_probs @ np.asarray(self.rubric.values, dtype=float)

    def to_pandas(self) -> pd.DataFrame:
        """One row per judgment (item x variant x order), label probabilities as columns."""
        rows = []
        for j in self.judgments:
            row = j.model_dump(exclude={"label_probs", "engine_settings"})
            for label in self.rubric.labels:
                row[f"p_{label}"] = j.label_probs[label] if j.label_probs else math.nan
            rows.append(row)
        return pd.DataFrame(rows)

    def items_frame(self) -> pd.DataFrame:
        """One row per item: the aggregated distribution, score and verdict label."""
        frame = pd.DataFrame(
            self.item_probs, columns=[f"p_{label}" for label in self.rubric.labels]
        )
        frame.insert(0, "item_id", [item.id for item in self.items])
        frame["score"] = self.item_scores
        valid = ~np.isnan(self.item_probs).any(axis=1)
        labels = np.asarray(self.rubric.labels, dtype=object)
        frame["label"] = np.where(
            valid, labels[np.nan_to_num(self.item_probs, nan=-1).argmax(axis=1)], None
        )
        return frame

    def controls_applied(self) -> dict[str, str]:
        """Which bias controls shaped the item verdicts (swap only applies to pairs)."""
        swapped = self.rubric.manifest.mode == "pairwise" and self.controls.swap
        n_variants = len({j.variant for j in self.judgments})
        return {
            "position_swap": self.controls.swap_method if swapped else "off",
            "ensemble": f"{self.controls.ensemble} of {n_variants}" if n_variants > 1 else "off",
        }

    def summary(self) -> RunSummary:
        """Headline numbers: score with CI or win rates, invalid counts, cache hits, speed."""
        scores = self.item_scores
        valid = ~np.isnan(scores)
        prompt_tokens = sum(j.num_prompt_tokens for j in self.judgments)
        cached_tokens = sum(j.num_cached_tokens for j in self.judgments)
        mean = mean_ci(scores[valid]) if valid.sum() >= 2 else None
        rates = {}
        if self.rubric.manifest.mode == "pairwise":
            verdicts = self.items_frame()["label"][valid]
            for label in self.rubric.labels:
                ci = proportion_ci(int((verdicts == label).sum()), int(valid.sum()))
                rates[label] = (ci.estimate, ci.low, ci.high)
        return RunSummary(
            rubric=self.rubric.ref,
            rubric_hash=self.rubric.hash,
            mode=self.rubric.manifest.mode,
            judge_model=self.judge.model,
            n_items=len(self.items),
            n_valid_items=int(valid.sum()),
            n_judgments=len(self.judgments),
            n_invalid_judgments=sum(not j.valid for j in self.judgments),
            mean_score=mean.estimate if mean else None,
            mean_score_ci=(mean.low, mean.high) if mean else None,
            label_rates=rates,
            mean_label_mass=float(np.mean([j.label_mass for j in self.judgments]))
            if self.judgments
            else 0.0,
            prompt_tokens=prompt_tokens,
            cached_tokens=cached_tokens,
            cache_hit_rate=cached_tokens / prompt_tokens if prompt_tokens else 0.0,
            seconds=self.seconds,
            items_per_second=len(self.items) / self.seconds if self.seconds > 0 else 0.0,
            controls=self.controls_applied(),
        )


def judge(
    items: Sequence[Item] | Path | str,
    rubric: str | Rubric,
    *,
    backend: Backend,
    variants: Sequence[str] | None = None,
    controls: Controls | None = None,
    output: Path | str | None = None,
    columns: dict[str, str] | None = None,
    batch_size: int = 64,
    min_mass: float | None = None,
    progress: ProgressCallback | None = None,
    rubric_paths: Sequence[Path | str] = (),
) -> JudgeRun:
    """Judge items (or an input file) with a rubric on a backend.

    Judgments are written to ``output`` batch by batch as they finish. ``min_mass`` overrides the
    rubric's label-mass threshold below which a verdict is invalid.
    """
    rubric = rubric if isinstance(rubric, Rubric) else load_rubric(rubric, paths=rubric_paths)
    controls = controls or Controls()
    if isinstance(items, str | Path):
        items = read_items(items, rubric.manifest.mode, columns)
    items = list(items)
    threshold = rubric.manifest.min_label_mass if min_mass is None else min_mass
    planned = plan_requests(rubric, items, variants=variants, swap=controls.swap)
    identity = backend.identity
    judgments: list[Judgment] = []
    writer = JudgmentWriter(output) if output is not None else None
    start = time.perf_counter()
    try:
        for batch in batches(planned, batch_size):
            results = backend.score([p.request for p in batch])
            new = [
                _judgment(rubric, identity, p, r, threshold)
                for p, r in zip(batch, results, strict=True)
            ]
            judgments.extend(new)
            if writer is not None:
                writer.write(new)
            if progress is not None:
                progress(len(judgments), len(planned))
    finally:
        if writer is not None:
            writer.close()
    seconds = time.perf_counter() - start
    return JudgeRun(rubric, identity, controls, items, judgments, seconds)


def _judgment(
    rubric: Rubric,
    identity: JudgeIdentity,
    planned: PlannedRequest,
    result: LabelLogprobs,
    threshold: float,
) -> Judgment:
    score = score_labels(
        result.logprobs, rubric.labels, rubric.values, min_mass=threshold, error=result.error
    )
    return Judgment(
        item_id=planned.item.id,
        rubric=rubric.name,
        rubric_version=rubric.version,
        rubric_hash=rubric.hash,
        variant=planned.variant,
        order=planned.order,
        label_probs=score.probs,
        label_mass=score.mass,
        expected_score=score.expected,
        label=score.label,
        valid=score.valid,
        invalid_reason=score.invalid_reason,
        judge_model=identity.model,
        judge_fingerprint=identity.fingerprint,
        engine_settings=identity.settings,
        num_prompt_tokens=result.num_prompt_tokens,
        num_cached_tokens=result.num_cached_tokens,
    )
