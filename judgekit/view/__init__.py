"""The run viewer (a self-contained HTML page per run, or per pair of runs) and the label queue."""

from __future__ import annotations

from pathlib import Path

from judgekit.view.data import load_run, page_model
from judgekit.view.page import render_page

__all__ = ["load_run", "page_model", "render_page", "write_view"]


def write_view(runs: list[Path | str], out: Path | str, **load: object) -> Path:
    """Write the viewer page for one run (or two, side by side) to ``out``; returns the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = page_model([load_run(r, **load) for r in runs])  # type: ignore[arg-type]
    out.write_text(render_page(model), encoding="utf-8")
    return out
