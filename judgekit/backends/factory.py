"""The one place a backend is built from a judge spec; every command and the API call it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from judgekit.backends.base import Backend, BackendBase, Capabilities
from judgekit.backends.spec import (
    BackendKind,
    JudgeSpec,
    OpenAIJudge,
    ReplayJudge,
    VLLMJudge,
    judge_spec,
)
from judgekit.rubrics import Rubric
from judgekit.schema import JudgeIdentity, LabelLogprobs, LabelRequest, ReasoningPlan


def _vllm(spec: VLLMJudge) -> Backend:
    from judgekit.backends.vllm_engine import VLLMEngine

    return VLLMEngine(spec)


def _openai(spec: OpenAIJudge) -> Backend:
    from judgekit.backends.openai_server import OpenAIServer

    return OpenAIServer(spec)


def _replay(spec: ReplayJudge) -> Backend:
    from judgekit.backends.replay import ReplayBackend, read_verdicts

    def read(field: str) -> dict[str, str | None]:
        return read_verdicts(
            spec.verdicts, id_field=spec.id_field, verdict_field=field, label_map=spec.label_map
        )

    name = spec.model or Path(spec.verdicts).stem
    return ReplayBackend(
        read(spec.verdict_field),
        model=name,
        source=spec.verdicts,
        verdicts_ba=read(spec.verdict_ba_field) if spec.verdict_ba_field else None,
        ba_as_shown=spec.ba_as_shown,
    )


#: Backend kind -> the function that starts it: the one place backends are built. A test (or
#: a plugin) replaces an entry to put a scripted judge behind every command.
BUILDERS: dict[str, Callable[[Any], Backend]] = {
    "vllm": _vllm,
    "openai": _openai,
    "replay": _replay,
}


def create_backend(spec: JudgeSpec | BackendKind = "vllm", /, **fields: Any) -> Backend:
    """The backend a spec describes, started now.

    ``create_backend(VLLMJudge(model="/models/qwen"))``, or the shorthand
    ``create_backend("openai", base_url=["http://h1:8000/v1", "http://h2:8000/v1"])`` (the fields
    are validated as that backend's spec, so a typo is an error naming the field).
    """
    if isinstance(spec, str):
        spec = judge_spec(spec, **fields)
    elif fields:
        spec = spec.model_copy(update=fields)
    return BUILDERS[spec.backend](spec)


def open_backend(spec: JudgeSpec) -> Backend:
    """Like ``create_backend``, but an in-process engine loads only when it is first asked to
    score: a run that the result store serves entirely never starts one."""
    if isinstance(spec, VLLMJudge) and BUILDERS["vllm"] is _vllm:
        return LazyBackend(spec)
    return create_backend(spec)


class LazyBackend(BackendBase):
    """An in-process engine whose identity is known (``resolve_engine``) before it loads."""

    def __init__(self, spec: VLLMJudge) -> None:
        from judgekit.backends.vllm_engine import VLLMEngine, resolve_engine

        self.spec = spec
        self._resolved = resolve_engine(spec)
        self._identity = self._resolved.identity
        self._backend: Backend | None = None
        self.capabilities: Capabilities = VLLMEngine.capabilities

    @property
    def identity(self) -> JudgeIdentity:
        return self._identity

    def preflight(self, rubric: Rubric, variants: Sequence[str] | None) -> None:
        """The probe prompts on the judge's chat format, before the engine loads."""
        from judgekit.backends.preflight import preflight

        preflight(
            self._resolved.encoder,
            rubric,
            variants,
            model=self._identity.model,
            max_model_len=self.spec.max_model_len,
        )

    @property
    def loaded(self) -> bool:
        return self._backend is not None

    def backend(self) -> Backend:
        """The engine, started on first use."""
        if self._backend is None:
            self._backend = create_backend(self.spec)
        return self._backend

    def score(self, requests: Sequence[LabelRequest]) -> list[LabelLogprobs]:
        return self.backend().score(requests)

    def score_stream(
        self, requests: Sequence[LabelRequest], chunk: int
    ) -> Iterator[list[tuple[int, LabelLogprobs]]]:
        return self.backend().score_stream(requests, chunk)

    def score_windows(
        self, windows: Iterable[Sequence[LabelRequest]], chunk: int
    ) -> Iterator[list[tuple[int, LabelLogprobs]]]:
        return self.backend().score_windows(windows, chunk)

    def reason_stream(
        self, requests: Sequence[LabelRequest], plan: ReasoningPlan, chunk: int
    ) -> Iterator[list[tuple[int, LabelLogprobs]]]:
        return self.backend().reason_stream(requests, plan, chunk)

    def stats(self) -> dict[str, Any] | None:
        return self._backend.stats() if self._backend is not None else None

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
