"""Records that cross judgekit's boundaries: input items, backend requests/results, judgments.

Items and judgments are pydantic models (validated at the file boundary, ``extra="forbid"``).
Requests and backend results are slotted dataclasses: they are created per prompt on the hot path,
never read from user files, and need no validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["system", "user", "assistant"]
Order = Literal["AB", "BA"]


class StrictModel(BaseModel):
    """Base for boundary records: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PointwiseItem(StrictModel):
    """One answer to grade on its own."""

    id: str
    question: str
    answer: str
    context: str = ""


class PairwiseItem(StrictModel):
    """Two answers to the same question, to compare."""

    id: str
    question: str
    answer_a: str
    answer_b: str
    context: str = ""


Item = PointwiseItem | PairwiseItem


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class LabelRequest:
    """One prompt whose first generated token is a label.

    ``messages`` ends with the assistant's answer cue (e.g. ``"Score:"``); the backend continues
    that message. Requests with equal ``prefix_key`` share their prompt up to the candidate text.
    """

    key: str
    messages: tuple[Message, ...]
    labels: tuple[str, ...]
    prefix_key: str


@dataclass(frozen=True, slots=True)
class LabelLogprobs:
    """What a backend read from one forward pass.

    ``logprobs`` maps each label seen among the top tokens to its log-probability (summed over the
    label's token spellings); a label absent from the map had less mass than the top-k cut-off.
    ``error`` is set when the backend could not score the request at all.
    """

    logprobs: dict[str, float]
    num_prompt_tokens: int
    num_cached_tokens: int
    error: str | None = None


class JudgeIdentity(StrictModel):
    """Which judge produced a result, and the settings that change its numbers."""

    backend: str
    model: str
    fingerprint: str
    settings: dict[str, str | int | float | bool | None]


class Judgment(StrictModel):
    """One row of output: one item under one rubric variant (and one answer order)."""

    item_id: str
    rubric: str
    rubric_version: int
    rubric_hash: str
    variant: str
    order: Order | None
    label_probs: dict[str, float] | None
    label_mass: float
    expected_score: float | None
    label: str | None
    valid: bool
    invalid_reason: str | None
    judge_model: str
    judge_fingerprint: str
    engine_settings: dict[str, str | int | float | bool | None]
    num_prompt_tokens: int
    num_cached_tokens: int
    from_store: bool = False


class ItemVerdict(StrictModel):
    """One row per item after the bias controls: what a user reads as the item's verdict.

    ``controls`` names every control applied to this row (position swap, variant ensemble,
    frozen length correction), so a number can never be read without knowing how it was made.
    ``label`` is None when the item is invalid (no variant gave a usable verdict) or, pointwise,
    when labels tie exactly; pairwise it is "A", "B" or "tie" (``tie`` is True for any tie).
    ``partial`` marks an ensemble built from fewer variants than were planned
    (``n_valid_variants`` < ``n_variants``; with the swap on, a variant needs both orders).
    """

    item_id: str
    rubric: str
    rubric_version: int
    rubric_hash: str
    judge_model: str
    label_probs: dict[str, float] | None
    score: float | None
    score_length_corrected: float | None
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
