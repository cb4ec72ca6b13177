"""Small -> big judge cascades: each judge decides what it is confident about, the rest escalates.

Every item goes to the first judge; the items it abstains on go to the next; the last judge
decides the rest, or abstains too, which marks the item as needing a human. A stage with a card
judges exactly as a run with that card does (its controls, frozen corrections and decision rule:
``judge(..., card=...)``); whether it keeps an item is its policy (e.g.
``calibrate.measure.cascade.card_policy``: a threshold certified on the dev items that reach the
stage); a stage without a policy keeps every valid verdict. Judges are any backends or judge
specs, a replay of precomputed verdicts included; a spec's engine is started for its stage and
closed before the next stage starts, so two engines never hold one GPU at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import Field

from judgekit.backends import Backend, JudgeSpec
from judgekit.cards.store import NamedCard
from judgekit.data.records import OutputExistsError
from judgekit.judging.decide import decide
from judgekit.judging.results import JudgeRun
from judgekit.judging.run import judge
from judgekit.judging.store import ResultStore
from judgekit.rubrics import Rubric, load_rubric
from judgekit.schema import Item, StrictModel


@dataclass(frozen=True)
class StageDecision:
    """Per item of a stage's run: confidence (NaN = invalid), kept or not, and the rule.

    ``probs``: the distributions the stage decides with when they are not the run's own (a
    card's learned ensemble, whose confidences its thresholds are certified on); labels are read
    from them with the run's decision rule.
    """

    confidence: np.ndarray
    keep: np.ndarray
    rule: str
    probs: np.ndarray | None = None


StagePolicy = Callable[[JudgeRun], StageDecision]


@dataclass(frozen=True)
class Stage:
    """One judge of a cascade: a started backend (the caller's to close) or a spec (started for
    this stage only and closed before the next), and the card whose controls it judges with
    (None: the defaults, both answer orders)."""

    name: str
    judge: Backend | JudgeSpec
    card: NamedCard | None = None
    policy: StagePolicy | None = None


class CascadeItem(StrictModel):
    """One item's outcome: the deciding judge (None: needs a human) and its verdict."""

    item_id: str
    decided_by: str | None
    stage: int | None
    label: str | None
    label_probs: dict[str, float] | None
    confidence: float | None
    judges_seen: list[str]


class StageReport(StrictModel):
    """What one stage saw, decided and cost."""

    name: str
    judge_model: str
    rule: str
    n_items: int
    n_decided: int
    coverage_of_all: float
    prompt_tokens: int = Field(description="Prompt tokens of every prompt the stage needed.")
    n_from_store: int = Field(description="Judgments served by the result store (no cost now).")
    seconds: float


class CascadeResult(StrictModel):
    items: list[CascadeItem]
    stages: list[StageReport]
    n_needs_human: int

    def format(self) -> str:
        """The per-stage cost table for the terminal."""
        lines = [f"{'stage':<22} {'items':>6} {'decided':>8} {'of all':>7} {'tokens':>9} {'s':>8}"]
        for s in self.stages:
            lines.append(
                f"{s.name:<22} {s.n_items:>6} {s.n_decided:>8} {s.coverage_of_all:>7.1%} "
                f"{s.prompt_tokens:>9} {s.seconds:>8.1f}"
            )
        lines.append(f"needs a human: {self.n_needs_human} of {len(self.items)}")
        return "\n".join(lines)


def plain_decision(run: JudgeRun) -> StageDecision:
    """No policy: the run's own verdicts; every valid one is kept."""
    v = run.verdicts
    top = np.where(v.valid, np.nan_to_num(v.probs, nan=-1.0).max(axis=1), np.nan)
    return StageDecision(top, v.valid, "every valid verdict (no policy)")


def cascade(
    items: Sequence[Item],
    rubric: str | Rubric,
    stages: Sequence[Stage],
    *,
    store: ResultStore | None = None,
    output: Path | str | None = None,
    overwrite: bool = False,
) -> CascadeResult:
    """Run the stages in order on the items each previous stage did not keep.

    ``output`` (JSONL) gets one row per item with its deciding judge; ``<output>.stages.json``
    the per-stage table; an existing output is refused unless ``overwrite``. Prompt tokens count
    every prompt the stage needed (what it costs without a store; ``n_from_store`` says how many
    a ``store`` served), seconds are this run's.
    """
    rubric = load_rubric(rubric)
    if not stages:
        raise ValueError("a cascade needs at least one stage")
    if output is not None and Path(output).exists() and not overwrite:
        raise OutputExistsError(f"{output} exists: pass --overwrite to replace it")
    remaining = list(items)
    outcome: dict[str, CascadeItem] = {}
    seen: dict[str, list[str]] = {item.id: [] for item in items}
    reports = []
    for index, stage in enumerate(stages):
        if not remaining:
            reports.append(_report(stage, None, 0, 0, len(items), "no items left"))
            continue
        # a spec's engine is started and closed inside judge(): one engine at a time
        run = judge(remaining, rubric, backend=stage.judge, card=stage.card, store=store)
        decision = (stage.policy or plain_decision)(run)
        probs = run.verdicts.probs if decision.probs is None else decision.probs
        kept = decision.keep & np.isfinite(probs).all(axis=1)
        for i, item in enumerate(remaining):
            seen[item.id].append(stage.name)
            if kept[i]:
                outcome[item.id] = _row(item.id, stage.name, index, run, decision, i, seen)
        reports.append(
            _report(stage, run, len(remaining), int(kept.sum()), len(items), decision.rule)
        )
        remaining = [item for i, item in enumerate(remaining) if not kept[i]]
    for item in remaining:
        outcome[item.id] = CascadeItem(
            item_id=item.id,
            decided_by=None,
            stage=None,
            label=None,
            label_probs=None,
            confidence=None,
            judges_seen=seen[item.id],
        )
    result = CascadeResult(
        items=[outcome[item.id] for item in items],
        stages=reports,
        n_needs_human=len(remaining),
    )
    if output is not None:
        _write(result, Path(output))
    return result


def _row(
    item_id: str,
    stage: str,
    index: int,
    run: JudgeRun,
    decision: StageDecision,
    i: int,
    seen: dict[str, list[str]],
) -> CascadeItem:
    rubric = run.rubric
    if decision.probs is None:
        probs, label = run.verdicts.probs[i], run.verdicts.labels[i]
    else:
        probs = decision.probs[i]
        label = decide(
            probs[None, :], rubric.labels, rubric.values, rubric.manifest.mode, run.controls
        ).labels[0]
    return CascadeItem(
        item_id=item_id,
        decided_by=stage,
        stage=index,
        label=label,
        label_probs=dict(zip(rubric.labels, map(float, probs), strict=True)),
        confidence=float(decision.confidence[i]),
        judges_seen=list(seen[item_id]),
    )


def _report(
    stage: Stage, run: JudgeRun | None, n: int, decided: int, total: int, rule: str
) -> StageReport:
    judgments = run.judgments if run is not None else ()
    return StageReport(
        name=stage.name,
        judge_model=run.judge.model if run is not None else "",
        rule=rule,
        n_items=n,
        n_decided=decided,
        coverage_of_all=decided / total if total else 0.0,
        prompt_tokens=sum(j.num_prompt_tokens for j in judgments),
        n_from_store=sum(j.from_store for j in judgments),
        seconds=run.seconds if run is not None else 0.0,
    )


def _write(result: CascadeResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in result.items:
            f.write(row.model_dump_json() + "\n")
    stages = {
        "stages": [s.model_dump() for s in result.stages],
        "n_needs_human": result.n_needs_human,
    }
    path.with_name(path.stem + ".stages.json").write_text(json.dumps(stages, indent=2) + "\n")
