"""cProfile around the judgekit default run, summed into where the time went."""

from __future__ import annotations

import cProfile
import pstats
from pathlib import Path
from typing import Any

#: Where time goes, by the function that owns it (cumulative time of the outermost match).
PROFILE_BUCKETS = {
    "engine (vLLM LLMEngine.step)": ("vllm/v1/engine/llm_engine.py", "step"),
    "render (Rubric.render, Jinja)": ("judgekit/rubrics/rubric.py", "render"),
    "tokenise (ChatEncoder.encode_chats)": ("judgekit/backends/prompt.py", "encode_chats"),
    "label read-out (vllm_engine._read)": ("judgekit/backends/vllm_engine.py", "_read"),
    "scoring + Judgment rows (run._judgment)": ("judgekit/judging/run.py", "_judgment"),
    "writing (JudgmentWriter.write)": ("judgekit/data/records.py", "write"),
    "aggregation (aggregate.aggregate)": ("judgekit/judging/aggregate.py", "aggregate"),
    "manifest (build_manifest)": ("judgekit/judging/run_manifest.py", "build_manifest"),
}


def profiler(enabled: bool) -> cProfile.Profile | None:
    return cProfile.Profile() if enabled else None


def profile_report(prof: cProfile.Profile, wall: float, out_dir: Path, name: str) -> dict[str, Any]:
    """The profile's buckets (seconds and share of ``judge()``) and top self times; the
    ``.prof`` file is written to ``out_dir``."""
    path = out_dir / f"profile_{name}.prof"
    prof.dump_stats(str(path))
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    buckets = {}
    for bucket, (file_part, func) in PROFILE_BUCKETS.items():
        buckets[bucket] = sum(v[3] for k, v in stats.items() if k[2] == func and file_part in k[0])
    judge_ct = max(
        (v[3] for k, v in stats.items() if k[2] == "judge" and "judging/run.py" in k[0]),
        default=wall,
    )
    top = sorted(
        ((f"{Path(k[0]).name}:{k[1]}({k[2]})", v[2]) for k, v in stats.items()),
        key=lambda x: -x[1],
    )[:15]
    return {
        "profiled_wall_s": wall,
        "judge_cumulative_s": judge_ct,
        "buckets_s": buckets,
        "buckets_pct_of_judge": {k: 100 * v / judge_ct for k, v in buckets.items()},
        "top_self_time_s": top,
        "file": str(path),
        "note": "cProfile (deterministic) inflates Python-heavy parts; the buckets do not nest "
        "(render happens in planning, tokenising before requests reach the engine).",
    }
