"""``judgekit view``: a run (or two, side by side) as one HTML file that opens from disk."""

from __future__ import annotations

import contextlib
import functools
import http.server
from pathlib import Path
from typing import Annotated

import typer

from judgekit.cli.app import app
from judgekit.view import write_view
from judgekit.view.data import HUMAN_COLUMN


@app.command()
def view(
    run: Annotated[Path, typer.Argument(help="A run's output (JSONL, CSV or Parquet).")],
    run2: Annotated[Path | None, typer.Argument(help="A second run, shown side by side.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="HTML file (default: <stem>.html).")
    ] = None,
    human_column: Annotated[
        str, typer.Option(help="Column of the items file holding a human label, if any.")
    ] = HUMAN_COLUMN,
    serve: Annotated[bool, typer.Option(help="Also serve it on http://127.0.0.1.")] = False,
    port: Annotated[int, typer.Option(help="Port for --serve (0: any free one).")] = 0,
) -> None:
    """Write a self-contained HTML page: every item's verdict, distributions, prompt, filters."""
    target = out or run.with_suffix(".html")
    path = write_view([r for r in (run, run2) if r is not None], target, human_column=human_column)
    typer.echo(f"viewer written to {path}")
    if serve:
        handler = functools.partial(
            http.server.SimpleHTTPRequestHandler, directory=str(path.parent.resolve())
        )
        with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
            typer.echo(f"serving http://127.0.0.1:{server.server_address[1]}/{path.name} (Ctrl-C)")
            with contextlib.suppress(KeyboardInterrupt):
                server.serve_forever()
