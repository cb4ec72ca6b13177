"""The in-process engine systems: ``judgekit.judge`` (default, every variant, caching off), and
the engine set-up ``raw_engine`` and ``generate_parse`` share.

Each workload runs ``--repeat`` times from a cold prefix cache after a warm-up on unrelated
items; the median wall time counts. The ``judgekit`` system also measures the limit row: prefill
tokens/s of one long, uncached prompt.
"""

from __future__ import annotations

import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.speed import profiling
from benchmarks.speed.rows import judge_row, median_row
from benchmarks.speed.spec import BenchSpec
from benchmarks.speed.systems import generate_parse, raw_engine
from benchmarks.speed.worker import Result
from benchmarks.speed.workloads import long_text, warmup_items, workloads
from judgekit import judge
from judgekit.backends import create_backend
from judgekit.backends.vllm_engine import VLLMEngine
from judgekit.rubrics import Rubric, load_rubric
from judgekit.schema import Item, LabelRequest, Message


def start_engine(system: str, spec: BenchSpec) -> VLLMEngine:
    """The judge of ``spec`` through the one factory (prefix caching off for the nocache row)."""
    engine = create_backend(spec.judge(enable_prefix_caching=system != "judgekit_nocache"))
    if not isinstance(engine, VLLMEngine):  # raw_engine reads the engine's own prompt ids
        raise TypeError(f"expected the in-process vLLM engine, got {type(engine).__name__}")
    return engine


def run(system: str, spec: BenchSpec, result: Result) -> None:
    """Start the engine, then measure every workload ``spec.repeat`` times (median kept)."""
    t0 = time.perf_counter()
    engine = start_engine(system, spec)
    result.data["engine_load_s"] = time.perf_counter() - t0
    result.data["engine_settings"] = dict(engine.identity.settings)
    try:
        if system == "judgekit" and spec.limit_tokens > 0:
            rubric = load_rubric(spec.rubrics["pointwise"])
            result.data["limit"] = limit(engine, spec.limit_tokens, rubric)
        for workload in workloads(spec):
            rubric = load_rubric(workload.rubric)
            variants = None if system == "judgekit_ensemble" else spec.variants
            judge(warmup_items(rubric.manifest.mode), rubric, backend=engine, variants=variants)
            rows = []
            for rep in range(spec.repeat):  # each from a cold prefix cache
                engine.llm.reset_prefix_cache()
                profiled = system == "judgekit" and rep == 0 and spec.profile
                name = workload.name if profiled else None
                rows.append(measure(system, engine, rubric, workload.items, spec, name))
            result.add(workload.name, median_row(rows))
    finally:
        engine.close()


def measure(
    system: str,
    engine: VLLMEngine,
    rubric: Rubric,
    items: list[Item],
    spec: BenchSpec,
    profile_name: str | None = None,
) -> dict[str, Any]:
    """One timed run of ``system`` on ``items`` (``profile_name``: cProfile it, under that name)."""
    if system == "raw_engine":
        return raw_engine.measure(engine, rubric, items, spec.variants)
    if system == "generate_parse":
        return generate_parse.measure(engine, rubric, items, spec.variants, spec.rationale_tokens)
    variants = None if system == "judgekit_ensemble" else spec.variants
    prof = profiling.profiler(profile_name is not None)
    t = time.perf_counter()
    if prof is not None:
        prof.enable()
    run_ = judge(items, rubric, backend=engine, variants=variants, batch_size=spec.batch_size)
    if prof is not None:
        prof.disable()
    row = judge_row(run_, time.perf_counter() - t)
    if prof is not None and profile_name is not None:
        out_dir = Path(spec.out_dir)
        row["profile"] = profiling.profile_report(prof, row["wall_s"], out_dir, profile_name)
    return row


def limit(engine: VLLMEngine, limit_tokens: int, rubric: Rubric) -> dict[str, Any]:
    """Prefill tokens/s of ``VLLMEngine.score`` on one long, uncached prompt (median of 3)."""
    text = long_text(int(limit_tokens * 0.8))  # ~1.25 tokens per word in news text

    def request() -> LabelRequest:
        nonce = uuid.uuid4().hex  # first thing in the prompt: nothing can come from the cache
        return LabelRequest(
            item_id=nonce,
            variant="limit",
            order=None,
            messages=(
                Message("system", f"[{nonce}] You grade summaries from 1 to 5."),
                Message("user", f"Article and summary:\n{text}\n\nGrade it."),
                Message("assistant", rubric.manifest.answer_cue),
            ),
            labels=rubric.labels,
            prefix_key=nonce,
        )

    engine.score([request()])  # warm-up: this shape, answer slot
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        (res,) = engine.score([request()])
        dt = time.perf_counter() - t
        runs.append(
            {"seconds": dt, "tokens": res.num_prompt_tokens, "cached": res.num_cached_tokens}
        )
    best = statistics.median(r["tokens"] / r["seconds"] for r in runs)
    return {"prompt_tokens": runs[0]["tokens"], "runs": runs, "tokens_per_s": best}
