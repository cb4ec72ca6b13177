"""The server systems: one ``python -m vllm.entrypoints.openai.api_server`` on 127.0.0.1 (same
dtype, block size and eager mode as the engine), then either judgekit's ``openai`` backend with
``--concurrency`` requests in flight (``server``) or the server's own ``/generative_scoring``
endpoint (``generative_scoring``). The server's process group is always killed at the end."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from benchmarks.speed.rows import judge_row
from benchmarks.speed.spec import BenchSpec
from benchmarks.speed.systems import generative_scoring
from benchmarks.speed.worker import Result
from benchmarks.speed.workloads import warmup_items, workloads
from judgekit import judge
from judgekit.backends import Backend, OpenAIJudge, create_backend
from judgekit.backends.local_server import LocalVLLMServer, scrape_metrics
from judgekit.backends.spec import CPU_BLOCK_SIZE
from judgekit.backends.vllm_engine import chat_encoder
from judgekit.rubrics import load_rubric


def server_args(spec: BenchSpec) -> list[str]:
    """The engine's block size (so both reuse the same prefixes), seed and load format."""
    extra = ["--seed", "0", "--load-format", spec.load_format]
    block_size = spec.block_size or (CPU_BLOCK_SIZE if spec.device == "cpu" else None)
    if block_size:
        extra += ["--block-size", str(block_size)]
    if spec.device != "cpu":
        extra += ["--gpu-memory-utilization", str(spec.gpu_memory_utilization)]
    return extra


def run(system: str, spec: BenchSpec, result: Result) -> None:
    log = Path(spec.out_dir) / "server.log"
    t0 = time.perf_counter()
    with LocalVLLMServer(
        spec.model_dir, served_model_name="judge", dtype=spec.dtype,
        max_model_len=spec.max_model_len, extra_args=server_args(spec), log=log,
    ) as server:  # fmt: skip
        # the orchestrator kills the server's group from this file if this worker is killed
        result.server_pid_file.write_text(str(server.process.pid))
        server.wait_healthy(timeout=900)
        result.data["engine_load_s"] = time.perf_counter() - t0
        result.data["server_log"] = str(log)
        judge_spec = OpenAIJudge(
            base_url=server.base_url,
            tokenizer=spec.model_dir,
            max_concurrency=spec.concurrency,
            timeout=600,
        )
        backend = create_backend(judge_spec)
        try:
            _workloads(system, spec, result, backend, server.url, server.base_url)
        finally:
            backend.close()
            result.mem.sample()


def _workloads(
    system: str, spec: BenchSpec, result: Result, backend: Backend, url: str, base_url: str
) -> None:
    """Each workload after a warm-up; the server's own metrics are scraped around it."""
    for workload in workloads(spec):
        rubric = load_rubric(workload.rubric)
        judge(warmup_items(rubric.manifest.mode), rubric, backend=backend, variants=spec.variants)
        before = scrape_metrics(url)
        if system == "generative_scoring":
            encoder = chat_encoder(spec.model_dir)
            row = generative_scoring.measure(base_url, encoder, rubric, workload.items, spec)
        else:
            t = time.perf_counter()
            run_ = judge(workload.items, rubric, backend=backend, variants=spec.variants,
                         batch_size=spec.server_batch_size)  # fmt: skip
            row = judge_row(run_, time.perf_counter() - t)
            row["wire"] = backend.stats()
        row["server_metrics"] = asdict(scrape_metrics(url) - before)
        row["concurrency"] = spec.concurrency
        row["batch_size"] = spec.server_batch_size
        result.add(workload.name, row)
