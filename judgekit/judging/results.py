"""A finished judge run: what it produced, frozen, with its per-item verdicts computed once.

Summaries, gates, frames and the run manifest are functions over it (``judging.summary``,
``ci.gates``, ``judging.views``, ``judging.run_manifest``); ``judging.read.read_run`` reads one
back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from judgekit.bias.length import answer_lengths
from judgekit.cards.store import CardRef
from judgekit.judging.aggregate import Corrections, Verdicts, aggregate
from judgekit.rubrics import Rubric
from judgekit.schema import (
    Controls,
    InputRef,
    Item,
    JudgeIdentity,
    Judgment,
    Scalar,
    item_group,
)


@dataclass(frozen=True)
class JudgeRun:
    """Everything a run produced: per-request judgments and per-item verdicts.

    ``items`` is the content judged (None for a run read back without its input file), read
    from ``source`` (None: items passed in memory); ``corrections`` and ``card`` say which
    calibration card shaped the verdicts, if any. ``meta``: each item's meta columns, aligned
    with ``verdicts.item_ids`` (known with or without the content).
    """

    rubric: Rubric
    judge: JudgeIdentity
    controls: Controls
    judgments: tuple[Judgment, ...]
    verdicts: Verdicts
    items: tuple[Item, ...] | None = None
    corrections: Corrections = field(default_factory=Corrections)
    card: CardRef | None = None
    seconds: float = 0.0
    backend_stats: dict[str, Any] | None = None
    judge_name: str | None = None
    source: InputRef | None = None
    meta: tuple[dict[str, Scalar], ...] = ()

    @property
    def mode(self) -> str:
        return self.rubric.manifest.mode

    @property
    def n_items(self) -> int:
        return len(self.verdicts)


def build_run(
    rubric: Rubric,
    judge: JudgeIdentity,
    controls: Controls,
    items: Sequence[Item],
    judgments: Sequence[Judgment],
    *,
    corrections: Corrections | None = None,
    **fields: Any,
) -> JudgeRun:
    """A run from its items and judgments: the verdicts are aggregated here, once."""
    corrections = corrections or Corrections()
    verdicts = aggregate(
        judgments,
        rubric,
        [item.id for item in items],
        controls,
        groups=[item_group(item) for item in items],
        lengths=answer_lengths(items),
        corrections=corrections,
    )
    return JudgeRun(
        rubric,
        judge,
        controls,
        tuple(judgments),
        verdicts,
        items=tuple(items),
        corrections=corrections,
        meta=tuple(item.meta for item in items),
        **fields,
    )


def criterion_run(run: JudgeRun, name: str) -> JudgeRun:
    """One declared criterion of a multi-criterion run as a run of its own (its judgments,
    aggregated by the same rule with the criterion's labels): what calibrating that criterion
    measures. Needs the run's items (ValueError without)."""
    if run.items is None:
        raise ValueError("a criterion's run needs the run's items (read_run(..., content=True))")
    judgments = [
        j.model_copy(update={"criterion": None}) for j in run.judgments if j.criterion == name
    ]
    return build_run(
        run.rubric.for_criterion(name),
        run.judge,
        run.controls,
        run.items,
        judgments,
        corrections=run.corrections,
        card=run.card,
        seconds=run.seconds,
        judge_name=run.judge_name,
        source=run.source,
    )
