"""``judgekit judge``: judge a file of candidate outputs, print a summary, apply CI gates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from judgekit.backends import JudgeSpec, open_backend
from judgekit.backends.reasoning import reasoning_plan
from judgekit.cards import NamedCard, TrustThresholds, card_verdict, read_card
from judgekit.cards import require_calibrated as require_calibrated_card
from judgekit.ci import gates
from judgekit.cli.app import Columns, RubricsDir, app, pairs_option
from judgekit.cli.judge_options import judge_options
from judgekit.cli.quiet import JudgeProgress, log_path, quiet
from judgekit.cli.ray_options import RayActors, RayAddress, RayGpus, ray_executor
from judgekit.config import choose_card
from judgekit.data.items import check_items, check_slices
from judgekit.data.records import read_items
from judgekit.judging.run import judge as run_judge
from judgekit.judging.run import run_identity
from judgekit.judging.store import ResultStore
from judgekit.judging.summary import summarize
from judgekit.rubrics import load_rubric
from judgekit.schema import Controls, EnsembleMethod, PointwiseLabel, Reasoning, SwapMethod


@app.command()
@judge_options
def judge(
    rubric: Annotated[str, typer.Option(help="Rubric NAME or NAME@vN.")],
    input: Annotated[Path, typer.Option("--input", "-i", help="Items: JSONL, CSV or Parquet.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Judgments: .jsonl or .csv.")],
    judge_spec: JudgeSpec,
    reasoning: Reasoning | None,
    variant: Annotated[
        list[str] | None, typer.Option(help="Prompt variant(s) (default: all, or the card's).")
    ] = None,
    column: Columns = None,
    swap: Annotated[bool | None, typer.Option(help="Judge pairs in both orders.")] = None,
    swap_method: Annotated[
        SwapMethod | None, typer.Option(help="How to combine the two orders (soft).")
    ] = None,
    ensemble: Annotated[
        EnsembleMethod | None, typer.Option(help="How to combine variants (mean).")
    ] = None,
    tie_band: Annotated[
        float | None,
        typer.Option(help="Pairwise: a tie when P(A)/(P(A)+P(B)) is within this of 0.5 (0.05)."),
    ] = None,
    pointwise_label: Annotated[
        PointwiseLabel | None,
        typer.Option(help="Pointwise label: argmax, or nearest_score (to the expected score)."),
    ] = None,
    min_label_mass: Annotated[
        float | None,
        typer.Option(
            "--min-label-mass",
            "--min-mass",
            help="Label-mass threshold (default: the rubric's); --min-mass is its 0.2 name.",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(help="Requests submitted to the engine at once (it schedules them).")
    ] = 1024,
    write_every: Annotated[
        int, typer.Option(help="Judgments written, fsynced and stored at a time as they finish.")
    ] = 64,
    summary_json: Annotated[
        Path | None, typer.Option(help="Also write the summary as JSON here.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing --output (when this run ends).")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(help="Continue an existing --output: judge only what it lacks or failed."),
    ] = False,
    store: Annotated[
        Path | None,
        typer.Option(help="Result store (sqlite): reuse judgments of unchanged prompts, resume."),
    ] = None,
    fail_under: Annotated[
        float | None, typer.Option(help="Gate: exit 1 if the mean item score is below this.")
    ] = None,
    min_win_rate: Annotated[
        float | None,
        typer.Option(help="Gate: exit 1 if --win-label wins a smaller share of all items."),
    ] = None,
    win_label: Annotated[str, typer.Option(help="Verdict counted by --min-win-rate.")] = "A",
    max_invalid_rate: Annotated[
        float | None,
        typer.Option(
            "--max-invalid-item-rate",
            "--max-invalid-rate",
            help="Gate: exit 1 if a larger share of items has no valid verdict (all variants "
            "failed).",
        ),
    ] = None,
    max_invalid_judgment_rate: Annotated[
        float | None,
        typer.Option(
            help="Gate: exit 1 if a larger share of single judgments (item x variant x order) "
            "is invalid."
        ),
    ] = None,
    require_calibrated: Annotated[
        bool,
        typer.Option(help="Exit 3 unless the card fits this judge and passes the trust gate."),
    ] = False,
    card: Annotated[
        Path | None,
        typer.Option(
            help="Calibration card: the run applies its controls, frozen corrections and "
            "decision rule. Default: the card pinned in ./judgekit.toml, else none."
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show engine logs instead of <stem>.log.")
    ] = False,
    by: Annotated[
        list[str] | None,
        typer.Option(help="Also report every figure per value of this meta column (repeatable)."),
    ] = None,
    rubrics_dir: RubricsDir = None,
    ray: RayAddress = None,
    ray_actors: RayActors = 1,
    ray_gpus_per_actor: RayGpus = 0,
) -> None:
    """Judge a file of candidate outputs and print a summary.

    Exit codes: 0 judged and every gate passed; 1 a gate failed; 2 bad input or options (nothing
    judged); 3 --require-calibrated and no trusted card that fits this run; 4 internal error.
    """
    if overwrite and resume:
        raise typer.BadParameter("use --overwrite or --resume, not both", param_hint="--resume")
    if output.exists() and not (overwrite or resume):
        raise typer.BadParameter(f"{output} exists: pass --overwrite or --resume", param_hint="-o")
    executor = ray_executor(ray, ray_actors, ray_gpus_per_actor)
    chosen = load_rubric(rubric, paths=rubrics_dir or [])
    chosen.chosen_variants(variant)  # a typo stops here, before any judge starts
    columns = pairs_option(column)
    items = read_items(input, chosen.manifest.mode, columns=columns)
    check_items(items, chosen, str(input))
    check_slices(items, by or [], str(input))
    choice = choose_card(card)
    named = read_card(choice.path) if choice.path is not None else None
    given = {
        "swap": swap,
        "swap_method": swap_method,
        "ensemble": ensemble,
        "tie_band": tie_band,
        "pointwise_label": pointwise_label,
    }
    base = named.card.applies.controls if named is not None else Controls()
    controls = (
        base.model_copy(update={k: v for k, v in given.items() if v is not None})
        if any(v is not None for v in given.values())
        else None
    )
    if min_win_rate is not None:
        gates.check_win_label(chosen, win_label)
    with quiet(log_path(output), verbose=verbose, fresh=overwrite) as console:
        backend = open_backend(judge_spec)  # an engine loads only when something is judged
        try:
            identity = run_identity(backend, reasoning_plan(chosen, reasoning))
            if require_calibrated:
                require_calibrated_card(named, chosen, identity, choice.thresholds)
            if named is not None:
                console.print(_card_notice(named, choice.thresholds))
            with JudgeProgress(console, len(items)) as bar:
                run = run_judge(
                    items,
                    chosen,
                    backend=backend,
                    executor=executor,
                    variants=variant,
                    controls=controls,
                    card=named,
                    output=output,
                    if_exists="overwrite" if overwrite else ("resume" if resume else "error"),
                    columns=columns,
                    store=ResultStore(store) if store is not None else None,
                    batch_size=batch_size,
                    write_every=write_every,
                    min_label_mass=min_label_mass,
                    source=input,
                    progress=bar.update,
                    on_batch=bar.batch,
                    reasoning=reasoning,
                )
        finally:
            backend.close()
    summary = summarize(run, by=by or [])
    typer.echo(summary.format())
    typer.echo(f"judgments written to {output}")
    if summary_json is not None:
        summary_json.write_text(summary.model_dump_json(indent=2) + "\n")
    gates.enforce(
        run,
        [
            gates.mean_gate(run, fail_under) if fail_under is not None else None,
            gates.win_rate_gate(run, min_win_rate, win_label) if min_win_rate is not None else None,
            gates.invalid_rate_gate(run, max_invalid_rate)
            if max_invalid_rate is not None
            else None,
            gates.invalid_judgment_rate_gate(run, max_invalid_judgment_rate)
            if max_invalid_judgment_rate is not None
            else None,
        ],
    )


def _card_notice(named: NamedCard, thresholds: TrustThresholds) -> str:
    """Whether the run's card passes the trust thresholds now (said before anything is judged)."""
    verdict = card_verdict(named.card, thresholds)
    if verdict.trusted:
        return f"calibrated: card {named.ref.path} passes the trust thresholds"
    failed = "; ".join(r for r in verdict.reasons if r.startswith("FAIL"))
    return f"warning: card {named.ref.path} is NOT TRUSTED: {failed}"
