"""Reasoning mode: the judge writes a rationale, then its labels are read exactly after it.

Per request, two engine requests. The rationale request is the rubric's prompt with the
rubric's reasoning instruction ending the user turn and the assistant turn opened (the chat
template's generation prompt); the judge writes greedily up to the plan's budget, stopping at
its end of turn, at the answer cue or at a stop text. The verdict read is the rationale
request's prompt ids + the rationale's ids + the answer cue's ids (``ChatEncoder.cue_ids``), read
like a direct prompt (one token, the labels' exact log-probabilities). Everything stays token
ids: candidate text is never rendered as template, and the rationale is never re-tokenised.
Because the verdict read starts with every token of the rationale request, the prefix cache
serves it from that request's KV blocks (``num_cached_tokens``), so the read costs about the
cue and the label tokens.

The verdict read is submitted the moment its rationale finishes, and new rationale requests are
admitted only while fewer than ``window`` requests are in flight, so the read finds its blocks
still cached instead of queueing behind a long batch that evicts them.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from judgekit.backends.base import AnswerSlot, TokenSeq
from judgekit.backends.prompt import ChatEncoder
from judgekit.rubrics import Rubric
from judgekit.schema import LabelLogprobs, LabelRequest, Message, Reasoning, ReasoningPlan

#: Requests in flight at once (rationales and verdict reads together).
WINDOW = 256


def reasoning_plan(rubric: Rubric, reasoning: Reasoning | bool | None) -> ReasoningPlan | None:
    """The plan a run with ``reasoning`` gives a backend (None: reasoning off); the rubric's
    ``reasoning`` block gives the instruction, stop texts and default budget."""
    if reasoning is None or reasoning is False:
        return None
    option = Reasoning() if reasoning is True else reasoning
    spec = rubric.manifest.reasoning
    return ReasoningPlan(
        instruction=spec.instruction,
        max_tokens=option.max_tokens or spec.max_tokens,
        stop=spec.stop,
    )


def rationale_messages(request: LabelRequest, instruction: str) -> tuple[Message, ...]:
    """The request's messages with the instruction ending its last user turn; the answer cue
    stays last (``ChatEncoder.encode_chat(messages, None)`` replaces it by an open turn)."""
    messages = list(request.messages)
    last = max(i for i, m in enumerate(messages) if m.role == "user")
    messages[last] = Message("user", f"{messages[last].content}\n\n{instruction}")
    return tuple(messages)


@dataclass(eq=False)
class ReasoningJob:
    """One request in reasoning mode: its prompt, cue and label spellings, and what came back."""

    index: int
    slot: AnswerSlot
    prompt: list[int]
    cue: list[int]
    stop: tuple[str, ...]
    rationale: list[int] = field(default_factory=list)
    text: str = ""
    outputs: dict[TokenSeq, Any] = field(default_factory=dict)

    def verdict_ids(self, prefix: TokenSeq = ()) -> list[int]:
        """The verdict read: prompt + rationale + answer cue (+ a label prefix)."""
        return [*self.prompt, *self.rationale, *self.cue, *prefix]


def reasoning_jobs(
    encoder: ChatEncoder,
    requests: Sequence[LabelRequest],
    plan: ReasoningPlan,
    max_model_len: int,
) -> tuple[list[ReasoningJob], dict[int, LabelLogprobs]]:
    """Jobs for the requests that fit, and error results (by index) for those whose prompt,
    rationale budget, cue and longest label would pass ``max_model_len``."""
    prompts = encoder.encode_chats(
        [(rationale_messages(r, plan.instruction), None) for r in requests]
    )
    jobs, errors = [], {}
    for i, (request, prompt) in enumerate(zip(requests, prompts, strict=True)):
        slot, cue = encoder.cue_ids(request)
        longest = max(len(s) for seqs in slot.sequences.values() for s in seqs)
        need = len(prompt.ids) + plan.max_tokens + len(cue) + longest
        if need > max_model_len:
            error = (
                f"prompt has {len(prompt.ids)} tokens; with a rationale of up to "
                f"{plan.max_tokens} tokens it needs {need}, max_model_len is {max_model_len}"
            )
            errors[i] = LabelLogprobs({}, len(prompt.ids), 0, error)
            continue
        stop = tuple(dict.fromkeys(s for s in (slot.tail.strip(), *plan.stop) if s))
        jobs.append(ReasoningJob(i, slot, prompt.ids, cue, stop))
    return jobs, errors


def kept_rationale(
    ids: Sequence[int],
    stop_text: str | None,
    end_ids: Collection[int],
    decode: Callable[[Sequence[int]], str],
) -> list[int]:
    """The generated ids the verdict read continues from: without a final end-of-turn token,
    and, when a stop text ended the rationale, without the tokens that spelled it (the engine
    cuts the stop text from its output text, not from its token ids)."""
    kept = list(ids)
    if kept and kept[-1] in end_ids:
        kept.pop()
    if stop_text:
        while kept and stop_text in decode(kept):
            kept.pop()
    return kept


class StepEngine(Protocol):
    """The part of vLLM's ``LLMEngine`` the reasoning loop drives."""

    def add_request(self, request_id: str, prompt: Any, params: Any) -> Any: ...

    def step(self) -> list[Any]: ...

    def has_unfinished_requests(self) -> bool: ...

    def abort_request(self, request_ids: list[str]) -> Any: ...


@dataclass(frozen=True)
class EngineCalls:
    """How the loop builds and reads engine requests (the engine module's sampling params).

    ``rationale(stop)``: params of a rationale request; ``label(next_ids)``: of a label read;
    ``finish(output)``: the rationale's kept ids and stored text; ``read(slot, outputs,
    n_prompt)``: label log-probabilities from a job's label reads.
    """

    rationale: Callable[[tuple[str, ...]], Any]
    label: Callable[[Sequence[int]], Any]
    finish: Callable[[Any], tuple[list[int], str]]
    read: Callable[[AnswerSlot, dict[TokenSeq, Any], int], LabelLogprobs]


def stream_reasoning(
    engine: StepEngine,
    jobs: Sequence[ReasoningJob],
    calls: EngineCalls,
    counts: dict[str, int],
    *,
    chunk: int,
    window: int = WINDOW,
) -> Iterator[list[tuple[int, LabelLogprobs]]]:
    """(index, result with its rationale) as verdict reads finish, ``chunk`` at a time.

    ``counts`` accumulates rationale and verdict-read token counts. Requests still in flight
    when the caller stops are aborted.
    """
    run = uuid.uuid4().hex
    pending = deque(jobs)
    waiting: dict[str, tuple[ReasoningJob, TokenSeq | None]] = {}

    def admit() -> None:
        while pending and len(waiting) < window:
            job = pending.popleft()
            request_id = f"reason-{run}-{job.index}"
            engine.add_request(
                request_id, {"prompt_token_ids": job.prompt}, calls.rationale(job.stop)
            )
            waiting[request_id] = (job, None)

    def read_after(job: ReasoningJob, output: Any) -> None:
        job.rationale, job.text = calls.finish(output)
        counts["rationale_requests"] += 1
        counts["rationale_prompt_tokens"] += len(job.prompt)
        counts["rationale_cached_tokens"] += output.num_cached_tokens or 0
        counts["rationale_tokens"] += len(output.outputs[0].token_ids)
        for prefix, next_ids in job.slot.queries().items():
            request_id = f"verdict-{run}-{job.index}-{'.'.join(map(str, prefix))}"
            engine.add_request(
                request_id, {"prompt_token_ids": job.verdict_ids(prefix)}, calls.label(next_ids)
            )
            waiting[request_id] = (job, prefix)

    admit()
    done: list[tuple[int, LabelLogprobs]] = []
    try:
        while engine.has_unfinished_requests():
            for output in engine.step():
                if not output.finished or output.request_id not in waiting:
                    continue
                job, prefix = waiting.pop(output.request_id)
                if prefix is None:
                    read_after(job, output)
                    continue
                job.outputs[prefix] = output
                if len(job.outputs) == len(job.slot.queries()):
                    n_prompt = len(job.verdict_ids())
                    result = calls.read(job.slot, job.outputs, n_prompt)
                    counts["verdict_prompt_tokens"] += n_prompt
                    counts["verdict_cached_tokens"] += result.num_cached_tokens
                    done.append((job.index, dataclasses.replace(result, rationale=job.text)))
            admit()
            if done and (len(done) >= chunk or not engine.has_unfinished_requests()):
                yield done
                done = []
    finally:
        if waiting:
            engine.abort_request(list(waiting))


#: The counters ``stream_reasoning`` adds to (a backend's ``stats()``).
REASONING_COUNTS = (
    "rationale_requests",
    "rationale_prompt_tokens",
    "rationale_cached_tokens",
    "rationale_tokens",
    "verdict_prompt_tokens",
    "verdict_cached_tokens",
)
