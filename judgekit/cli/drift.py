"""``judgekit drift``: pin anchors, re-judge them and compare, or follow a score series of runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from judgekit.audit.drift import (
    Anchors,
    DriftThresholds,
    check_drift,
    pin_anchors,
    sample_records,
)
from judgekit.audit.series import plot_series, run_series, series_markdown
from judgekit.backends import JudgeSpec, open_backend
from judgekit.cards import load_card
from judgekit.cli.app import RubricsDir, app
from judgekit.cli.judge_options import judge_options
from judgekit.cli.quiet import quiet
from judgekit.data.records import InputError, OutputExistsError
from judgekit.data.sets import load_calibration_set
from judgekit.rubrics import load_rubric

_DEFAULT = DriftThresholds()
_SIDECARS = (".items.", ".manifest.")


@app.command()
@judge_options
def drift(
    judge_spec: JudgeSpec,
    runs: Annotated[
        list[Path] | None,
        typer.Argument(help="Runs' outputs in time order (a shell glob works; sidecars skipped)."),
    ] = None,
    anchors: Annotated[
        Path | None, typer.Option(help="Anchors file: written with --pin, else re-judged.")
    ] = None,
    pin: Annotated[
        bool, typer.Option("--pin", help="Sample --n items of --set, judge them, write --anchors.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option(help="--pin: replace an existing anchors file.")
    ] = False,
    rubric: Annotated[
        str | None, typer.Option(help="--pin: rubric NAME@vN (check: the anchors' own).")
    ] = None,
    set_name: Annotated[str | None, typer.Option("--set", help="--pin: calibration set.")] = None,
    n: Annotated[int, typer.Option(help="--pin: number of anchor items.")] = 30,
    card: Annotated[
        Path | None,
        typer.Option(help="--pin: the calibration card the anchors belong to (checked; its key)."),
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="--pin: key of the anchors (default: card's).")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="--pin: local copies of the sets.")] = None,
    metric: Annotated[str | None, typer.Option(help="--pin: metric of a multi-metric set.")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for drift.json/.md (and .png).")] = None,
    max_flip_rate: Annotated[
        float, typer.Option(help="Alarm above this.")
    ] = _DEFAULT.max_flip_rate,
    max_mean_shift: Annotated[
        float, typer.Option(help="Alarm above this |mean shift|.")
    ] = _DEFAULT.max_mean_shift,
    alpha: Annotated[float, typer.Option(help="Test level (paired test; change point).")] = 0.01,
    tolerance: Annotated[
        float, typer.Option(help="Per-item shifts below this are numerical noise.")
    ] = _DEFAULT.tolerance,
    seed: Annotated[int, typer.Option(help="Sampling and permutation seed.")] = 0,
    variant: Annotated[
        list[str] | None, typer.Option(help="Prompt variant(s) (default: all).")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show engine logs instead of <anchors>.log.")
    ] = False,
    rubrics_dir: RubricsDir = None,
) -> None:
    """Judge drift. Exit codes: 0 no alarm; 1 alarm or change point; 2 bad input; 4 internal."""
    rng = np.random.default_rng(seed)
    if runs:
        _series([r for r in runs if not any(s in r.name for s in _SIDECARS)], alpha, out)
        return
    if anchors is None:
        raise InputError("give --anchors FILE (with --pin to write it) or runs to follow")
    if pin:
        if rubric is None or set_name is None:
            raise InputError("--pin needs --rubric and --set")
        if anchors.exists() and not overwrite:
            raise OutputExistsError(f"{anchors} exists: pass --overwrite to replace it")
        chosen = load_rubric(rubric, paths=rubrics_dir or [])
        dataset = load_calibration_set(set_name, data_dir=data_dir, metric=metric)
        items = [r.item for r in sample_records(dataset.records, n, rng)]
    else:
        if not anchors.is_file():
            raise InputError(f"{anchors}: no such anchors file (write it with --pin)")
        stored = Anchors.model_validate_json(anchors.read_text())
        chosen = load_rubric(rubric or stored.rubric, paths=rubrics_dir or [])
    with quiet(anchors.with_suffix(".log"), verbose=verbose):
        backend = open_backend(judge_spec)
        try:
            if pin:
                named = load_card(card, chosen, backend.identity) if card is not None else None
                pinned = pin_anchors(
                    items,
                    chosen,
                    backend=backend,
                    variants=variant,
                    key=key or (named.card.key if named else None),
                    set_name=set_name,
                )
                anchors.write_text(pinned.model_dump_json(indent=2) + "\n")
            else:
                report = check_drift(
                    stored,
                    chosen,
                    backend=backend,
                    variants=variant,
                    thresholds=DriftThresholds(
                        max_flip_rate=max_flip_rate,
                        max_mean_shift=max_mean_shift,
                        alpha=alpha,
                        tolerance=tolerance,
                    ),
                    rng=rng,
                )
        finally:
            backend.close()
    if pin:
        typer.echo(f"{len(items)} anchors pinned in {anchors} (key {pinned.key[:12]})")
        return
    typer.echo(report.format())
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "drift.json").write_text(report.model_dump_json(indent=2) + "\n")
        (out / "drift.md").write_text("```\n" + report.format() + "\n```\n")
    if report.alarm:
        raise typer.Exit(1)


def _series(runs: list[Path], alpha: float, out: Path | None) -> None:
    report = run_series(runs, alpha=alpha)
    markdown = series_markdown(report)
    typer.echo(markdown)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "series.json").write_text(report.model_dump_json(indent=2) + "\n")
        (out / "series.md").write_text(markdown)
        (out / "series.png").write_bytes(plot_series(report))
    if report.change_point is not None:
        raise typer.Exit(1)
