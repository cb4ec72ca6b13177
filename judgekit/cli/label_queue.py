"""``judgekit label-queue``: export the items most worth a human's time, with an empty label."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from judgekit.cli.app import app, columns_option
from judgekit.data.records import InputError
from judgekit.rubrics import RubricError
from judgekit.view.data import load_run
from judgekit.view.queue import label_queue, write_queue


@app.command("label-queue")
def label_queue_command(
    run: Annotated[Path, typer.Argument(help="A run's output (<stem>.jsonl).")],
    out: Annotated[Path, typer.Option(help="CSV to write (fill its `label` column).")],
    n: Annotated[int, typer.Option(help="How many items.")] = 50,
    column: Annotated[
        list[str] | None, typer.Option(help="Map FIELD=COLUMN as the run was judged with.")
    ] = None,
) -> None:
    """Most uncertain, most order-sensitive, most variant-split items first (see view.queue).

    Fill the `label` column, then: judgekit calibrate --set OUT --label-column label --split all
    """
    try:
        rows = label_queue(load_run(run, columns=columns_option(column)), n)
    except (InputError, RubricError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    write_queue(rows, out)
    typer.echo(f"{len(rows)} items written to {out}; fill the `label` column, then run")
    typer.echo(f"  judgekit calibrate --rubric RUBRIC --set {out} --label-column label --split all")
