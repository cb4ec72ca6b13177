"""``judgekit canaries``: does the judge reward answers that game it? Exit 1 when the gate fails."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from judgekit.audit.canaries import (
    builtin_suite,
    canary_markdown,
    load_suite,
    run_canaries,
    write_canary_report,
)
from judgekit.backends import JudgeSpec, create_backend
from judgekit.cli.app import RubricsDir, app
from judgekit.cli.judge_options import judge_options
from judgekit.cli.quiet import quiet
from judgekit.rubrics import load_rubric


@app.command()
@judge_options
def canaries(
    rubric: Annotated[str, typer.Option(help="Rubric NAME or NAME@vN.")],
    out: Annotated[Path, typer.Option(help="Folder for canaries.json and canaries.md.")],
    judge_spec: JudgeSpec,
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
    variant: Annotated[
        list[str] | None, typer.Option(help="Prompt variant(s) (default: all).")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show engine logs instead of OUT/canaries.log.")
    ] = False,
    rubrics_dir: RubricsDir = None,
) -> None:
    """Judge a built-in (or your) suite of gaming attacks against reference answers.

    Exit codes: 0 ran and the gate passed; 1 an attack's rate exceeds --max-canary-rate;
    2 bad rubric or suite; 4 internal error.
    """
    chosen = load_rubric(rubric, paths=rubrics_dir or [])
    loaded = load_suite(suite or builtin_suite(chosen.manifest.mode), attacks or [])
    with quiet(out / "canaries.log", verbose=verbose, fresh=True):
        backend = create_backend(judge_spec)
        try:
            report = run_canaries(
                chosen,
                loaded,
                backend=backend,
                variants=variant,
                limit=limit,
                max_canary_rate=max_canary_rate,
            )
        finally:
            backend.close()
    write_canary_report(report, out)
    typer.echo(canary_markdown(report))
    if report.failed:
        raise typer.Exit(1)
