"""A content-addressed cache of judge outputs (sqlite, WAL), which also makes runs resumable.

The key covers everything that changes the judge's numbers: the exact rendered prompt (which
includes rubric text and variant), the label set, the rubric hash, and the judge identity (model,
weights fingerprint, engine settings). Re-running an evaluation sends only new or changed prompts
to the judge; a run killed mid-way restarts where its last committed batch ended.

What is stored is the backend's raw label log-probabilities, not the verdict, so changing the
label-mass threshold re-scores from the store without re-judging; in reasoning mode the
rationale is stored with them. Backend errors are not stored:
they are transient or fixed by changing settings, and must be retried by the next run.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from judgekit.schema import JudgeIdentity, LabelLogprobs, LabelRequest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    logprobs TEXT NOT NULL,
    num_prompt_tokens INTEGER NOT NULL,
    num_cached_tokens INTEGER NOT NULL,
    created TEXT NOT NULL DEFAULT (datetime('now')),
    rationale TEXT
)
"""


def cache_key(request: LabelRequest, rubric_hash: str, judge: JudgeIdentity) -> str:
    """sha256 of the rendered prompt, labels, rubric hash and judge identity."""
    payload = {
        "messages": [[m.role, m.content] for m in request.messages],
        "labels": request.labels,
        "rubric_hash": rubric_hash,
        "judge": judge.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class ResultStore:
    """Judge outputs by content key; safe for several processes writing at once, and for the
    threads of one run (the next window is looked up while this one is written)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=60.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(results)")}
        if "rationale" not in columns:  # a store made before reasoning mode
            self._db.execute("ALTER TABLE results ADD COLUMN rationale TEXT")

    def get_many(self, keys: Sequence[str]) -> dict[str, LabelLogprobs]:
        """Stored results for the keys that have one."""
        found: dict[str, LabelLogprobs] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            with self._lock:
                rows = self._db.execute(
                    "SELECT key, logprobs, num_prompt_tokens, num_cached_tokens, rationale "
                    f"FROM results WHERE key IN ({marks})",
                    chunk,
                ).fetchall()
            for key, logprobs, n_prompt, n_cached, rationale in rows:
                found[key] = LabelLogprobs(
                    json.loads(logprobs), n_prompt, n_cached, rationale=rationale
                )
        return found

    def put_many(self, entries: Iterable[tuple[str, LabelLogprobs]]) -> int:
        """Store results in one transaction (errors are skipped); returns how many were new."""
        rows = [
            (key, json.dumps(r.logprobs), r.num_prompt_tokens, r.num_cached_tokens, r.rationale)
            for key, r in entries
            if r.error is None
        ]
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO results "
                "(key, logprobs, num_prompt_tokens, num_cached_tokens, rationale) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            return self._db.total_changes - before

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
