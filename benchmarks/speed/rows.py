"""The figures every system's row shares, from a judge run or from counted tokens."""

from __future__ import annotations

from typing import Any

from judgekit.judging import JudgeRun


def row(
    n_items: int, n_requests: int, wall: float, prompt: int, cached: int, generated: int
) -> dict[str, Any]:
    """Items, requests and unique (not cached) prompt tokens per second of ``wall``."""
    return {
        "items": n_items,
        "requests": n_requests,
        "wall_s": wall,
        "items_per_s": n_items / wall,
        "requests_per_s": n_requests / wall,
        "prompt_tokens": prompt,
        "cached_tokens": cached,
        "unique_tokens": prompt - cached,
        "unique_tokens_per_s": (prompt - cached) / wall,
        "cache_hit_rate": cached / prompt if prompt else 0.0,
        "generated_tokens": generated,
    }


def judge_row(run: JudgeRun, wall: float) -> dict[str, Any]:
    """A ``judgekit.judge`` run's row: token counts from its judgments, invalid ones counted."""
    prompt = sum(j.num_prompt_tokens for j in run.judgments)
    cached = sum(j.num_cached_tokens for j in run.judgments)
    n = len(run.judgments)
    return row(run.n_items, n, wall, prompt, cached, n) | {
        "runner_seconds": run.seconds,
        "failures": sum(not j.valid for j in run.judgments),
        "failure_kind": "invalid verdicts (label mass below threshold or error)",
    }


def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median wall time of ``--repeat`` runs, with every wall time listed (the
    first run's profile, if any, kept)."""
    chosen = dict(sorted(rows, key=lambda r: r["wall_s"])[len(rows) // 2])
    chosen["walls_s"] = [r["wall_s"] for r in rows]
    if "profile" in rows[0]:
        chosen["profile"] = rows[0]["profile"]
    return chosen
