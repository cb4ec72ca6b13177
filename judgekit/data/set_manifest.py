"""Calibration-set manifests: where one public file lives, its hash, and how its rows map to items.

A manifest (``calibration_sets/<name>.yaml``) pins a repository commit, a download URL and the
file's sha256, so a number computed on a set can be traced to the exact bytes it came from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from judgekit.schema import StrictModel

PairLabel = Literal["A", "B", "tie"]
Human = str | float | None
_SHA256 = r"^[0-9a-f]{64}$"


class DatasetError(ValueError):
    """A calibration set could not be found, verified or read; the message names file/row/field."""


class Source(StrictModel):
    """Where the file comes from, pinned to one commit."""

    kind: Literal["github", "hf"]
    repo: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", description="owner/name")
    revision: str = Field(pattern=r"^[0-9a-f]{40}$", description="Commit sha, never a branch.")
    path: str = Field(min_length=1, description="Path of the file inside the repository.")
    url: str = Field(description="Download URL of the file at `revision`.")

    @model_validator(mode="after")
    def _url_pinned(self) -> Source:
        if not self.url.startswith("https://") or self.revision not in self.url:
            raise ValueError(f"url must be https and contain the revision {self.revision}")
        return self


class FileFormat(StrictModel):
    kind: Literal["json", "jsonl", "parquet", "csv"]
    records: str | None = Field(
        default=None, description="Dotted path to the list of rows inside a JSON document."
    )

    @model_validator(mode="after")
    def _records_only_json(self) -> FileFormat:
        if self.records is not None and self.kind != "json":
            raise ValueError("records applies only to kind: json")
        return self


class FieldSpec(StrictModel):
    """One text value of an item: a row field, a ``str.format`` template over the row, or a const.

    A plain string in YAML is shorthand for ``{field: ...}``. Paths are dotted (``a.0.content``);
    templates also see ``_row`` (the 0-based row index). ``pattern`` extracts its first group.
    """

    field: str | None = None
    template: str | None = None
    const: str | None = None
    pattern: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"field": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        if sum(v is not None for v in (self.field, self.template, self.const)) != 1:
            raise ValueError("give exactly one of field, template, const")
        if self.pattern is not None:
            try:
                groups = re.compile(self.pattern).groups
            except re.error as err:
                raise ValueError(f"pattern does not compile: {err}") from err
            if groups < 1:
                raise ValueError("pattern needs a capturing group")
        return self

    def describe(self) -> str:
        """Where the value comes from, in one line (cards record their split's group key so)."""
        if self.field is not None:
            source = f"field {self.field}"
        elif self.template is not None:
            source = f"template {self.template}"
        else:
            source = f"const {self.const}"
        return source + (f" (pattern {self.pattern})" if self.pattern is not None else "")


class FieldMap(StrictModel):
    id: FieldSpec
    question: FieldSpec
    context: FieldSpec | None = None
    answer: FieldSpec | None = None
    answer_a: FieldSpec | None = None
    answer_b: FieldSpec | None = None
    reference: FieldSpec | None = None
    meta: dict[str, FieldSpec] = Field(
        default_factory=dict,
        description="Item meta columns (e.g. the system that wrote the answer): calibrate --by.",
    )


class AnnotatorSpec(StrictModel):
    """Where the human labels are; exactly one of the four shapes.

    ``fields``: one field per annotator, so a label's position names its annotator. ``list_field``:
    one field holding every annotator's label, whose position names nobody (anonymous labels).
    ``consensus``: a single aggregated or gold label, no per-annotator data (records get
    ``human=()``). ``votes``: one label per row, rows with the same id are votes on one item;
    ``annotator`` names the field saying who voted, without it the votes are anonymous. Models of
    individual annotators (Dawid-Skene, GLAD, MACE, pairwise kappa) need named labels.
    """

    fields: tuple[str, ...] | None = Field(default=None, min_length=2)
    list_field: str | None = None
    consensus: str | None = None
    votes: str | None = None
    annotator: str | None = Field(
        default=None, description="votes only: the row's field naming the annotator who voted."
    )

    @model_validator(mode="after")
    def _one_shape(self) -> AnnotatorSpec:
        shapes = (self.fields, self.list_field, self.consensus, self.votes)
        if sum(v is not None for v in shapes) != 1:
            raise ValueError("give exactly one of fields, list_field, consensus, votes")
        if self.annotator is not None and self.votes is None:
            raise ValueError("annotator applies only to votes (one row per vote)")
        return self

    def paths(self) -> tuple[str, ...]:
        return self.fields or tuple(p for p in (self.list_field, self.consensus, self.votes) if p)


class Scale(StrictModel):
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Scale:
        if self.min >= self.max:
            raise ValueError(f"min {self.min} must be below max {self.max}")
        return self


class CalibrationSetManifest(StrictModel):
    """The validated contents of ``calibration_sets/<name>.yaml``."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    source: Source | None = Field(
        description="Where the file is published; None only for a user's own file "
        "(``data.user_sets``), which is identified by its sha256 alone."
    )
    licence: str = Field(min_length=1)
    sha256: str | None = Field(
        pattern=_SHA256, description="Hash of the file; null only where it could not be obtained."
    )
    local_path: str = Field(description="Path of the file inside a data dir.")
    format: FileFormat
    label_type: Literal["pairwise", "ordinal", "binary"]
    mode: Literal["pointwise", "pairwise"]
    fields: FieldMap
    where: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Keep only rows whose fields equal these values."
    )
    annotators: AnnotatorSpec
    split_group: FieldSpec = Field(
        description="The item's group for the dev/held-out split (question, article or prompt "
        "id): items of one group always land in the same split."
    )
    labels: dict[str, PairLabel | float] | None = Field(
        default=None, description="Raw label -> 'A'/'B'/'tie' (pairwise) or 0/1 (binary)."
    )
    scale: Scale | None = Field(default=None, description="Score range of an ordinal set.")
    metrics: dict[str, str] | None = Field(
        default=None,
        description="Metric name -> value substituted for '{metric}' in field paths; "
        "the loader's `metric=` picks one.",
    )

    @field_validator("labels", mode="before")
    @classmethod
    def _label_keys(cls, labels: Any) -> Any:
        return {str(k): v for k, v in labels.items()} if isinstance(labels, dict) else labels

    @field_validator("local_path")
    @classmethod
    def _relative(cls, path: str) -> str:
        if Path(path).is_absolute() or ".." in Path(path).parts:
            raise ValueError("must be a relative path inside the data dir")
        return path

    @model_validator(mode="after")
    def _consistent(self) -> CalibrationSetManifest:
        f = self.fields
        if self.mode == "pairwise" and (f.answer_a is None or f.answer_b is None or f.answer):
            raise ValueError("pairwise sets map answer_a and answer_b, not answer")
        if self.mode == "pointwise" and (f.answer is None or f.answer_a or f.answer_b):
            raise ValueError("pointwise sets map answer, not answer_a/answer_b")
        if (self.label_type == "pairwise") != (self.mode == "pairwise"):
            raise ValueError(f"label_type {self.label_type} does not fit mode {self.mode}")
        if self.label_type == "ordinal":
            if self.scale is None or self.labels is not None:
                raise ValueError("ordinal sets give a scale and no labels")
        elif self.labels is None or self.scale is not None:
            raise ValueError(f"{self.label_type} sets give labels and no scale")
        else:
            allowed = {"A", "B", "tie"} if self.label_type == "pairwise" else {0.0, 1.0}
            if not set(self.labels.values()) <= allowed:
                raise ValueError(f"{self.label_type} labels map to {sorted(allowed, key=str)}")
        templated = any("{metric}" in p for p in self.annotators.paths())
        if templated != (self.metrics is not None):
            raise ValueError("metrics and '{metric}' in annotator paths go together")
        return self
