"""``judgekit rank``: rank many models from verdicts already made (``--judgments``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from judgekit.cli.app import app, pairs_option
from judgekit.data.records import InputError
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
from judgekit.rank.leaderboard import Scale
from judgekit.rank.read import Preset
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
def rank(
    judgments: Annotated[
        list[str],
        typer.Option(
            help="Judgment file, folder or quoted glob (repeatable): JSONL, JSON, CSV, Parquet."
        ),
    ],
    fmt: Annotated[
        Preset, typer.Option("--format", help="Column names of a published format.")
    ] = "battles",
    field: Annotated[
        list[str] | None,
        typer.Option(
            help="FIELD=COLUMN: question, model_a, model_b, verdict, weight, "
            "category, answer_a, answer_b, flip (pointwise: question, model, score)."
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
    judge: Annotated[
        str, typer.Option(help="Name of the judge that made the verdicts (shown on top).")
    ] = "unknown",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write JSON.")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write Markdown.")] = None,
    html: Annotated[Path | None, typer.Option(help="Write the HTML page.")] = None,
) -> None:
    """Leaderboard with intervals that resample questions, from existing verdicts."""
    if by not in (None, "category"):
        raise typer.BadParameter("only 'category' is supported", param_hint="--by")
    status = JudgeStatus(judge=judge, card="not checked (verdicts read from a file)")
    try:
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
        if pointwise:
            question, model, score, category = read_scores(judgments, fields=fields)
            boards = rank_pointwise(
                question, model, score, options, category=category, judge=status
            )
        else:
            battles = read_battles(
                judgments,
                preset=fmt,
                fields=fields,
                labels=_labels(label),
                style=options.style,
                skip_self=skip_self,
            )
            boards = rank_pairwise(
                battles, options, judge=status, difficulty=_difficulty(difficulty)
            )
    except (InputError, ValueError, ValidationError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    for board in boards:
        typer.echo(to_table(board) + "\n")
    for path in write_reports(boards, json_path=json_out, markdown_path=markdown, html_path=html):
        typer.echo(f"wrote {path}")
