"""Human-labelled calibration sets: manifest -> verified file -> judgekit records.

A manifest (``calibration_sets/<name>.yaml``) says where one public file lives (repository, commit,
path, download URL), its sha256, and how its rows map onto judgekit items and human labels. The
data itself never ships with judgekit: it is read from a data dir or downloaded once into the user
cache, and every file is hash-checked before use, so a number computed on a set can always be traced
to the exact bytes it came from.

The dev/held-out split hashes each item's group key (``split_group`` in the manifest: the question,
article or prompt it belongs to) with a salt, so it needs no stored list, does not depend on row
order, adding items never moves existing ones, and items of one group never straddle the split.
Anything fitted to human labels (thresholds, length coefficients, rubric choice) must be fitted on
dev only: see ``require_dev``.

464 lines: one loader from a manifest's file to records; its steps (locate, verify, read, map
fields, labels, annotators, consensus) share the manifest and the row being read.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import string
import tempfile
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import model_validator

from judgekit.data.set_manifest import (
    CalibrationSetManifest,
    DatasetError,
    FieldSpec,
    FileFormat,
    Human,
)
from judgekit.files import cache_dir, read_yaml_model, sha256_file
from judgekit.schema import PairwiseItem, PointwiseItem, StrictModel

DATA_DIR_ENV = "JUDGEKIT_DATA_DIR"


class CalibrationRecord(StrictModel):
    """One human-labelled item.

    ``human`` has one entry per annotator, aligned with the set's ``annotator_names`` (None = that
    annotator did not label the item; empty when the set has only a consensus). Pairwise labels
    are "A"/"B"/"tie", ordinal and binary ones floats. ``consensus`` is the plurality label (None
    when tied) for pairwise and binary, the mean for ordinal, the label itself for single-label
    sets. ``group`` is the split key (the manifest's ``split_group``);
    a record built without one is its own group.
    """

    id: str
    item: PointwiseItem | PairwiseItem
    human: tuple[str | float | None, ...]
    consensus: str | float | None
    group: str

    @model_validator(mode="before")
    @classmethod
    def _own_group(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("group") is None and "id" in data:
            return {**data, "group": data["id"]}
        return data

    @model_validator(mode="after")
    def _same_id(self) -> CalibrationRecord:
        if self.item.id != self.id:
            raise ValueError(f"item id {self.item.id!r} != record id {self.id!r}")
        return self


@dataclass(frozen=True)
class CalibrationSet:
    """A loaded set; ``sha256`` is the file's hash, ``verified`` whether it matched the manifest.

    ``annotator_names`` names the annotator behind each position of ``record.human``: the
    manifest's fields, or the sorted values of a vote set's annotator column. None means the
    labels are anonymous (votes without an annotator column, a list field), so a position names
    nobody; ``()`` means the set has a consensus only.
    """

    manifest: CalibrationSetManifest
    records: tuple[CalibrationRecord, ...]
    path: Path
    sha256: str
    verified: bool
    annotator_names: tuple[str, ...] | None
    metric: str | None = None


# --- manifests ---------------------------------------------------------------------------------


def builtin_sets_dir() -> Path:
    """Manifests shipped with the package (wheel) or the source checkout (editable install)."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "_calibration_sets"
    return installed if installed.is_dir() else package.parent / "calibration_sets"


def _roots(sets_dir: Path | str | None) -> list[Path]:
    return ([Path(sets_dir)] if sets_dir is not None else []) + [builtin_sets_dir()]


def load_manifest(path: Path | str) -> CalibrationSetManifest:
    """Read and validate one manifest; its ``name`` must equal the file's stem."""
    path = Path(path)
    manifest = read_yaml_model(path, CalibrationSetManifest, DatasetError)
    if manifest.name != path.stem:
        raise DatasetError(f"{path}: field name: {manifest.name!r} != file name")
    if manifest.source is None:
        raise DatasetError(f"{path}: field source: a registered set must say where it comes from")
    return manifest


def find_manifest(name: str, *, sets_dir: Path | str | None = None) -> Path:
    roots = _roots(sets_dir)
    for root in roots:
        if (candidate := root / f"{name}.yaml").is_file():
            return candidate
    raise DatasetError(f"calibration set {name!r} not found in {[str(r) for r in roots]}")


def list_calibration_sets(*, sets_dir: Path | str | None = None) -> list[CalibrationSetManifest]:
    """Every manifest, sorted by name (one in ``sets_dir`` shadows a built-in of the same name)."""
    found: dict[str, CalibrationSetManifest] = {}
    for root in _roots(sets_dir):
        if root.is_dir():
            for path in sorted(root.glob("*.yaml")):
                found.setdefault(path.stem, load_manifest(path))
    return [found[name] for name in sorted(found)]


# --- files -------------------------------------------------------------------------------------


def _mismatch(manifest: CalibrationSetManifest, what: str, actual: str) -> DatasetError:
    return DatasetError(
        f"{what}: sha256 {actual} does not match {manifest.name}.yaml sha256 {manifest.sha256}; "
        "the file is corrupt or not the pinned version"
    )


def _download(manifest: CalibrationSetManifest, target: Path) -> None:
    """Fetch into a temp file beside ``target``, verify, then rename: never a partial file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    assert manifest.source is not None  # load_manifest requires it for registered sets
    url = manifest.source.url
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=120) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
        actual = digest.hexdigest()
        if manifest.sha256 is not None and actual != manifest.sha256:
            raise _mismatch(manifest, f"download {url}", actual)
        os.replace(tmp, target)
    except OSError as err:
        raise DatasetError(f"{manifest.name}: could not download {url}: {err}") from err
    finally:
        tmp.unlink(missing_ok=True)


def _resolve_file(
    manifest: CalibrationSetManifest, data_dir: Path | str | None, allow_unverified: bool
) -> tuple[Path, str]:
    if manifest.sha256 is None and not allow_unverified:
        raise DatasetError(
            f"{manifest.name}: the manifest pins no sha256 (the file could not be obtained when it "
            "was written, see its description), so the data cannot be verified; pass "
            "allow_unverified=True to load it anyway"
        )
    explicit = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    if explicit:
        path = Path(explicit) / manifest.local_path
        if not path.is_file():
            raise DatasetError(
                f"{manifest.name}: {path} not found (data dir from "
                f"{'the data_dir argument' if data_dir is not None else '$' + DATA_DIR_ENV}); "
                f"download it from {manifest.source.url if manifest.source else '?'}"
            )
    else:
        path = cache_dir() / "data" / manifest.local_path
        if not path.is_file():
            _download(manifest, path)
    actual = sha256_file(path)
    if manifest.sha256 is not None and actual != manifest.sha256:
        raise _mismatch(manifest, str(path), actual)
    return path, actual


def read_rows(fmt: FileFormat, path: Path) -> list[Any]:
    """The file's rows (objects), as the format says; also used for users' own files."""
    kind = fmt.kind
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq  # heavy; only parquet sets need it

            return pq.read_table(path).to_pylist()
        if kind == "csv":
            with path.open(encoding="utf-8", newline="") as handle:
                return list(csv.DictReader(handle))
        text = path.read_text(encoding="utf-8")
        if kind == "jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        data = json.loads(text)
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path}: cannot read as {kind}: {err}") from err
    if fmt.records is not None:
        try:
            data = _lookup(data, fmt.records)
        except LookupError as err:
            raise DatasetError(f"{path}: format.records {fmt.records!r}: {err}") from err
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a list of rows, got {type(data).__name__}")
    return data


# --- rows -> records ---------------------------------------------------------------------------


def _lookup(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, dict):
            if part not in value:
                raise KeyError(f"no key {part!r}")
            value = value[part]
        elif isinstance(value, list) and part.isdigit():
            if int(part) >= len(value):
                raise IndexError(f"index {part} out of range")
            value = value[int(part)]
        else:
            raise KeyError(f"cannot take {part!r} of a {type(value).__name__}")
    return value


def _text(spec: FieldSpec, row: dict[str, Any], index: int) -> str:
    if spec.const is not None:
        value: Any = spec.const
    elif spec.template is not None:
        value = string.Formatter().vformat(spec.template, (), {**row, "_row": index})
    else:
        value = _lookup(row, spec.field or "")
    if value is None or isinstance(value, dict | list):
        raise TypeError(f"expected text, got {type(value).__name__}")
    # a bare JSON scalar becomes its Python text (PandaLM has answers that are `true`)
    value = str(value)
    if spec.pattern is not None:
        match = re.search(spec.pattern, value)
        if match is None:
            raise ValueError(f"pattern {spec.pattern!r} does not match")
        value = match.group(1)
    return value


def _missing(value: Any) -> bool:
    """No label: null, NaN, or an empty cell (CSV)."""
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _label(manifest: CalibrationSetManifest, value: Any) -> Human:
    if _missing(value):
        return None
    if manifest.label_type == "ordinal":
        scale = manifest.scale
        assert scale is not None  # validated
        if isinstance(value, str):  # CSV cells are text
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"ordinal label {value!r} is not a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"ordinal label {value!r} is not a number")
        if not scale.min <= value <= scale.max:
            raise ValueError(f"score {value} outside [{scale.min}, {scale.max}]")
        return float(value)
    labels = manifest.labels or {}
    if str(value) not in labels:
        raise ValueError(f"label {value!r} not in the manifest's labels {list(labels)}")
    return labels[str(value)]


def _consensus(manifest: CalibrationSetManifest, labels: Sequence[Human]) -> Human:
    present = [v for v in labels if v is not None]
    if not present:
        return None
    if manifest.label_type == "ordinal":
        return float(np.mean(present))
    ranked = Counter(present).most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None
    return ranked[0][0]


def _human(manifest: CalibrationSetManifest, row: dict[str, Any], metric: str | None) -> list[Any]:
    """Raw labels of one row (``votes``: the row's single vote)."""
    spec = manifest.annotators

    def get(path: str) -> Any:
        return _lookup(row, path.replace("{metric}", metric or ""))

    if spec.fields is not None:
        return [get(p) for p in spec.fields]
    if spec.list_field is not None:
        values = get(spec.list_field)
        if not isinstance(values, list):
            raise TypeError(f"expected a list of labels, got {type(values).__name__}")
        return values
    return [get(spec.consensus or spec.votes or "")]


def _item(
    manifest: CalibrationSetManifest, row: dict[str, Any], index: int
) -> PointwiseItem | PairwiseItem:
    values: dict[str, Any] = {}
    for name in ("id", "question", "context", "answer", "answer_a", "answer_b", "reference"):
        if (spec := getattr(manifest.fields, name)) is not None:
            try:
                values[name] = _text(spec, row, index)
            except (LookupError, TypeError, ValueError) as err:
                raise ValueError(f"field fields.{name}: {err}") from err
    meta = {}
    for name, spec in manifest.fields.meta.items():
        try:
            meta[name] = _text(spec, row, index)
        except (LookupError, TypeError, ValueError) as err:
            raise ValueError(f"field fields.meta.{name}: {err}") from err
    values["meta"] = meta
    return PairwiseItem(**values) if manifest.mode == "pairwise" else PointwiseItem(**values)


def _keep(manifest: CalibrationSetManifest, row: dict[str, Any]) -> bool:
    try:
        return all(_lookup(row, k) == v for k, v in manifest.where.items())
    except LookupError:
        return False


def _voter(manifest: CalibrationSetManifest, row: dict[str, Any]) -> str | None:
    """Who cast this row's vote (None: the set's votes are anonymous)."""
    field = manifest.annotators.annotator
    if field is None:
        return None
    try:
        value = _lookup(row, field)
    except LookupError as err:
        raise ValueError(f"field annotators.annotator: {err}") from err
    if _missing(value) or isinstance(value, dict | list):
        raise ValueError(f"field annotators.annotator: no annotator name ({value!r})")
    return str(value)


def rows_to_records(
    manifest: CalibrationSetManifest, path: Path, rows: list[Any], metric: str | None
) -> tuple[tuple[CalibrationRecord, ...], tuple[str, ...] | None]:
    """Rows -> (records, annotator names) as the manifest maps them (see ``CalibrationSet``).

    Named votes are placed by annotator, never by row order; one annotator voting twice on an item
    is an error. Errors name the file, row and field.
    """
    items: dict[str, PointwiseItem | PairwiseItem] = {}
    human: dict[str, list[Human]] = {}
    named: dict[str, dict[str, Human]] = {}
    groups: dict[str, str] = {}
    for index, row in enumerate(rows):
        where = f"{path}: row {index + 1}"  # as people count; _row stays 0-based (item ids)
        if not isinstance(row, dict):
            raise DatasetError(f"{where}: expected an object, got {type(row).__name__}")
        if not _keep(manifest, row):
            continue
        try:
            item = _item(manifest, row, index)
            voter = _voter(manifest, row)
        except ValueError as err:
            raise DatasetError(f"{where}: {err}") from err
        try:
            group = _text(manifest.split_group, row, index)
        except (LookupError, TypeError, ValueError) as err:
            raise DatasetError(f"{where}: field split_group: {err}") from err
        try:
            labels = [_label(manifest, v) for v in _human(manifest, row, metric)]
        except (LookupError, TypeError, ValueError) as err:
            raise DatasetError(f"{where}: field annotators: {err}") from err
        if item.id not in items:
            items[item.id], human[item.id], named[item.id] = item, [], {}
            groups[item.id] = group
        elif manifest.annotators.votes is None:
            raise DatasetError(f"{where}: duplicate id {item.id!r}")
        elif items[item.id] != item:
            raise DatasetError(f"{where}: votes for id {item.id!r} show a different item")
        if voter is not None and voter in named[item.id]:
            raise DatasetError(
                f"{where}: field annotators.annotator: {voter!r} already voted on {item.id!r}"
            )
        human[item.id].extend(labels)
        if voter is not None:
            named[item.id][voter] = labels[0]
    spec = manifest.annotators
    names: tuple[str, ...] | None = spec.fields or (() if spec.consensus is not None else None)
    if spec.annotator is not None:
        names = tuple(sorted({v for votes in named.values() for v in votes}))
        human = {i: [named[i].get(name) for name in names] for i in items}
    single = spec.consensus is not None
    records = tuple(
        CalibrationRecord(
            id=item_id,
            item=item,
            human=() if single else tuple(human[item_id]),
            consensus=human[item_id][0] if single else _consensus(manifest, human[item_id]),
            group=groups[item_id],
        )
        for item_id, item in items.items()
    )
    return records, names


def load_calibration_set(
    name: str,
    *,
    data_dir: Path | str | None = None,
    metric: str | None = None,
    allow_unverified: bool = False,
    sets_dir: Path | None = None,
) -> CalibrationSet:
    """Load a set by manifest name, verifying the file's sha256 first.

    The file is looked up in ``data_dir``, else ``$JUDGEKIT_DATA_DIR``, else the user cache, where
    it is downloaded from the manifest's pinned URL when missing. Multi-metric sets need ``metric``.
    """
    manifest_path = find_manifest(name, sets_dir=sets_dir)
    manifest = load_manifest(manifest_path)
    if manifest.metrics is None:
        if metric is not None:
            raise DatasetError(
                f"{manifest_path}: set {name!r} has no metrics; got metric={metric!r}"
            )
        key = None
    elif metric not in manifest.metrics:
        raise DatasetError(
            f"{manifest_path}: set {name!r} needs metric= one of {list(manifest.metrics)}, "
            f"got {metric!r}"
        )
    else:
        key = manifest.metrics[metric]
    path, digest = _resolve_file(manifest, data_dir, allow_unverified)
    records, names = rows_to_records(manifest, path, read_rows(manifest.format, path), key)
    if not records:
        raise DatasetError(f"{path}: no rows left after the manifest's `where` filter")
    return CalibrationSet(
        manifest=manifest,
        records=records,
        path=path,
        sha256=digest,
        verified=manifest.sha256 is not None,
        annotator_names=names,
        metric=metric,
    )
