"""The judge options every command takes, declared once: ``@judge_options`` adds them to a
command and hands it one ``JudgeSpec`` (``judge_spec`` parameter) built by ``resolve_judge``.

``--judge NAME`` starts from ``[judge.NAME]`` in judgekit.toml; any option given on the command
line overrides that field. Without ``--judge``, the backend is ``--backend``, else ``replay`` when
``--verdicts`` is given, ``openai`` when ``--base-url`` is, else the embedded judge on the
in-process vLLM engine. An option that the chosen backend does not have is an error naming it
(exit 2), never silently ignored. A command that takes ``reasoning`` also gets the reasoning-mode
options (``REASONING_OPTIONS``) and receives ``reasoning: Reasoning | None``.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from typing import Annotated, Any

import typer

from judgekit.backends.spec import BackendKind, JudgeSpec, judge_spec
from judgekit.config import named_judge
from judgekit.schema import Reasoning

_PANEL = "Judge"


def _option(help: str, *decls: str) -> Any:
    return typer.Option(*decls, help=help, rich_help_panel=_PANEL)


#: name -> (annotation, typer option); every default is None = "not given".
JUDGE_OPTIONS: dict[str, tuple[Any, Any]] = {
    "judge": (str | None, _option("A judge named in judgekit.toml ([judge.NAME]).", "--judge")),
    "backend": (
        BackendKind | None,
        _option(
            "vllm (in-process engine), openai (servers) or replay (a verdicts file).", "--backend"
        ),
    ),
    "model": (
        str | None,
        _option("Model dir or hub id (default: embedded SmolLM2); openai: served model name."),
    ),
    "dtype": (str | None, _option("Engine dtype (default: $JUDGEKIT_DTYPE, else 'auto').")),
    "max_model_len": (int | None, _option("Engine context length (default 4096).")),
    "tensor_parallel_size": (int | None, _option("GPUs per engine (tensor parallel).")),
    "gpu_memory_utilization": (float | None, _option("Share of GPU memory the engine may use.")),
    "enforce_eager": (
        bool | None,
        _option(
            "Eager (fast start) or compiled engine (default: eager on CPU).",
            "--enforce-eager/--compile",
        ),
    ),
    "chat_template": (str | None, _option("A Jinja chat template file replacing the model's own.")),
    "speculative_config": (
        str | None,
        _option(
            "vllm: speculative decoding config as JSON for reasoning mode's rationales, e.g. "
            '\'{"method": "ngram", "num_speculative_tokens": 3}\' (GPU builds; refused on the '
            "CPU build, where no method keeps the exact label read)."
        ),
    ),
    "base_url": (list[str] | None, _option("openai: server URL(s); several = replicas.")),
    "api_key_env": (str | None, _option("openai: environment variable holding the API key.")),
    "max_concurrency": (int | None, _option("openai: in-flight requests per replica.")),
    "prefill": (
        bool | None,
        _option(
            "openai: continue the answer cue (vLLM/SGLang); --no-prefill for hosted APIs.",
            "--prefill/--no-prefill",
        ),
    ),
    "tokenizer": (str | None, _option("openai: local tokenizer dir of the served judge.")),
    "verdicts": (
        str | None,
        _option("replay: JSON/JSONL file of another judge's verdicts.", "--verdicts"),
    ),
    "id_field": (str | None, _option("replay: id field of the verdicts file.")),
    "verdict_field": (
        str | None,
        _option("replay: verdict field (with --verdict-ba-field: the AB order's verdict)."),
    ),
    "verdict_ba_field": (
        str | None,
        _option("replay: field of the swapped (BA) order's verdict, by original letters."),
    ),
    "ba_as_shown": (
        bool | None,
        _option(
            "replay: the BA verdict names answers by the letter shown.",
            "--ba-as-shown/--ba-original-letters",
        ),
    ),
    "label_map": (list[str] | None, _option("replay: map VERDICT=LABEL, e.g. 1=A.")),
}


#: Reasoning mode (``backends.reasoning``), for commands that take ``reasoning``.
REASONING_OPTIONS: dict[str, tuple[Any, Any]] = {
    "reasoning": (
        bool,
        _option(
            "Reasoning mode: the judge writes a rationale (greedy, bounded) before its label "
            "probabilities are read; stored in the rows. Part of the judge identity.",
            "--reasoning/--no-reasoning",
        ),
    ),
    "max_reasoning_tokens": (
        int | None,
        _option("Reasoning mode: most rationale tokens (default: the rubric's, 256)."),
    ),
}


def resolve_reasoning(reasoning: bool, max_reasoning_tokens: int | None) -> Reasoning | None:
    """The reasoning option of a run (None: off)."""
    if max_reasoning_tokens is not None and not reasoning:
        raise typer.BadParameter("needs --reasoning", param_hint="--max-reasoning-tokens")
    return Reasoning(max_tokens=max_reasoning_tokens) if reasoning else None


def resolve_judge(**given: Any) -> JudgeSpec:
    """One ``JudgeSpec`` from the judge options (None = not given)."""
    name = given.pop("judge", None)
    fields = {k: v for k, v in given.items() if v is not None and v != []}
    if "base_url" in fields:
        fields["base_url"] = tuple(fields["base_url"])
    if "speculative_config" in fields:
        try:
            fields["speculative_config"] = json.loads(fields["speculative_config"])
        except ValueError as err:
            raise typer.BadParameter(f"not JSON: {err}", param_hint="--speculative-config") from err
    if "label_map" in fields:
        fields["label_map"] = dict(pair.partition("=")[::2] for pair in fields["label_map"])
    if name is not None:
        base = named_judge(name)
        backend = fields.pop("backend", base.backend)
        if backend != base.backend:
            raise typer.BadParameter(
                f"judge {name!r} is a {base.backend} judge, not {backend}", param_hint="--backend"
            )
        return judge_spec(backend, **(base.model_dump(exclude={"backend"}) | fields))
    inferred = "replay" if "verdicts" in fields else "openai" if "base_url" in fields else "vllm"
    return judge_spec(fields.pop("backend", inferred), **fields)


def judge_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the judge options to ``command``, which receives ``judge_spec: JudgeSpec``."""
    signature = inspect.signature(command, eval_str=True)
    reasons = "reasoning" in signature.parameters
    own = [p for p in signature.parameters.values() if p.name not in ("judge_spec", "reasoning")]
    options = JUDGE_OPTIONS | (REASONING_OPTIONS if reasons else {})
    added = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=False if name == "reasoning" else None,
            annotation=Annotated[kind, option],
        )
        for name, (kind, option) in options.items()
    ]

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name, None) for name in JUDGE_OPTIONS}
        if reasons:
            kwargs["reasoning"] = resolve_reasoning(
                bool(kwargs.pop("reasoning", False)), kwargs.pop("max_reasoning_tokens", None)
            )
        return command(*args, judge_spec=resolve_judge(**given), **kwargs)

    run.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in [*own, *added]}
    del run.__wrapped__  # typer must read the new signature, not follow the wrapped one
    return run
