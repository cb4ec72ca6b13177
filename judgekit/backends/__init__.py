"""Judge backends. Each optional dependency is imported only inside its own backend module."""

from __future__ import annotations

from typing import Any

from judgekit.backends.base import Backend, LabelTokenError


def create_backend(kind: str = "vllm", **options: Any) -> Backend:
    """A backend by name; ``options`` go to its constructor (e.g. EngineOptions fields)."""
    if kind == "vllm":
        from judgekit.backends.vllm_engine import VLLMEngine

        return VLLMEngine(**options)
    raise ValueError(f"unknown backend {kind!r}; available: 'vllm'")


__all__ = ["Backend", "LabelTokenError", "create_backend"]
