"""A calibration card as files a reviewer reads: ``card.json``, ``report.md``, ``report.html``.

Both documents are rendered from one list of tables, so a number cannot differ between them. The
HTML is self-contained (plots are PNG data URIs, no external links) so it can be mailed or
attached to a pull request. Plots use matplotlib's Agg canvas directly: no pyplot global state,
no display needed. Every plot function takes arrays and returns PNG bytes.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from judgekit.calibration import (
    CalibrationCard,
    Interval,
    JudgeOutputs,
    LengthFigure,
    preference_for_a,
)
from judgekit.datasets import CalibrationRecord, heldout_mask

__all__ = [
    "plot_confusion",
    "plot_length",
    "plot_reliability",
    "plot_variants",
    "write_report",
]

_DPI = 100


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    return buffer.getvalue()


def plot_confusion(counts: np.ndarray, rows: Sequence[str], columns: Sequence[str]) -> bytes:
    """Heatmap of human (rows) x judge (columns) counts, each cell annotated with its count."""
    counts = np.asarray(counts)
    fig = Figure(figsize=(1.2 * len(columns) + 1.5, 1.0 * len(rows) + 1.2))
    ax = fig.add_subplot()
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    threshold = counts.max() / 2 if counts.size else 0
    for (i, j), value in np.ndenumerate(counts):
        colour = "white" if value > threshold else "black"
        ax.text(j, i, str(value), ha="center", va="center", color=colour)
    ax.set_xticks(range(len(columns)), labels=list(columns))
    ax.set_yticks(range(len(rows)), labels=list(rows))
    ax.set_xlabel("judge")
    ax.set_ylabel("human consensus")
    ax.set_title("Confusion matrix")
    return _png(fig)


def plot_reliability(
    mean_probability: Sequence[float], human_agreement: Sequence[float], n: Sequence[int]
) -> bytes:
    """Reliability diagram: per bin, the judge's probability of its label vs human agreement.

    Points on the diagonal mean the judge's confidence can be read as a probability of agreeing
    with the humans; marker area grows with the bin's item count.
    """
    p, a, counts = (np.asarray(x, dtype=float) for x in (mean_probability, human_agreement, n))
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    if p.size:
        sizes = 20 + 300 * counts / counts.max()
        ax.plot(p, a, color="tab:blue", alpha=0.5)
        ax.scatter(p, a, s=sizes, color="tab:blue", label="judge (area ~ items)")
        for x, y, k in zip(p, a, counts, strict=True):
            ax.annotate(f"{int(k)}", (x, y), textcoords="offset points", xytext=(6, -10))
    ax.set_xlim(-0.03, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("judge probability of its predicted label")
    ax.set_ylabel("share agreeing with the human consensus")
    ax.set_title("Reliability")
    ax.legend(loc="upper left", fontsize="small")
    return _png(fig)


def plot_length(
    x: Sequence[float],
    y: Sequence[float],
    *,
    xlabel: str,
    ylabel: str,
    groups: Sequence[str] | None = None,
) -> bytes:
    """Judge score against answer length (or length difference), coloured by human label."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    if groups is None:
        ax.scatter(xs, ys, s=10, alpha=0.5)
    else:
        labels = np.asarray(groups, dtype=object)
        for name in sorted(set(labels.tolist())):
            mask = labels == name
            ax.scatter(xs[mask], ys[mask], s=10, alpha=0.5, label=f"human: {name}")
        ax.legend(fontsize="small")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("Judge score vs length")
    return _png(fig)


def plot_variants(
    names: Sequence[str],
    estimates: Sequence[float],
    lows: Sequence[float],
    highs: Sequence[float],
    *,
    reference: float | None = None,
) -> bytes:
    """Agreement per prompt variant with CI whiskers; ``reference`` is the ensemble's value."""
    est = np.asarray(estimates, dtype=float)
    err = np.vstack([est - np.asarray(lows, dtype=float), np.asarray(highs, dtype=float) - est])
    fig = Figure(figsize=(1.0 * len(names) + 3, 4))
    ax = fig.add_subplot()
    ax.bar(range(len(names)), est, yerr=err, capsize=6, color="tab:blue", alpha=0.8)
    if reference is not None:
        ax.axhline(reference, color="tab:red", linestyle="--", label=f"ensemble {reference:.3f}")
        ax.legend(fontsize="small")
    ax.set_xticks(range(len(names)), labels=list(names), rotation=20)
    ax.set_ylabel("kappa vs human consensus (95% CI)")
    ax.set_title("Agreement per prompt variant")
    return _png(fig)


# --------------------------------------------------------------------------- document model


@dataclass(frozen=True)
class _Table:
    title: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _ci(x: Interval | None) -> str:
    return "n/a" if x is None else x.format()


def _headline(card: CalibrationCard) -> _Table:
    rows = [
        ("verdict", "TRUSTED" if card.verdict.trusted else "NOT TRUSTED"),
        ("items compared (n)", str(card.n)),
        ("invalid verdicts", f"{card.n_invalid} ({card.invalid_rate:.1%})"),
        ("kappa, invalid counted as disagreement (headline)", _ci(card.kappa)),
        ("kappa, valid verdicts only", _ci(card.kappa_valid_only)),
        ("accuracy, invalid counted as wrong", _ci(card.accuracy)),
        ("trust metric", card.trust_metric),
    ]
    if card.ordinal is not None:
        rows.append(("quadratic weighted kappa", _ci(card.ordinal.weighted_kappa_quadratic)))
    if card.human_ceiling is not None:
        rows.append(("judge / human-ceiling ratio", _f(card.human_ceiling.ratio)))
    return _Table("Headline", ("", ""), rows)


def _tables(card: CalibrationCard) -> list[_Table]:
    tables = [
        _Table(
            "Provenance",
            ("", ""),
            [
                ("rubric", f"{card.rubric_ref} ({card.rubric_hash})"),
                ("judge", f"{card.judge_model} (fingerprint {card.judge_fingerprint})"),
                ("calibration set", f"{card.set_name} (sha256 {card.set_sha256})"),
                (
                    "split",
                    f"{card.split.name}: {card.split.n_split} of {card.split.n_set} records "
                    f"(held-out fraction {card.split.heldout_fraction}, salt {card.split.salt})",
                ),
                ("left out", f"{card.n_no_consensus} without a human consensus"),
                ("missing outputs", f"{card.n_missing_outputs} (counted invalid)"),
                ("judge outputs", card.outputs_source),
                ("created", f"{card.created}, judgekit {card.judgekit_version}"),
                ("card key", card.key),
            ],
        ),
        _Table(
            "Confusion matrix (rows: human consensus, columns: judge)",
            ("human \\ judge", *card.confusion.columns),
            [
                (row, *(str(c) for c in counts))
                for row, counts in zip(card.confusion.rows, card.confusion.counts, strict=True)
            ],
        ),
    ]
    if card.ordinal is not None:
        o = card.ordinal
        tables.append(
            _Table(
                "Ordinal agreement (valid verdicts)",
                ("metric", "estimate [95% CI]"),
                [
                    ("linear weighted kappa", _ci(o.weighted_kappa_linear)),
                    ("quadratic weighted kappa", _ci(o.weighted_kappa_quadratic)),
                    ("spearman (score vs human mean)", _ci(o.spearman)),
                    ("kendall tau-b", _ci(o.kendall)),
                    ("pearson", _ci(o.pearson)),
                ],
            )
        )
    if card.alpha:
        tables.append(
            _Table(
                "Krippendorff's alpha, judge as one more rater",
                ("level", "estimate [95% CI]"),
                [(level, _ci(value)) for level, value in card.alpha.items()],
            )
        )
    if (c := card.human_ceiling) is not None:
        tables.append(
            _Table(
                f"Human ceiling ({c.metric})",
                ("", ""),
                [
                    ("annotators", str(c.n_annotators)),
                    ("mean annotator-annotator", _f(c.mean_pairwise_annotator)),
                    ("judge vs full consensus", _f(c.judge_vs_consensus)),
                    ("human vs others' majority (leave-one-out)", _f(c.mean_loo_human)),
                    ("judge vs the same majorities", _f(c.mean_loo_judge)),
                    ("ratio", _f(c.ratio)),
                    ("consensus ties dropped", str(c.ties_dropped)),
                    ("invalid verdicts", c.invalid_handling),
                ],
            )
        )
    if card.per_variant:
        tables.append(
            _Table(
                "Per prompt variant",
                ("variant", "kappa [95% CI]", "spearman [95% CI]", "invalid"),
                [
                    *(
                        (v.variant, _ci(v.kappa), _ci(v.spearman), str(v.n_invalid))
                        for v in card.per_variant
                    ),
                    (
                        "ensemble (the verdict)",
                        _ci(card.kappa),
                        _ci(card.ordinal.spearman) if card.ordinal else "n/a",
                        str(card.n_invalid),
                    ),
                ],
            )
        )
    tables += _variant_tables(card)
    if (p := card.position) is not None:
        tables.append(
            _Table(
                "Position bias",
                ("", "estimate [95% CI]"),
                [
                    ("flip rate (verdict changes with order)", _ci(p.flip_rate)),
                    ("first-position pick rate, before swap (per order)", _ci(p.first_pick_before)),
                    ("answer-A (first in AB) pick rate, after soft swap", _ci(p.first_pick_after)),
                    ("valid / invalid items", f"{p.n_valid} / {p.n_invalid}"),
                ],
            )
        )
    tables += _length_tables(card)
    if card.reliability:
        tables.append(
            _Table(
                f"Reliability (expected calibration error {_f(card.expected_calibration_error)})",
                ("probability bin", "items", "mean probability", "human agreement"),
                [
                    (
                        f"[{b.low:.1f}, {b.high:.1f}{']' if b.high >= 1.0 else ')'}",
                        str(b.n),
                        _f(b.mean_probability),
                        _f(b.human_agreement),
                    )
                    for b in card.reliability
                ],
            )
        )
    t = card.thresholds
    tables.append(
        _Table(
            "Thresholds",
            ("check", "threshold"),
            [
                ("trust metric 95% CI lower bound", f">= {t.min_kappa_ci_low}"),
                ("judge / human-ceiling ratio", f">= {t.min_ceiling_ratio}"),
                ("invalid rate", f"<= {t.max_invalid_rate}"),
                ("items", f">= {t.min_n}"),
            ],
        )
    )
    return tables


def _slope(figure: LengthFigure | None) -> tuple[str, str, str]:
    if figure is None:
        return ("n/a", "n/a", "")
    return (
        figure.model,
        f"{figure.slope:.3f} [{figure.ci_low:.3f}, {figure.ci_high:.3f}]",
        str(figure.n),
    )


def _length_tables(card: CalibrationCard) -> list[_Table]:
    """Length slope on this split, and with a frozen dev model: the slope and agreement
    before/after the correction plus the coefficients, so a reader can check what moved."""
    rows = []
    if card.length is not None:
        rows.append(("as judged (this split's own length scale)", *_slope(card.length)))
    if card.length_model is not None:
        rows.append(("before the frozen correction", *_slope(card.length_before)))
        rows.append(("after the frozen correction", *_slope(card.length_after)))
    if not rows:
        return []
    tables = [_Table("Length bias", ("", "model", "slope [95% CI]", "n"), rows)]
    if (stored := card.length_model) is not None:
        coefficients = stored["coefficients"]
        tables.append(
            _Table(
                f"Frozen length model ({stored['kind']}, fitted on {stored['fitted_on']}, "
                f"n = {stored['n']}; lengths in {stored['length_unit']})",
                ("coefficient", "value"),
                [
                    (name, "n/a" if value is None else f"{value:.4g}")
                    for name, value in coefficients.items()
                ],
            )
        )
    if card.length_agreement:
        tables.append(
            _Table(
                "Agreement before / after the length correction",
                ("metric", "before [95% CI]", "after [95% CI]"),
                [(a.metric, _ci(a.before), _ci(a.after)) for a in card.length_agreement],
            )
        )
    return tables


def _variant_tables(card: CalibrationCard) -> list[_Table]:
    """Agreement across prompt variants and where the score variance comes from."""
    tables = []
    if card.variant_alpha:
        tables.append(
            _Table(
                "Krippendorff's alpha across prompt variants (variants as raters)",
                ("level", "estimate [95% CI]"),
                [(level, _ci(value)) for level, value in card.variant_alpha.items()],
            )
        )
    if (v := card.variance) is not None:
        truncated = (
            f"; negative estimates set to 0: {', '.join(v.truncated)}" if v.truncated else ""
        )
        tables.append(
            _Table(
                f"Variance decomposition of per-variant scores ({v.n_items} items x "
                f"{v.n_variants} variants, {v.n_dropped} items dropped{truncated})",
                ("component", "variance", "share"),
                [
                    ("item (what the judge should measure)", f"{v.item_var:.4g}", _f(v.item_share)),
                    (
                        "variant (wording shifts all items)",
                        f"{v.variant_var:.4g}",
                        _f(v.variant_share),
                    ),
                    (
                        "residual (wordings disagree item by item)",
                        f"{v.residual_var:.4g}",
                        _f(v.residual_share),
                    ),
                ],
            )
        )
    return tables


# --------------------------------------------------------------------------- plots for a card


def _split_rows(
    card: CalibrationCard, records: Sequence[CalibrationRecord], outputs: JudgeOutputs
) -> tuple[np.ndarray, list[str]]:
    """Output rows of the card's items (split, with consensus) and their human labels."""
    chosen = [r for r in records if r.consensus is not None]
    if card.split.name != "all":
        mask = heldout_mask([r.id for r in chosen], card.split.heldout_fraction, card.split.salt)
        chosen = [
            r for r, m in zip(chosen, mask, strict=True) if m == (card.split.name == "heldout")
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


def _markdown(card: CalibrationCard, tables: list[_Table], plots: dict[str, str]) -> str:
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


def _html(card: CalibrationCard, tables: list[_Table], plots: dict[str, tuple[str, bytes]]) -> str:
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
) -> dict[str, Path]:
    """Write ``card.json``, ``report.md`` (+ its PNGs) and a self-contained ``report.html``.

    ``records`` and ``outputs`` (the ones the card was computed from) add the score-vs-length
    scatter, which needs per-item data the card does not keep. Returns name -> path.
    """
    directory = Path(outputs_dir)
    directory.mkdir(parents=True, exist_ok=True)
    tables = [_headline(card), *_tables(card)]
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
    paths["html"].write_text(_html(card, tables, plots), encoding="utf-8")
    return paths
