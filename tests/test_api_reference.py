"""The API reference (docs/api.md, mkdocstrings) covers ``judgekit.__all__`` and builds strictly.

``mkdocs build --strict`` fails on a link between pages that does not resolve, an anchor that
does not exist, and an API entry (``::: judgekit.NAME``) that does not import.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import judgekit

REPO = Path(__file__).resolve().parents[1]
EXPORTED = sorted(set(judgekit.__all__) - {"__version__"})


def test_every_exported_name_has_an_entry() -> None:
    entries = re.findall(r"^::: judgekit\.(\w+)\s*$", (REPO / "docs" / "api.md").read_text(), re.M)
    assert sorted(entries) == EXPORTED


def test_the_reference_builds_strictly_with_an_anchor_per_name(tmp_path: Path) -> None:
    site = tmp_path / "site"
    config = str(REPO / "mkdocs.yml")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", config, "-d", str(site)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    page = (site / "api" / "index.html").read_text()
    anchors = set(re.findall(r'id="judgekit\.(\w+)"', page))
    assert anchors >= set(EXPORTED), sorted(set(EXPORTED) - anchors)
    # each page under docs/ is part of the site (no nav: new pages are picked up by themselves)
    for doc in (REPO / "docs").glob("*.md"):
        name = "" if doc.stem == "index" else doc.stem + "/"
        assert (site / name / "index.html").is_file(), doc.name
