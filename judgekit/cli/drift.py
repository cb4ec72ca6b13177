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
from judgekit.cli import judge_options as jo
from judgekit.cli.app import RubricsDir, app
from judgekit.data.records import InputError
from judgekit.data.sets import DatasetError, load_calibration_set
from judgekit.rubrics import RubricError, load_rubric

_DEFAULT = DriftThresholds()


@app.command()
def drift(
    anchors: Annotated[
        Path | None, typer.Option(help="Anchors file: written with --pin, else re-judged.")
    ] = None,
    pin: Annotated[
        bool, typer.Option("--pin", help="Sample --n items of --set, judge them, write --anchors.")
    ] = False,
    rubric: Annotated[
        str | None, typer.Option(help="--pin: rubric NAME@vN (check: the anchors' own).")
    ] = None,
    set_name: Annotated[str | None, typer.Option("--set", help="--pin: calibration set.")] = None,
    n: Annotated[int, typer.Option(help="--pin: number of anchor items.")] = 30,
    key: Annotated[
        str | None, typer.Option(help="--pin: key, e.g. the calibration card's key.")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="--pin: local copies of the sets.")] = None,
    metric: Annotated[str | None, typer.Option(help="--pin: metric of a multi-metric set.")] = None,
    runs: Annotated[
        list[Path] | None, typer.Option("--runs", help="Judgments files, in time order.")
    ] = None,
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
    model: jo.Model = None,
    backend_kind: jo.Kind = "vllm",
    base_url: jo.BaseUrl = None,
    api_key_env: jo.ApiKeyEnv = "OPENAI_API_KEY",
    max_model_len: jo.MaxModelLen = 4096,
    dtype: jo.Dtype = "auto",
    variant: jo.Variants = None,
    rubrics_dir: RubricsDir = None,
) -> None:
    """Judge drift. Exit codes: 0 no alarm; 1 alarm or change point; 2 bad input."""
    rng = np.random.default_rng(seed)
    try:
        if runs:
            _series(runs, alpha, out)
            return
        if anchors is None:
            raise InputError("give --anchors FILE (with --pin to write it) or --runs")
        backend = jo.make_backend(
            backend_kind,
            model=model,
            base_url=base_url,
            api_key_env=api_key_env,
            max_model_len=max_model_len,
            dtype=dtype,
        )
        if pin:
            if rubric is None or set_name is None:
                raise InputError("--pin needs --rubric and --set")
            chosen = load_rubric(rubric, paths=rubrics_dir or [])
            dataset = load_calibration_set(set_name, data_dir=data_dir, metric=metric)
            items = [r.item for r in sample_records(dataset.records, n, rng)]
            pinned = pin_anchors(
                items, chosen, backend=backend, variants=variant, key=key, set_name=set_name
            )
            anchors.write_text(pinned.model_dump_json(indent=2) + "\n")
            typer.echo(f"{len(items)} anchors pinned in {anchors} (key {pinned.key[:12]})")
            return
        stored = Anchors.model_validate_json(anchors.read_text())
        chosen = load_rubric(rubric or stored.rubric, paths=rubrics_dir or [])
        thresholds = DriftThresholds(
            max_flip_rate=max_flip_rate,
            max_mean_shift=max_mean_shift,
            alpha=alpha,
            tolerance=tolerance,
        )
        report = check_drift(
            stored, chosen, backend=backend, variants=variant, thresholds=thresholds, rng=rng
        )
    except (InputError, RubricError, DatasetError, OSError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
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
