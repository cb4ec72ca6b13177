"""The judge never waits on the host between windows (issue 21.6), shown with instrumented
backends: a scripted judge whose score call sleeps a fixed time per window, and the vLLM
engine's own window loop on a stand-in for ``vllm.LLMEngine`` whose steps sleep a fixed time.

"Sequential" is ``prefetch.DEPTH = 0``: each window is prepared only when it is taken, after the
previous one was scored (the old order); the default prepares it in a producer thread meanwhile.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from offline_tokenizers import smollm2
from scripted import ScriptedBackend

import judgekit
from benchmarks.pipeline import label_params, stand_in_vllm
from judgekit.backends import prefetch
from judgekit.backends.prefetch import NOT_READY, Prefetch
from judgekit.backends.prompt import ChatEncoder
from judgekit.judging.store import ResultStore
from judgekit.schema import PointwiseItem

RUBRIC = "overall_quality@v1"
ITEMS = [
    PointwiseItem(id=str(i), question=f"question {i // 4}", answer=f"answer number {i}")
    for i in range(40)
]


def _score(item: str, variant: str, order: str) -> dict[str, float]:
    top = str(1 + int(item) % 5)
    return {label: (0.6 if label == top else 0.1) for label in "12345"}


class TimedBackend(ScriptedBackend):
    """A judge whose every score call (one window) takes ``seconds``; ``calls`` = (start, end)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(_score)
        self.seconds, self.spans = seconds, []

    def score(self, requests):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        time.sleep(self.seconds)
        out = super().score(requests)
        self.spans.append((start, time.perf_counter()))
        return out


class SlowStore(ResultStore):
    """A result store whose look-ups take ``seconds`` (a window's preparation); the
    ``fail_at``-th look-up raises."""

    def __init__(self, path: Path, seconds: float, fail_at: int | None = None) -> None:
        super().__init__(path)
        self.seconds, self.fail_at, self.lookups = seconds, fail_at, 0

    def get_many(self, keys):  # type: ignore[no-untyped-def]
        self.lookups += 1
        if self.lookups == self.fail_at:
            raise OSError("store unreadable")
        time.sleep(self.seconds)
        return super().get_many(keys)


def _rows(store: ResultStore) -> list[tuple[Any, ...]]:
    return store._db.execute(
        "SELECT key, logprobs, num_prompt_tokens FROM results ORDER BY key"
    ).fetchall()


def _gaps(spans: list[tuple[float, float]]) -> list[float]:
    return [b[0] - a[1] for a, b in pairwise(spans)]


def _scripted_run(tmp_path: Path, name: str, depth: int, monkeypatch: Any) -> Any:
    monkeypatch.setattr(prefetch, "DEPTH", depth)
    backend = TimedBackend(0.15)
    store = SlowStore(tmp_path / f"{name}.sqlite", seconds=0.1)
    out = tmp_path / f"{name}.jsonl"
    run = judgekit.judge(
        ITEMS, RUBRIC, backend=backend, output=out, store=store, batch_size=24, write_every=8
    )
    return run, backend.spans, out.read_bytes(), _rows(store)


def test_the_next_window_is_ready_before_the_judge_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each window's preparation (a 0.1 s store look-up) overlaps the previous window's 0.15 s
    score call: between score calls only the writing of the window's rows remains (a few ms),
    where the sequential order also waits 0.1 s each time; judgments, written rows and store
    entries are the same."""
    run, spans, written, stored = _scripted_run(tmp_path, "pipelined", 1, monkeypatch)
    old, old_spans, old_written, old_stored = _scripted_run(tmp_path, "sequential", 0, monkeypatch)
    assert len(spans) == len(old_spans) == 5  # 120 requests, windows of 24
    gaps, old_gaps = statistics.median(_gaps(spans)), statistics.median(_gaps(old_spans))
    assert old_gaps >= 0.1  # the judge waited for each look-up
    assert gaps < 0.05 and old_gaps - gaps > 0.08  # the look-up was done while it scored
    assert written == old_written and stored == old_stored and len(stored) == 120
    assert run.judgments == old.judgments


def test_an_error_in_the_producer_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A look-up failing in the producer thread is raised by judge(); the windows scored before
    it are written and stored, and no producer thread is left behind."""
    before = threading.active_count()
    store = SlowStore(tmp_path / "s.sqlite", seconds=0.0, fail_at=3)
    out = tmp_path / "run.jsonl"
    with pytest.raises(OSError, match="store unreadable"):
        judgekit.judge(ITEMS, RUBRIC, backend=TimedBackend(0.05), output=out, store=store,
                       batch_size=24)  # fmt: skip
    assert threading.active_count() == before
    rows = out.read_text().splitlines()
    assert len(rows) == len(_rows(store)) == 48  # two whole windows, written and stored
    again = judgekit.judge(ITEMS, RUBRIC, backend=ScriptedBackend(_score), output=out,
                           store=store, if_exists="resume", batch_size=24)  # fmt: skip
    assert len(again.judgments) == 120


def test_prefetch_keeps_order_and_raises_where_the_consumer_reads() -> None:
    def source():  # type: ignore[no-untyped-def]
        yield from range(3)
        raise ValueError("bad window")

    ready = Prefetch(source())
    got = [ready.get(), ready.get(), ready.get()]
    with pytest.raises(ValueError, match="bad window"):
        ready.get()
    assert got == [0, 1, 2]
    with pytest.raises(StopIteration):
        ready.get()
    ready.close()


def test_closing_the_consumer_stops_the_producer() -> None:
    made: list[int] = []
    gate = threading.Event()

    def source():  # type: ignore[no-untyped-def]
        for i in range(1000):
            made.append(i)
            gate.set()
            yield i

    with Prefetch(source(), depth=2) as ready:
        assert ready.get() == 0
        gate.wait()
    assert len(made) <= 4  # one taken, two queued, one in hand
    slow = Prefetch(iter([time.sleep(0.2)]))  # made before the thread even starts
    assert slow.get(block=False) in (None, NOT_READY)
    slow.close()


def _engine_run(tmp_path: Path, name: str, depth: int, monkeypatch: Any) -> Any:
    """The vLLM backend's window loop and prompt encoding on a stand-in ``LLMEngine`` (20 ms
    steps finishing 2 requests each), each window's preparation 0.05 s slower than it is."""
    from judgekit.backends import vllm_engine

    monkeypatch.setattr(prefetch, "DEPTH", depth)
    monkeypatch.setattr(vllm_engine, "_label_params", label_params)
    engine = stand_in_vllm(ChatEncoder(smollm2()), step_s=0.02, per_step=2, prep_s=0.05)
    out = tmp_path / f"{name}.jsonl"
    run = judgekit.judge(ITEMS, RUBRIC, backend=engine, output=out, batch_size=10,
                         write_every=20)  # fmt: skip
    return run, engine._llm.llm_engine, out.read_bytes()


def test_the_engine_is_topped_up_and_never_waits_on_tokenisation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """12 windows of 10 requests, 0.1 s of engine time each: the engine's window loop adds each
    next window while the previous one still runs, and the host time between engine steps stays
    near zero (rows are written 20 at a time); prepared in the engine's own thread
    (sequential), 0.05 s of preparation per window is time the engine did not step (the first
    windows are prepared before it starts)."""
    run, fake, written = _engine_run(tmp_path, "pipelined", 1, monkeypatch)
    old, old_fake, old_written = _engine_run(tmp_path, "sequential", 0, monkeypatch)
    firsts = fake.in_flight_at_add[10::10]  # in flight when each later window's first was added
    assert len(firsts) == 11 and min(firsts) > 0  # never ran dry between windows
    assert old_fake.idle >= 8 * 0.05
    assert fake.idle < 0.4 * old_fake.idle
    assert written == old_written and run.judgments == old.judgments
    assert all(j.valid for j in run.judgments)


def test_the_benchmark_runs_both_orders_and_writes_the_same_rows(tmp_path: Path) -> None:
    from benchmarks.pipeline import main

    out = tmp_path / "pipeline.json"
    assert main(["--items", "48", "--batch-size", "16", "--step-ms", "1", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["same_rows"] and [r["mode"] for r in results["runs"]] == [
        "pipelined",
        "sequential",
    ]
    assert all(r["requests"] == 48 and r["windows"] == 3 for r in results["runs"])


def test_a_tokenisation_error_stops_the_engine_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's producer thread failing on its third window: judge() raises that error, the
    requests still in the engine are aborted, every row written is whole and no thread is left."""
    from judgekit.backends import vllm_engine

    monkeypatch.setattr(vllm_engine, "_label_params", label_params)
    engine = stand_in_vllm(ChatEncoder(smollm2()), step_s=0.001, per_step=4)
    prepared, calls = engine._prepared, []

    def failing(requests):  # type: ignore[no-untyped-def]
        calls.append(len(requests))
        if len(calls) == 3:
            raise RuntimeError("tokenizer crashed")
        return prepared(requests)

    engine._prepared = failing
    before = threading.active_count()
    out = tmp_path / "run.jsonl"
    with pytest.raises(RuntimeError, match="tokenizer crashed"):
        judgekit.judge(ITEMS, RUBRIC, backend=engine, output=out, batch_size=10, write_every=4)
    assert threading.active_count() == before and not engine._llm.llm_engine.active
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert 0 < len(rows) <= 20 and all(r["valid"] for r in rows)
