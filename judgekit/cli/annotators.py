"""``judgekit annotators``: how far a set's annotators agree, and which of them to trust."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from judgekit.calibrate.measure.annotators import METHODS, fit_annotators, inter_annotator_agreement
from judgekit.calibrate.report.annotators import (
    agreement_table,
    build_report,
    reliability_table,
    write_annotator_report,
)
from judgekit.cli.app import app
from judgekit.data.sets import DatasetError, load_calibration_set


@app.command()
def annotators(
    set_name: Annotated[
        str, typer.Option("--set", help="Calibration set name, or the path of a set manifest.")
    ],
    out: Annotated[Path, typer.Option(help="Folder for annotators.json/.md/.png.")],
    model: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Models to fit, first = reference (default: all of {list(METHODS)}; none "
            "on anonymous votes, which have no annotator to model)."
        ),
    ] = None,
    metric: Annotated[str | None, typer.Option(help="Metric of a multi-metric set.")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Local copies of the sets (else $JUDGEKIT_DATA_DIR).")
    ] = None,
    unsure_below: Annotated[
        float, typer.Option(help="Consensus confidence below which an item is unsure.")
    ] = 0.8,
    seed: Annotated[int, typer.Option(help="Seed of MACE's random restarts.")] = 0,
) -> None:
    """Inter-annotator agreement (pairwise Cohen's kappa, Fleiss' kappa, Krippendorff's alpha),
    annotator reliability and posterior consensus (Dawid-Skene, GLAD, MACE, majority)."""
    path = Path(set_name)
    sets_dir, name = (
        (path.parent, path.stem) if path.suffix in (".yaml", ".yml") else (None, set_name)
    )
    try:
        dataset = load_calibration_set(name, data_dir=data_dir, metric=metric, sets_dir=sets_dir)
        names = dataset.annotator_names
        agreement = inter_annotator_agreement(dataset.records, names, dataset.manifest.label_type)
        methods = model or ([] if names is None else ["dawid-skene", "glad", "mace", "majority"])
        fits = [fit_annotators(dataset.records, m, names=names, seed=seed) for m in methods]  # type: ignore[arg-type]
    except (DatasetError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    report = build_report(dataset.manifest.name, fits, agreement, confidence_threshold=unsure_below)
    paths = write_annotator_report(report, out)
    typer.echo(agreement_table(agreement) + "\n")
    typer.echo(reliability_table(report))
    unsure = f"{len(report.unsure)} of {report.n_items} items unsure; " if fits else ""
    typer.echo(f"{unsure}report {paths['markdown']}")
