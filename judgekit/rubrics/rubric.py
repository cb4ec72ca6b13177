"""A rubric version: its manifest model, content hash and sandboxed prompt rendering.

A rubric version is a folder with ``rubric.yaml`` and Jinja templates, one system and one user
template per prompt variant. Its content hash covers every file in the folder, so a result can
always be traced to the exact text that produced it; a published version never changes (see the
lock file), a change is a new ``vN``.

Candidate and question text are *variables*, never template source: templates are compiled once
from the rubric's own files in a sandboxed environment with ``StrictUndefined``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from judgekit.schema import Item, Message, PairwiseItem, PointwiseItem

MANIFEST = "rubric.yaml"


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


class RubricManifest(BaseModel):
    """The validated contents of ``rubric.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: int = Field(ge=1)
    description: str
    mode: Literal["pointwise", "pairwise"]
    labels: tuple[LabelSpec, ...] = Field(min_length=2)
    answer_cue: str = Field(
        min_length=1,
        description="Text the assistant turn starts with; the next token is the label.",
    )
    min_label_mass: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="Below this probability mass on valid labels a verdict is counted invalid.",
    )
    variants: dict[str, VariantSpec] = Field(min_length=1)

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, labels: tuple[LabelSpec, ...]) -> tuple[LabelSpec, ...]:
        names = [spec.label for spec in labels]
        if len(set(names)) != len(names):
            raise ValueError(f"labels must be unique, got {names}")
        return labels

    @model_validator(mode="after")
    def _pairwise_labels(self) -> RubricManifest:
        if self.mode == "pairwise":
            names = {spec.label for spec in self.labels}
            if not {"A", "B"} <= names or not names <= {"A", "B", "tie"}:
                raise ValueError("pairwise rubrics use labels 'A', 'B' and optionally 'tie'")
        return self


def _environment(root: Path) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


#: Template variables that change from item to item; a template reading none is rendered once.
_ITEM_FIELDS = frozenset({"question", "context", "answer", "answer_a", "answer_b"})


def _reads_item(env: SandboxedEnvironment, name: str) -> bool:
    """Whether template ``name``, or a template it includes, reads an item field."""
    assert env.loader is not None
    tree = env.parse(env.loader.get_source(env, name)[0])
    if meta.find_undeclared_variables(tree) & _ITEM_FIELDS:
        return True
    return any(ref is None or _reads_item(env, ref) for ref in meta.find_referenced_templates(tree))


def content_hash(directory: Path) -> str:
    """sha256 over every file's relative path and bytes, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(directory).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class Rubric:
    """A loaded rubric version: manifest, location, content hash and compiled templates."""

    manifest: RubricManifest
    path: Path
    hash: str

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> int:
        return self.manifest.version

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(spec.label for spec in self.manifest.labels)

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(spec.value for spec in self.manifest.labels)

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(self.manifest.variants)

    def chosen_variants(self, variants: Sequence[str] | None) -> tuple[str, ...]:
        """``variants`` (None or empty: all of them), refused with a RubricError naming the
        rubric's variants when one is not among them."""
        if not variants:
            return self.variants
        if unknown := [v for v in variants if v not in self.manifest.variants]:
            raise RubricError(
                f"rubric {self.ref} has no variant {', '.join(map(repr, unknown))}; its "
                f"variants are {', '.join(self.variants)}"
            )
        return tuple(variants)

    @cached_property
    def _templates(self) -> dict[str, tuple[jinja2.Template, jinja2.Template]]:
        env = _environment(self.path)
        compiled = {}
        for name, spec in self.manifest.variants.items():
            try:
                compiled[name] = (env.get_template(spec.system), env.get_template(spec.user))
            except jinja2.TemplateError as err:
                where = getattr(err, "filename", None) or spec.system
                raise RubricError(f"{self.path / str(where)}: template error: {err}") from err
        return compiled

    @cached_property
    def _item_free(self) -> dict[str | None, str]:
        """Templates that read no item field (a shared system text), rendered once.

        Rendering the same system text again for every request was a third of the host's
        rendering time; the text is the same by construction.
        """
        templates = {t.name: t for pair in self._templates.values() for t in pair}
        return {
            name: template.render({"labels": self.manifest.labels}).strip()
            for name, template in templates.items()
            if not _reads_item(template.environment, str(name))
        }

    def _render(self, template: jinja2.Template, variables: dict[str, object]) -> str:
        fixed = self._item_free.get(template.name)
        return fixed if fixed is not None else template.render(variables).strip()

    def render(self, variant: str, item: Item, *, swap: bool = False) -> tuple[Message, ...]:
        """Chat messages for one item; the last one is the assistant's answer cue.

        ``swap`` shows a pairwise item's answers in the order B, A (for position-bias control).
        """
        if variant not in self.manifest.variants:
            raise RubricError(f"{self.ref}: unknown variant {variant!r}; has {list(self.variants)}")
        system, user = self._templates[variant]
        variables = _variables(self, item, swap)
        try:
            return (
                Message("system", self._render(system, variables)),
                Message("user", self._render(user, variables)),
                Message("assistant", self.manifest.answer_cue),
            )
        except jinja2.TemplateError as err:
            raise RubricError(f"{self.path}: variant {variant!r}: render error: {err}") from err


def _variables(rubric: Rubric, item: Item, swap: bool) -> dict[str, object]:
    common = {"question": item.question, "context": item.context, "labels": rubric.manifest.labels}
    if rubric.manifest.mode == "pointwise":
        if not isinstance(item, PointwiseItem):
            raise RubricError(f"{rubric.ref} is pointwise but item {item.id!r} is a pair")
        return common | {"answer": item.answer}
    if not isinstance(item, PairwiseItem):
        raise RubricError(f"{rubric.ref} is pairwise but item {item.id!r} has one answer")
    first, second = (item.answer_b, item.answer_a) if swap else (item.answer_a, item.answer_b)
    return common | {"answer_a": first, "answer_b": second}
