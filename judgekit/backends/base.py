"""The contract every judge backend implements, and how label tokens are found in context.

A backend takes label requests and returns, in the same order, the log-probabilities its judge put
on each label as the text that follows the prompt. Everything after that (renormalising, label
mass, expected score, bias controls) is shared code, so the offline engine and a server give the
same numbers for the same logits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from judgekit.backends.prefetch import Prefetch
from judgekit.rubrics import Rubric
from judgekit.schema import JudgeIdentity, LabelLogprobs, LabelRequest, ReasoningPlan

TokenSeq = tuple[int, ...]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do beyond ``score``; the runner reads these, never probes with getattr.

    ``streaming``: ``score_stream`` hands results back as requests finish, so the runner submits
    many requests at once and writes as they come (no batch barrier), and ``score_windows`` tops
    the engine up with the next window as requests finish. ``generation``: free text
    (``generate_text``) for rationales and the generate-then-parse baseline. ``reasoning``:
    ``reason_stream`` (a rationale generated first, then the labels read after it: reasoning mode).
    """

    streaming: bool = False
    generation: bool = False
    reasoning: bool = False


class CapabilityError(ValueError):
    """The run asks a judge for something it cannot do (reasoning from a replay of verdicts, a
    speculative method this vLLM build lacks): raised before anything is judged."""


@runtime_checkable
class Backend(Protocol):
    """Requests in, same-order label log-probabilities out; every method is part of the contract.

    ``preflight(rubric, variants)`` checks, before anything is judged (and before an engine
    loads), that the rubric's prompts can be rendered, tokenised and read on this judge
    (``backends.preflight``); it raises ``PreflightError`` naming the model, problem and fix.
    ``prepare(requests)`` is called once before ``identity`` is read, so choices the backend makes
    from the requests (a probed prompt ending) are part of the identity that keys stored results.
    ``score_stream(requests, chunk)`` yields lists of (index, result) as requests finish.
    ``score_windows(windows, chunk)`` does the same for a run's windows of requests (the index
    counts across windows), preparing the next window while this one is scored (``Prefetch``):
    the runner calls it, once per run.
    ``reason_stream(requests, plan, chunk)`` does the same in reasoning mode
    (``backends.reasoning``: each result carries its rationale); only a backend with
    ``capabilities.reasoning`` has it.
    ``stats()`` returns counters for the run's report (None when there are none).
    ``BackendBase`` gives the defaults for a backend that needs no preparation and cannot stream.
    """

    @property
    def identity(self) -> JudgeIdentity: ...

    @property
    def capabilities(self) -> Capabilities: ...

    def preflight(self, rubric: Rubric, variants: Sequence[str] | None) -> None: ...

    def prepare(self, requests: Sequence[LabelRequest]) -> None: ...

    def score(self, requests: Sequence[LabelRequest]) -> list[LabelLogprobs]: ...

    def score_stream(
        self, requests: Sequence[LabelRequest], chunk: int
    ) -> Iterator[list[tuple[int, LabelLogprobs]]]: ...

    def score_windows(
        self, windows: Iterable[Sequence[LabelRequest]], chunk: int
    ) -> Iterator[list[tuple[int, LabelLogprobs]]]: ...

    def reason_stream(
        self, requests: Sequence[LabelRequest], plan: ReasoningPlan, chunk: int
    ) -> Iterator[list[tuple[int, LabelLogprobs]]]: ...

    def stats(self) -> dict[str, Any] | None: ...

    def close(self) -> None: ...


class BackendBase:
    """Defaults for the optional parts of ``Backend``: nothing to prepare, no streaming (one
    ``score`` call, handed back ``chunk`` results at a time), no reasoning, no stats."""

    capabilities = Capabilities()

    def preflight(self, rubric: Rubric, variants: Sequence[str] | None) -> None:
        """No prompt of its own to check (a replay, a server rendering its chat)."""

    def prepare(self, requests: Sequence[LabelRequest]) -> None:
        """Nothing to choose from the requests."""

    def score(self, requests: Sequence[LabelRequest]) -> list[LabelLogprobs]:
        raise NotImplementedError

    def score_stream(
        self, requests: Sequence[LabelRequest], chunk: int
    ) -> Iterator[list[tuple[int, LabelLogprobs]]]:
        results = list(enumerate(self.score(requests)))
        for start in range(0, len(results), max(chunk, 1)):
            yield results[start : start + chunk]

    def score_windows(
        self, windows: Iterable[Sequence[LabelRequest]], chunk: int
    ) -> Iterator[list[tuple[int, LabelLogprobs]]]:
        """``score_stream`` on each window in turn, the next one taken from a producer thread
        (the caller's preparation of it ran while this one was scored)."""
        offset = 0
        with Prefetch(windows) as ready:
            for window in ready:
                for part in self.score_stream(window, chunk):
                    yield [(offset + i, result) for i, result in part]
                offset += len(window)

    def reason_stream(
        self, requests: Sequence[LabelRequest], plan: ReasoningPlan, chunk: int
    ) -> Iterator[list[tuple[int, LabelLogprobs]]]:
        raise CapabilityError(f"{type(self).__name__} cannot generate a rationale")

    def stats(self) -> dict[str, Any] | None:
        return None

    def close(self) -> None:
        """Nothing to release."""


class LabelTokenError(ValueError):
    """A rubric's labels cannot be read as clean token continuations of the prompt."""


@dataclass(frozen=True)
class AnswerSlot:
    """Where the prompt ends and which token sequences spell each label right after it.

    ``tail`` replaces the rubric's answer cue as the text the assistant turn starts with.
    ``sequences[label]`` lists the label's spellings as token ids in context; a one-token label
    may have several (``"A"`` and ``" A"``), and their probabilities add. A label of several
    tokens (``"10"`` = ``"1"``, ``"0"``) has one spelling, its tokenisation in context.
    """

    tail: str
    sequences: dict[str, tuple[TokenSeq, ...]]

    @property
    def single_token(self) -> bool:
        """True when one forward pass over the prompt reads every label."""
        return all(len(s) == 1 for seqs in self.sequences.values() for s in seqs)

    def queries(self) -> dict[TokenSeq, tuple[int, ...]]:
        """Each token prefix to run after the prompt (``()`` = the prompt itself) -> the next
        token ids whose exact log-probabilities it must return."""
        wanted: dict[TokenSeq, dict[int, None]] = {}
        for seqs in self.sequences.values():
            for seq in seqs:
                for j, token in enumerate(seq):
                    wanted.setdefault(seq[:j], {})[token] = None
        return {prefix: tuple(ids) for prefix, ids in wanted.items()}


def label_logprobs(
    slot: AnswerSlot, next_logprobs: Mapping[TokenSeq, Mapping[int, float]]
) -> dict[str, float]:
    """Exact label log-probabilities from the next-token log-probabilities of ``slot.queries()``.

    A spelling's probability is the product of its tokens' conditional probabilities. When one
    label's spelling is a prefix of another's (``"1"`` and ``"10"``), the shorter one gets only
    the mass that does not go on into the longer one: P("1") - P("10"), the probability that the
    judge writes "1" and not "10". So the label masses never sum past 1. Labels with zero
    probability are left out (the scorer counts them as zero).
    """
    seqs = [s for spellings in slot.sequences.values() for s in spellings]
    prob = {s: math.exp(math.fsum(next_logprobs[s[:j]][s[j]] for j in range(len(s)))) for s in seqs}
    out: dict[str, float] = {}
    for label, spellings in slot.sequences.items():
        total = 0.0
        for s in spellings:
            longer = [t for t in seqs if len(t) > len(s) and t[: len(s)] == s]
            nearest = [t for t in longer if not any(_extends(t, u) for u in longer)]
            total += max(0.0, prob[s] - math.fsum(prob[t] for t in nearest))
        if total > 0:
            out[label] = math.log(total)
    return out


def _extends(seq: TokenSeq, prefix: TokenSeq) -> bool:
    return len(seq) > len(prefix) and seq[: len(prefix)] == prefix


def resolve_answer_slot(
    encode_prompt: Callable[[str], list[int]], cue: str, labels: Sequence[str]
) -> AnswerSlot:
    """Choose the prompt ending that spells the labels in the fewest tokens.

    BPE tokenizers merge a space into the following word (``" A"``) but often keep digits apart
    (``" "``, ``"3"``), so the right ending differs by tokenizer and label set: try ``cue`` with
    ``" label"``, then ``cue + " "`` with ``"label"``, then ``cue`` with ``"label"``; an ending
    qualifies when every label is a clean continuation of the prompt's tokens (the prompt's own
    tokens unchanged) and no two spellings are equal. The first ending with every label one token
    wins; otherwise the qualifying ending with the fewest label tokens (multi-token labels are
    scored exactly, token by token). ``encode_prompt(tail)`` gives the full prompt's token ids
    ending in ``tail``.
    """
    attempts = ((cue, " {}"), (cue + " ", "{}"), (cue, "{}"))
    best: tuple[int, AnswerSlot] | None = None
    tried = []
    for tail, primary in attempts:
        base = encode_prompt(tail)
        sequences: dict[str, tuple[TokenSeq, ...]] = {}
        for label in labels:
            main = _continuation(base, encode_prompt(tail + primary.format(label)))
            if main is None:
                break
            alternatives = (
                s
                for spelling in (label, " " + label)
                if (s := _continuation(base, encode_prompt(tail + spelling))) is not None
                and len(s) == 1
            )
            sequences[label] = tuple(dict.fromkeys((main, *alternatives)))
        else:
            flat = [s for seqs in sequences.values() for s in seqs]
            if len(flat) == len(set(flat)):
                cost = sum(len(seqs[0]) for seqs in sequences.values())
                if best is None or cost < best[0]:
                    best = (cost, AnswerSlot(tail=tail, sequences=sequences))
                if cost == len(labels):
                    break
        tried.append(repr(tail + primary.format("<label>")))
    if best is None:
        raise LabelTokenError(
            f"labels {list(labels)} are not clean token continuations of the answer cue {cue!r} "
            f"for this tokenizer (tried {', '.join(tried)}); change the rubric's labels or cue"
        )
    return best[1]


def _continuation(base: list[int], ids: list[int]) -> TokenSeq | None:
    """The tokens ``ids`` adds after ``base``, or None when it re-tokenises ``base`` itself."""
    if len(ids) > len(base) and ids[: len(base)] == base:
        return tuple(ids[len(base) :])
    return None
