"""Judge options shared by the audit commands (canaries, drift): one declaration, one factory."""

from __future__ import annotations

from typing import Annotated

import typer

from judgekit.backends import Backend, create_backend
from judgekit.cli.app import BackendKind

Model = Annotated[
    str | None,
    typer.Option(
        help="Judge model dir or hub id (default: embedded SmolLM2); openai: served name."
    ),
]
Kind = Annotated[BackendKind, typer.Option("--backend", help="Offline vLLM or OpenAI servers.")]
BaseUrl = Annotated[list[str] | None, typer.Option(help="--backend openai: server URL(s).")]
ApiKeyEnv = Annotated[str, typer.Option(help="--backend openai: env variable with the API key.")]
MaxModelLen = Annotated[int, typer.Option(help="Engine context length.")]
Dtype = Annotated[str, typer.Option(help="Engine dtype.")]
Variants = Annotated[
    list[str] | None, typer.Option("--variant", help="Prompt variant(s) (default: all).")
]


def make_backend(
    kind: BackendKind,
    *,
    model: str | None,
    base_url: list[str] | None,
    api_key_env: str,
    max_model_len: int,
    dtype: str,
) -> Backend:
    if kind == "openai":
        if not base_url:
            raise typer.BadParameter("--backend openai needs --base-url", param_hint="--base-url")
        return create_backend(
            "openai", base_url=tuple(base_url), model=model, api_key_env=api_key_env
        )
    return create_backend("vllm", model=model, max_model_len=max_model_len, dtype=dtype)
