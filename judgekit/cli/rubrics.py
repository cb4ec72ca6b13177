"""``judgekit rubrics list|show|validate|new``."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from judgekit.backends import JudgeSpec, open_backend
from judgekit.cli.app import Columns, RubricsDir, pairs_option, rubrics_app
from judgekit.cli.judge_options import judge_options
from judgekit.cli.quiet import quiet
from judgekit.data.items import check_items, read_items
from judgekit.judging.probe import DEFAULT_WARN_MASS, format_probe, probe_rubric
from judgekit.rubrics import (
    Rubric,
    RubricError,
    list_rubrics,
    load_rubric,
    load_rubric_dir,
    lock_violations,
    yank_reason,
)
from judgekit.rubrics.scaffold import ScaffoldMode, new_rubric


@rubrics_app.command("list")
def rubrics_list(rubrics_dir: RubricsDir = None) -> None:
    """Every rubric version on the search path (a yanked one is not what NAME alone means)."""
    for rubric in list_rubrics(paths=rubrics_dir or []):
        yanked = "  (yanked)" if yank_reason(rubric) else ""
        typer.echo(
            f"{rubric.ref:<28} {rubric.manifest.mode:<10} {len(rubric.variants)} variants  "
            f"{rubric.hash[:12]}  {rubric.path}{yanked}"
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
@judge_options
def rubrics_validate(
    paths: Annotated[list[Path], typer.Argument(help="Version folders or rubric roots.")],
    judge_spec: JudgeSpec,
    probe: Annotated[
        Path | None,
        typer.Option(
            help="Also judge the first --probe-n items of this file and warn where the label "
            "mass at the answer slot is low (per variant and criterion)."
        ),
    ] = None,
    probe_n: Annotated[int, typer.Option(help="Items judged by --probe.")] = 8,
    warn_mass: Annotated[
        float, typer.Option(help="--probe warns below this mean label mass.")
    ] = DEFAULT_WARN_MASS,
    column: Columns = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show engine logs in the terminal.")
    ] = False,
) -> None:
    """Validate rubric folders; for a root with a lock file, also check published hashes.

    With --probe FILE, each rubric judges a few items of FILE (the judge options pick the judge)
    and the label mass is reported per variant and criterion, with a warning where it is low.
    """
    failed = False
    found: list[Rubric] = []
    for path in paths:
        try:
            if (path / "rubric.yaml").is_file():
                found.append(load_rubric_dir(path))
                typer.echo(f"ok  {found[-1].ref}")
                continue
            for rubric in list_rubrics(paths=[path]):
                if rubric.path.is_relative_to(path):
                    found.append(rubric)
                    typer.echo(f"ok  {rubric.ref}")
            for problem in lock_violations(path):
                typer.echo(f"changed  {problem}")
                failed = True
        except RubricError as error:
            typer.echo(f"error  {error}")
            failed = True
    if probe is not None and not failed:
        _probe(found, probe, probe_n, warn_mass, judge_spec, pairs_option(column), verbose)
    if failed:
        raise typer.Exit(1)


def _probe(
    rubrics: list[Rubric],
    path: Path,
    n: int,
    warn_mass: float,
    spec: JudgeSpec,
    columns: dict[str, str],
    verbose: bool,
) -> None:
    """Judge the first ``n`` items of ``path`` with each rubric; items are checked first."""
    chosen = {r.ref: read_items(path, r.manifest.mode, columns=columns)[:n] for r in rubrics}
    for rubric in rubrics:
        check_items(chosen[rubric.ref], rubric, str(path))
    log = Path(tempfile.gettempdir()) / f"judgekit-probe-{path.stem}.log"
    with quiet(log, verbose=verbose):
        backend = open_backend(spec)
        try:
            results = {r.ref: probe_rubric(r, chosen[r.ref], backend=backend) for r in rubrics}
        finally:
            backend.close()
    for rubric in rubrics:
        typer.echo(f"probe {rubric.ref} on {len(chosen[rubric.ref])} items of {path}:")
        for line in format_probe(rubric, results[rubric.ref], warn_mass):
            typer.echo(f"  {line}")


@rubrics_app.command("new")
def rubrics_new(
    name: Annotated[str, typer.Argument(help="Rubric name (lower case, digits, _).")],
    mode: Annotated[
        ScaffoldMode, typer.Option(help="pointwise, pairwise (labels A/B) or checklist (yes/no).")
    ],
    labels: Annotated[
        str,
        typer.Option(
            help="LABEL[=VALUE],... e.g. pass=1,fail=0 or 1,2,3 (values: the number a label "
            "spells, else its position). Pairwise: A,B; checklist default: Yes=1,No=0."
        ),
    ] = "",
    criteria: Annotated[
        str, typer.Option(help="Comma-separated criteria judged in one run (optional).")
    ] = "",
    description: Annotated[str | None, typer.Option(help="What the rubric judges.")] = None,
    directory: Annotated[
        Path, typer.Option("--dir", help="Rubrics folder to write NAME/v1 into.")
    ] = Path("rubrics"),
) -> None:
    """Write a valid rubric folder (version 1) to edit: its EDIT markers say what to write."""
    rubric = new_rubric(
        directory,
        name,
        mode=mode,
        labels=labels,
        criteria=[c.strip() for c in criteria.split(",") if c.strip()],
        description=description,
    )
    typer.echo(f"wrote {rubric.path} ({rubric.ref}, {len(rubric.variants)} variants)")
    typer.echo(
        "edit its EDIT markers, then: judgekit rubrics validate "
        f"{rubric.path} --probe ITEMS.jsonl; judge with --rubric {name} "
        f"--rubrics-dir {directory}"
    )
