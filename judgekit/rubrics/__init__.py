"""Rubrics: versioned Jinja templates with a manifest, on a search path, locked once published."""

from judgekit.rubrics.load import (
    list_rubrics,
    load_rubric,
    load_rubric_dir,
    parse_ref,
    search_path,
    yank_reason,
)
from judgekit.rubrics.lock import lock_violations, update_lock
from judgekit.rubrics.rubric import LabelSpec, Rubric, RubricError, RubricManifest, content_hash

__all__ = [
    "LabelSpec",
    "Rubric",
    "RubricError",
    "RubricManifest",
    "content_hash",
    "list_rubrics",
    "load_rubric",
    "load_rubric_dir",
    "lock_violations",
    "parse_ref",
    "search_path",
    "update_lock",
    "yank_reason",
]
