"""Calibrating a multi-criterion rubric: one run, one card per criterion, one table.

The judge runs once on the set's items (every criterion read from one shared prefix). Each
criterion is then measured against its own human column (SummEval's coherence, consistency,
fluency and relevance are four metrics of one set) with the one card computation
(``measure.card.calibrate``) on that criterion's verdicts (``judging.results.criterion_run``:
the same aggregation and decision rule as the run). The table has a row per criterion: kappa,
quadratic weighted kappa and the rank correlations, with their intervals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from judgekit.backends import Backend, JudgeSpec
from judgekit.calibrate.measure.card import CardSubject, calibrate
from judgekit.calibrate.measure.outputs import outputs_from_run
from judgekit.calibrate.report.write import write_report
from judgekit.calibrate.run import PreparedSet, judge_records, prepare_set
from judgekit.cards.model import (
    CalibrationCard,
    CalibrationOptions,
    CardControls,
    Interval,
)
from judgekit.cards.store import save_card
from judgekit.data.records import InputError
from judgekit.data.sets import CalibrationSet
from judgekit.judging.executor import ExecutorChoice
from judgekit.judging.results import JudgeRun, criterion_run
from judgekit.judging.store import ResultStore
from judgekit.judging.write import write_run
from judgekit.rubrics import Rubric
from judgekit.schema import StrictModel
from judgekit.view import write_view


class CriterionRow(StrictModel):
    """One criterion's agreement with its human column (``metric``) on the card's split."""

    criterion: str
    metric: str
    n: int
    invalid_rate: float
    kappa: Interval
    weighted_kappa_quadratic: Interval | None
    spearman: Interval | None
    kendall: Interval | None
    pearson: Interval | None
    trusted: bool
    card_key: str


class CriteriaTable(StrictModel):
    """The calibration of every criterion of one run: a row each."""

    rubric: str
    judge_model: str
    set_name: str
    split: str
    n_items_judged: int
    rows: list[CriterionRow]

    def markdown(self) -> str:
        def f(i: Interval | None) -> str:
            return "n/a" if i is None else f"{i.estimate:.3f} [{i.low:.3f}, {i.high:.3f}]"

        lines = [
            f"**{self.rubric}** x `{self.judge_model}` on {self.set_name} ({self.split}), one "
            f"run over {self.n_items_judged} items, a row per criterion (95% CIs):",
            "",
            "| criterion | human column | n | invalid | kappa | QWK | Spearman | Kendall |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r.criterion} | {r.metric} | {r.n} | {r.invalid_rate:.1%} | {f(r.kappa)} | "
            f"{f(r.weighted_kappa_quadratic)} | {f(r.spearman)} | {f(r.kendall)} |"
            for r in self.rows
        ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class CriteriaResult:
    table: CriteriaTable
    cards: dict[str, CalibrationCard]
    card_paths: dict[str, Path]
    run: JudgeRun
    paths: dict[str, Path]


def _prepared(
    dataset: str | Mapping[str, CalibrationSet],
    rubric: Rubric,
    options: CalibrationOptions,
    metrics: Mapping[str, str],
    data_dir: Path | str | None,
) -> dict[str, PreparedSet]:
    """Each criterion's set, split and labels: a registered set's metric, or a user file
    loaded once per criterion (``dataset`` maps criterion -> its CalibrationSet)."""
    out = {}
    for name, metric in metrics.items():
        if isinstance(dataset, str):
            per = options.model_copy(update={"metric": metric})
            out[name] = prepare_set(dataset, rubric, per, data_dir=data_dir)
        else:
            out[name] = prepare_set(dataset[name], rubric, options)
    ids = {name: [r.id for r in p.judged] for name, p in out.items()}
    if len({tuple(v) for v in ids.values()}) > 1:
        raise InputError("the criteria's human columns cover different items; use one set")
    return out


def run_criteria_calibration(
    dataset: str | Mapping[str, CalibrationSet],
    rubric: Rubric,
    *,
    backend: Backend | JudgeSpec,
    options: CalibrationOptions,
    metrics: Mapping[str, str] | None = None,
    data_dir: Path | str | None = None,
    cards_dir: Path | str,
    out_dir: Path | str,
    store: ResultStore | None = None,
    judge_name: str | None = None,
    executor: ExecutorChoice = "local",
) -> CriteriaResult:
    """Judge the set once with a multi-criterion rubric and calibrate every criterion.

    ``metrics``: criterion -> the set's metric (default: the criterion's own name).
    ``dataset``: a registered multi-metric set, or criterion -> a loaded set (user files).
    Frozen corrections are not fitted (they apply to single-criterion rubrics): the cards
    certify the run's own controls. Writes ``run.jsonl`` (the one run), ``view.html``,
    ``criteria.md`` / ``criteria.json`` (the table) and each criterion's report under
    ``criteria/NAME/``; each card goes to ``cards_dir``.
    """
    names = [c.name for c in rubric.criteria if c.name is not None]
    if not names or rubric.manifest.checklist:
        raise InputError(f"{rubric.ref} declares no criteria: calibrate it the usual way")
    metrics = {name: (metrics or {}).get(name, name) for name in names}
    options = options.model_copy(update={"fit_dev": False})
    prepared = _prepared(dataset, rubric, options, metrics, data_dir)
    first = prepared[names[0]]
    run = judge_records(
        first, rubric, backend, options, store=store, judge_name=judge_name, executor=executor
    )
    out = Path(out_dir)
    cards, paths, rows = {}, {}, []
    for name in names:
        sub, set_ = criterion_run(run, name), prepared[name]
        outputs = outputs_from_run(sub)
        set_name = set_.dataset.manifest.name
        card = calibrate(
            set_.records,
            outputs,
            subject=CardSubject(
                rubric_ref=f"{rubric.ref}:{name}",
                rubric_hash=rubric.hash,
                judge=run.judge,
                judge_name=judge_name,
                set_name=f"{set_name}:{metrics[name]}",
                set_sha256=set_.dataset.sha256,
                group_by=set_.dataset.manifest.split_group.describe(),
            ),
            options=options.model_copy(update={"metric": metrics[name]}),
            rng=np.random.default_rng(options.seed),
            applies=CardControls(
                controls=run.controls,
                variants=sorted({j.variant for j in sub.judgments}),
                reasons=[f"criterion {name} of {rubric.ref}, from one multi-criterion run"],
            ),
            label_type=set_.dataset.manifest.label_type,
            notes=set_.notes,
        )
        cards[name], paths[name] = card, save_card(card, cards_dir)
        write_report(card, out / "criteria" / name, records=set_.records, outputs=outputs)
        rows.append(_row(name, metrics[name], card))
    table = CriteriaTable(
        rubric=rubric.ref,
        judge_model=run.judge.model,
        set_name=first.dataset.manifest.name,
        split=options.split,
        n_items_judged=run.n_items,
        rows=rows,
    )
    return CriteriaResult(table, cards, paths, run, _write(table, run, first, out))


def _row(name: str, metric: str, card: CalibrationCard) -> CriterionRow:
    ordinal = card.ordinal
    return CriterionRow(
        criterion=name,
        metric=metric,
        n=card.n,
        invalid_rate=card.invalid_rate,
        kappa=card.kappa,
        weighted_kappa_quadratic=ordinal.weighted_kappa_quadratic if ordinal else None,
        spearman=ordinal.spearman if ordinal else None,
        kendall=ordinal.kendall if ordinal else None,
        pearson=ordinal.pearson if ordinal else None,
        trusted=card.verdict.trusted,
        card_key=card.key,
    )


def _write(table: CriteriaTable, run: JudgeRun, first: PreparedSet, out: Path) -> dict[str, Path]:
    """The one run with its viewer, and the table as Markdown and JSON."""
    out.mkdir(parents=True, exist_ok=True)
    write_run(run, out / "run.jsonl")
    paths = {
        "run": out / "run.jsonl",
        "viewer": write_view(
            [out / "run.jsonl"],
            out / "view.html",
            items=[r.item for r in first.dataset.records],
            rubric=run.rubric,
        ),
        "markdown": out / "criteria.md",
        "json": out / "criteria.json",
    }
    paths["markdown"].write_text(table.markdown(), encoding="utf-8")
    paths["json"].write_text(table.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return paths
