"""``judgekit judge``: judge a file of candidate outputs, print a summary, apply CI gates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from judgekit.backends import create_backend
from judgekit.calibrate.cards import NotCalibratedError
from judgekit.calibrate.run import check_calibrated, frozen_length_model
from judgekit.ci import gates
from judgekit.cli.app import BackendKind, RubricsDir, app, columns_option
from judgekit.cli.quiet import JudgeProgress, log_path, quiet, starting
from judgekit.data.records import InputError, read_items
from judgekit.judging.aggregate import Controls, EnsembleMethod, SwapMethod
from judgekit.judging.run import judge as run_judge
from judgekit.judging.store import ResultStore
from judgekit.judging.summary import summarize
from judgekit.rubrics import (
    RubricError,
    load_rubric,
)


@app.command()
def judge(
    rubric: Annotated[str, typer.Option(help="Rubric NAME or NAME@vN.")],
    input: Annotated[Path, typer.Option("--input", "-i", help="Items: JSONL, CSV or Parquet.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Judgments: .jsonl or .csv.")],
    model: Annotated[
        str | None,
        typer.Option(
            help="Local HF model dir or hub id (default: embedded SmolLM2); with "
            "--backend openai, the served model name."
        ),
    ] = None,
    backend_kind: Annotated[
        BackendKind,
        typer.Option("--backend", help="Offline vLLM engine, or OpenAI-compatible servers."),
    ] = "vllm",
    base_url: Annotated[
        list[str] | None,
        typer.Option(help="--backend openai: server URL(s); several = replicas, prefix-routed."),
    ] = None,
    api_key_env: Annotated[
        str, typer.Option(help="--backend openai: environment variable holding the API key.")
    ] = "OPENAI_API_KEY",
    max_concurrency: Annotated[
        int, typer.Option(help="--backend openai: in-flight requests per replica.")
    ] = 8,
    variant: Annotated[
        list[str] | None, typer.Option(help="Prompt variant(s) to use (default: all).")
    ] = None,
    column: Annotated[
        list[str] | None, typer.Option(help="Map FIELD=COLUMN, e.g. question=prompt.")
    ] = None,
    swap: Annotated[bool, typer.Option(help="Judge pairs in both orders.")] = True,
    swap_method: Annotated[
        SwapMethod, typer.Option(help="How to combine the two orders.")
    ] = "soft",
    ensemble: Annotated[EnsembleMethod, typer.Option(help="How to combine variants.")] = "mean",
    min_mass: Annotated[
        float | None, typer.Option(help="Label-mass threshold (default: the rubric's).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Requests per engine call.")] = 64,
    max_model_len: Annotated[int, typer.Option(help="Engine context length.")] = 4096,
    dtype: Annotated[str, typer.Option(help="Engine dtype.")] = "auto",
    tensor_parallel_size: Annotated[int, typer.Option(help="GPUs per engine.")] = 1,
    gpu_memory_utilization: Annotated[float, typer.Option(help="GPU memory fraction.")] = 0.9,
    summary_json: Annotated[
        Path | None, typer.Option(help="Also write the summary as JSON here.")
    ] = None,
    store: Annotated[
        Path | None,
        typer.Option(help="Result store (sqlite): reuse judgments of unchanged prompts, resume."),
    ] = None,
    fail_under: Annotated[
        float | None, typer.Option(help="Gate: exit 1 if the mean item score is below this.")
    ] = None,
    min_win_rate: Annotated[
        float | None, typer.Option(help="Gate: exit 1 if --win-label wins fewer items.")
    ] = None,
    win_label: Annotated[str, typer.Option(help="Label counted by --min-win-rate.")] = "A",
    max_invalid_rate: Annotated[
        float | None, typer.Option(help="Gate: exit 1 if more items than this are invalid.")
    ] = None,
    require_calibrated: Annotated[
        bool,
        typer.Option(help="Refuse a rubric + judge without a trusted held-out calibration card."),
    ] = False,
    cards_dir: Annotated[
        Path | None, typer.Option(help="Calibration cards folder (default: user cache).")
    ] = None,
    length_correction: Annotated[
        bool,
        typer.Option(help="Apply the frozen length model of this rubric + judge's card, if any."),
    ] = True,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show engine logs instead of <stem>.log.")
    ] = False,
    rubrics_dir: RubricsDir = None,
) -> None:
    """Judge a file of candidate outputs and print a summary.

    Exit codes: 0 judged and every gate passed; 1 a gate failed; 2 bad input or options;
    3 --require-calibrated and no trusted calibration card.
    """
    try:
        chosen = load_rubric(rubric, paths=rubrics_dir or [])
        items = read_items(input, chosen.manifest.mode, columns_option(column))
    except (InputError, RubricError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    if backend_kind == "openai" and not base_url:
        raise typer.BadParameter("--backend openai needs --base-url", param_hint="--base-url")
    with quiet(log_path(output), verbose=verbose) as console:
        with starting(console, "starting the judge"):
            if backend_kind == "openai":
                backend = create_backend(
                    "openai",
                    base_url=tuple(base_url),
                    model=model,
                    api_key_env=api_key_env,
                    max_concurrency=max_concurrency,
                )
            else:
                backend = create_backend(
                    "vllm",
                    model=model,
                    max_model_len=max_model_len,
                    dtype=dtype,
                    tensor_parallel_size=tensor_parallel_size,
                    gpu_memory_utilization=gpu_memory_utilization,
                )
        if require_calibrated:
            try:
                card = check_calibrated(chosen, backend.identity, cards_dir)
            except NotCalibratedError as error:
                console.print(f"error: {error}", highlight=False)
                raise typer.Exit(3) from error
            console.print(f"calibrated: card {card.key[:12]} on {card.set_name} ({card.created})")
        frozen = (
            frozen_length_model(chosen, backend.identity, cards_dir) if length_correction else None
        )
        if frozen is not None:
            console.print(f"length correction: frozen model from card {frozen[1].key[:12]}")
        with JudgeProgress(console, len(items)) as bar:
            run = run_judge(
                items,
                chosen,
                backend=backend,
                variants=variant,
                controls=Controls(swap=swap, swap_method=swap_method, ensemble=ensemble),
                output=output,
                batch_size=batch_size,
                min_mass=min_mass,
                progress=bar.update,
                on_batch=bar.batch,
                source=input,
                store=ResultStore(store) if store is not None else None,
                length_model=frozen[0] if frozen is not None else None,
            )
    summary = summarize(run)
    typer.echo(summary.format())
    typer.echo(f"judgments written to {output}")
    if summary_json is not None:
        summary_json.write_text(summary.model_dump_json(indent=2) + "\n")
    checks = [
        gates.mean_gate(run, fail_under) if fail_under is not None else None,
        gates.win_rate_gate(run, min_win_rate, win_label) if min_win_rate is not None else None,
        gates.invalid_rate_gate(run, max_invalid_rate) if max_invalid_rate is not None else None,
    ]
    try:
        gates.enforce(run, checks)
    except gates.GateFailure as failure:
        typer.echo(str(failure))
        raise typer.Exit(1) from failure
