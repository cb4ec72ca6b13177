"""Judge backends. Each optional dependency is imported only inside its own backend module."""

from __future__ import annotations

from typing import Any

from judgekit.backends.base import Backend, LabelTokenError


def create_backend(kind: str = "vllm", **options: Any) -> Backend:
    """A backend by name; ``options`` go to its constructor (EngineOptions or ServerOptions fields).

    ``create_backend("openai", base_url=["http://h1:8000/v1", "http://h2:8000/v1"])`` judges on
    OpenAI-compatible servers, routing each prefix group to one replica.
    """
    if kind == "vllm":
        from judgekit.backends.vllm_engine import VLLMEngine

        return VLLMEngine(**options)
    if kind == "openai":
        from judgekit.backends.openai_server import OpenAIServer

        return OpenAIServer(**options)
    raise ValueError(f"unknown backend {kind!r}; available: 'vllm', 'openai'")


__all__ = ["Backend", "LabelTokenError", "create_backend"]
