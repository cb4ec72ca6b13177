"""Records that cross judgekit's boundaries: input items, backend requests/results, judgments.

Items and judgments are pydantic models (validated at the file boundary, ``extra="forbid"``).
Requests and backend results are slotted dataclasses: they are created per prompt on the hot path,
never read from user files, and need no validation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant"]
Order = Literal["AB", "BA"]
Mode = Literal["pointwise", "pairwise"]
EnsembleMethod = Literal["mean", "majority", "median", "learned"]
SwapMethod = Literal["soft", "hard"]
PointwiseLabel = Literal["argmax", "nearest_score"]


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


class PointwiseItem(StrictModel):
    """One answer to grade on its own.

    ``group``: items that share it are one cluster for intervals and guarantees (several answers
    to one question, summaries of one article); None = the item's question and context.
    """

    id: str
    question: str
    answer: str
    context: str = ""
    group: str | None = None


class PairwiseItem(StrictModel):
    """Two answers to the same question, to compare (``group`` as for ``PointwiseItem``)."""

    id: str
    question: str
    answer_a: str
    answer_b: str
    context: str = ""
    group: str | None = None


Item = PointwiseItem | PairwiseItem


def item_group(item: Item) -> str:
    """The item's cluster key: its ``group``, else a hash of its question and context."""
    if item.group is not None:
        return item.group
    return "q:" + hashlib.sha256(f"{item.question}\0{item.context}".encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class LabelRequest:
    """One prompt whose first generated token is a label.

    ``messages`` ends with the assistant's answer cue (e.g. ``"Score:"``); the backend continues
    that message. Requests with equal ``prefix_key`` share their prompt up to the candidate text.
    ``item_id``, ``variant`` and ``order`` say where the verdict belongs (a backend that needs them,
    like a replay of stored verdicts, reads these fields, never a parsed key).
    """

    item_id: str
    variant: str
    order: Order | None
    messages: tuple[Message, ...]
    labels: tuple[str, ...]
    prefix_key: str

    @property
    def key(self) -> str:
        """``item|variant|order`` (``-`` for no order): unique within a run."""
        return request_key(self.item_id, self.variant, self.order)


def request_key(item_id: str, variant: str, order: Order | None) -> str:
    return f"{item_id}|{variant}|{order or '-'}"


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
