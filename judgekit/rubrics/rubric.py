"""A rubric version: its manifest model, content hash and sandboxed prompt rendering.

A rubric version is a folder with ``rubric.yaml`` and Jinja templates, one system and one user
template per prompt variant. Its content hash covers every file in the folder, so a result can
always be traced to the exact text that produced it; a published version never changes (see the
lock file), a change is a new ``vN``.

A rubric may declare several **criteria** (each with its own description, label meanings,
answer cue and weight; one label scale for all), judged from one shared prompt prefix with one
label read per criterion, or be a **checklist** rubric (one yes/no read per check of the item's
checklist). Templates read the item as variables: ``question``, ``context``, ``answer`` (or
``answer_a``/``answer_b``), ``conversation`` (the turns before the judged reply, as
``{role, content}``), ``reference``, and per request ``criterion`` / ``check``.

Candidate and question text are *variables*, never template source: templates are compiled once
from the rubric's own files in a sandboxed environment with ``StrictUndefined``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from judgekit.rubrics.manifest import LabelSpec, RubricError, RubricManifest
from judgekit.schema import CONTENT_FIELDS, Item, Message, PairwiseItem, PointwiseItem, history

MANIFEST = "rubric.yaml"
__all__ = ["MANIFEST", "Criterion", "LabelSpec", "Rubric", "RubricError", "RubricManifest"]


def _environment(root: Path) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


#: Template variables that change from request to request; a template reading none of them is
#: rendered once (``labels`` too, when criteria give it their own meanings).
_ITEM_FIELDS = frozenset(
    {"question", "answer", "answer_a", "answer_b", "criterion", "check", *CONTENT_FIELDS}
)


def _variables_read(env: SandboxedEnvironment, name: str) -> frozenset[str] | None:
    """Variables template ``name`` and the templates it includes read (None: an include that
    cannot be resolved statically, so assume it reads anything)."""
    assert env.loader is not None
    tree = env.parse(env.loader.get_source(env, name)[0])
    found = set(meta.find_undeclared_variables(tree))
    for ref in meta.find_referenced_templates(tree):
        inner = None if ref is None else _variables_read(env, ref)
        if inner is None:
            return None
        found |= inner
    return frozenset(found)


def _reads_item(env: SandboxedEnvironment, name: str, varying: frozenset[str]) -> bool:
    """Whether template ``name``, or a template it includes, reads a varying variable."""
    read = _variables_read(env, name)
    return read is None or bool(read & varying)


@dataclass(frozen=True)
class Criterion:
    """What one label read asks: the rubric's one question, a declared criterion, or a check.

    ``name`` is None for a rubric with one criterion; a checklist's checks are ``check1``...
    """

    name: str | None
    labels: tuple[LabelSpec, ...]
    answer_cue: str
    description: str = ""
    weight: float = 1.0

    def variables(self) -> dict[str, object]:
        return {"name": self.name, "description": self.description, "labels": self.labels}


CHECK_PREFIX = "check"


def check_name(number: int) -> str:
    """The criterion name of a checklist's check ``number`` (1-based)."""
    return f"{CHECK_PREFIX}{number}"


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

    @cached_property
    def criteria(self) -> tuple[Criterion, ...]:
        """The declared criteria (one unnamed criterion for a rubric without; a checklist's
        checks are per item, see ``criteria_for``)."""
        specs = self.manifest.criteria or {}
        out = []
        for name, labels, cue in self.manifest.scales():
            assert labels is not None and cue is not None  # validated
            spec = specs.get(name) if name is not None else None
            out.append(
                Criterion(
                    name,
                    labels,
                    cue,
                    spec.description if spec else "",
                    spec.weight if spec else 1.0,
                )
            )
        return tuple(out)

    @property
    def multi(self) -> bool:
        """Judged once per criterion or check (the item's verdict is their overall)."""
        return self.manifest.checklist or bool(self.manifest.criteria)

    def criteria_for(self, item: Item) -> tuple[str | None, ...]:
        """The criteria an item is judged on: the rubric's, or one per check of its checklist."""
        if self.manifest.checklist:
            return tuple(check_name(k) for k in range(1, len(item.checklist or ()) + 1))
        return tuple(c.name for c in self.criteria)

    def for_criterion(self, name: str) -> Rubric:
        """One declared criterion as a single-criterion rubric (same files and hash): how one
        criterion of a multi-criterion run is aggregated and calibrated on its own."""
        found = self.criterion(name, None)
        manifest = self.manifest.model_copy(
            update={"criteria": None, "labels": found.labels, "answer_cue": found.answer_cue}
        )
        return replace(self, manifest=manifest)

    def weight(self, criterion: str | None) -> float:
        """A criterion's weight in the overall (every check of a checklist weighs the same)."""
        return next((c.weight for c in self.criteria if c.name == criterion), 1.0)

    @cached_property
    def labels(self) -> tuple[str, ...]:
        """Cached: the run reads them for every judgment it scores."""
        return tuple(spec.label for spec in self.criteria[0].labels)

    @cached_property
    def values(self) -> tuple[float, ...]:
        return tuple(spec.value for spec in self.criteria[0].labels)

    @cached_property
    def reads(self) -> frozenset[str]:
        """The optional item fields (``CONTENT_FIELDS``) the rubric's templates read."""
        templates = [t for pair in self._templates.values() for t in pair]
        found: set[str] = set()
        for template in templates:
            read = _variables_read(template.environment, str(template.name))
            found |= set(CONTENT_FIELDS) if read is None else read
        if self.manifest.checklist:
            found.add("checklist")
        return frozenset(found) & set(CONTENT_FIELDS)

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
        varying = _ITEM_FIELDS | ({"labels"} if self.multi else set())
        return {
            name: template.render({"labels": self.criteria[0].labels}).strip()
            for name, template in templates.items()
            if not _reads_item(template.environment, str(name), varying)
        }

    def _render(self, template: jinja2.Template, variables: dict[str, object]) -> str:
        fixed = self._item_free.get(template.name)
        return fixed if fixed is not None else template.render(variables).strip()

    def criterion(self, name: str | None, item: Item | None) -> Criterion:
        """The criterion ``name`` as asked of ``item`` (a check's text is the item's)."""
        if self.manifest.checklist:
            if item is None:
                raise RubricError(f"{self.ref}: a check is asked of an item")
            checks = item.checklist or ()
            number = name[len(CHECK_PREFIX) :] if name else ""
            if not number.isdigit() or not 1 <= int(number) <= len(checks):
                raise RubricError(f"{self.ref}: item {item.id!r} has no check {name!r}")
            return replace(self.criteria[0], name=name, description=checks[int(number) - 1])
        found = next((c for c in self.criteria if c.name == name), None)
        if found is None:
            names = [c.name for c in self.criteria]
            raise RubricError(f"{self.ref}: unknown criterion {name!r}; has {names}")
        return found

    def render(
        self, variant: str, item: Item, *, swap: bool = False, criterion: str | None = None
    ) -> tuple[Message, ...]:
        """Chat messages for one item (and criterion); the last one is the answer cue.

        ``swap`` shows a pairwise item's answers in the order B, A (for position-bias control).
        ``criterion``: which criterion or check to ask (None for a rubric with one criterion).
        """
        if variant not in self.manifest.variants:
            raise RubricError(f"{self.ref}: unknown variant {variant!r}; has {list(self.variants)}")
        system, user = self._templates[variant]
        asked = self.criterion(criterion, item)
        variables = _variables(self, item, swap) | {
            "labels": asked.labels,
            "criterion": asked.variables(),
            "check": asked.description if self.manifest.checklist else "",
        }
        try:
            return (
                Message("system", self._render(system, variables)),
                Message("user", self._render(user, variables)),
                Message("assistant", asked.answer_cue),
            )
        except jinja2.TemplateError as err:
            raise RubricError(f"{self.path}: variant {variant!r}: render error: {err}") from err


def _variables(rubric: Rubric, item: Item, swap: bool) -> dict[str, object]:
    """The item as template variables: text stays text (turns are plain role/content dicts)."""
    common = {
        "question": item.question,
        "context": item.context,
        "conversation": [{"role": t.role, "content": t.content} for t in history(item)],
        "reference": item.reference or "",
        "checklist": list(item.checklist or ()),
    }
    if rubric.manifest.mode == "pointwise":
        if not isinstance(item, PointwiseItem):
            raise RubricError(f"{rubric.ref} is pointwise but item {item.id!r} is a pair")
        return common | {"answer": item.answer}
    if not isinstance(item, PairwiseItem):
        raise RubricError(f"{rubric.ref} is pairwise but item {item.id!r} has one answer")
    first, second = (item.answer_b, item.answer_a) if swap else (item.answer_a, item.answer_b)
    return common | {"answer_a": first, "answer_b": second}
