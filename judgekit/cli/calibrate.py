"""``judgekit calibrate``: a card and report for a rubric + judge on a human-labelled set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from judgekit.audit.canaries import builtin_suite, load_suite, run_canaries, write_canary_report
from judgekit.backends import JudgeSpec, ReplayJudge, create_backend
from judgekit.calibrate.criteria import run_criteria_calibration
from judgekit.calibrate.measure.annotators import ConsensusMethod
from judgekit.calibrate.measure.slices import format_slices
from judgekit.calibrate.run import CalibrationResult, run_calibration
from judgekit.cards import CalibrationOptions, TrustThresholds, default_cards_dir
from judgekit.cards.model import SplitName
from judgekit.cli.app import Columns, RubricsDir, app, pairs_option
from judgekit.cli.judge_options import judge_options
from judgekit.cli.quiet import quiet
from judgekit.cli.ray_options import RayActors, RayAddress, RayGpus, ray_executor
from judgekit.data.sets import CalibrationSet
from judgekit.data.user_sets import is_user_set, load_user_set
from judgekit.judging.executor import ExecutorChoice
from judgekit.judging.store import ResultStore
from judgekit.rubrics import Rubric, load_rubric

_T = TrustThresholds()


@app.command()
@judge_options
def calibrate(
    rubric: Annotated[str, typer.Option(help="Rubric NAME or NAME@vN.")],
    set_name: Annotated[
        str,
        typer.Option(
            "--set", help="Registered set name, or your own labelled file (.jsonl/.csv/.parquet)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Folder for run.jsonl, view.html, report.md/html.")],
    judge_spec: JudgeSpec,
    split: Annotated[SplitName, typer.Option(help="Items to calibrate on.")] = "heldout",
    heldout_fraction: Annotated[float, typer.Option(help="Share of groups held out.")] = 0.5,
    limit: Annotated[
        int | None, typer.Option(help="Only the first N items of the split (and of dev).")
    ] = None,
    metric: Annotated[
        str | None, typer.Option(help="Metric of a multi-metric set (e.g. coherence).")
    ] = None,
    variant: Annotated[
        list[str] | None, typer.Option(help="Prompt variant(s) to judge (default: all).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Local copies of the sets (else $JUDGEKIT_DATA_DIR).")
    ] = None,
    cards_dir: Annotated[
        Path | None, typer.Option(help="Where cards are kept (default: user cache).")
    ] = None,
    store: Annotated[Path | None, typer.Option(help="Result store (sqlite).")] = None,
    seed: Annotated[int, typer.Option(help="Bootstrap and fitting seed.")] = 0,
    n_resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 2000,
    min_kappa_ci_low: Annotated[
        float, typer.Option(help="Trust: lowest allowed lower CI bound of kappa.")
    ] = _T.min_kappa_ci_low,
    min_ceiling_ratio: Annotated[
        float, typer.Option(help="Trust: lowest allowed judge / human-ceiling ratio.")
    ] = _T.min_ceiling_ratio,
    max_invalid_rate: Annotated[
        float, typer.Option(help="Trust: highest allowed invalid-verdict rate.")
    ] = _T.max_invalid_rate,
    min_n: Annotated[int, typer.Option(help="Trust: fewest items.")] = _T.min_n,
    fit_dev: Annotated[
        bool | None,
        typer.Option(
            help="Also judge the dev split to fit the frozen length model and learned ensemble "
            "and choose the card's controls (default: yes for a live judge, no for a replay)."
        ),
    ] = None,
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
    column: Columns = None,
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
    by: Annotated[
        str | None, typer.Option(help="Also measure the card per value of this meta column.")
    ] = None,
    criterion_labels: Annotated[
        list[str] | None,
        typer.Option(
            help="Multi-criterion rubric: CRITERION=METRIC (a registered set's metric) or "
            "CRITERION=COLUMN (your file's label column); default: the criterion's own name."
        ),
    ] = None,
    rubrics_dir: RubricsDir = None,
    ray: RayAddress = None,
    ray_actors: RayActors = 1,
    ray_gpus_per_actor: RayGpus = 0,
) -> None:
    """Judge vs humans on a calibration set: card, Markdown/HTML report, trust verdict.

    Another judge's verdicts are calibrated the same way: --verdicts FILE with --id-field,
    --verdict-field and --model NAME replays them through the run.
    """
    chosen = load_rubric(rubric, paths=rubrics_dir or [])
    replay = isinstance(judge_spec, ReplayJudge)
    executor = ray_executor(ray, ray_actors, ray_gpus_per_actor)
    dataset: str | CalibrationSet = set_name
    if is_user_set(set_name) and not chosen.manifest.criteria:
        dataset = load_user_set(
            set_name,
            chosen,
            label_column=label_column,
            annotator_columns=[c for c in (annotator_columns or "").split(",") if c],
            group_column=group_column,
            annotator_column=annotator_column,
            columns=pairs_option(column),
        )
    options = CalibrationOptions(
        split=split,
        heldout_fraction=heldout_fraction,
        limit=limit,
        metric=metric,
        consensus=consensus,
        min_annotator_reliability=min_annotator_reliability,
        fit_dev=not replay if fit_dev is None else fit_dev,
        variants=variant or ([chosen.variants[0]] if replay else None),
        seed=seed,
        n_resamples=n_resamples,
        thresholds=TrustThresholds(
            min_kappa_ci_low=min_kappa_ci_low,
            min_ceiling_ratio=min_ceiling_ratio,
            max_invalid_rate=max_invalid_rate,
            min_n=min_n,
        ),
    )
    if chosen.manifest.criteria:  # one run, a card per criterion (thresholds as given)
        labels = pairs_option(criterion_labels, "--criterion-labels")
        paths = {"out": out, "cards_dir": cards_dir, "data_dir": data_dir, "store": store}
        return _criteria(chosen, set_name, judge_spec, labels, options, pairs_option(column),
                         verbose=verbose, executor=executor, **paths)  # fmt: skip
    if options.fit_dev:
        typer.echo(
            "judging the dev split too: the card's controls are chosen and its "
            "corrections fitted there (--no-fit-dev to judge the split only)",
            err=True,
        )
    with quiet(out / "calibrate.log", verbose=verbose or replay):
        result = run_calibration(
            dataset,
            chosen,
            backend=judge_spec,
            options=options,
            data_dir=data_dir,
            cards_dir=cards_dir or default_cards_dir(),
            out_dir=out,
            store=ResultStore(store) if store is not None else None,
            by=by,
            executor=executor,
        )
        if canaries and not replay:
            backend = create_backend(judge_spec)
            try:
                suite = load_suite(builtin_suite(chosen.manifest.mode))
                write_canary_report(run_canaries(chosen, suite, backend=backend), out)
            finally:
                backend.close()
    _report(result)


def _report(result: CalibrationResult) -> None:
    """The card's headline, its trust verdict and where card and report were written."""
    card = result.card
    typer.echo(f"{card.rubric_ref} x {card.judge_model} on {card.set_name} ({card.split.name})")
    typer.echo(
        f"n={card.n}  invalid={card.n_invalid}  kappa={card.kappa.format()}  "
        f"decided {card.coverage:.1%}"
    )
    typer.echo("applies: " + "; ".join(card.applies.reasons or ["the run's own controls"]))
    if sentence := card.ceiling_sentence():
        typer.echo(sentence)
    typer.echo(("TRUSTED" if card.verdict.trusted else "NOT TRUSTED") + ":")
    for reason in card.verdict.reasons:
        typer.echo(f"  {reason}")
    for line in format_slices(card.slices):
        typer.echo(line)
    typer.echo(f"card {result.card_path}; report {result.report['html']}")
    typer.echo(
        "runs use it only when named: judgekit judge --card PATH, or card = in judgekit.toml"
    )


def _criteria(
    rubric: Rubric,
    set_name: str,
    spec: JudgeSpec,
    labels: dict[str, str],
    options: CalibrationOptions,
    columns: dict[str, str],
    *,
    out: Path,
    cards_dir: Path | None,
    data_dir: Path | None,
    store: Path | None,
    executor: ExecutorChoice,
    verbose: bool,
) -> None:
    """One run of a multi-criterion rubric, a card per criterion and the criteria table."""
    names = [c.name for c in rubric.criteria if c.name is not None]
    dataset: str | dict[str, CalibrationSet] = set_name
    if is_user_set(set_name):
        dataset = {
            name: load_user_set(
                set_name,
                rubric.for_criterion(name),
                label_column=labels.get(name, name),
                columns=columns,
            )
            for name in names
        }
    with quiet(out / "calibrate.log", verbose=verbose):
        result = run_criteria_calibration(
            dataset,
            rubric,
            backend=spec,
            options=options,
            metrics=labels,
            data_dir=data_dir,
            cards_dir=cards_dir or default_cards_dir(),
            out_dir=out,
            executor=executor,
            store=ResultStore(store) if store is not None else None,
        )
    typer.echo(result.table.markdown())
    typer.echo(f"cards: {', '.join(str(p) for p in result.card_paths.values())}")
    typer.echo(f"table {result.paths['markdown']}; run {result.paths['run']}")
