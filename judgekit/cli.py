"""The ``judgekit`` command line: parse options, call the Python API, print. No logic of its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from judgekit import gates
from judgekit.aggregate import Controls, EnsembleMethod, SwapMethod
from judgekit.backends import create_backend
from judgekit.calibration import (
    NotCalibratedError,
    SplitName,
    TrustThresholds,
    default_cards_dir,
)
from judgekit.calibration_run import check_calibrated, frozen_length_model, run_calibration
from judgekit.datasets import DatasetError
from judgekit.diff import diff_runs, write_diff
from judgekit.records import InputError, read_items
from judgekit.rubric import (
    RubricError,
    list_rubrics,
    load_rubric,
    load_rubric_dir,
    lock_violations,
)
from judgekit.runner import judge as run_judge
from judgekit.store import ResultStore

app = typer.Typer(no_args_is_help=True, help="LLM-as-a-judge with versioned rubrics.")
rubrics_app = typer.Typer(no_args_is_help=True, help="List, show and validate rubrics.")
app.add_typer(rubrics_app, name="rubrics")
err = Console(stderr=True)

BackendKind = Literal["vllm", "openai"]
RubricsDir = Annotated[
    list[Path] | None, typer.Option("--rubrics-dir", help="Extra rubric folder(s), searched first.")
]


def _columns(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        field, sep, column = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected FIELD=COLUMN, got {pair!r}", param_hint="--column")
        out[field] = column
    return out


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
    rubrics_dir: RubricsDir = None,
) -> None:
    """Judge a file of candidate outputs and print a summary.

    Exit codes: 0 judged and every gate passed; 1 a gate failed; 2 bad input or options;
    3 --require-calibrated and no trusted calibration card.
    """
    try:
        chosen = load_rubric(rubric, paths=rubrics_dir or [])
        items = read_items(input, chosen.manifest.mode, _columns(column))
    except (InputError, RubricError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    if backend_kind == "openai":
        if not base_url:
            raise typer.BadParameter("--backend openai needs --base-url", param_hint="--base-url")
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
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(3) from error
        typer.echo(f"calibrated: card {card.key[:12]} on {card.set_name} ({card.created})")
    frozen = frozen_length_model(chosen, backend.identity, cards_dir) if length_correction else None
    if frozen is not None:
        typer.echo(f"length correction: frozen model from card {frozen[1].key[:12]}")
    columns = BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("judging", total=None)
        run = run_judge(
            items,
            chosen,
            backend=backend,
            variants=variant,
            controls=Controls(swap=swap, swap_method=swap_method, ensemble=ensemble),
            output=output,
            batch_size=batch_size,
            min_mass=min_mass,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            store=ResultStore(store) if store is not None else None,
            length_model=frozen[0] if frozen is not None else None,
        )
    summary = run.summary()
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


@app.command()
def diff(
    baseline: Annotated[Path, typer.Argument(help="Judgments file of the baseline run.")],
    candidate: Annotated[Path, typer.Argument(help="Judgments file of the candidate run.")],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the result as JSON.")
    ] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write a Markdown CI comment.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for bootstrap and permutation test.")] = 0,
    fail_below: Annotated[
        float | None,
        typer.Option(
            help="Exit 1 if the CI's upper bound of (candidate - baseline) is below this."
        ),
    ] = None,
) -> None:
    """Candidate vs baseline on the same items: paired difference, CI, tests, regressions."""
    try:
        result = diff_runs(baseline, candidate, rng=np.random.default_rng(seed))
    except (InputError, RubricError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(result.table())
    write_diff(result, json_out, markdown)
    if fail_below is not None and result.mean_diff_ci[1] < fail_below:
        typer.echo(
            f"candidate is worse: CI upper bound {result.mean_diff_ci[1]:+.3f} < {fail_below}"
        )
        raise typer.Exit(1)


@app.command()
def calibrate(
    rubric: Annotated[str, typer.Option(help="Rubric NAME or NAME@vN.")],
    set_name: Annotated[str, typer.Option("--set", help="Calibration set name.")],
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
    rubrics_dir: RubricsDir = None,
) -> None:
    """Judge vs humans on a calibration set: card, Markdown/HTML report, trust verdict."""
    try:
        chosen = load_rubric(rubric, paths=rubrics_dir or [])
        backend = None
        if judgments is None:
            backend = create_backend("vllm", model=model, max_model_len=max_model_len)
        result = run_calibration(
            set_name,
            chosen,
            backend=backend,
            verdicts_file=judgments,
            id_field=id_field,
            verdict_field=verdict_field,
            label_map=_columns(label_map) if label_map else None,
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
            cards_dir=cards_dir or default_cards_dir(),
            out_dir=out,
        )
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


@rubrics_app.command("list")
def rubrics_list(rubrics_dir: RubricsDir = None) -> None:
    """Every rubric version on the search path."""
    for rubric in list_rubrics(paths=rubrics_dir or []):
        typer.echo(
            f"{rubric.ref:<28} {rubric.manifest.mode:<10} {len(rubric.variants)} variants  "
            f"{rubric.hash[:12]}  {rubric.path}"
        )


@rubrics_app.command("show")
def rubrics_show(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@vN.")], rubrics_dir: RubricsDir = None
) -> None:
    """A rubric's manifest, hash and location, as JSON."""
    rubric = load_rubric(ref, paths=rubrics_dir or [])
    shown = {"ref": rubric.ref, "hash": rubric.hash, "path": str(rubric.path)}
    typer.echo(json.dumps(shown | rubric.manifest.model_dump(mode="json"), indent=2))


@rubrics_app.command("validate")
def rubrics_validate(
    paths: Annotated[list[Path], typer.Argument(help="Version folders or rubric roots.")],
) -> None:
    """Validate rubric folders; for a root with a lock file, also check published hashes."""
    failed = False
    for path in paths:
        try:
            if (path / "rubric.yaml").is_file():
                typer.echo(f"ok  {load_rubric_dir(path).ref}")
                continue
            for rubric in list_rubrics(paths=[path]):
                if rubric.path.is_relative_to(path):
                    typer.echo(f"ok  {rubric.ref}")
            for problem in lock_violations(path):
                typer.echo(f"changed  {problem}")
                failed = True
        except RubricError as error:
            typer.echo(f"error  {error}")
            failed = True
    if failed:
        raise typer.Exit(1)


def main() -> None:
    app()
