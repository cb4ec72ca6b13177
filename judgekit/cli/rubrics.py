"""``judgekit rubrics list|show|validate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from judgekit.cli.app import RubricsDir, rubrics_app
from judgekit.rubrics import (
    RubricError,
    list_rubrics,
    load_rubric,
    load_rubric_dir,
    lock_violations,
)


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
