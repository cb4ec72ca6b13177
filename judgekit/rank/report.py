"""Leaderboards as a terminal table, Markdown and JSON; the trust columns always come along.

Every rendering shows, beside the scores: how the intervals were made (level, resamples, unit),
the judge and its card status, invalid battles and the position-flip rate per model, the tie
parameter and the style coefficients. A number is never shown without what it depends on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from judgekit.rank.leaderboard import Leaderboard

__all__ = ["columns", "header_lines", "to_json", "to_markdown", "to_table"]


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _digits(board: Leaderboard) -> int:
    return {"elo": 0, "win_rate": 1, "strength": 3}.get(board.scale, 2)


def columns(board: Leaderboard) -> list[tuple[str, list[str]]]:
    """(header, cells) for each column the leaderboard has data for, rows best first."""
    rows = board.rows
    d = _digits(board)
    pct = round(board.level * 100)

    def col(name: str, cell: object) -> tuple[str, list[str]]:
        return name, [cell(r) for r in rows]  # type: ignore[operator]

    out = [
        col("rank", lambda r: f"{r.rank} ({r.rank_low}-{r.rank_high})"),
        col("model", lambda r: r.model),
        col(board.scale, lambda r: _num(r.score, d)),
        col(f"{pct}% CI", lambda r: f"[{_num(r.low, d)}, {_num(r.high, d)}]"),
    ]

    def has(attr: str) -> bool:
        return any(getattr(r, attr) is not None for r in rows)

    if board.scale != "win_rate" and has("win_rate"):
        out.append(col("win rate %", lambda r: _num(r.win_rate, 1)))
        out.append(
            col(
                f"{pct}% CI (wr)",
                lambda r: f"[{_num(r.win_rate_low, 1)}, {_num(r.win_rate_high, 1)}]",
            )
        )
    if board.baseline is not None and has("observed_win_rate"):
        out.append(col("observed %", lambda r: _num(r.observed_win_rate, 2)))
        if has("standard_error"):
            out.append(col("SE", lambda r: _num(r.standard_error, 2)))
        out.append(col("discrete %", lambda r: _num(r.discrete_win_rate, 2)))
    if has("lc_win_rate"):
        out.append(col("LC win rate %", lambda r: _num(r.lc_win_rate, 2)))
        out.append(col(f"{pct}% CI (LC)", lambda r: f"[{_num(r.lc_low, 1)}, {_num(r.lc_high, 1)}]"))
    out.append(col("battles", lambda r: str(r.n_battles)))
    out.append(col("invalid", lambda r: str(r.n_invalid)))
    if has("flip_rate"):
        out.append(col("flip rate", lambda r: _num(r.flip_rate, 3)))
    return out


def header_lines(board: Leaderboard) -> list[str]:
    """What the numbers depend on, one fact per line."""
    title = f"{board.method} ({board.scale})" + (
        f", category {board.category}" if board.category else ""
    )
    lines = [
        title,
        f"{board.n_battles} valid battles on {board.n_questions} questions; "
        f"{round(board.level * 100)}% percentile intervals from {board.n_resamples} "
        f"resamples of {board.unit}s ({board.n_failed} failed)"
        + (f", seed {board.seed}" if board.seed is not None else ""),
    ]
    if board.baseline:
        lines.append(f"anchored at baseline {board.baseline}")
    if board.ties:
        lines.append(f"ties: {board.ties}")
    judge = board.judge
    lines.append(f"judge: {judge.judge}; card: {judge.card}" if judge else "judge: not recorded")
    if board.tie_parameter:
        t = board.tie_parameter
        lines.append(f"tie parameter {t.name} = {t.estimate:.3f} [{t.low:.3f}, {t.high:.3f}]")
    if board.style:
        coefs = ", ".join(
            f"{c.name} {c.estimate:+.3f} [{c.low:+.3f}, {c.high:+.3f}]" for c in board.style
        )
        lines.append(f"style coefficients (log-odds per sd): {coefs}")
    return lines + list(board.notes)


def to_table(board: Leaderboard) -> str:
    """A fixed-width table for the terminal."""
    cols = columns(board)
    widths = [max(len(h), *(len(c) for c in cells)) for h, cells in cols]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    body = [fmt.format(*(h for h, _ in cols))]
    body += [fmt.format(*(cells[i] for _, cells in cols)) for i in range(len(cols[0][1]))]
    return "\n".join([*header_lines(board), "", *body])


def to_markdown(boards: Sequence[Leaderboard]) -> str:
    parts = []
    for board in boards:
        cols = columns(board)
        lines = [f"### {header_lines(board)[0]}", ""]
        lines += [f"- {line}" for line in header_lines(board)[1:]] + [""]
        lines.append("| " + " | ".join(h for h, _ in cols) + " |")
        lines.append("|" + "|".join("---" for _ in cols) + "|")
        for i in range(len(board.rows)):
            lines.append("| " + " | ".join(cells[i] for _, cells in cols) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def to_json(boards: Sequence[Leaderboard]) -> str:
    return json.dumps([b.model_dump(mode="json") for b in boards], indent=2) + "\n"
