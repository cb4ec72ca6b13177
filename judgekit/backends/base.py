"""The contract every judge backend implements, and how label tokens are found in context.

A backend takes label requests and returns, in the same order, the log-probabilities its judge put
on each label as the first generated token. Everything after that (renormalising, label mass,
expected score, bias controls) is shared code, so the offline engine and a server give the same
numbers for the same logits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from judgekit.schema import JudgeIdentity, LabelLogprobs, LabelRequest


@runtime_checkable
class Backend(Protocol):
    """Requests in, same-order label log-probabilities out."""

    @property
    def identity(self) -> JudgeIdentity: ...

    def score(self, requests: Sequence[LabelRequest]) -> list[LabelLogprobs]: ...

    def close(self) -> None: ...


class LabelTokenError(ValueError):
    """A rubric's labels cannot each be read from one token of this judge's tokenizer."""


@dataclass(frozen=True)
class AnswerSlot:
    """Where the prompt ends and which token ids spell each label right after it.

    ``tail`` replaces the rubric's answer cue as the text the assistant turn starts with.
    A label may have several single-token spellings (``"A"`` and ``" A"``); their probabilities add.
    """

    tail: str
    token_ids: dict[str, tuple[int, ...]]


def resolve_answer_slot(
    encode: Callable[[str], list[int]],
    render: Callable[[str], str],
    cue: str,
    labels: Sequence[str],
) -> AnswerSlot:
    """Choose the prompt ending so that every label is exactly one token in context.

    BPE tokenizers merge a space into the following word (``" A"``) but often keep digits apart
    (``" "``, ``"3"``), so the right ending differs by tokenizer and label set: try ``cue`` with
    ``" label"``, then ``cue + " "`` with ``"label"``, and keep the first ending under which every
    label's spelling is a clean one-token continuation of the rendered prompt. ``render(tail)``
    gives the full prompt text ending in ``tail``.
    """
    attempts = ((cue, " {}"), (cue + " ", "{}"), (cue, "{}"))
    tried = []
    for tail, primary in attempts:
        text = render(tail)
        base = encode(text)
        token_ids: dict[str, tuple[int, ...]] = {}
        for label in labels:
            spellings = dict.fromkeys((primary.format(label), label, " " + label))
            ids = [
                tid for s in spellings if (tid := _single_token(encode, base, text + s)) is not None
            ]
            if _single_token(encode, base, text + primary.format(label)) is None:
                break
            token_ids[label] = tuple(dict.fromkeys(ids))
        else:
            flat = [tid for ids in token_ids.values() for tid in ids]
            if len(flat) == len(set(flat)):
                return AnswerSlot(tail=tail, token_ids=token_ids)
        tried.append(repr(tail + primary.format("<label>")))
    raise LabelTokenError(
        f"labels {list(labels)} are not each a single token after the answer cue {cue!r} "
        f"for this tokenizer (tried {', '.join(tried)}); change the rubric's labels or cue"
    )


def _single_token(encode: Callable[[str], list[int]], base: list[int], text: str) -> int | None:
    ids = encode(text)
    if len(ids) == len(base) + 1 and ids[: len(base)] == base:
        return ids[-1]
    return None
