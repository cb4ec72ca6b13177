"""The published-version lock: a released rubric version never changes, a change is a new vN."""

from __future__ import annotations

import json
from pathlib import Path

from judgekit.rubrics.load import list_rubrics, parse_ref
from judgekit.rubrics.rubric import content_hash

LOCK_FILE = "rubrics.lock.json"


def read_lock(root: Path) -> dict[str, str]:
    path = root / LOCK_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def lock_violations(root: Path) -> list[str]:
    """Published versions whose files changed since they were locked (each must become a new vN)."""
    lock = read_lock(root)
    problems = []
    for ref, expected in sorted(lock.items()):
        name, version = parse_ref(ref)
        folder = root / name / f"v{version}"
        if not folder.is_dir():
            problems.append(f"{ref}: published version is missing from {root}")
        elif (actual := content_hash(folder)) != expected:
            problems.append(f"{ref}: content hash {actual[:12]} != locked {expected[:12]}")
    return problems


def update_lock(root: Path) -> dict[str, str]:
    """Add versions not yet in the lock; never rewrites a locked hash."""
    lock = read_lock(root)
    for rubric in list_rubrics(paths=[root]):
        if rubric.path.parent.parent.resolve() == root.resolve():
            lock.setdefault(rubric.ref, rubric.hash)
    (root / LOCK_FILE).write_text(json.dumps(dict(sorted(lock.items())), indent=2) + "\n")
    return lock
