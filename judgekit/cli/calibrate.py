"""``judgekit calibrate``: a card and report for a rubric + judge on a human-labelled set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from judgekit.audit.canaries import builtin_suite, load_suite, run_canaries, write_canary_report
from judgekit.backends import create_backend
from judgekit.calibrate.annotators import ConsensusMethod
from judgekit.calibrate.cards import default_cards_dir
from judgekit.calibrate.measure import SplitName, TrustThresholds
from judgekit.calibrate.run import run_calibration
from judgekit.cli.app import RubricsDir, app, columns_option
from judgekit.cli.quiet import quiet
from judgekit.data.records import InputError
from judgekit.data.sets import CalibrationSet, DatasetError
from judgekit.data.user_sets import is_user_set, load_user_set
from judgekit.rubrics import (
    RubricError,
    load_rubric,
)


@app.command()
def calibrate(
    rubric: Annotated[str, typer.Option(help="Rubric NAME or NAME@vN.")],
    set_name: Annotated[
        str,
        typer.Option(
            "--set", help="Registered set name, or your own labelled file (.jsonl/.csv/.parquet)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Folder for card.json, report.md, report.html.")],
    judgments: Annotated[
        Path | None,
        typer.Option(help="Precomputed verdicts of any judge (JSON list or JSONL) instead."),
    ] = None,
    id_field: Annotated[str, typer.Option(help="Id field in --judgments.")] = "id",
    verdict_field: Annotated[str, typer.Option(help="Verdict field in --judgments.")] = "verdict",
    label_map: Annotated[
        list[str] | None,
        typer.Option(help="Map VERDICT=LABEL (default: the set's own label mapping)."),
    ] = None,
    judge_name: Annotated[
        str | None, typer.Option(help="Name of the judge behind --judgments.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Judge model to run (default: embedded SmolLM2).")
    ] = None,
    split: Annotated[SplitName, typer.Option(help="Items to calibrate on.")] = "heldout",
    heldout_fraction: Annotated[float, typer.Option(help="Share of items held out.")] = 0.5,
    limit: Annotated[int | None, typer.Option(help="Only the first N items of the split.")] = None,
    metric: Annotated[
        str | None, typer.Option(help="Metric of a multi-metric set (e.g. coherence).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Local copies of the sets (else $JUDGEKIT_DATA_DIR).")
    ] = None,
    cards_dir: Annotated[
        Path | None, typer.Option(help="Where cards are kept (default: user cache).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    n_resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 2000,
    min_kappa_ci_low: Annotated[
        float, typer.Option(help="Trust: lowest allowed lower CI bound of kappa.")
    ] = TrustThresholds().min_kappa_ci_low,
    min_ceiling_ratio: Annotated[
        float, typer.Option(help="Trust: lowest allowed judge / human-ceiling ratio.")
    ] = TrustThresholds().min_ceiling_ratio,
    max_invalid_rate: Annotated[
        float, typer.Option(help="Trust: highest allowed invalid-verdict rate.")
    ] = TrustThresholds().max_invalid_rate,
    min_n: Annotated[int, typer.Option(help="Trust: fewest items.")] = TrustThresholds().min_n,
    max_model_len: Annotated[int, typer.Option(help="Engine context length.")] = 4096,
    fit_length: Annotated[
        bool, typer.Option(help="Also judge the dev split and fit the frozen length model.")
    ] = True,
    label_column: Annotated[
        str | None, typer.Option(help="Own file: column of the human label (the consensus).")
    ] = None,
    annotator_columns: Annotated[
        str | None,
        typer.Option(help="Own file: per-annotator label columns C1,C2,... (human ceiling)."),
    ] = None,
    group_column: Annotated[
        str | None,
        typer.Option(help="Own file, one row per vote: rows with equal values are one item."),
    ] = None,
    annotator_column: Annotated[
        str | None, typer.Option(help="Own file, one row per vote: the column naming the voter.")
    ] = None,
    column: Annotated[
        list[str] | None, typer.Option(help="Own file: map FIELD=COLUMN, e.g. question=prompt.")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show engine logs in the terminal.")
    ] = False,
    consensus: Annotated[
        ConsensusMethod, typer.Option(help="Human label per item: plurality or an annotator model.")
    ] = "majority",
    min_annotator_reliability: Annotated[
        float | None, typer.Option(help="Drop annotators below this reliability first.")
    ] = None,
    canaries: Annotated[
        bool, typer.Option(help="Also run the built-in canary suite on this judge (--out).")
    ] = False,
    rubrics_dir: RubricsDir = None,
) -> None:
    """Judge vs humans on a calibration set: card, Markdown/HTML report, trust verdict."""
    try:
        chosen = load_rubric(rubric, paths=rubrics_dir or [])
        dataset: str | CalibrationSet = set_name
        if is_user_set(set_name):
            dataset = load_user_set(
                set_name,
                chosen,
                label_column=label_column,
                annotator_columns=[c for c in (annotator_columns or "").split(",") if c],
                group_column=group_column,
                annotator_column=annotator_column,
                columns=columns_option(column),
            )
        # only a judge run here starts an engine; precomputed verdicts have nothing to hide
        with quiet(out / "calibrate.log", verbose=verbose or judgments is not None):
            backend = None
            if judgments is None:
                backend = create_backend("vllm", model=model, max_model_len=max_model_len)
            result = run_calibration(
                dataset,
                chosen,
                backend=backend,
                verdicts_file=judgments,
                id_field=id_field,
                verdict_field=verdict_field,
                label_map=columns_option(label_map) if label_map else None,
                judge_name=judge_name,
                data_dir=data_dir,
                metric=metric,
                split=split,
                heldout_fraction=heldout_fraction,
                limit=limit,
                seed=seed,
                n_resamples=n_resamples,
                thresholds=TrustThresholds(
                    min_kappa_ci_low=min_kappa_ci_low,
                    min_ceiling_ratio=min_ceiling_ratio,
                    max_invalid_rate=max_invalid_rate,
                    min_n=min_n,
                ),
                fit_length=fit_length,
                consensus=consensus,
                min_annotator_reliability=min_annotator_reliability,
                cards_dir=cards_dir or default_cards_dir(),
                out_dir=out,
            )
            if canaries and backend is not None:
                suite = load_suite(builtin_suite(chosen.manifest.mode))
                write_canary_report(run_canaries(chosen, suite, backend=backend), out)
    except (InputError, RubricError, DatasetError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    card = result.card
    typer.echo(f"{card.rubric_ref} x {card.judge_model} on {card.set_name} ({card.split.name})")
    typer.echo(f"n={card.n}  invalid={card.n_invalid}  kappa={card.kappa.format()}")
    if sentence := card.ceiling_sentence():
        typer.echo(sentence)
    typer.echo(("TRUSTED" if card.verdict.trusted else "NOT TRUSTED") + ":")
    for reason in card.verdict.reasons:
        typer.echo(f"  {reason}")
    typer.echo(f"card {result.card_path}; report {result.report['html']}")
    typer.echo(
        "runs use it only when named: judgekit judge --card PATH, or card = in judgekit.toml"
    )
