"""``judgekit label-queue``: export the items most worth a human's time, with an empty label."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from judgekit.cli.app import app
from judgekit.view.data import load_run
from judgekit.view.queue import LABEL_COLUMN, label_queue, merge_queue, read_queue, write_queue


@app.command("label-queue")
def label_queue_command(
    run: Annotated[Path, typer.Argument(help="A run's output (JSONL, CSV or Parquet).")],
    out: Annotated[Path, typer.Option(help="CSV to write (fill its `label` column).")],
    n: Annotated[int, typer.Option(help="How many items to add.")] = 50,
) -> None:
    """Most uncertain, most order-sensitive, most variant-split items first (see view.queue).

    An existing queue is never overwritten: its rows (and the labels filled in) are kept and up
    to N items it does not hold yet are added. Fill the `label` column, then:
    judgekit calibrate --set OUT --label-column label --split all
    """
    ranked = label_queue(load_run(run))
    existing = read_queue(out) if out.is_file() else []
    rows, added = merge_queue(existing, ranked, n)
    write_queue(rows, out)
    labelled = sum(bool(str(row.get(LABEL_COLUMN) or "").strip()) for row in existing)
    if existing:
        typer.echo(f"kept the {len(existing)} rows of {out} ({labelled} labelled); added {added}")
    else:
        typer.echo(f"{added} items written to {out}")
    typer.echo("fill the `label` column, then run")
    typer.echo(f"  judgekit calibrate --rubric RUBRIC --set {out} --label-column label --split all")
