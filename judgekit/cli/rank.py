"""``judgekit rank``: rank many models: judge their answers' battles (``--input``, any judge) or
read verdicts already made (``--judgments``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from judgekit.backends import JudgeSpec
from judgekit.cli.app import app, pairs_option
from judgekit.cli.judge_options import judge_options
from judgekit.cli.quiet import quiet
from judgekit.cli.ray_options import RayActors, RayAddress, RayGpus, ray_executor
from judgekit.config import choose_card
from judgekit.data.records import InputError
from judgekit.judging.store import ResultStore
from judgekit.rank import (
    STYLE_FEATURES,
    JudgeStatus,
    RankOptions,
    rank_pairwise,
    rank_pointwise,
    read_battles,
    read_scores,
    to_table,
    write_reports,
)
from judgekit.rank.bradley_terry import TieModel
from judgekit.rank.judged import rank_answers
from judgekit.rank.leaderboard import Scale
from judgekit.rank.read import Preset, read_answers
from judgekit.rank.strengths import Unit


def _labels(pairs: list[str] | None) -> dict[str, float]:
    out = {}
    for label, value in pairs_option(pairs).items():
        try:
            out[label] = float(value)
        except ValueError as err:
            raise typer.BadParameter(f"{label}={value}: P(A) must be a number") from err
    return out


def _difficulty(path: Path | None) -> dict[str, float] | None:
    if path is None:
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {str(k): float(v) for k, v in raw.items()}
    except (OSError, ValueError, AttributeError) as err:
        raise InputError(f"{path}: expected a JSON object question -> difficulty: {err}") from err


@app.command()
@judge_options
def rank(
    judge_spec: JudgeSpec,
    input: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            help="Answers to judge: question_id, question, model, answer rows (a file, or a "
            "folder of per-model files); needs --rubric.",
        ),
    ] = None,
    rubric: Annotated[
        str | None, typer.Option(help="Pairwise rubric NAME or NAME@vN (with --input).")
    ] = None,
    judgments: Annotated[
        list[str] | None,
        typer.Option(
            help="Verdicts already made: file, folder or quoted glob (repeatable): JSONL, JSON, "
            "CSV, Parquet."
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="--input: the judge run's battles.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --output.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue an existing --output.")] = False,
    store: Annotated[Path | None, typer.Option(help="Result store (sqlite).")] = None,
    card: Annotated[
        Path | None, typer.Option(help="The judge's calibration card (applied and shown).")
    ] = None,
    pairs_per_question: Annotated[
        int | None,
        typer.Option(help="Without --baseline: judge this many sampled pairs per question."),
    ] = None,
    adaptive: Annotated[
        int | None,
        typer.Option(
            help="Judge at most this many battles, chosen where adjacent models are least "
            "surely ordered; stop once the order holds at --level."
        ),
    ] = None,
    fmt: Annotated[
        Preset, typer.Option("--format", help="Column names of a published format.")
    ] = "battles",
    field: Annotated[
        list[str] | None,
        typer.Option(
            help="FIELD=COLUMN: question, model_a, model_b, verdict, weight, category, "
            "answer_a, answer_b, flip (pointwise: question, model, score; --input: "
            "question_id, question, model, answer, category)."
        ),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option(help="VALUE=P: what a verdict label means as P(A), e.g. 'A>>B=1'."),
    ] = None,
    skip_self: Annotated[
        bool, typer.Option(help="Drop rows of a model against itself instead of failing.")
    ] = False,
    pointwise: Annotated[
        bool, typer.Option(help="Rank mean pointwise scores instead of pairwise battles.")
    ] = False,
    baseline: Annotated[
        str | None, typer.Option(help="Anchor model; adds win rates against it.")
    ] = None,
    scale: Annotated[Scale, typer.Option(help="Score scale.")] = "elo",
    ties: Annotated[TieModel, typer.Option(help="Tie model.")] = "half",
    style: Annotated[
        list[str] | None,
        typer.Option(help=f"Control for these style features (repeatable): {STYLE_FEATURES}."),
    ] = None,
    lc: Annotated[
        bool, typer.Option("--lc", help="AlpacaEval's length-controlled win rate (baseline).")
    ] = False,
    difficulty: Annotated[
        Path | None, typer.Option(help="--lc: JSON object question -> instruction difficulty.")
    ] = None,
    by: Annotated[
        str | None, typer.Option(help="'category': one more leaderboard per category.")
    ] = None,
    prior: Annotated[
        float, typer.Option(help="Ridge on centred strengths (keeps unbeaten models finite).")
    ] = 0.0,
    level: Annotated[float, typer.Option(help="Interval level.")] = 0.95,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 1000,
    resample: Annotated[
        Unit, typer.Option(help="Bootstrap unit: questions (clusters) or battles.")
    ] = "question",
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    judged_by: Annotated[
        str, typer.Option(help="--judgments: the judge that made the verdicts (shown on top).")
    ] = "unknown",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write JSON.")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write Markdown.")] = None,
    html: Annotated[Path | None, typer.Option(help="Write the HTML page.")] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show engine logs in the terminal.")
    ] = False,
    ray: RayAddress = None,
    ray_actors: RayActors = 1,
    ray_gpus_per_actor: RayGpus = 0,
) -> None:
    """Leaderboard with intervals that resample questions: judge the battles of --input's
    answers with --rubric on any judge (both orders, store, resume, a card's controls), or rank
    --judgments already made. Exit codes: 0 ranked; 2 bad input or options; 4 internal."""
    if (input is None) == (judgments is None):
        raise typer.BadParameter("give --input (to judge) or --judgments (already made)")
    if by not in (None, "category"):
        raise typer.BadParameter("only 'category' is supported", param_hint="--by")
    options = RankOptions(
        baseline=baseline,
        scale=scale,
        ties=ties,
        style=tuple(style or ()),
        length_control=lc,
        prior=prior,
        level=level,
        n_resamples=resamples,
        unit=resample,
        seed=seed,
        by_category=by == "category",
    )
    fields = pairs_option(field)
    if input is not None:
        if rubric is None:
            raise typer.BadParameter("--input needs --rubric (a pairwise rubric)")
        if ray is not None and adaptive is not None:
            raise typer.BadParameter("adaptive ranking runs locally", param_hint="--ray")
        if output is not None and output.exists() and not (overwrite or resume):
            raise typer.BadParameter(f"{output} exists: pass --overwrite or --resume")
        answers = read_answers(input, fields=fields)
        log = (output or Path("rank")).with_suffix(".log")
        with quiet(log, verbose=verbose, fresh=overwrite):
            ranked = rank_answers(
                answers,
                rubric,
                backend=judge_spec,
                options=options,
                pairs_per_question=pairs_per_question,
                card=card,
                output=output,
                if_exists="overwrite" if overwrite else ("resume" if resume else "error"),
                store=ResultStore(store) if store is not None else None,
                adaptive_budget=adaptive,
                thresholds=choose_card(None).thresholds,
                executor=ray_executor(ray, ray_actors, ray_gpus_per_actor),
            )
        boards = ranked.leaderboards
        if ranked.adaptive is not None:
            typer.echo(
                f"adaptive: {len(ranked.adaptive.battles.question)} battles judged "
                f"of {len(ranked.plan.items)} planned ({ranked.adaptive.stopped})"
            )
    else:
        boards = _from_judgments(
            judgments or [],
            fmt,
            fields,
            label,
            skip_self,
            pointwise,
            options,
            judged_by,
            difficulty,
        )
    for board in boards:
        typer.echo(to_table(board) + "\n")
    for path in write_reports(boards, json_path=json_out, markdown_path=markdown, html_path=html):
        typer.echo(f"wrote {path}")


def _from_judgments(
    judgments: list[str],
    fmt: Preset,
    fields: dict[str, str],
    label: list[str] | None,
    skip_self: bool,
    pointwise: bool,
    options: RankOptions,
    judged_by: str,
    difficulty: Path | None,
) -> list:  # type: ignore[type-arg]
    status = JudgeStatus(judge=judged_by, card="not checked (verdicts read from a file)")
    try:
        if pointwise:
            question, model, score, category = read_scores(judgments, fields=fields)
            return rank_pointwise(question, model, score, options, category=category, judge=status)
        battles = read_battles(
            judgments,
            preset=fmt,
            fields=fields,
            labels=_labels(label),
            style=options.style,
            skip_self=skip_self,
        )
        return rank_pairwise(battles, options, judge=status, difficulty=_difficulty(difficulty))
    except (ValueError, ValidationError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(str(error)) from error
