"""Write a ranking's files: JSON (the full record), Markdown, and the HTML page."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from judgekit.rank.html import to_html
from judgekit.rank.leaderboard import Leaderboard
from judgekit.rank.report import to_json, to_markdown

__all__ = ["write_reports"]


def write_reports(
    boards: Sequence[Leaderboard],
    *,
    json_path: Path | None = None,
    markdown_path: Path | None = None,
    html_path: Path | None = None,
) -> list[Path]:
    """Write the requested files (parents created); returns their paths."""
    written = []
    for path, render in ((json_path, to_json), (markdown_path, to_markdown), (html_path, to_html)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(boards), encoding="utf-8")
            written.append(path)
    return written
