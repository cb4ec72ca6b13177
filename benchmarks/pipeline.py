"""The engine never waits on the host between windows (issue 21.6), shown on a CPU.

Two measurements::

    python benchmarks/pipeline.py                  # the window loop on a stand-in engine
    python benchmarks/pipeline.py --engine --items 96 --batch-size 32   # the real engine

Default: ``judgekit.judge`` on SummEval items through the vLLM backend's own window loop and
prompt encoding (the embedded model's tokenizer), over ``StandInEngine``, an ``LLMEngine`` whose
every step takes a fixed time (what a GPU would take) and finishes a fixed number of requests. It
runs twice: with the next window prepared in a producer thread (judgekit's default) and
sequentially (``prefetch.DEPTH = 0``: each window tokenised when it is due, the old order), and
reports the host time between engine steps, the engine's busy share and whether both runs wrote
the same rows. ``--engine``: the real embedded engine (float32 on CPUs without native bf16) on a
modest sample, items/s and every verdict, for a before/after comparison of two
checkouts (run it with each checkout first on ``PYTHONPATH``; on a quiet machine).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))  # the benchmarks package; judgekit as PYTHONPATH gives it

from benchmarks.speed.machine import loadavg, machine  # noqa: E402
from benchmarks.speed.workloads import pointwise_items  # noqa: E402

RUBRIC = "overall_quality@v2"


class StandInEngine:
    """``vllm.LLMEngine`` as judgekit's window loop uses it: each step takes ``step_s`` and
    finishes the ``per_step`` oldest requests (first in, first out), each label token getting a
    log-probability from the prompt length. ``idle`` sums the host time between steps, split
    into the gaps in which a window was added (``window_gaps``: its preparation, when that is
    not done ahead) and the others (``other_gaps``: reading results, writing rows);
    ``in_flight_at_add`` records how many requests were unfinished as each one was added."""

    def __init__(self, step_s: float, per_step: int) -> None:
        self.step_s, self.per_step = step_s, per_step
        self.active: deque[tuple[str, Any, int]] = deque()
        self.ends: list[float] = []
        self.idle = 0.0
        self.window_gaps: list[float] = []
        self.other_gaps: list[float] = []
        self.in_flight_at_add: list[int] = []
        self._added = False

    def add_request(self, request_id: str, prompt: dict[str, list[int]], params: Any) -> None:
        self.in_flight_at_add.append(len(self.active))
        self.active.append((request_id, params, len(prompt["prompt_token_ids"])))
        self._added = True

    def has_unfinished_requests(self) -> bool:
        return bool(self.active)

    def step(self) -> list[Any]:
        if self.ends:
            gap = time.perf_counter() - self.ends[-1]
            self.idle += gap
            (self.window_gaps if self._added else self.other_gaps).append(gap)
        self._added = False
        time.sleep(self.step_s)
        out = []
        for _ in range(min(self.per_step, len(self.active))):
            request_id, params, n = self.active.popleft()
            logprobs = {t: SimpleNamespace(logprob=-1.0 - (n + t) % 7 / 10)
                        for t in params.logprob_token_ids}  # fmt: skip
            out.append(SimpleNamespace(
                request_id=request_id, finished=True, num_cached_tokens=0,
                outputs=[SimpleNamespace(logprobs=[logprobs])],
            ))  # fmt: skip
        self.ends.append(time.perf_counter())
        return out

    def abort_request(self, ids: list[str]) -> None:
        gone = set(ids)
        self.active = deque(a for a in self.active if a[0] not in gone)


def stand_in_vllm(encoder: Any, step_s: float, per_step: int, prep_s: float = 0.0) -> Any:
    """``VLLMEngine`` with its real prompt encoding and window loop on a ``StandInEngine``;
    ``prep_s`` adds a fixed time to each window's preparation. The caller replaces
    ``vllm_engine._label_params`` by ``label_params`` (no vllm import)."""
    from judgekit.backends import vllm_engine
    from judgekit.backends.spec import VLLMJudge
    from judgekit.schema import JudgeIdentity

    engine = vllm_engine.VLLMEngine.__new__(vllm_engine.VLLMEngine)
    engine._llm = SimpleNamespace(llm_engine=StandInEngine(step_s, per_step))
    engine.encoder = encoder
    engine._options = VLLMJudge()
    engine._generate_counts = {}
    engine._prefetch_depth = None  # prefetch.DEPTH: a GPU engine's default
    engine._identity = JudgeIdentity(backend="stand-in", model="m", fingerprint="0", settings={})
    prepared = engine._prepared
    engine.prep_s = []  # each window's preparation time, measured where it ran

    def slower(requests: Any) -> Any:
        start = time.perf_counter()
        time.sleep(prep_s)
        out = prepared(requests)
        engine.prep_s.append(time.perf_counter() - start)
        return out

    engine._prepared = slower
    return engine


def label_params(ids: Any) -> Any:
    """What the window loop reads of vLLM's ``SamplingParams``."""
    return SimpleNamespace(logprob_token_ids=list(ids))


def stand_in_run(args: argparse.Namespace, depth: int) -> dict[str, Any]:
    """One judge() over the stand-in engine, prefetch depth ``depth`` (restored after)."""
    from judgekit.backends import prefetch, vllm_engine

    saved = prefetch.DEPTH, vllm_engine._label_params
    prefetch.DEPTH, vllm_engine._label_params = depth, label_params
    try:
        return _stand_in_run(args, depth)
    finally:
        prefetch.DEPTH, vllm_engine._label_params = saved


def _stand_in_run(args: argparse.Namespace, depth: int) -> dict[str, Any]:
    from judgekit import judge
    from judgekit.backends.prompt import ChatEncoder
    from judgekit.backends.vllm_engine import chat_encoder

    items, source = pointwise_items(args.items)
    encoder = ChatEncoder(chat_encoder().tokenizer)  # cold: no text from an earlier run
    engine = stand_in_vllm(encoder, args.step_ms / 1000, args.per_step)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.jsonl"
        start = time.perf_counter()
        run = judge(items, RUBRIC, backend=engine, output=out, variants=["direct"],
                    batch_size=args.batch_size)  # fmt: skip
        wall = time.perf_counter() - start
        written = hashlib.sha256(out.read_bytes()).hexdigest()[:16]
    fake = engine._llm.llm_engine
    busy = len(fake.ends) * fake.step_s
    windows = -(-len(run.judgments) // args.batch_size)
    firsts = fake.in_flight_at_add[args.batch_size :: args.batch_size]
    return {
        "mode": "pipelined" if depth else "sequential",
        "source": source,
        "requests": len(run.judgments),
        "windows": windows,
        "engine_s_per_window": busy / windows,
        "prep_s_per_window": sum(engine.prep_s) / len(engine.prep_s),
        "wall_s": wall,
        "host_gaps_s": fake.idle,
        "mean_gap_where_a_window_was_added_s": sum(fake.window_gaps) / len(fake.window_gaps),
        "mean_other_gap_s": sum(fake.other_gaps) / max(len(fake.other_gaps), 1),
        "engine_busy_share": busy / (busy + fake.idle),
        "min_in_flight_when_next_window_added": min(firsts, default=None),
        "items_per_s": len(items) / wall,
        "rows_sha256": written,
    }


def engine_run(args: argparse.Namespace) -> dict[str, Any]:
    """The real embedded engine (float32 unless the CPU has native bf16) on ``--items``: the
    checkout's default and, where it has one, with the GPU's producer thread."""
    import judgekit
    from judgekit import VLLMJudge, create_backend

    items, source = pointwise_items(args.items)
    t = time.perf_counter()
    backend = create_backend(VLLMJudge(dtype="float32"))
    load = time.perf_counter() - t
    judgekit.judge(items[:4], RUBRIC, backend=backend, variants=["direct"])  # warm-up
    runs = {"default": _engine_judge(backend, items, args.batch_size)}
    if hasattr(backend, "_prefetch_depth"):  # this checkout; CPU default: prepared when due
        backend._prefetch_depth = 1
        runs["producer_thread"] = _engine_judge(backend, items, args.batch_size)
    return {
        "judgekit": str(Path(judgekit.__file__).parent),
        "source": source,
        "items": len(items),
        "batch_size": args.batch_size,
        "engine_load_s": load,
        "dtype": backend.identity.settings["dtype"],
        "runs": runs,
    }


def _engine_judge(backend: Any, items: list[Any], batch_size: int) -> dict[str, Any]:
    from judgekit import judge

    t = time.perf_counter()
    run = judge(items, RUBRIC, backend=backend, variants=["direct"], batch_size=batch_size)
    wall = time.perf_counter() - t
    return {
        "wall_s": wall,
        "items_per_s": len(items) / wall,
        "labels": [j.label for j in run.judgments],
        "label_probs": [j.label_probs for j in run.judgments],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--items", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=256, help="requests per window")
    parser.add_argument("--step-ms", type=float, default=300.0, help="stand-in engine step")
    parser.add_argument("--per-step", type=int, default=64, help="requests finished per step")
    parser.add_argument("--engine", action="store_true", help="the real embedded engine")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    host = {**machine(), "avx2": "avx2" in Path("/proc/cpuinfo").read_text()}
    results: dict[str, Any] = {"machine": host, "loadavg_start": loadavg()}
    if args.engine:
        results["engine"] = engine_run(args)
    else:
        runs = [stand_in_run(args, depth) for depth in (1, 0)]
        results["runs"] = runs
        results["same_rows"] = runs[0]["rows_sha256"] == runs[1]["rows_sha256"]
    results["loadavg_end"] = loadavg()
    text = json.dumps(results, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
