"""Rank models by judging their battles: answers -> planned pairwise items -> the judge (both
orders, the store, resume, a card's controls: ``judging.judge``) -> battles -> leaderboards.

The judging is ``judging``'s, unchanged: a battle is a pairwise item, and its verdict is the
item's verdict under the one decision rule (a tie is a tie, an invalid verdict an invalid battle,
never a guess). ``adaptive`` judges battles round by round (``rank.adaptive``), each round one
run through the same machinery, so the result store makes every battle cost once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from judgekit.backends import Backend, JudgeSpec, open_backend
from judgekit.cards import NamedCard, TrustThresholds, card_verdict, read_card
from judgekit.judging.executor import ExecutorChoice
from judgekit.judging.results import JudgeRun
from judgekit.judging.run import IfExists, judge
from judgekit.judging.store import ResultStore
from judgekit.judging.views import item_verdicts
from judgekit.rank.adaptive import AdaptiveRun, adaptive_rank
from judgekit.rank.leaderboard import JudgeStatus, Leaderboard
from judgekit.rank.pipeline import RankOptions, rank_pairwise
from judgekit.rank.plan import Answer, BattlePlan, battles_from_verdicts, plan_battles
from judgekit.rubrics import Rubric, load_rubric
from judgekit.schema import PairwiseItem

__all__ = ["RankedRun", "judge_status", "rank_answers"]


@dataclass(frozen=True)
class RankedRun:
    """The leaderboards (overall first, then per category), the judge run behind them, and the
    adaptive rounds when battles were chosen adaptively."""

    leaderboards: list[Leaderboard]
    run: JudgeRun
    plan: BattlePlan
    adaptive: AdaptiveRun | None = None


def judge_status(run: JudgeRun, name: str | None = None) -> JudgeStatus:
    """Who judged, and what its calibration card says (shown on top of every leaderboard)."""
    judge_name = name or run.judge_name or run.judge.model
    if run.card is None:
        return JudgeStatus(
            judge=judge_name, card="none: the ranking is not certified (judgekit calibrate)"
        )
    return JudgeStatus(judge=judge_name, card=f"card {run.card.key[:12]} ({run.card.path})")


def _status(run: JudgeRun, card_trusted: bool | None) -> JudgeStatus:
    status = judge_status(run)
    if card_trusted is None:
        return status
    verdict = "TRUSTED" if card_trusted else "NOT TRUSTED"
    return status.model_copy(update={"card": f"{status.card}: {verdict}"})


def rank_answers(
    answers: Sequence[Answer],
    rubric: str | Rubric,
    *,
    backend: Backend | JudgeSpec,
    options: RankOptions | None = None,
    pairs_per_question: int | None = None,
    card: NamedCard | Path | str | None = None,
    output: Path | str | None = None,
    if_exists: IfExists = "error",
    store: ResultStore | None = None,
    adaptive_budget: int | None = None,
    thresholds: TrustThresholds | None = None,
    executor: ExecutorChoice = "local",
) -> RankedRun:
    """Plan the battles (every model against ``options.baseline``, else all or
    ``pairs_per_question`` sampled pairs per question), judge them and rank.

    ``output``: the judge run's files (battles are its items: ``<question>::<a>::<b>``).
    ``adaptive_budget``: judge at most this many battles, chosen where adjacent models are
    least surely ordered, stopping once the ranking is stable at ``options.level``. ``card``:
    the judge's calibration card, applied to the battles and its trust (under
    ``thresholds``) shown on the leaderboard. ``executor``: where the battles are judged
    (``judging.judge``'s; ``"ray"``: on Ray actors); adaptive ranking judges a few battles at a
    time and runs locally.
    """
    options = options or RankOptions()
    rubric = load_rubric(rubric)
    if rubric.manifest.mode != "pairwise":
        raise ValueError(f"ranking judges battles: {rubric.ref} is not a pairwise rubric")
    named = read_card(card) if isinstance(card, str | Path) else card
    trusted = None if named is None else card_verdict(named.card, thresholds).trusted
    plan = plan_battles(
        answers,
        baseline=options.baseline,
        pairs_per_question=pairs_per_question,
        rng=np.random.default_rng(options.seed),
    )
    if adaptive_budget is not None and executor != "local":
        raise ValueError("adaptive ranking judges a few battles at a time: run it locally")
    owned = not isinstance(backend, Backend)
    engine = open_backend(backend) if owned else backend
    try:
        if adaptive_budget is not None:
            result = _adaptive(plan, rubric, engine, options, named, store, adaptive_budget)
            board = result.leaderboard.model_copy(update={"judge": _status(result.run, trusted)})
            return RankedRun([board], result.run, plan, result.adaptive)
        run = judge(
            plan.items,
            rubric,
            backend=engine,
            card=named,
            output=output,
            if_exists=if_exists,
            store=store,
            executor=executor,
        )
    finally:
        if owned:
            engine.close()
    battles = battles_from_verdicts(
        plan, {v.item_id: v for v in item_verdicts(run)}, style=options.style
    )
    return RankedRun(rank_pairwise(battles, options, judge=_status(run, trusted)), run, plan)


@dataclass(frozen=True)
class _Adaptive:
    leaderboard: Leaderboard
    run: JudgeRun
    adaptive: AdaptiveRun


def _adaptive(
    plan: BattlePlan,
    rubric: Rubric,
    backend: Backend,
    options: RankOptions,
    card: NamedCard | None,
    store: ResultStore | None,
    budget: int,
) -> _Adaptive:
    """Battles chosen round by round; each round's proposals are judged in one run."""
    by_battle = {(b.question_id, b.model_a, b.model_b): b for b in plan.battles}
    items = {item.id: item for item in plan.items}
    runs: list[JudgeRun] = []

    def outcomes(proposals: list[tuple[str, str, str]]) -> list[float | None]:
        chosen: list[PairwiseItem] = []
        flipped: list[bool] = []
        for q, a, b in proposals:
            planned = by_battle.get((q, a, b)) or by_battle[(q, b, a)]
            chosen.append(items[planned.item_id])
            flipped.append(planned.model_a != a)
        run = judge(chosen, rubric, backend=backend, card=card, store=store)
        runs.append(run)
        values = []
        for verdict, flip in zip(item_verdicts(run), flipped, strict=True):
            p = _preference(verdict.label)
            values.append(None if p is None else (1 - p if flip else p))
        return values

    questions = sorted({b.question_id for b in plan.battles})
    models = sorted({m for b in plan.battles for m in (b.model_a, b.model_b)})
    result = adaptive_rank(
        models,
        questions,
        outcomes=outcomes,
        budget=budget,
        rng=np.random.default_rng(options.seed),
        confidence=options.level,
        prior=options.prior or 0.1,
    )
    return _Adaptive(result.leaderboard, runs[-1], result)


def _preference(label: str | None) -> float | None:
    return {"A": 1.0, "B": 0.0, "tie": 0.5}.get(label) if label is not None else None
