"""A calibration card as files a reviewer reads: ``card.json``, ``report.md``, ``report.html``.

Both documents are rendered from one list of tables, so a number cannot differ between them. The
HTML is self-contained (plots are PNG data URIs, no external links) so it can be mailed or
attached to a pull request. Plots use matplotlib's Agg canvas directly: no pyplot global state,
no display needed. Every plot function takes arrays and returns PNG bytes.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from judgekit.calibrate.measure.card import CalibrationCard, JudgeOutputs
from judgekit.calibrate.measure.outputs import preference_for_a
from judgekit.calibrate.report.ensemble_tables import ensemble_tables
from judgekit.calibrate.report.plots import (
    plot_confusion,
    plot_length,
    plot_reliability,
    plot_variants,
)
from judgekit.calibrate.report.tables import Table, card_tables, headline_table
from judgekit.data.sets import CalibrationRecord
from judgekit.data.split import split_records

__all__ = ["write_report"]


def _split_rows(
    card: CalibrationCard, records: Sequence[CalibrationRecord], outputs: JudgeOutputs
) -> tuple[np.ndarray, list[str]]:
    """Output rows of the card's items (split, with consensus) and their human labels."""
    split = card.split
    chosen = [
        r
        for r in split_records(records, split.name, split.heldout_fraction, split.salt)
        if r.consensus is not None
    ]
    row = {item_id: i for i, item_id in enumerate(outputs.item_ids)}
    kept = [r for r in chosen if r.id in row]
    return np.array([row[r.id] for r in kept], dtype=int), [str(r.consensus) for r in kept]


def _length_plot(
    card: CalibrationCard,
    records: Sequence[CalibrationRecord] | None,
    outputs: JudgeOutputs | None,
) -> bytes | None:
    if outputs is None or outputs.lengths is None:
        return None
    if records is not None:
        rows, groups = _split_rows(card, records, outputs)
    else:
        rows, groups = np.arange(len(outputs.item_ids)), None
    lengths = outputs.lengths[rows]
    if lengths.ndim == 2:
        x = lengths[:, 0] - lengths[:, 1]
        y = preference_for_a(outputs.probs[rows], outputs.labels)
        xlabel, ylabel = "length of A - length of B (characters)", "judge preference for A"
    else:
        x, y = lengths, outputs.scores[rows]
        xlabel, ylabel = "answer length (characters)", "judge expected score"
    valid = np.isfinite(y)
    if not valid.any():
        return None
    if groups is not None:
        groups = [g for g, ok in zip(groups, valid, strict=True) if ok]
    return plot_length(x[valid], y[valid], xlabel=xlabel, ylabel=ylabel, groups=groups)


def _plots(
    card: CalibrationCard,
    records: Sequence[CalibrationRecord] | None,
    outputs: JudgeOutputs | None,
) -> dict[str, tuple[str, bytes]]:
    """File stem -> (caption, PNG) for every plot the card's data support."""
    plots = {
        "confusion": (
            "Confusion matrix: human consensus (rows) vs judge (columns), invalid included",
            plot_confusion(
                np.array(card.confusion.counts), card.confusion.rows, card.confusion.columns
            ),
        )
    }
    if card.reliability:
        bins = card.reliability
        plots["reliability"] = (
            "Reliability: judge probability of its label vs how often humans agreed",
            plot_reliability(
                [b.mean_probability for b in bins],
                [b.human_agreement for b in bins],
                [b.n for b in bins],
            ),
        )
    if card.ensemble is not None and card.ensemble.reliability:
        bins = card.ensemble.reliability
        plots["reliability_learned"] = (
            "Reliability after the learned ensemble (calibrated probabilities)",
            plot_reliability(
                [b.mean_probability for b in bins],
                [b.human_agreement for b in bins],
                [b.n for b in bins],
            ),
        )
    if (length := _length_plot(card, records, outputs)) is not None:
        plots["length"] = ("Judge score vs answer length, coloured by human label", length)
    named = [(v.variant, v.kappa) for v in card.per_variant if v.kappa is not None]
    if named:
        plots["variants"] = (
            "Agreement per prompt variant (kappa, 95% CI); dashed: the ensemble",
            plot_variants(
                [name for name, _ in named],
                [k.estimate for _, k in named],
                [k.low for _, k in named],
                [k.high for _, k in named],
                reference=card.kappa.estimate,
            ),
        )
    return plots


# --------------------------------------------------------------------------- rendering


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(card: CalibrationCard, tables: list[Table], plots: dict[str, str]) -> str:
    verdict = "TRUSTED" if card.verdict.trusted else "NOT TRUSTED"
    lines = [
        f"# Calibration: {card.judge_model} on {card.rubric_ref} ({card.set_name}, "
        f"{card.split.name})",
        "",
        f"**{verdict}**",
        "",
        *(f"- {_md_cell(r)}" for r in card.verdict.reasons),
        "",
    ]
    if (sentence := card.ceiling_sentence()) is not None:
        lines += [sentence, ""]
    for table in tables:
        lines += [f"## {table.title}", ""]
        lines.append("| " + " | ".join(_md_cell(h) for h in table.header) + " |")
        lines.append("|" + "---|" * len(table.header))
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
        lines.append("")
    for stem, caption in plots.items():
        lines += [f"![{_md_cell(caption)}]({stem}.png)", ""]
    if card.notes:
        lines += ["## Notes", "", *(f"- {_md_cell(n)}" for n in card.notes), ""]
    return "\n".join(lines)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
td, th { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
.trusted { color: #176b20; } .untrusted { color: #a11; }
figure { margin: 1rem 0; } figcaption { font-size: 0.9rem; color: #555; }
"""


def _html(
    card: CalibrationCard,
    tables: list[Table],
    plots: dict[str, tuple[str, bytes]],
    viewer: str | None = None,
) -> str:
    e = html.escape
    trusted = card.verdict.trusted
    title = (
        f"Calibration: {card.judge_model} on {card.rubric_ref} ({card.set_name}, {card.split.name})"
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f'<h2 class="{"trusted" if trusted else "untrusted"}">'
        f"{'TRUSTED' if trusted else 'NOT TRUSTED'}</h2>",
        "<ul>" + "".join(f"<li>{e(r)}</li>" for r in card.verdict.reasons) + "</ul>",
    ]
    if (sentence := card.ceiling_sentence()) is not None:
        parts.append(f"<p>{e(sentence)}</p>")
    if viewer is not None:
        parts.append(f'<p><a href="{e(viewer)}">Every verdict in the run viewer</a></p>')
    for table in tables:
        parts.append(f"<h2>{e(table.title)}</h2><table>")
        if any(table.header):
            parts.append("<tr>" + "".join(f"<th>{e(h)}</th>" for h in table.header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in table.rows]
        parts.append("</table>")
    for caption, png in plots.values():
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure><img alt="{e(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{e(caption)}</figcaption></figure>"
        )
    if card.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in card.notes))
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    card: CalibrationCard,
    outputs_dir: Path | str,
    *,
    records: Sequence[CalibrationRecord] | None = None,
    outputs: JudgeOutputs | None = None,
    viewer: Path | None = None,
) -> dict[str, Path]:
    """Write ``card.json``, ``report.md`` (+ its PNGs) and a self-contained ``report.html``.

    ``records`` and ``outputs`` (the ones the card was computed from) add the score-vs-length
    scatter, which needs per-item data the card does not keep. ``viewer`` (the run's viewer page,
    ``judgekit view``) is linked from the HTML. Returns name -> path.
    """
    directory = Path(outputs_dir)
    directory.mkdir(parents=True, exist_ok=True)
    tables = [headline_table(card), *card_tables(card), *ensemble_tables(card)]
    plots = _plots(card, records, outputs)
    paths = {"card": directory / "card.json"}
    paths["card"].write_text(card.model_dump_json(indent=2) + "\n", encoding="utf-8")
    for stem, (_, png) in plots.items():
        paths[stem] = directory / f"{stem}.png"
        paths[stem].write_bytes(png)
    paths["markdown"] = directory / "report.md"
    captions = {stem: caption for stem, (caption, _) in plots.items()}
    paths["markdown"].write_text(_markdown(card, tables, captions), encoding="utf-8")
    paths["html"] = directory / "report.html"
    link = None if viewer is None else os.path.relpath(viewer, directory)
    paths["html"].write_text(_html(card, tables, plots, link), encoding="utf-8")
    return paths
