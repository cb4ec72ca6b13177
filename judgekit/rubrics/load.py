"""Finding rubric versions: the search path (user dirs, then built-ins), references, loading."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import RootModel

from judgekit.files import read_yaml_model
from judgekit.rubrics.rubric import MANIFEST, Rubric, RubricError, RubricManifest, content_hash

RUBRICS_PATH_ENV = "JUDGEKIT_RUBRICS_PATH"
YANKED = "yanked.yaml"
_VERSION_DIR = re.compile(r"^v([1-9][0-9]*)$")


class Yanked(RootModel[dict[int, str]]):
    """``NAME/yanked.yaml``: version -> why it is no longer the default. As a yanked release on
    PyPI: ``NAME@vN`` still loads it unchanged (a published version never changes), ``NAME``
    alone skips it. Beside the version folders, so yanking changes no content hash."""


def builtin_rubrics_dir() -> Path:
    """Rubrics shipped with the package (wheel) or the source checkout (editable install)."""
    package = Path(__file__).resolve().parents[1]
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


def yanked_versions(root: Path, name: str) -> dict[int, str]:
    """The versions of ``root/name`` that are yanked, with the reason (none: no file)."""
    path = root / name / YANKED
    return read_yaml_model(path, Yanked, RubricError).root if path.is_file() else {}


def yank_reason(rubric: Rubric) -> str | None:
    """Why this version was yanked, or None (``rubrics list`` shows it)."""
    return yanked_versions(rubric.path.parent.parent, rubric.name).get(rubric.version)


def default_version(root: Path, name: str, versions: Sequence[int]) -> int:
    """What ``NAME`` without a version means: the latest version not yanked (the latest if
    every one is)."""
    yanked = yanked_versions(root, name)
    kept = [v for v in versions if v not in yanked]
    return (kept or list(versions))[-1]


def load_rubric(ref: str | Rubric, *, paths: Sequence[Path | str] = ()) -> Rubric:
    """Find ``NAME[@vN]`` on the search path; without a version, the latest one that is not
    yanked (``default_version``). A loaded ``Rubric`` is returned as it is (so every function
    that takes a rubric takes either)."""
    if isinstance(ref, Rubric):
        return ref
    name, version = parse_ref(ref)
    roots = search_path(paths)
    for root in roots:
        versions = _versions(root, name)
        if not versions:
            continue
        chosen = version if version is not None else default_version(root, name, versions)
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
