"""Calibration plots as PNG bytes: arrays in, bytes out, on matplotlib's Agg canvas (no pyplot)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_DPI = 100


def figure_png(fig: Figure) -> bytes:
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
    return figure_png(fig)


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
    return figure_png(fig)


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
    return figure_png(fig)


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
    return figure_png(fig)


# --------------------------------------------------------------------------- document model
