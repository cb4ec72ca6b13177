"""Versioned rubrics: load and validate ``rubrics/<name>/v<N>/``, hash them, render prompts.

A rubric version is a folder with ``rubric.yaml`` and Jinja templates, one system and one user
template per prompt variant. Its content hash covers every file in the folder, so a result can
always be traced to the exact text that produced it; a published version never changes (see the
lock file), a change is a new ``vN``.

Candidate and question text are *variables*, never template source: templates are compiled once
from the rubric's own files in a sandboxed environment with ``StrictUndefined``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from judgekit.manifests import read_yaml_model
from judgekit.schema import Item, Message, PairwiseItem, PointwiseItem

MANIFEST = "rubric.yaml"
LOCK_FILE = "rubrics.lock.json"
RUBRICS_PATH_ENV = "JUDGEKIT_RUBRICS_PATH"
_VERSION_DIR = re.compile(r"^v([1-9][0-9]*)$")


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
                Message("system", system.render(variables).strip()),
                Message("user", user.render(variables).strip()),
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


def builtin_rubrics_dir() -> Path:
    """Rubrics shipped with the package (wheel) or the source checkout (editable install)."""
    package = Path(__file__).resolve().parent
    installed = package / "_rubrics"
    return installed if installed.is_dir() else package.parent / "rubrics"


def search_path(extra: Iterable[Path | str] = ()) -> list[Path]:
    """User rubric dirs first (arguments, then ``$JUDGEKIT_RUBRICS_PATH``), built-ins last."""
    env = [p for p in os.environ.get(RUBRICS_PATH_ENV, "").split(os.pathsep) if p]
    return [Path(p) for p in (*extra, *env)] + [builtin_rubrics_dir()]


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``name``, ``name@v3`` or ``name@3`` -> (name, version or None for the latest)."""
    name, _, version = ref.partition("@")
    if not version:
        return name, None
    match = re.fullmatch(r"v?([1-9][0-9]*)", version)
    if not match:
        raise RubricError(f"bad rubric reference {ref!r}: expected NAME or NAME@vN")
    return name, int(match.group(1))


def load_rubric_dir(directory: Path | str) -> Rubric:
    """Load and validate one version folder (the one holding ``rubric.yaml``)."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    manifest = read_yaml_model(manifest_path, RubricManifest, RubricError)
    match = _VERSION_DIR.match(directory.name)
    if match is None or int(match.group(1)) != manifest.version:
        raise RubricError(f"{manifest_path}: field version: {manifest.version} != folder name")
    if directory.parent.name != manifest.name:
        raise RubricError(f"{manifest_path}: field name: {manifest.name!r} != folder name")
    for variant, spec in manifest.variants.items():
        for field in ("system", "user"):
            if not (directory / getattr(spec, field)).is_file():
                raise RubricError(
                    f"{manifest_path}: field variants.{variant}.{field}: "
                    f"{getattr(spec, field)!r} not found in {directory}"
                )
    rubric = Rubric(manifest=manifest, path=directory, hash=content_hash(directory))
    _ = rubric._templates  # compile now so template syntax errors surface at load time
    return rubric


def _versions(root: Path, name: str) -> list[int]:
    folder = root / name
    if not folder.is_dir():
        return []
    return sorted(
        int(m.group(1))
        for p in folder.iterdir()
        if p.is_dir() and (m := _VERSION_DIR.match(p.name))
    )


def load_rubric(ref: str, *, paths: Sequence[Path | str] = ()) -> Rubric:
    """Find ``NAME[@vN]`` on the search path; without a version, the latest one."""
    name, version = parse_ref(ref)
    roots = search_path(paths)
    for root in roots:
        versions = _versions(root, name)
        if not versions:
            continue
        chosen = version if version is not None else versions[-1]
        if chosen in versions:
            return load_rubric_dir(root / name / f"v{chosen}")
        raise RubricError(f"rubric {name!r} in {root} has versions {versions}, not v{chosen}")
    raise RubricError(f"rubric {name!r} not found in {[str(r) for r in roots]}")


def list_rubrics(*, paths: Sequence[Path | str] = ()) -> list[Rubric]:
    """Every rubric version on the search path (a user dir shadows a built-in of the same ref)."""
    found: dict[str, Rubric] = {}
    for root in search_path(paths):
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            for version in _versions(root, folder.name):
                rubric = load_rubric_dir(folder / f"v{version}")
                found.setdefault(rubric.ref, rubric)
    return list(found.values())


def read_lock(root: Path) -> dict[str, str]:
    path = root / LOCK_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def lock_violations(root: Path) -> list[str]:
    """Published versions whose files changed since they were locked (each must become a new vN)."""
    lock = read_lock(root)
    problems = []
    for ref, expected in sorted(lock.items()):
        name, version = parse_ref(ref)
        folder = root / name / f"v{version}"
        if not folder.is_dir():
            problems.append(f"{ref}: published version is missing from {root}")
        elif (actual := content_hash(folder)) != expected:
            problems.append(f"{ref}: content hash {actual[:12]} != locked {expected[:12]}")
    return problems


def update_lock(root: Path) -> dict[str, str]:
    """Add versions not yet in the lock; never rewrites a locked hash."""
    lock = read_lock(root)
    for rubric in list_rubrics(paths=[root]):
        if rubric.path.parent.parent.resolve() == root.resolve():
            lock.setdefault(rubric.ref, rubric.hash)
    (root / LOCK_FILE).write_text(json.dumps(dict(sorted(lock.items())), indent=2) + "\n")
    return lock
