"""``judgekit judge``: judge a file of candidate outputs, print a summary, apply CI gates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from judgekit.backends import create_backend
from judgekit.bias.length import LengthModel
from judgekit.calibrate.cards import (
    CardError,
    NamedCard,
    NotCalibratedError,
    check_card,
    read_card,
    require_calibrated,
)
from judgekit.calibrate.length_card import load_length_model
from judgekit.calibrate.project import CardChoice, ConfigError, choose_card
from judgekit.ci import gates
from judgekit.cli.app import BackendKind, RubricsDir, app, columns_option
from judgekit.cli.quiet import JudgeProgress, log_path, quiet, starting
from judgekit.data.records import InputError, read_items
from judgekit.judging.aggregate import Controls, EnsembleMethod, SwapMethod
from judgekit.judging.run import judge as run_judge
from judgekit.judging.store import ResultStore
from judgekit.judging.summary import summarize
from judgekit.rubrics import (
    Rubric,
    RubricError,
    load_rubric,
)
from judgekit.schema import JudgeIdentity


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
    prefill: Annotated[
        bool,
        typer.Option(
            help="--backend openai: continue the rubric's answer cue as an assistant message "
            "(vLLM, SGLang); --no-prefill for hosted APIs that reject continue_final_message."
        ),
    ] = True,
    tokenizer: Annotated[
        str | None,
        typer.Option(
            help="--backend openai: local tokenizer dir of the judge; resolves the answer slot "
            "as the engine does and asks for exact label log-probabilities."
        ),
    ] = None,
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
    tie_band: Annotated[
        float,
        typer.Option(help="Pairwise: a tie when P(A)/(P(A)+P(B)) is within this of 0.5."),
    ] = Controls().tie_band,
    min_mass: Annotated[
        float | None, typer.Option(help="Label-mass threshold (default: the rubric's).")
    ] = None,
    batch_size: Annotated[
        int, typer.Option(help="Requests submitted to the engine at once (it schedules them).")
    ] = 1024,
    write_every: Annotated[
        int, typer.Option(help="Judgments written, fsynced and stored at a time as they finish.")
    ] = 64,
    max_model_len: Annotated[int, typer.Option(help="Engine context length.")] = 4096,
    dtype: Annotated[
        str | None, typer.Option(help="Engine dtype (default: $JUDGEKIT_DTYPE, else 'auto').")
    ] = None,
    tensor_parallel_size: Annotated[int, typer.Option(help="GPUs per engine.")] = 1,
    gpu_memory_utilization: Annotated[float, typer.Option(help="GPU memory fraction.")] = 0.9,
    summary_json: Annotated[
        Path | None, typer.Option(help="Also write the summary as JSON here.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing --output (default: refuse it).")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(help="Continue an existing --output: keep its rows, judge only the rest."),
    ] = False,
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
        typer.Option(help="Refuse a rubric + judge without a trusted held-out calibration card."),
    ] = False,
    card: Annotated[
        Path | None,
        typer.Option(
            help="Calibration card for this run (trust gate, frozen length model); default: "
            "the card pinned in ./judgekit.toml or ./pyproject.toml [tool.judgekit], else none."
        ),
    ] = None,
    length_correction: Annotated[
        bool | None,
        typer.Option(
            help="Apply the named card's frozen length model (default: if the card has one; "
            "--length-correction without such a card is an error)."
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show engine logs instead of <stem>.log.")
    ] = False,
    rubrics_dir: RubricsDir = None,
) -> None:
    """Judge a file of candidate outputs and print a summary.

    Exit codes: 0 judged and every gate passed; 1 a gate failed; 2 bad input or options;
    3 --require-calibrated and no trusted calibration card that fits this run.
    """
    if overwrite and resume:
        raise typer.BadParameter("use --overwrite or --resume, not both", param_hint="--resume")
    if output.exists() and not (overwrite or resume):
        typer.echo(f"error: {output} exists: pass --overwrite or --resume", err=True)
        raise typer.Exit(2)
    try:
        chosen = load_rubric(rubric, paths=rubrics_dir or [])
        items = read_items(input, chosen.manifest.mode, columns_option(column))
        controls = Controls(
            swap=swap, swap_method=swap_method, ensemble=ensemble, tie_band=tie_band
        )
        choice = choose_card(card)
        named = read_card(choice.path) if choice.path is not None else None
    except (InputError, RubricError, ValidationError, ConfigError, CardError) as error:
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
                    prefill=prefill,
                    tokenizer=tokenizer,
                )
            else:
                backend = create_backend(
                    "vllm",
                    model=model,
                    max_model_len=max_model_len,
                    **({"dtype": dtype} if dtype else {}),
                    tensor_parallel_size=tensor_parallel_size,
                    gpu_memory_utilization=gpu_memory_utilization,
                )
        length_model = _use_card(
            console, named, chosen, backend.identity, choice, require_calibrated
        )
        if length_correction is False:
            length_model = None
        elif length_correction and length_model is None:
            console.print(
                "error: --length-correction needs a card with a length model", soft_wrap=True
            )
            raise typer.Exit(2)
        with JudgeProgress(console, len(items)) as bar:
            try:
                run = run_judge(
                    items,
                    chosen,
                    backend=backend,
                    variants=variant,
                    controls=controls,
                    output=output,
                    batch_size=batch_size,
                    write_every=write_every,
                    min_mass=min_mass,
                    progress=bar.update,
                    on_batch=bar.batch,
                    source=input,
                    store=ResultStore(store) if store is not None else None,
                    length_model=length_model,
                    card=named.ref if named is not None else None,
                    if_exists="overwrite" if overwrite else ("resume" if resume else "error"),
                )
            except InputError as error:
                console.print(f"error: {error}", highlight=False, soft_wrap=True)
                raise typer.Exit(2) from error
    summary = summarize(run)
    typer.echo(summary.format())
    typer.echo(f"judgments written to {output}")
    if summary_json is not None:
        summary_json.write_text(summary.model_dump_json(indent=2) + "\n")
    checks = [
        gates.mean_gate(run, fail_under) if fail_under is not None else None,
        gates.win_rate_gate(run, min_win_rate, win_label) if min_win_rate is not None else None,
        gates.invalid_rate_gate(run, max_invalid_rate) if max_invalid_rate is not None else None,
        gates.invalid_judgment_rate_gate(run, max_invalid_judgment_rate)
        if max_invalid_judgment_rate is not None
        else None,
    ]
    try:
        gates.enforce(run, checks)
    except gates.GateFailure as failure:
        typer.echo(str(failure))
        raise typer.Exit(1) from failure


def _use_card(
    console: Console,
    named: NamedCard | None,
    rubric: Rubric,
    identity: JudgeIdentity,
    choice: CardChoice,
    gate: bool,
) -> LengthModel | None:
    """Check the named card against this run (and the trust gate if asked); its length model."""
    try:
        if gate:
            require_calibrated(named, rubric, identity, choice.thresholds)
        elif named is not None:
            check_card(named, rubric, identity)
    except NotCalibratedError as error:
        console.print(f"error: {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(3) from error
    except CardError as error:
        console.print(f"error: {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from error
    if named is None:
        return None
    c = named.card
    console.print(f"card {named.ref.path} ({choice.source}): {c.set_name}, {c.created}")
    if gate:
        console.print(f"calibrated: card {c.key[:12]} passes the trust thresholds")
    return load_length_model(c)
