"""The annotator report: the inter-annotator agreement table, every model's reliabilities side by
side, unsure items, files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from judgekit.calibrate.measure.annotators import AnnotatorFit, InterAnnotatorAgreement
from judgekit.calibrate.report.plots import figure_png
from judgekit.schema import StrictModel


class UnsureItem(StrictModel):
    """An item whose consensus is unsure: low posterior confidence, or the models disagree."""

    id: str
    labels: dict[str, str | None]
    confidence: dict[str, float]


class AnnotatorReport(StrictModel):
    set_name: str
    n_items: int
    confidence_threshold: float
    agreement: InterAnnotatorAgreement
    fits: list[AnnotatorFit]
    unsure: list[UnsureItem]
    agreement_between_models: dict[str, float]


def _least_confidence(item: UnsureItem) -> float:
    return min((c for m, c in item.confidence.items() if m != "majority"), default=1.0)


def build_report(
    set_name: str,
    fits: Sequence[AnnotatorFit],
    agreement: InterAnnotatorAgreement,
    *,
    confidence_threshold: float = 0.8,
) -> AnnotatorReport:
    """Collect the agreement table and the fits (none on anonymous labels); an item is unsure
    when any model's posterior confidence is below the threshold or the models' consensus labels
    differ (a tie counts as a label of its own). Majority vote's "confidence" is a vote share (2 of
    3 = 0.67), not a posterior, so it only counts through its label. Unsure items come least
    confident first."""
    by_model = {f.method: {i.id: i for i in f.items} for f in fits}
    ids = [i.id for i in fits[0].items] if fits else []
    unsure = []
    for item_id in ids:
        found = {m: items[item_id] for m, items in by_model.items() if item_id in items}
        labels = {m: i.label for m, i in found.items()}
        confidence = {m: i.confidence for m, i in found.items()}
        item = UnsureItem(id=item_id, labels=labels, confidence=confidence)
        if len(set(labels.values())) > 1 or _least_confidence(item) < confidence_threshold:
            unsure.append(item)
    unsure.sort(key=_least_confidence)
    base = by_model[fits[0].method] if fits else {}
    between = {
        f"{fits[0].method} vs {f.method}": float(
            np.mean([base[i.id].label == i.label for i in f.items if i.id in base])
        )
        for f in fits[1:]
    }
    return AnnotatorReport(
        set_name=set_name,
        n_items=agreement.n_items,
        confidence_threshold=confidence_threshold,
        agreement=agreement,
        fits=list(fits),
        unsure=unsure,
        agreement_between_models=between,
    )


def agreement_table(agreement: InterAnnotatorAgreement, matrix_up_to: int = 12) -> str:
    """Markdown: the kappa matrix papers print (up to ``matrix_up_to`` annotators), then one row
    per statistic with the items it used."""
    a = agreement
    kind = "quadratic-weighted " if a.kappa_weights else ""
    lines = []
    names = a.annotators or []
    if names and len(names) <= matrix_up_to:
        kappa = {frozenset((p.a, p.b)): p.kappa for p in a.pairs}
        lines += [f"| {kind}Cohen's kappa | " + " | ".join(names) + " |"]
        lines += ["|" + "---|" * (1 + len(names))]
        for x in names:
            cells = [
                "1"
                if x == y
                else f"{kappa[frozenset((x, y))]:.3f}"
                if frozenset((x, y)) in kappa
                else "-"
                for y in names
            ]
            lines.append(f"| {x} | " + " | ".join(cells) + " |")
        lines.append("")

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines += ["| statistic | value | items |", "|---|---|---|"]
    lines.append(
        f"| mean pairwise {kind}Cohen's kappa | {cell(a.mean_pairwise_kappa)} | "
        f"{len(a.pairs)} pairs sharing 2+ items |"
    )
    lines.append(f"| Fleiss' kappa | {cell(a.fleiss_kappa)} | {a.fleiss_n_items} |")
    lines.append(
        f"| Krippendorff's alpha ({a.alpha_level}) | {a.krippendorff_alpha:.3f} | "
        f"{a.alpha_n_items} with 2+ labels |"
    )
    return "\n".join(lines + [f"\n{note}." for note in a.notes])


def reliability_table(report: AnnotatorReport) -> str:
    """Markdown: one row per annotator, reliability (and native parameter) per model."""
    if not report.fits:
        return "No annotator models: they need named annotators."
    names = [a.name for a in report.fits[0].annotators]
    head = "| annotator | labels | " + " | ".join(f.method for f in report.fits) + " |"
    lines = [head, "|" + "---|" * (2 + len(report.fits))]
    for name in names:
        cells = []
        for fit in report.fits:
            stats = {a.name: a for a in fit.annotators}.get(name)
            native = "" if stats is None or stats.native is None else f" ({stats.native:.3f})"
            cells.append("dropped" if stats is None else f"{stats.reliability:.3f}{native}")
        n = {a.name: a.n_labels for a in report.fits[0].annotators}[name]
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _agreement_section(report: AnnotatorReport) -> list[str]:
    return [
        "## Inter-annotator agreement",
        "",
        f"Labels as given (no consensus, no model), on the {report.agreement.label_type} scale. "
        "Point values: no intervals yet.",
        "",
        agreement_table(report.agreement),
        "",
    ]


def _models_section(report: AnnotatorReport, limit: int) -> list[str]:
    lines = [
        "## Annotator reliability",
        "",
        f"{report.n_items} items. Reliability = expected agreement of the annotator's label with "
        "the model's posterior consensus; in brackets the model's own parameter ("
        + "; ".join(f"{f.method}: {f.native_parameter}" for f in report.fits)
        + ").",
        "",
        reliability_table(report),
        "",
        "## Confusion matrices (posterior true label x given label, row-normalised)",
    ]
    for fit in report.fits:
        lines += ["", f"### {fit.method}", ""]
        for a in fit.annotators:
            rows = "; ".join(
                f"{t}: " + " ".join("-" if v is None else f"{v:.2f}" for v in row)
                for t, row in zip(fit.labels, a.confusion, strict=True)
            )
            lines.append(f"- {a.name} (columns {' '.join(fit.labels)}): {rows}")
    lines += ["", "## Consensus between models", ""]
    lines += [
        f"- {k}: {v:.3f} of items get the same label"
        for k, v in report.agreement_between_models.items()
    ]
    lines += [
        "",
        f"## Unsure items ({len(report.unsure)}: confidence < {report.confidence_threshold} "
        f"under some model, or the models disagree; first {limit})",
        "",
        "| id | " + " | ".join(f.method for f in report.fits) + " |",
        "|" + "---|" * (1 + len(report.fits)),
    ]
    for item in report.unsure[:limit]:
        cells = [
            f"{item.labels.get(f.method)} ({item.confidence.get(f.method, float('nan')):.2f})"
            for f in report.fits
        ]
        lines.append(f"| {item.id} | " + " | ".join(cells) + " |")
    return lines


def _markdown(report: AnnotatorReport, limit: int = 20) -> str:
    lines = [f"# Annotators: {report.set_name}", "", *_agreement_section(report)]
    if report.fits:
        lines += _models_section(report, limit)
    else:
        lines.append(reliability_table(report))
    return "\n".join(lines) + "\n"


def _plot(report: AnnotatorReport) -> bytes:
    """Grouped bars: reliability per annotator, one bar per model."""
    names = [a.name for a in report.fits[0].annotators]
    fig = Figure(figsize=(1.6 * len(names) + 2, 3.5))
    ax = fig.add_subplot()
    width = 0.8 / len(report.fits)
    for k, fit in enumerate(report.fits):
        rel = {a.name: a.reliability for a in fit.annotators}
        ax.bar(
            np.arange(len(names)) + k * width,
            [rel.get(n, np.nan) for n in names],
            width,
            label=fit.method,
        )
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, labels=names)
    ax.set_ylim(0, 1)
    ax.set_ylabel("agreement with posterior consensus")
    ax.set_title(f"Annotator reliability: {report.set_name}")
    ax.legend(fontsize="small", loc="lower right")
    return figure_png(fig)


def write_annotator_report(report: AnnotatorReport, out_dir: Path | str) -> dict[str, Path]:
    """``annotators.json``, ``annotators.md`` and (with model fits) ``annotators.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "annotators.json", "markdown": out / "annotators.md"}
    paths["json"].write_text(report.model_dump_json(indent=2) + "\n")
    paths["markdown"].write_text(_markdown(report))
    if report.fits:
        paths["png"] = out / "annotators.png"
        paths["png"].write_bytes(_plot(report))
    return paths
