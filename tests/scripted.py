"""The one scripted judge backend for tests of pure logic: label probabilities chosen per request.

Never the only proof of a feature: every feature also has a test on the real engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from judgekit.backends import BackendBase, Capabilities
from judgekit.schema import JudgeIdentity, LabelLogprobs, LabelRequest, ReasoningPlan

#: ``script(item_id, variant, order)`` -> label probabilities (None = a failed request). Labels
#: the request does not have are left out, so one script serves rubrics with and without "tie".
Script = Callable[[str, str, str], dict[str, float] | None]
#: ``rationale(item_id, variant, order)`` -> what the judge writes first in reasoning mode.
Rationale = Callable[[str, str, str], str]


class ScriptedBackend(BackendBase):
    """A judge that answers from a script; ``streaming`` hands results back ``chunk`` at a time.

    ``calls`` counts scored requests and ``batches`` the size of each ``score`` call. With a
    ``rationale`` script it reasons (``reason_stream``: the plans it got are in ``plans``).
    """

    def __init__(
        self,
        script: Script,
        fingerprint: str = "f" * 64,
        *,
        model: str = "scripted",
        settings: dict[str, Any] | None = None,
        streaming: bool = False,
        rationale: Rationale | None = None,
    ) -> None:
        self.script, self.calls, self.batches = script, 0, []
        self.rationale, self.plans = rationale, []
        self.capabilities = Capabilities(streaming=streaming, reasoning=rationale is not None)
        self.identity = JudgeIdentity(
            backend="scripted",
            model=model,
            fingerprint=fingerprint,
            settings={"seed": 0} if settings is None else settings,
        )

    def score(self, requests: Sequence[LabelRequest]) -> list[LabelLogprobs]:
        self.calls += len(requests)
        self.batches.append(len(requests))
        return [self._one(r) for r in requests]

    def score_stream(
        self, requests: Sequence[LabelRequest], chunk: int
    ) -> Iterator[list[tuple[int, LabelLogprobs]]]:
        if not self.capabilities.streaming:
            yield from super().score_stream(requests, chunk)
            return
        self.batches.append(len(requests))
        for start in range(0, len(requests), chunk):
            part = requests[start : start + chunk]
            self.calls += len(part)
            yield [(start + k, self._one(r)) for k, r in enumerate(part)]

    def reason_stream(
        self, requests: Sequence[LabelRequest], plan: ReasoningPlan, chunk: int
    ) -> Iterator[list[tuple[int, LabelLogprobs]]]:
        if self.rationale is None:
            yield from super().reason_stream(requests, plan, chunk)
            return
        self.plans.append(plan)
        for part in self.score_stream(requests, chunk):
            yield [
                (i, replace(r, rationale=self.rationale(q.item_id, q.variant, q.order or "-")))
                for i, r in part
                for q in (requests[i],)
            ]

    def _one(self, request: LabelRequest) -> LabelLogprobs:
        probs = self.script(request.item_id, request.variant, request.order or "-")
        if probs is None:
            return LabelLogprobs({}, 10, 0, error="scripted failure")
        logprobs = {k: math.log(v) for k, v in probs.items() if v > 0 and k in request.labels}
        return LabelLogprobs(logprobs, 10, 0)


def constant(probs: dict[str, float]) -> Script:
    """A script that always answers ``probs``."""
    return lambda item, variant, order: probs


class Lent(BackendBase):
    """A backend lent to a command for one call: every part of the protocol forwarded, except
    ``close`` (the session's engine outlives the command that borrowed it). ``requests`` counts
    the requests that reached ``backend`` through it (a test's proof that the store served the
    rest)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.capabilities = backend.capabilities
        self.requests = 0

    @property
    def identity(self) -> JudgeIdentity:
        return self.backend.identity

    def preflight(self, rubric: Any, variants: Sequence[str] | None) -> None:
        self.backend.preflight(rubric, variants)

    def prepare(self, requests: Sequence[LabelRequest]) -> None:
        self.backend.prepare(requests)

    def score(self, requests: Sequence[LabelRequest]) -> list[LabelLogprobs]:
        self.requests += len(requests)
        return self.backend.score(requests)

    def score_stream(
        self, requests: Sequence[LabelRequest], chunk: int
    ) -> Iterator[list[tuple[int, LabelLogprobs]]]:
        self.requests += len(requests)
        return self.backend.score_stream(requests, chunk)

    def score_windows(
        self, windows: Iterable[Sequence[LabelRequest]], chunk: int
    ) -> Iterator[list[tuple[int, LabelLogprobs]]]:
        return self.backend.score_windows(self._counted(windows), chunk)

    def _counted(
        self, windows: Iterable[Sequence[LabelRequest]]
    ) -> Iterator[Sequence[LabelRequest]]:
        for window in windows:
            self.requests += len(window)
            yield window

    def reason_stream(
        self, requests: Sequence[LabelRequest], plan: Any, chunk: int
    ) -> Iterator[list[tuple[int, LabelLogprobs]]]:
        self.requests += len(requests)
        return self.backend.reason_stream(requests, plan, chunk)

    def stats(self) -> dict[str, Any] | None:
        return self.backend.stats()


def lend(monkeypatch: Any, backend: Any, kind: str = "vllm") -> None:
    """Every command that builds a ``kind`` judge gets ``backend`` (the one factory's hook)."""
    from judgekit.backends import factory

    monkeypatch.setitem(factory.BUILDERS, kind, lambda spec: Lent(backend))


def forbid_engines(monkeypatch: Any) -> None:
    """Any command that would start a judge fails the test (bad input must stop it first)."""
    from judgekit.backends import factory

    def never(spec: Any) -> Any:
        raise AssertionError(f"a {spec.backend} judge was started")

    for kind in ("vllm", "openai", "replay"):
        monkeypatch.setitem(factory.BUILDERS, kind, never)
