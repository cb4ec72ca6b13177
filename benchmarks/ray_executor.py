"""The Ray executor against the local run: overhead, prefix-cache hits, driver throughput.

    python benchmarks/ray_executor.py                  # all three parts (engine: take the lock)
    python benchmarks/ray_executor.py --parts driver   # no engine: driver-side handling only
    python benchmarks/ray_executor.py --items 256 --hit-items 160

* ``overhead``: SummEval items (``overall_quality@v2``, one variant) judged by the embedded judge
  in this process, then by a Ray pool of ONE actor holding the same engine on the same two
  cores (``cpus_per_actor=2``). Both timings include one engine load; the cluster is started
  before. Target: Ray >= 0.85x the local items/s at 1,000 items.
* ``hitrate``: all three variants of ``--hit-items`` SummEval items (16 summaries per article
  share it): prefix-cache hit rate (cached / prompt tokens over every judgment) locally, on two
  actors with prefix-aware batches, and on two actors with requests dealt at random. Target: the
  prefix-aware rate >= 90% of the local one.
* ``driver``: result handling on the driver with an instant backend (no model): the run loop's
  scoring, rows, writes (fsynced every ``write_every``) per second, and the Ray path end to end
  with instant scripted actors. Target: >= 20,000 judgments/s, so 32 GPU actors are not
  driver-bound.

Results go to ``benchmarks/results/ray_executor.json`` (each part replaces its own entry).
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's judgekit and benchmarks, also as a script

import judgekit  # noqa: E402
from benchmarks.speed.machine import machine  # noqa: E402
from benchmarks.speed.workloads import pointwise_items  # noqa: E402
from judgekit.backends import BackendBase, VLLMJudge, factory  # noqa: E402
from judgekit.judging.ray_executor import RayExecutor  # noqa: E402
from judgekit.schema import JudgeIdentity, LabelLogprobs, LabelRequest, PointwiseItem  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
RUBRIC = "overall_quality@v2"
SPEC = VLLMJudge(dtype="float32")


class Instant(BackendBase):
    """A judge that answers at once with the same label log-probabilities (no model)."""

    identity = JudgeIdentity(backend="instant", model="instant", fingerprint="0" * 64, settings={})

    def score(self, requests: Sequence[LabelRequest]) -> list[LabelLogprobs]:
        answer = LabelLogprobs({"1": -2.0, "2": -1.5, "3": -1.0, "4": -1.5, "5": -2.0}, 500, 480)
        return [answer] * len(requests)


def instant(spec: object) -> Instant:
    return Instant()


def _timed_run(items: Sequence[Any], backend: Any, **options: Any) -> tuple[float, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run = judgekit.judge(
            items, RUBRIC, backend=backend, output=Path(tmp) / "o.jsonl", **options
        )
        return time.perf_counter() - start, run


def hit_rate(run: Any) -> float:
    prompt = sum(j.num_prompt_tokens for j in run.judgments)
    return sum(j.num_cached_tokens for j in run.judgments) / max(prompt, 1)


def overhead(n_items: int) -> dict[str, Any]:
    """Local vs one Ray actor, same engine, same cores, one variant."""
    items, source = pointwise_items(n_items)
    local_s, local = _timed_run(items, SPEC, variants=["direct"])
    ray_s, ray_run = _timed_run(
        items, SPEC, variants=["direct"], executor=RayExecutor(actors=1, cpus_per_actor=2)
    )
    _check_same(local, ray_run)
    return {
        "items": n_items,
        "source": source,
        "local_items_per_s": n_items / local_s,
        "ray_items_per_s": n_items / ray_s,
        "ratio": local_s / ray_s,
        "local_s": local_s,
        "ray_s": ray_s,
        "local_hit_rate": hit_rate(local),
        "ray_hit_rate": hit_rate(ray_run),
    }


def _check_same(local: Any, other: Any) -> None:
    """Same labels, probabilities within 1e-4 (float32): wrong answers fast measure nothing."""
    mine = {(j.item_id, j.variant): j for j in local.judgments}
    for j in other.judgments:
        k = mine[j.item_id, j.variant]
        assert j.label == k.label, (j.item_id, j.label, k.label)
        assert all(abs(j.label_probs[x] - k.label_probs[x]) < 1e-4 for x in k.label_probs)


def hitrate(n_items: int) -> dict[str, Any]:
    """Every variant of each item: local, prefix-aware on two actors, random on two actors."""
    items, source = pointwise_items(n_items)
    rates: dict[str, Any] = {"items": n_items, "source": source, "variants": 3}
    _, local = _timed_run(items, SPEC)
    rates["local"] = hit_rate(local)
    for how in ("prefix", "random"):
        executor = RayExecutor(actors=2, batch_size=64, partitioning=how)
        seconds, run = _timed_run(items, SPEC, executor=executor)
        _check_same(local, run)
        rates[how] = hit_rate(run)
        rates[f"{how}_s"] = seconds
    rates["prefix_share_of_local"] = rates["prefix"] / rates["local"]
    rates["random_share_of_local"] = rates["random"] / rates["local"]
    return rates


def driver(n_requests: int) -> dict[str, Any]:
    """Judgments per second the driver handles when the judge costs nothing.

    Timed between the first and the last chunk the run hands on (planning and the final
    aggregation are not result handling): per wall second, and per CPU second of this process
    (the figure that holds on a shared, busy machine).
    """
    items = [
        PointwiseItem(id=str(i), question=f"q{i % 50}", answer=f"a{i}") for i in range(n_requests)
    ]
    out: dict[str, Any] = {"requests": n_requests}
    for every in (64, 1024):
        clock = _Clock()
        _timed_run(items, Instant(), variants=["direct"], write_every=every, progress=clock)
        out[f"run_loop_write_every_{every}"] = clock.rates()
    out["executor_unpickle_per_cpu_s"] = _unpickle_rate(n_requests)
    executor = RayExecutor(actors=2, builder=instant, batch_size=1024)
    factory.BUILDERS["vllm"] = instant  # the driver's judge too: identity only
    clock = _Clock()
    try:
        _timed_run(items, VLLMJudge(), variants=["direct"], executor=executor, progress=clock)
    finally:
        factory.BUILDERS["vllm"] = factory._vllm
    out["ray_instant_actors"] = clock.rates()
    return out


class _Clock:
    """Wall, process CPU and run-loop (main thread) CPU time at the first and last progress
    call of a run. The main thread is the result handling (rows, writes, store); the process
    also counts Ray Data's scheduling threads, which cost per block and per wall second (they
    poll), not per judgment."""

    def __init__(self) -> None:
        self.marks: list[tuple[int, float, float, float]] = []

    def __call__(self, done: int, total: int) -> None:
        now = (time.perf_counter(), time.process_time(), time.thread_time())
        self.marks.append((done, *now))

    def rates(self) -> dict[str, float]:
        (n0, w0, c0, t0), (n1, w1, c1, t1) = self.marks[0], self.marks[-1]
        n = n1 - n0
        loop = n / (t1 - t0)
        return {"per_wall_s": n / (w1 - w0), "per_cpu_s": n / (c1 - c0), "per_loop_cpu_s": loop}


def _unpickle_rate(n: int) -> float:
    """The Ray executor's own driver work per result: unpickle, keep once, map back."""
    from judgekit.judging.ray_executor import _pack, _unpack
    from judgekit.judging.score import Scorer

    answer = Instant().score([None])[0]  # type: ignore[list-item]
    row = _pack(0, answer, Scorer(("1", "2", "3", "4", "5"), (1, 2, 3, 4, 5), 0.5)(answer.logprobs))
    blobs = [pickle.dumps([(k, *row[1:]) for k in range(64)]) for _ in range(n // 64)]
    part = list(range(64))
    seen: set[tuple[int, int]] = set()
    start = time.process_time()
    for b, blob in enumerate(blobs):
        fresh = [r for r in pickle.loads(blob) if (b, r[0]) not in seen]
        seen.update((b, r[0]) for r in fresh)
        [_unpack(part, r) for r in fresh]
    return 64 * len(blobs) / (time.process_time() - start)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--parts", default="overhead,hitrate,driver")
    parser.add_argument("--items", type=int, default=1000, help="overhead: SummEval items")
    parser.add_argument("--hit-items", type=int, default=160, help="hitrate: SummEval items")
    parser.add_argument("--requests", type=int, default=20000, help="driver: requests")
    args = parser.parse_args(argv)
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    path = RESULTS / "ray_executor.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results["machine"] = machine() | {"dtype": SPEC.dtype, "ray": ray.__version__}
    parts = {"overhead": lambda: overhead(args.items), "hitrate": lambda: hitrate(args.hit_items)}
    parts["driver"] = lambda: driver(args.requests)
    for name in args.parts.split(","):
        results[name] = parts[name]()
        print(name, json.dumps(results[name], indent=1), flush=True)
        path.write_text(json.dumps(results, indent=1) + "\n")
    ray.shutdown()


if __name__ == "__main__":
    main()
