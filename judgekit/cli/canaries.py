"""``judgekit canaries``: does the judge reward answers that game it? Exit 1 when the gate fails."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from judgekit.audit.canaries import (
    CanaryError,
    builtin_suite,
    canary_markdown,
    load_suite,
    run_canaries,
    write_canary_report,
)
from judgekit.cli import judge_options as jo
from judgekit.cli.app import RubricsDir, app
from judgekit.rubrics import RubricError, load_rubric


@app.command()
def canaries(
    rubric: Annotated[str, typer.Option(help="Rubric NAME or NAME@vN.")],
    out: Annotated[Path, typer.Option(help="Folder for canaries.json and canaries.md.")],
    suite: Annotated[
        Path | None,
        typer.Option(help="Suite file (default: the built-in one of the rubric's mode)."),
    ] = None,
    attacks: Annotated[
        list[Path] | None, typer.Option("--attacks", help="Extra attack file(s) to add.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N questions.")] = None,
    max_canary_rate: Annotated[
        float | None, typer.Option(help="Gate: exit 1 if any attack fools the judge more often.")
    ] = None,
    model: jo.Model = None,
    backend_kind: jo.Kind = "vllm",
    base_url: jo.BaseUrl = None,
    api_key_env: jo.ApiKeyEnv = "OPENAI_API_KEY",
    max_model_len: jo.MaxModelLen = 4096,
    dtype: jo.Dtype = "auto",
    variant: jo.Variants = None,
    rubrics_dir: RubricsDir = None,
) -> None:
    """Judge a built-in (or your) suite of gaming attacks against reference answers.

    Exit codes: 0 ran and the gate passed; 1 an attack's rate exceeds --max-canary-rate;
    2 bad rubric or suite.
    """
    try:
        chosen = load_rubric(rubric, paths=rubrics_dir or [])
        loaded = load_suite(suite or builtin_suite(chosen.manifest.mode), attacks or [])
        backend = jo.make_backend(
            backend_kind,
            model=model,
            base_url=base_url,
            api_key_env=api_key_env,
            max_model_len=max_model_len,
            dtype=dtype,
        )
        report = run_canaries(
            chosen,
            loaded,
            backend=backend,
            variants=variant,
            limit=limit,
            max_canary_rate=max_canary_rate,
        )
    except (RubricError, CanaryError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    write_canary_report(report, out)
    typer.echo(canary_markdown(report))
    if report.failed:
        raise typer.Exit(1)
