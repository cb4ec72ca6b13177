"""How a run's missing requests reach a judge: the one pluggable step of ``judging.run``.

The run plans, looks results up in the store, writes, aggregates; an executor only turns the
planned requests the store lacks (windows of ``batch_size``, handed over lazily) into (position,
result, score) chunks as they finish. ``LocalExecutor`` hands the windows to the run's backend
(the engine in this process prepares the next while it scores this one);
``judging.ray_executor.RayExecutor`` partitions them by prefix family and runs them on a pool of
Ray actors, each holding its own engine. ``partition`` is shared so that every executor that
splits a plan splits it the same way (``plan.partition``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from judgekit.backends import Backend, JudgeSpec
from judgekit.backends.base import CapabilityError
from judgekit.backends.factory import LazyBackend
from judgekit.judging.plan import PlannedRequest
from judgekit.judging.score import LabelScore, Scorer
from judgekit.schema import LabelLogprobs, LabelRequest, ReasoningPlan

#: (position in the planned requests, result, its score) for each request that finished.
Chunk = list[tuple[int, LabelLogprobs, LabelScore]]


class Executor(Protocol):
    """Windows of planned requests in, (position counted across the windows, result, score)
    chunks out as requests finish; ``scorer`` reads each result where it was produced (a Ray
    actor scores its own).

    ``spec`` is the judge the run was given (None when it was given a started backend): an
    executor that builds engines elsewhere builds them from it. ``layout()`` describes where the
    work ran, for the run manifest; it is operational (it never enters the judge identity, so
    cards and stored results still match).
    """

    def stream(
        self,
        backend: Backend,
        spec: JudgeSpec | None,
        windows: Iterable[Sequence[PlannedRequest]],
        chunk: int,
        scorer: Scorer,
    ) -> Iterator[Chunk]: ...

    def layout(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LocalExecutor:
    """The run's own backend, in windows of ``batch_size`` requests handed over in one call
    (``score_windows``: the next window is prepared while this one is scored, and a streaming
    engine hands results back ``chunk`` at a time). With a reasoning ``plan`` each window goes
    to ``reason_stream`` (generation dominates: nothing to prepare ahead of it)."""

    batch_size: int = 1024
    plan: ReasoningPlan | None = None

    def stream(
        self,
        backend: Backend,
        spec: JudgeSpec | None,
        windows: Iterable[Sequence[PlannedRequest]],
        chunk: int,
        scorer: Scorer,
    ) -> Iterator[Chunk]:
        requests = ([p.request for p in window] for window in windows)
        results = (
            backend.score_windows(requests, chunk)
            if self.plan is None
            else _reasoned(backend, requests, self.plan, chunk)
        )
        with closing(results) as parts:
            for part in parts:
                yield [(i, r, scorer(r.logprobs, r.error)) for i, r in part]

    def layout(self) -> dict[str, Any]:
        return {"kind": "local", "batch_size": self.batch_size}


def _reasoned(
    backend: Backend, windows: Iterator[list[LabelRequest]], plan: ReasoningPlan, chunk: int
) -> Iterator[list[tuple[int, LabelLogprobs]]]:
    """Reasoning mode window by window, indexed across windows like ``score_windows``."""
    offset = 0
    for window in windows:
        for part in backend.reason_stream(window, plan, chunk):
            yield [(offset + i, result) for i, result in part]
        offset += len(window)


ExecutorChoice = Literal["local", "ray"] | Executor


def choose_executor(
    choice: ExecutorChoice, batch_size: int, plan: ReasoningPlan | None = None
) -> Executor:
    """``"local"``, ``"ray"`` (a default ``RayExecutor``, Ray imported only then) or one given.
    Reasoning mode runs locally only (refused before anything is judged)."""
    if choice == "local":
        return LocalExecutor(batch_size, plan)
    if plan is not None:
        raise CapabilityError("reasoning mode runs on the local executor only, not on Ray")
    if choice == "ray":
        from judgekit.judging.ray_executor import RayExecutor

        return RayExecutor()
    return choice


def spec_of(backend: Backend | JudgeSpec) -> JudgeSpec | None:
    """The judge spec behind ``backend``, for executors that build engines of their own."""
    if isinstance(backend, LazyBackend):
        return backend.spec
    return None if isinstance(backend, Backend) else backend
