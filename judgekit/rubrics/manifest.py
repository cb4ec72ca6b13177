"""What ``rubric.yaml`` may say: labels, answer cue, variants, criteria, checklist mode, required
item fields. Validation errors name the field (``files.read_yaml_model`` adds the file)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class RubricError(ValueError):
    """A rubric could not be found, parsed, validated or rendered; the message names the file."""


class LabelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(min_length=1, description="What the judge writes, e.g. '4' or 'A'.")
    value: float = Field(description="Numeric value: the score, or the preference for answer A.")
    meaning: str = Field(min_length=1)


class VariantSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    system: str = Field(description="System-message template file, relative to the version dir.")
    user: str = Field(description="User-message template file, relative to the version dir.")


class CriterionSpec(BaseModel):
    """One criterion of a multi-criterion rubric: what it asks, its labels' meanings, its cue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field(min_length=1, description="What this criterion judges.")
    labels: tuple[LabelSpec, ...] | None = Field(
        default=None,
        min_length=2,
        description="The criterion's labels (default: the rubric's); every criterion of a "
        "rubric uses one scale (same labels and values), the meanings may differ.",
    )
    answer_cue: str | None = Field(
        default=None, min_length=1, description="Its answer cue (default: the rubric's)."
    )
    weight: float = Field(default=1.0, gt=0, description="Its weight in the overall score.")


#: The reasoning instruction of a rubric that declares none (``ReasoningSpec``).
DEFAULT_REASONING_INSTRUCTION = (
    "Before you give your verdict, explain in a few sentences what is right and what is wrong "
    "with what you are judging. Do not give the verdict yet."
)


class ReasoningSpec(BaseModel):
    """How the judge reasons before its verdict in reasoning mode (``judge --reasoning``).

    ``instruction`` ends the user turn; the judge then writes a rationale of at most
    ``max_tokens`` tokens (greedy), stopping early at its end of turn, at the answer cue or at
    one of ``stop``; the answer cue follows and the labels are read as without reasoning.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    instruction: str = Field(default=DEFAULT_REASONING_INSTRUCTION, min_length=1)
    max_tokens: int = Field(default=256, ge=1, le=8192, description="Default rationale budget.")
    stop: tuple[str, ...] = Field(
        default=(), description="Texts that end the rationale besides the answer cue."
    )


ItemField = Literal["context", "conversation", "reference", "checklist"]


class RubricManifest(BaseModel):
    """The validated contents of ``rubric.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: int = Field(ge=1)
    description: str
    mode: Literal["pointwise", "pairwise"]
    labels: tuple[LabelSpec, ...] | None = Field(
        default=None, min_length=2, description="The label scale (criteria may restate it)."
    )
    answer_cue: str | None = Field(
        default=None,
        min_length=1,
        description="Text the assistant turn starts with; the next token is the label.",
    )
    criteria: dict[str, CriterionSpec] | None = Field(
        default=None,
        min_length=1,
        description="Several criteria judged in one run, one label read each (names are ids).",
    )
    checklist: bool = Field(
        default=False,
        description="Checklist mode: one label read per check of each item's checklist "
        "(templates read `check`); the item's score is the mean P(pass).",
    )
    requires: tuple[ItemField, ...] = Field(
        default=(), description="Item fields every item must have (e.g. reference)."
    )
    min_label_mass: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="Below this probability mass on valid labels a verdict is counted invalid.",
    )
    variants: dict[str, VariantSpec] = Field(min_length=1)
    reasoning: ReasoningSpec = Field(
        default_factory=ReasoningSpec,
        description="Reasoning mode's instruction and rationale budget (used only with it on).",
    )

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, labels: tuple[LabelSpec, ...]) -> tuple[LabelSpec, ...]:
        names = [spec.label for spec in labels]
        if len(set(names)) != len(names):
            raise ValueError(f"labels must be unique, got {names}")
        return labels

    @field_validator("criteria")
    @classmethod
    def _criterion_names(
        cls, criteria: dict[str, CriterionSpec] | None
    ) -> dict[str, CriterionSpec] | None:
        for name in criteria or {}:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(f"criterion name {name!r}: use lower-case letters, digits, _")
        return criteria

    @model_validator(mode="after")
    def _scale(self) -> RubricManifest:
        for name, labels, cue in self.scales():
            where = f"criteria.{name}" if name else "labels"
            if labels is None:
                raise ValueError(f"{where}: no labels (give them here or at the top level)")
            if cue is None:
                raise ValueError(f"{where}: no answer_cue (give it here or at the top level)")
            names = [spec.label for spec in labels]
            if len(set(names)) != len(names):
                raise ValueError(f"{where}: labels must be unique, got {names}")
        scales = {tuple((s.label, s.value) for s in labels or ()) for _, labels, _ in self.scales()}
        if len(scales) > 1:
            raise ValueError(
                "criteria: every criterion uses one label scale (same labels and values; the "
                "meanings may differ), so that they combine into the overall score"
            )
        if self.mode == "pairwise":
            names = {spec.label for spec in self.scales()[0][1] or ()}
            if not {"A", "B"} <= names or not names <= {"A", "B", "tie"}:
                raise ValueError("pairwise rubrics use labels 'A', 'B' and optionally 'tie'")
        if self.checklist and (self.criteria or self.mode != "pointwise"):
            raise ValueError("checklist: a checklist rubric is pointwise, without criteria")
        return self

    def scales(self) -> list[tuple[str | None, tuple[LabelSpec, ...] | None, str | None]]:
        """(criterion name or None, its labels, its answer cue) for every criterion."""
        if not self.criteria:
            return [(None, self.labels, self.answer_cue)]
        return [
            (name, spec.labels or self.labels, spec.answer_cue or self.answer_cue)
            for name, spec in self.criteria.items()
        ]
