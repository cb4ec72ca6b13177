"""A leaderboard as one self-contained HTML page: a forest plot (inline SVG) and the table.

No scripts, no external files: the page opens from disk or a CI artefact as it is. Model names
and notes are escaped; they are data, never markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import numpy as np

from judgekit.rank.leaderboard import Leaderboard
from judgekit.rank.report import columns, header_lines

__all__ = ["forest_plot", "to_html"]

ROW, LEFT, RIGHT, TOP, WIDTH = 22, 220, 30, 30, 760
STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0 2em}
td,th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right}
td:nth-child(2),th:nth-child(2){text-align:left}
ul{font-size:13px;color:#444} svg text{font-size:12px}
"""


def _ticks(low: float, high: float) -> np.ndarray:
    span = high - low
    step = 10 ** np.floor(np.log10(span / 4)) if span > 0 else 1.0
    for mult in (1, 2, 5, 10):
        if span / (step * mult) <= 6:
            step *= mult
            break
    return np.arange(np.ceil(low / step) * step, high + step * 1e-9, step)


def forest_plot(board: Leaderboard) -> str:
    """Scores with their intervals, best on top; the baseline's row is drawn in grey."""
    rows = board.rows
    lo = min(r.low for r in rows)
    hi = max(r.high for r in rows)
    pad = (hi - lo) * 0.05 or 1.0
    lo, hi = lo - pad, hi + pad
    height = TOP + ROW * len(rows) + 30
    plot = WIDTH - LEFT - RIGHT

    def x(value: float) -> float:
        return LEFT + (value - lo) / (hi - lo) * plot

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" role="img">'
    ]
    bottom = TOP + ROW * len(rows)
    for tick in _ticks(lo, hi):
        parts.append(
            f'<line x1="{x(tick):.1f}" y1="{TOP - 8}" x2="{x(tick):.1f}" y2="{bottom}" '
            f'stroke="#eee"/><text x="{x(tick):.1f}" y="{bottom + 16}" '
            f'text-anchor="middle">{tick:g}</text>'
        )
    for i, r in enumerate(rows):
        y = TOP + ROW * i + ROW / 2 - 6
        colour = "#999" if r.model == board.baseline else "#1f5fa8"
        parts.append(
            f'<text x="{LEFT - 10}" y="{y + 4:.1f}" text-anchor="end">{escape(r.model)}</text>'
            f'<line x1="{x(r.low):.1f}" y1="{y:.1f}" x2="{x(r.high):.1f}" y2="{y:.1f}" '
            f'stroke="{colour}" stroke-width="2"/>'
            f'<circle cx="{x(r.score):.1f}" cy="{y:.1f}" r="4" fill="{colour}"/>'
        )
    parts.append(
        f'<text x="{LEFT + plot / 2:.1f}" y="{TOP - 14}" text-anchor="middle">'
        f"{escape(board.scale)} with {round(board.level * 100)}% intervals</text></svg>"
    )
    return "".join(parts)


def _table(board: Leaderboard) -> str:
    cols = columns(board)
    head = "".join(f"<th>{escape(h)}</th>" for h, _ in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cells[i])}</td>" for _, cells in cols) + "</tr>"
        for i in range(len(board.rows))
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(boards: Sequence[Leaderboard]) -> str:
    """One page: per leaderboard (overall, then each category) its facts, plot and table."""
    sections = []
    for board in boards:
        head, *facts = header_lines(board)
        items = "".join(f"<li>{escape(line)}</li>" for line in facts)
        sections.append(
            f"<section><h2>{escape(head)}</h2><ul>{items}</ul>"
            f"{forest_plot(board)}{_table(board)}</section>"
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>judgekit leaderboard</title><style>{STYLE}</style></head><body>"
        f"<h1>Leaderboard</h1>{''.join(sections)}</body></html>\n"
    )
