"""A judge as one typed value: which backend, which model, and the options that run it.

Every command and the Python API describe a judge with a ``JudgeSpec`` (one of ``VLLMJudge``,
``OpenAIJudge``, ``ReplayJudge``, told apart by ``backend``) and build it with the one factory,
``judgekit.backends.create_backend``. A project names its judges in ``judgekit.toml``
(``[judge.small]``, ``[judge.big]``), so a card certifies a named rubric x judge pair and commands
take ``--judge NAME``. Importing this module imports neither vLLM nor the OpenAI client.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, field_validator

from judgekit.schema import StrictModel

#: Forces the engine dtype (``float32`` / ``bfloat16``) wherever a spec leaves it at its default,
#: e.g. to run the test suite both ways on one machine.
DTYPE_ENV = "JUDGEKIT_DTYPE"
#: The smallest block the CPU attention kernel supports (a multiple of 32).
CPU_BLOCK_SIZE = 32


class VLLMJudge(StrictModel):
    """A judge run in-process on vLLM. Settings that change verdicts go into every row."""

    backend: Literal["vllm"] = "vllm"
    model: str | None = Field(
        default=None,
        description="Local HF model dir or hub id; None = embedded SmolLM2; 'gemma3-270m' = the "
        "base Gemma-3-270M package (completion form).",
    )
    max_model_len: int = Field(default=4096, ge=16)
    dtype: str = Field(
        default_factory=lambda: os.environ.get(DTYPE_ENV) or "auto",
        description="'auto': the model's on GPU; bf16 on CPUs with native bf16, else float32. "
        f"Default: ${DTYPE_ENV} when set.",
    )
    tensor_parallel_size: int = Field(default=1, ge=1, description="GPUs per engine.")
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0, le=1, description="Share of each GPU's memory the engine may use."
    )
    enforce_eager: bool | None = Field(
        default=None, description="None = eager on CPU (fast start), compiled on GPU."
    )
    enable_prefix_caching: bool = True
    block_size: int | None = Field(
        default=None,
        description="KV-cache block size: only whole blocks of a shared prefix are reused. "
        f"None = {CPU_BLOCK_SIZE} on CPU (vLLM's CPU default of 128 recomputes up to 127 tokens "
        "of every shared prefix), vLLM's default on GPU.",
    )
    seed: int = 0
    load_format: str = Field(
        default="auto", description="vLLM load format; 'dummy' = random weights (benchmarks)."
    )
    chat_template: str | None = Field(
        default=None, description="A Jinja chat template file replacing the model's own."
    )
    speculative_config: dict[str, Any] | None = Field(
        default=None,
        description="vLLM's speculative decoding config (speeds up reasoning mode's rationales; "
        "never changes a verdict, so never a card key), e.g. {'method': 'ngram', "
        "'num_speculative_tokens': 3, 'prompt_lookup_max': 4}. Refused on the CPU build, where "
        "no method keeps the exact label read (docs/reasoning.md).",
    )

    @field_validator("speculative_config")
    @classmethod
    def _method_named(cls, config: dict[str, Any] | None) -> dict[str, Any] | None:
        if config is not None and not isinstance(config.get("method"), str):
            raise ValueError("a speculative config names its method, e.g. {'method': 'ngram'}")
        return config


class OpenAIJudge(StrictModel):
    """A judge behind OpenAI-compatible servers (vLLM, SGLang, hosted APIs), one or many replicas.

    See ``judgekit.backends.openai_server`` for how labels are read from them.
    """

    backend: Literal["openai"] = "openai"
    base_url: tuple[str, ...] = Field(
        min_length=1, description="One or more OpenAI-compatible base URLs, e.g. http://h:8000/v1."
    )
    model: str | None = Field(
        default=None, description="Served model name; None = the first model the servers list."
    )
    api_key_env: str = Field(
        default="OPENAI_API_KEY",
        description="Environment variable holding the API key; unset = 'EMPTY' (local servers).",
    )
    prefill: bool = Field(
        default=True,
        description="End the prompt inside the assistant turn at the engine's answer slot (needs "
        "the judge's tokenizer). False: the judge answers after the template's generation "
        "prompt; hosted chat APIs, which cannot continue a message, need it.",
    )
    tokenizer: str | None = Field(
        default=None,
        description="Local HF tokenizer dir of the judge: prompts go as the engine's token ids. "
        "None = the served model's root when it is a readable local folder, else no tokenizer "
        "(chat messages, hosted APIs with prefill=False only).",
    )
    label_source: Literal["logprobs", "text"] = Field(
        default="logprobs",
        description="'text': for endpoints without logprobs, the generated text is parsed: an "
        "exact label is a one-hot verdict with label mass 0.0 (no probability was measured); "
        "counted in stats.fallbacks and recorded in every row (label_logprobs='text').",
    )
    top_logprobs: int = Field(default=20, ge=1, le=20)
    max_concurrency: int = Field(
        default=256, ge=1, description="In-flight requests per replica (a GPU server's batch)."
    )
    timeout: float = Field(default=60.0, gt=0, description="Seconds per HTTP attempt.")
    max_retries: int = Field(
        default=4, ge=0, description="Retries per request after the first try."
    )
    backoff_base: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(
        default=30.0, ge=0, description="Cap on one backoff wait, Retry-After included."
    )

    @field_validator("base_url", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


class ReplayJudge(StrictModel):
    """Verdicts another judge already made (an API judge a team paid for), replayed by item id."""

    backend: Literal["replay"] = "replay"
    verdicts: str = Field(description="JSON list or JSONL file of the verdicts.")
    id_field: str = "id"
    verdict_field: str = Field(
        default="verdict",
        description="The verdict; with verdict_ba_field, the verdict of the AB presentation.",
    )
    verdict_ba_field: str | None = Field(
        default=None,
        description="Verdicts made in both answer orders: the field holding the verdict of the "
        "swapped (BA) presentation, combined with the AB one by the run's swap rule like a live "
        "judge's two orders. It names answers by their original letters (A = answer_a) unless "
        "ba_as_shown.",
    )
    ba_as_shown: bool = Field(
        default=False,
        description="The BA verdict names answers by the letter shown (A = answer_b, shown first).",
    )
    label_map: dict[str, str] = Field(
        default_factory=dict, description="Verdict value -> rubric label, e.g. {'1': 'A'}."
    )
    model: str | None = Field(
        default=None, description="Name of the judge behind the file (default: the file's stem)."
    )


JudgeSpec = Annotated[VLLMJudge | OpenAIJudge | ReplayJudge, Field(discriminator="backend")]
BackendKind = Literal["vllm", "openai", "replay"]
_SPEC: TypeAdapter[VLLMJudge | OpenAIJudge | ReplayJudge] = TypeAdapter(JudgeSpec)


def judge_spec(
    backend: BackendKind = "vllm", **fields: Any
) -> VLLMJudge | OpenAIJudge | ReplayJudge:
    """Validate ``fields`` as the spec of a ``backend`` judge (ValidationError names bad fields)."""
    return _SPEC.validate_python({"backend": backend, **fields})
