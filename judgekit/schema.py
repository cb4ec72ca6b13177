"""Records that cross judgekit's boundaries: input items, backend requests/results, judgments.

Items and judgments are pydantic models (validated at the file boundary, ``extra="forbid"``).
Requests and backend results are slotted dataclasses: they are created per prompt on the hot path,
never read from user files, and need no validation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Role = Literal["system", "user", "assistant"]
Order = Literal["AB", "BA"]
Mode = Literal["pointwise", "pairwise"]
EnsembleMethod = Literal["mean", "majority", "median", "learned"]
SwapMethod = Literal["soft", "hard"]
PointwiseLabel = Literal["argmax", "nearest_score"]
#: A metadata cell carried from an input column to the outputs (nested values become JSON text).
Scalar = str | int | float | bool | None


class StrictModel(BaseModel):
    """Base for boundary records: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Controls(StrictModel):
    """How a run turns judgments into item verdicts: bias controls and the one decision rule.

    Recorded in every run manifest and every calibration card; a run that uses a card applies the
    card's controls, so the card certifies exactly the rule the run applies.

    ``ensemble``: how prompt variants combine; ``learned`` is a card's frozen learned ensemble
    (only with a card that has one). ``tie_band``: a pairwise item is a tie when P(A) / (P(A) +
    P(B)) is within this distance of 0.5 (or when the rubric's "tie" label is the most probable);
    0.05 means the judge must put at least 55:45 odds on one answer to pick it, and a judge that
    only prefers whichever answer is shown first combines to exactly 50:50 under either swap
    method, so it yields ties, not wins. ``pointwise_label``: a pointwise item's label is the most
    probable label (``argmax``; an exact tie has no label) or the label whose value is nearest the
    expected score (``nearest_score``, G-Eval style).
    """

    swap: bool = True
    swap_method: SwapMethod = "soft"
    ensemble: EnsembleMethod = "mean"
    tie_band: float = Field(default=0.05, ge=0.0, lt=0.5)
    pointwise_label: PointwiseLabel = "argmax"


class InputRef(StrictModel):
    """The items file a run judged: enough to read it back from anywhere and know it is the same.

    ``path`` is absolute; ``columns`` is the ``FIELD=COLUMN`` mapping the run read it with.
    """

    path: str
    sha256: str
    columns: dict[str, str] = Field(default_factory=dict)


class Turn(StrictModel):
    """One turn of a conversation: who spoke and what was said (always data, never template)."""

    role: Role
    content: str


def _last_user_turn(turns: Sequence[Any]) -> str | None:
    for turn in reversed(turns):
        role = turn.get("role") if isinstance(turn, dict) else getattr(turn, "role", None)
        if role == "user":
            return turn.get("content") if isinstance(turn, dict) else turn.content
    return None


class _ItemBase(StrictModel):
    """What every item may carry besides its answers.

    ``group``: items that share it are one cluster for intervals and guarantees (several answers
    to one question, summaries of one article); None = the item's question, context and history.
    ``reference``: a gold answer to compare with. ``checklist``: yes/no checks the answer must
    pass, judged one by one by a checklist rubric. ``meta``: every input column not mapped to a
    field (model, category, language...), carried to the outputs and sliced by (``--by``).
    ``question`` defaults to the conversation's last user turn.
    """

    id: str
    question: str
    context: str = ""
    group: str | None = None
    conversation: tuple[Turn, ...] | None = None
    reference: str | None = None
    checklist: tuple[str, ...] | None = None
    meta: dict[str, Scalar] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _question_from_conversation(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("question") is None:
            turns = data.get("conversation")
            if isinstance(turns, list | tuple) and (asked := _last_user_turn(turns)) is not None:
                return {**data, "question": asked}
        return data

    @field_validator("checklist")
    @classmethod
    def _checks(cls, checks: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if checks is not None and (not checks or any(not c.strip() for c in checks)):
            raise ValueError("a checklist is a non-empty list of non-empty checks")
        return checks


class PointwiseItem(_ItemBase):
    """One answer to grade on its own.

    With a ``conversation``, its last turn is the assistant reply being judged: ``answer``
    defaults to it, and an ``answer`` given as well must be that reply.
    """

    answer: str

    @model_validator(mode="before")
    @classmethod
    def _answer_from_conversation(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("answer") is None:
            turns = data.get("conversation")
            if isinstance(turns, list | tuple) and turns:
                last = turns[-1]
                role = last.get("role") if isinstance(last, dict) else getattr(last, "role", None)
                if role == "assistant":
                    content = last.get("content") if isinstance(last, dict) else last.content
                    return {**data, "answer": content}
        return data

    @field_validator("conversation")
    @classmethod
    def _ends_with_the_reply(cls, turns: tuple[Turn, ...] | None) -> tuple[Turn, ...] | None:
        if turns is not None and (not turns or turns[-1].role != "assistant"):
            got = repr(turns[-1].role) if turns else "no turns"
            raise ValueError(
                f"must end with the assistant reply being judged (its last turn is {got})"
            )
        return turns

    @model_validator(mode="after")
    def _reply_is_the_answer(self) -> PointwiseItem:
        if self.conversation is not None and self.conversation[-1].content != self.answer:
            raise ValueError(
                "field 'answer' differs from the conversation's last turn (the reply judged)"
            )
        return self


class PairwiseItem(_ItemBase):
    """Two answers to the same question, to compare.

    With a ``conversation`` (the shared history), its last turn is the user turn both answers
    reply to.
    """

    answer_a: str
    answer_b: str

    @field_validator("conversation")
    @classmethod
    def _ends_with_the_request(cls, turns: tuple[Turn, ...] | None) -> tuple[Turn, ...] | None:
        if turns is not None and (not turns or turns[-1].role != "user"):
            got = repr(turns[-1].role) if turns else "no turns"
            raise ValueError(
                "a pair's shared history must end with the user turn both answers reply to "
                f"(its last turn is {got})"
            )
        return turns


Item = PointwiseItem | PairwiseItem

#: Optional item fields a rubric's templates may read (and a rubric may require).
CONTENT_FIELDS = ("context", "conversation", "reference", "checklist")


def history(item: Item) -> tuple[Turn, ...]:
    """The turns before the reply(ies) judged: a pointwise conversation without its last turn."""
    if item.conversation is None:
        return ()
    return item.conversation[:-1] if isinstance(item, PointwiseItem) else item.conversation


def item_group(item: Item) -> str:
    """The item's cluster key: its ``group``, else a hash of its question, context and history."""
    if item.group is not None:
        return item.group
    text = f"{item.question}\0{item.context}"
    if earlier := history(item):
        text += "".join(f"\0{t.role}\0{t.content}" for t in earlier)
    return "q:" + hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class LabelRequest:
    """One prompt whose first generated token is a label.

    ``messages`` ends with the assistant's answer cue (e.g. ``"Score:"``); the backend continues
    that message. Requests with equal ``prefix_key`` share their prompt up to the candidate text.
    ``item_id``, ``variant``, ``order`` and ``criterion`` say where the verdict belongs (a backend
    that needs them, like a replay of stored verdicts, reads these fields, never a parsed key).
    ``criterion``: which criterion (or checklist check) of a multi-criterion rubric it asks
    about; None for a rubric with one.
    """

    item_id: str
    variant: str
    order: Order | None
    messages: tuple[Message, ...]
    labels: tuple[str, ...]
    prefix_key: str
    criterion: str | None = None

    @property
    def key(self) -> str:
        """``item|variant|order[|criterion]`` (``-`` for no order): unique within a run."""
        return request_key(self.item_id, self.variant, self.order, self.criterion)


def request_key(
    item_id: str, variant: str, order: Order | None, criterion: str | None = None
) -> str:
    base = f"{item_id}|{variant}|{order or '-'}"
    return base if criterion is None else f"{base}|{criterion}"


@dataclass(frozen=True, slots=True)
class LabelLogprobs:
    """What a backend read from one forward pass.

    ``logprobs`` maps each label seen among the top tokens to its log-probability (summed over the
    label's token spellings); a label absent from the map had less mass than the top-k cut-off.
    ``error`` is set when the backend could not score the request at all. ``rationale``: what
    the judge wrote first in reasoning mode (the token counts are then the verdict read's).
    """

    logprobs: dict[str, float]
    num_prompt_tokens: int
    num_cached_tokens: int
    error: str | None = None
    rationale: str | None = None


class Reasoning(StrictModel):
    """Reasoning mode (``judge(..., reasoning=...)``): ``max_tokens`` None = the rubric's."""

    max_tokens: int | None = Field(default=None, ge=1, le=8192)


@dataclass(frozen=True, slots=True)
class ReasoningPlan:
    """Reasoning mode as a backend runs it: the rubric's instruction, the rationale budget and
    the texts that end a rationale early (besides each request's answer cue and end of turn)."""

    instruction: str
    max_tokens: int
    stop: tuple[str, ...] = ()

    def settings(self) -> dict[str, str | int | bool]:
        """What the run adds to the judge identity, so that no card, stored result or resumed
        output made without it (or with another instruction or budget) matches it."""
        text = json.dumps([self.instruction, list(self.stop)])
        return {
            "reasoning": True,
            "reasoning_max_tokens": self.max_tokens,
            "reasoning_instruction": hashlib.sha256(text.encode()).hexdigest()[:16],
        }


class JudgeIdentity(StrictModel):
    """Which judge produced a result, and the settings that change its numbers."""

    backend: str
    model: str
    fingerprint: str
    settings: dict[str, str | int | float | bool | None]


class Judgment(StrictModel):
    """One row of output: one item under one rubric variant (and one answer order, and one
    criterion or checklist check of a multi-criterion rubric). ``meta``: the item's meta."""

    item_id: str
    rubric: str
    rubric_version: int
    rubric_hash: str
    variant: str
    order: Order | None
    criterion: str | None = None
    label_probs: dict[str, float] | None
    label_mass: float
    expected_score: float | None
    label: str | None
    valid: bool
    invalid_reason: str | None
    error: bool = Field(
        default=False,
        description="The request failed (engine or HTTP error) rather than the judge reading "
        "too little label mass: --resume and the result store judge it again.",
    )
    judge_model: str
    judge_fingerprint: str
    engine_settings: dict[str, str | int | float | bool | None]
    num_prompt_tokens: int
    num_cached_tokens: int
    from_store: bool = False
    rationale: str | None = None  # reasoning mode: what the judge wrote before its label
    meta: dict[str, Scalar] = Field(default_factory=dict)


class CriterionVerdict(StrictModel):
    """One criterion (or checklist check) of an item, after the bias controls and the one
    decision rule, as ``ItemVerdict`` reports the whole item. ``check``: a check's text."""

    label_probs: dict[str, float] | None
    score: float | None
    label: str | None
    tie: bool
    valid: bool
    n_valid_variants: int
    check: str | None = None


class ItemVerdict(StrictModel):
    """One row per item after the bias controls: what a user reads as the item's verdict.

    ``label_probs`` and ``score`` are final: after every control the run applied (position swap,
    variant ensemble, a card's frozen corrections); ``score_uncorrected`` is the score before the
    frozen length correction (None when none was applied). ``controls`` names every control
    applied to this row, so a number can never be read without knowing how it was made.
    ``label`` is None when the item is invalid (no variant gave a usable verdict) or, pointwise,
    when labels tie exactly; pairwise it is "A", "B" or "tie" (``tie`` is True for any tie).
    ``partial`` marks an ensemble built from fewer variants than were planned
    (``n_valid_variants`` < ``n_variants``; with the swap on, a variant needs both orders).
    ``group`` is the item's cluster key (items sharing it are resampled together).
    A multi-criterion or checklist rubric reports each criterion (check) in ``criteria``; the
    item's own distribution is then their weighted mixture (the overall: its score is the
    weighted mean of theirs, a checklist's is the mean P(yes)), invalid when any criterion is;
    ``pass_ratio`` is the share of a checklist's checks decided "yes". ``meta``: the item's meta.
    """

    item_id: str
    group: str
    rubric: str
    rubric_version: int
    rubric_hash: str
    judge_model: str
    label_probs: dict[str, float] | None
    score: float | None
    score_uncorrected: float | None
    label: str | None
    tie: bool
    valid: bool
    n_judgments: int
    n_valid_judgments: int
    n_variants: int
    n_valid_variants: int
    partial: bool
    p_a_ab: float | None
    p_a_ba: float | None
    flip: bool | None
    controls: dict[str, str]
    criteria: dict[str, CriterionVerdict] | None = None
    pass_ratio: float | None = None
    meta: dict[str, Scalar] = Field(default_factory=dict)


def reserved_column(name: str) -> str | None:
    """Why an input column cannot be carried as meta (None: it can): it would clash with a field
    of items, judgments or item verdicts, or with a column of the run's tables (``p_<label>``,
    ``<figure>[<criterion>]``)."""
    fields = {
        *PointwiseItem.model_fields,
        *PairwiseItem.model_fields,
        *Judgment.model_fields,
        *ItemVerdict.model_fields,
    }
    if name in fields:
        return f"it is the name of a judgekit field ({name!r})"
    if name.startswith("p_") or "[" in name:
        return "names starting 'p_' or holding '[' are the run tables' own columns"
    return None
