"""The typer app and what its commands share; each command lives in its own module."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

app = typer.Typer(no_args_is_help=True, help="LLM-as-a-judge with versioned rubrics.")
rubrics_app = typer.Typer(no_args_is_help=True, help="List, show and validate rubrics.")
app.add_typer(rubrics_app, name="rubrics")
err = Console(stderr=True)

BackendKind = Literal["vllm", "openai"]
RubricsDir = Annotated[
    list[Path] | None, typer.Option("--rubrics-dir", help="Extra rubric folder(s), searched first.")
]


def columns_option(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        field, sep, column = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected FIELD=COLUMN, got {pair!r}", param_hint="--column")
        out[field] = column
    return out


def main() -> None:
    app()
