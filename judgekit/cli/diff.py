"""``judgekit diff``: compare two runs item by item."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from judgekit.ci.diff import diff_runs, write_diff
from judgekit.cli.app import app


@app.command()
def diff(
    baseline: Annotated[
        Path, typer.Argument(help="Judgments of the baseline run: JSONL, CSV or Parquet.")
    ],
    candidate: Annotated[
        Path, typer.Argument(help="Judgments of the candidate run: JSONL, CSV or Parquet.")
    ],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the result as JSON.")
    ] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write a Markdown CI comment.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for bootstrap and permutation test.")] = 0,
    allow_mismatch: Annotated[
        bool,
        typer.Option(help="Compare runs whose judge, engine settings or controls differ."),
    ] = False,
    by: Annotated[
        str | None, typer.Option(help="Also compare each value of this meta column.")
    ] = None,
    fail_below: Annotated[
        float | None,
        typer.Option(
            help="Exit 1 if the CI's upper bound of (candidate - baseline) is below this."
        ),
    ] = None,
) -> None:
    """Candidate vs baseline on the same items: paired difference, CI, tests, regressions."""
    result = diff_runs(
        baseline,
        candidate,
        rng=np.random.default_rng(seed),
        allow_mismatch=allow_mismatch,
        by=by,
    )
    typer.echo(result.table())
    write_diff(result, json_out, markdown)
    if fail_below is not None and result.mean_diff_ci[1] < fail_below:
        typer.echo(
            f"candidate is worse: CI upper bound {result.mean_diff_ci[1]:+.3f} < {fail_below}"
        )
        raise typer.Exit(1)
