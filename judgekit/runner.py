"""The judge run: the one place that knows the pipeline's order.

rubric -> prompts (grouped by shared prefix) -> backend batches -> label scores -> judgments
(written as each batch finishes) -> per-item aggregation (swap, ensemble) -> summary.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from judgekit import gates
from judgekit._version import __version__
from judgekit.aggregate import Controls, ItemTable, combine, item_table
from judgekit.backends.base import Backend
from judgekit.bias import PairwiseLengthModel, PointwiseLengthModel, unswap
from judgekit.manifest import RunManifest, git_state, manifest_path, package_versions
from judgekit.prompts import PlannedRequest, batches, plan_requests
from judgekit.records import JudgmentWriter, items_path, read_items
from judgekit.rubric import Rubric, load_rubric
from judgekit.schema import (
    Item,
    ItemVerdict,
    JudgeIdentity,
    Judgment,
    LabelLogprobs,
    PairwiseItem,
    PointwiseItem,
)
from judgekit.scoring import score_labels
from judgekit.stats import mean_ci, proportion_ci
from judgekit.store import ResultStore, cache_key
from judgekit.summary import RunSummary

ProgressCallback = Callable[[int, int], None]
LengthModel = PairwiseLengthModel | PointwiseLengthModel


@dataclass
class JudgeRun:
    """Everything a run produced: per-request judgments, per-item verdicts and timings."""

    rubric: Rubric
    judge: JudgeIdentity
    controls: Controls
    items: list[Item]
    judgments: list[Judgment]
    seconds: float
    length_model: LengthModel | None = None
    backend_stats: dict[str, Any] | None = None
    table: ItemTable = field(init=False)
    item_probs: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.table = item_table(self.judgments, self.rubric.labels, [i.id for i in self.items])
        self.item_probs = combine(self.table, self.controls)

    @property
    def item_scores(self) -> np.ndarray:
        """Expected score per item (pointwise) or P(A preferred) (pairwise); NaN if invalid."""
        return self.item_probs @ np.asarray(self.rubric.values, dtype=float)

    @property
    def corrected_scores(self) -> np.ndarray | None:
        """Item scores with the frozen length effect removed (None without a length model).

        Lengths are answer lengths in characters; the model's coefficients were fitted on a
        calibration set's dev split and are never refitted here.
        """
        if self.length_model is None:
            return None
        if isinstance(self.length_model, PairwiseLengthModel):
            len_a = np.array([len(i.answer_a) for i in self.items if isinstance(i, PairwiseItem)])
            len_b = np.array([len(i.answer_b) for i in self.items if isinstance(i, PairwiseItem)])
            return self.length_model.correct(self.item_scores, len_a, len_b)
        n_chars = np.array([len(i.answer) for i in self.items if isinstance(i, PointwiseItem)])
        return self.length_model.correct(self.item_scores, n_chars)

    @property
    def final_scores(self) -> np.ndarray:
        """What summaries and gates use: length-corrected when a length model is given."""
        corrected = self.corrected_scores
        return self.item_scores if corrected is None else corrected

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
        if (corrected := self.corrected_scores) is not None:
            frame["score_length_corrected"] = corrected
        valid = ~np.isnan(self.item_probs).any(axis=1)
        labels = np.asarray(self.rubric.labels, dtype=object)
        frame["label"] = np.where(
            valid, labels[np.nan_to_num(self.item_probs, nan=-1).argmax(axis=1)], None
        )
        return frame

    def assert_mean_at_least(self, minimum: float) -> None:
        """CI gate: raise GateFailure (with the worst items) if the mean score is lower."""
        gates.enforce(self, [gates.mean_gate(self, minimum)])

    def assert_win_rate_at_least(self, minimum: float, label: str = "A") -> None:
        """CI gate for pairwise runs: share of items whose verdict is ``label``."""
        gates.enforce(self, [gates.win_rate_gate(self, minimum, label)])

    def assert_invalid_rate_at_most(self, maximum: float) -> None:
        """CI gate: too many items without a valid verdict means the judge is not reading."""
        gates.enforce(self, [gates.invalid_rate_gate(self, maximum)])

    def manifest(
        self, started: datetime, finished: datetime, source: str | None, output: str | None
    ) -> RunManifest:
        """What this run was, for reproducing or auditing it."""
        return RunManifest(
            judgekit_version=__version__,
            rubric=self.rubric.ref,
            rubric_hash=self.rubric.hash,
            judge=self.judge,
            controls=self.controls,
            controls_applied=self.controls_applied(),
            variants=sorted({j.variant for j in self.judgments}),
            packages=package_versions(),
            git=git_state(),
            seed=_int_or_none(self.judge.settings.get("seed")),
            started=started,
            finished=finished,
            n_items=len(self.items),
            n_judgments=len(self.judgments),
            n_invalid_judgments=sum(not j.valid for j in self.judgments),
            n_from_store=sum(j.from_store for j in self.judgments),
            input=source,
            output=output,
        )

    def controls_applied(self) -> dict[str, str]:
        """Which bias controls shaped the item verdicts (swap only applies to pairs)."""
        swapped = self.rubric.manifest.mode == "pairwise" and self.controls.swap
        n_variants = len({j.variant for j in self.judgments})
        return {
            "position_swap": self.controls.swap_method if swapped else "off",
            "ensemble": f"{self.controls.ensemble} of {n_variants}" if n_variants > 1 else "off",
            "length": "frozen (from calibration)" if self.length_model is not None else "off",
        }

    def item_verdicts(self) -> list[ItemVerdict]:
        """One row per item, with per-order preferences and the controls that shaped it."""
        frame = self.items_frame()
        counts = (
            pd.DataFrame(
                [(j.item_id, j.valid) for j in self.judgments], columns=["item_id", "valid"]
            )
            .groupby("item_id")["valid"]
            .agg(["size", "sum"])
        )
        p_ab = p_ba = None
        if {"AB", "BA"} <= self.table.probs.keys():
            col = self.rubric.labels.index("A")
            p_ab = _row_mean(self.table.probs["AB"][:, :, col])
            ba = unswap(
                self.table.probs["BA"].reshape(-1, len(self.rubric.labels)), self.rubric.labels
            )
            p_ba = _row_mean(ba.reshape(self.table.probs["BA"].shape)[:, :, col])
        controls = self.controls_applied()
        verdicts = []
        for i, row in enumerate(frame.itertuples(index=False)):
            item_id = str(row.item_id)
            probs = (
                None
                if np.isnan(self.item_probs[i]).any()
                else dict(zip(self.rubric.labels, map(float, self.item_probs[i]), strict=True))
            )
            a = None if p_ab is None or np.isnan(p_ab[i]) else float(p_ab[i])
            b = None if p_ba is None or np.isnan(p_ba[i]) else float(p_ba[i])
            corrected = getattr(row, "score_length_corrected", math.nan)
            verdicts.append(
                ItemVerdict(
                    item_id=item_id,
                    rubric=self.rubric.name,
                    rubric_version=self.rubric.version,
                    rubric_hash=self.rubric.hash,
                    judge_model=self.judge.model,
                    label_probs=probs,
                    score=None if math.isnan(row.score) else float(row.score),
                    score_length_corrected=None if math.isnan(corrected) else float(corrected),
                    label=row.label,
                    valid=probs is not None,
                    n_judgments=int(counts.loc[item_id, "size"]),
                    n_valid_judgments=int(counts.loc[item_id, "sum"]),
                    p_a_ab=a,
                    p_a_ba=b,
                    flip=None if a is None or b is None else (a > 0.5) != (b > 0.5),
                    controls=controls,
                )
            )
        return verdicts

    def summary(self) -> RunSummary:
        """Headline numbers: score with CI or win rates, invalid counts, cache hits, speed."""
        scores = self.final_scores
        valid = ~np.isnan(scores)
        fresh = [j for j in self.judgments if not j.from_store]
        prompt_tokens = sum(j.num_prompt_tokens for j in fresh)
        cached_tokens = sum(j.num_cached_tokens for j in fresh)
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
            n_from_store=len(self.judgments) - len(fresh),
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
            backend_stats=self.backend_stats,
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
    store: ResultStore | None = None,
    length_model: LengthModel | None = None,
) -> JudgeRun:
    """Judge items (or an input file) with a rubric on a backend.

    Judgments are written to ``output`` batch by batch as they finish, with a run manifest beside
    it. ``min_mass`` overrides the rubric's label-mass threshold below which a verdict is invalid.
    With a ``store``, prompts judged before (by any run with the same judge) are not judged again,
    and each finished batch is committed there, so a killed run resumes where it stopped.
    A ``length_model`` (fitted on a calibration dev split, frozen) adds length-corrected scores;
    per-item verdicts go to ``<output>.items.jsonl``.
    """
    rubric = rubric if isinstance(rubric, Rubric) else load_rubric(rubric, paths=rubric_paths)
    controls = controls or Controls()
    source = str(items) if isinstance(items, str | Path) else None
    if isinstance(items, str | Path):
        items = read_items(items, rubric.manifest.mode, columns)
    items = list(items)
    threshold = rubric.manifest.min_label_mass if min_mass is None else min_mass
    planned = plan_requests(rubric, items, variants=variants, swap=controls.swap)
    identity = backend.identity
    started = datetime.now(timezone.utc)
    judgments: list[Judgment] = []
    writer = JudgmentWriter(output) if output is not None else None
    start = time.perf_counter()
    try:
        for batch in batches(planned, batch_size):
            results, stored = _score(backend, store, rubric, identity, batch)
            new = [
                _judgment(rubric, identity, p, r, threshold, from_store=k)
                for p, r, k in zip(batch, results, stored, strict=True)
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
    stats = getattr(backend, "stats", None)
    run = JudgeRun(
        rubric,
        identity,
        controls,
        items,
        judgments,
        seconds,
        length_model,
        stats.as_dict() if stats is not None else None,
    )
    if output is not None:
        with JudgmentWriter(items_path(output)) as items_writer:
            items_writer.write(run.item_verdicts())
        manifest = run.manifest(started, datetime.now(timezone.utc), source, str(output))
        manifest_path(output).write_text(manifest.model_dump_json(indent=2) + "\n")
    return run


def _score(
    backend: Backend,
    store: ResultStore | None,
    rubric: Rubric,
    identity: JudgeIdentity,
    batch: Sequence[PlannedRequest],
) -> tuple[list[LabelLogprobs], list[bool]]:
    """Results for a batch: stored ones where present, the rest from the backend (then stored)."""
    if store is None:
        return backend.score([p.request for p in batch]), [False] * len(batch)
    keys = [cache_key(p.request, rubric.hash, identity) for p in batch]
    found = store.get_many(keys)
    missing = [i for i, key in enumerate(keys) if key not in found]
    fresh = backend.score([batch[i].request for i in missing]) if missing else []
    store.put_many((keys[i], result) for i, result in zip(missing, fresh, strict=True))
    results = dict(zip(missing, fresh, strict=True))
    return (
        [found[key] if key in found else results[i] for i, key in enumerate(keys)],
        [key in found for key in keys],
    )


def _judgment(
    rubric: Rubric,
    identity: JudgeIdentity,
    planned: PlannedRequest,
    result: LabelLogprobs,
    threshold: float,
    *,
    from_store: bool,
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
        from_store=from_store,
    )


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _row_mean(x: np.ndarray) -> np.ndarray:
    """Mean over valid (non-NaN) entries of each row; NaN for a row with none (no warning)."""
    valid = ~np.isnan(x)
    counts = valid.sum(axis=1)
    sums = np.where(valid, x, 0.0).sum(axis=1)
    return np.divide(sums, counts, out=np.full(len(x), np.nan), where=counts > 0)
