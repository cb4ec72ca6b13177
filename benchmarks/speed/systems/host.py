"""The host side alone: ``judgekit.judge`` on an instant backend, pinned to one core, every
rubric variant, judgments written to disk: planning, rendering, tokenising, scoring,
aggregation and IO, nothing else (what a GPU judge must never wait on)."""

from __future__ import annotations

import cProfile
import math
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.speed import profiling
from benchmarks.speed.rows import judge_row
from benchmarks.speed.spec import BenchSpec
from benchmarks.speed.worker import Result
from benchmarks.speed.workloads import workloads
from judgekit import judge
from judgekit.backends import BackendBase
from judgekit.backends.prompt import ChatEncoder
from judgekit.backends.vllm_engine import chat_encoder
from judgekit.judging import JudgeRun
from judgekit.rubrics import Rubric, load_rubric
from judgekit.schema import Item, JudgeIdentity, LabelLogprobs, LabelRequest


class InstantBackend(BackendBase):
    """The engine's own request preparation (answer slot, prompt token ids) and no forward pass.

    Every label gets log-probability log(1/k), so every verdict is valid and a tie.
    """

    def __init__(self, encoder: ChatEncoder) -> None:
        self.encoder = encoder
        self.identity = JudgeIdentity(
            backend="instant", model="instant", fingerprint="0", settings={}
        )

    def score(self, requests: Sequence[LabelRequest]) -> list[LabelLogprobs]:
        prompts = self.encoder.prompts(requests)
        return [
            LabelLogprobs(
                dict.fromkeys(request.labels, -math.log(len(request.labels))), len(p.ids), 0
            )
            for request, p in zip(requests, prompts, strict=True)
        ]


def timed(
    items: list[Item],
    rubric: Rubric,
    encoder: ChatEncoder,
    batch_size: int,
    profiled: cProfile.Profile | None = None,
) -> tuple[JudgeRun, float]:
    """One cold run (a fresh encoder: no prompt text from an earlier run's cache), written."""
    backend = InstantBackend(ChatEncoder(encoder.tokenizer))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        if profiled is not None:
            profiled.enable()
        run = judge(items, rubric, backend=backend, output=Path(tmp) / "out.jsonl",
                    batch_size=batch_size)  # fmt: skip
        if profiled is not None:
            profiled.disable()
        return run, time.perf_counter() - t


def run(system: str, spec: BenchSpec, result: Result) -> None:
    """Every workload at the host sizes; a second, profiled run only for the breakdown."""
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    encoder = chat_encoder(spec.model)
    for workload in workloads(spec, host=True):
        rubric = load_rubric(workload.rubric)
        run_, wall = timed(workload.items, rubric, encoder, spec.batch_size)
        row = judge_row(run_, wall)
        prof = profiling.profiler(spec.profile)
        if prof is not None:
            _, profiled = timed(workload.items, rubric, encoder, spec.batch_size, prof)
            name = f"host-{workload.name}"
            row["profile"] = profiling.profile_report(prof, profiled, Path(spec.out_dir), name)
        row["judgments_per_s"] = len(run_.judgments) / wall
        row["mean_prompt_tokens"] = row["prompt_tokens"] / max(len(run_.judgments), 1)
        result.add(workload.name, row)
