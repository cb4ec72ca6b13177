"""A team's own human-labelled file as a calibration set: ``judgekit calibrate --set PATH``.

The file (JSONL, CSV or Parquet) is described by an in-memory manifest built from the command
line, so it goes through the same row -> record code as the registered sets (same errors naming
file, row and field) and the same card and report. There is no published source to pin: the set
is identified by the sha256 of the file's bytes, which the card records.

Item fields map like ``judgekit judge --column FIELD=COLUMN`` (default: the field's own name; an
absent ``id`` column gives row numbers). Labels: pairwise ``A``/``B``/``tie`` (any case), binary
the rubric's label names or values, ordinal a number within the rubric's score range. An empty
cell is a missing label (the item is left out of agreement, and counted).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from judgekit.data.records import FIELDS, OPTIONAL
from judgekit.data.set_manifest import (
    AnnotatorSpec,
    CalibrationSetManifest,
    DatasetError,
    FieldMap,
    FieldSpec,
    FileFormat,
    Scale,
)
from judgekit.data.sets import CalibrationSet, read_rows, rows_to_records
from judgekit.files import sha256_file
from judgekit.rubrics import Rubric
from judgekit.schema import reserved_column

USER_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
PAIR_LABELS = {"a": "A", "b": "B", "tie": "tie"}


def is_user_set(value: str) -> bool:
    """True when ``--set`` names a file of a supported kind rather than a registered set."""
    return Path(value).suffix.lower() in USER_FORMATS


def _set_name(path: Path) -> str:
    """A manifest-valid name from the file name (cards are keyed by it, with the file's hash)."""
    stem = re.sub(r"[^a-z0-9_]+", "_", path.stem.lower()).strip("_")
    return stem if re.match(r"^[a-z]", stem) else f"set_{stem}"


def _labels(rubric: Rubric) -> tuple[str, dict[str, str | float] | None, Scale | None]:
    """(label_type, raw -> label map, score range) as the rubric reads labels."""
    if rubric.manifest.mode == "pairwise":
        mapping = {k: v for raw, v in PAIR_LABELS.items() for k in (raw, raw.upper(), raw.title())}
        return "pairwise", dict(mapping), None
    values = rubric.values
    if len(values) == 2:
        low = min(values)
        named = {
            label: float(value != low) for label, value in zip(rubric.labels, values, strict=True)
        }
        numbers = {f"{v:g}": float(v != low) for v in values}
        return "binary", {**numbers, **named}, None
    return "ordinal", None, Scale(min=min(values), max=max(values))


def _field_map(
    path: Path, mode: str, columns: Mapping[str, str], header: set[str], labels: set[str]
) -> FieldMap:
    """Item fields -> the file's columns, like ``judge --column``; fails naming the field.
    Other columns (not ``labels``' and not named like a judgekit field) are the items' meta."""
    fields = tuple(f for f in (*FIELDS[mode], "reference") if f != "group")  # group: the split
    unknown = set(columns) - {*fields, "group"}
    if unknown:
        raise DatasetError(f"{path}: unknown field(s) {sorted(unknown)} for {mode} items")
    specs: dict[str, FieldSpec] = {}
    for field in fields:
        column = columns.get(field, field)
        if column in header:
            specs[field] = FieldSpec(field=column)
        elif field == "id":
            specs[field] = FieldSpec(template="{_row}")  # row numbers, as read_items does
        elif field not in (*OPTIONAL, "reference"):
            raise DatasetError(
                f"{path}: field {field!r}: column {column!r} not found; columns are "
                f"{sorted(header)} (map one with --column {field}=NAME)"
            )
    used = {spec.field for spec in specs.values()} | labels | {columns.get("group", "group")}
    meta = {
        c: FieldSpec(field=c)
        for c in sorted(header - used)
        if reserved_column(c) is None and "." not in c
    }
    return FieldMap(**specs, meta=meta)


def load_user_set(
    path: Path | str,
    rubric: Rubric,
    *,
    label_column: str | None,
    annotator_columns: Sequence[str] = (),
    group_column: str | None = None,
    annotator_column: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> CalibrationSet:
    """A labelled file as a :class:`CalibrationSet` for ``rubric``'s mode and labels.

    ``label_column``: the human label (the consensus). ``annotator_columns``: one label per
    annotator (two or more), for the human ceiling; without ``label_column`` the consensus is
    their plurality (mean for scores). ``group_column``: long format, one row per annotator vote;
    rows with the same value in this column are one item (it becomes the item id).
    ``annotator_column`` (with ``group_column``): who cast each vote, so votes are placed by
    annotator; without it the votes are anonymous and per-annotator models refuse them.
    """
    path = Path(path)
    if path.suffix.lower() not in USER_FORMATS:
        raise DatasetError(f"{path}: unsupported format (jsonl, csv, parquet)")
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    columns = dict(columns or {})
    if annotator_column is not None and group_column is None:
        raise DatasetError(
            f"{path}: --annotator-column names who cast each vote: give --group-column"
        )
    if group_column is not None:
        if annotator_columns or not label_column:
            raise DatasetError(f"{path}: --group-column takes one --label-column (each row a vote)")
        columns["id"] = group_column
        shapes = [AnnotatorSpec(votes=label_column, annotator=annotator_column)]
    else:
        if not label_column and len(annotator_columns) < 2:
            raise DatasetError(f"{path}: give --label-column, or two or more --annotator-columns")
        shapes = [AnnotatorSpec(fields=tuple(annotator_columns))] if annotator_columns else []
        if label_column:
            shapes.append(AnnotatorSpec(consensus=label_column))
    fmt = FileFormat(kind=USER_FORMATS[path.suffix.lower()])  # type: ignore[arg-type]
    rows = read_rows(fmt, path)
    if not rows or not isinstance(rows[0], dict):
        raise DatasetError(f"{path}: expected rows of named columns")
    header = set(rows[0])
    named = [c for c in (label_column, annotator_column) if c]
    for column in (*annotator_columns, *named):
        if column not in header:
            raise DatasetError(
                f"{path}: labels: column {column!r} not found; columns are {sorted(header)}"
            )
    group = columns.get("group", "group")
    # a vote file's other columns may differ between votes on one item: no meta there
    kept = header if group_column is None else set()
    fields = _field_map(
        path, rubric.manifest.mode, columns, header, header - kept | {*annotator_columns, *named}
    )
    label_type, labels, scale = _labels(rubric)
    digest = sha256_file(path)
    built = []
    for shape in shapes:
        try:
            manifest = CalibrationSetManifest(
                name=_set_name(path),
                description=f"user file {path}",
                source=None,
                licence="user-provided",
                sha256=digest,
                local_path=path.name,
                format=fmt,
                label_type=label_type,  # type: ignore[arg-type]
                mode=rubric.manifest.mode,
                fields=fields,
                annotators=shape,
                # items of one group (else asking the same question) stay together
                split_group=FieldSpec(field=group) if group in header else fields.question,
                labels=labels,
                scale=scale,
            )
        except ValueError as err:
            raise DatasetError(f"{path}: {err}") from err
        built.append((manifest, *rows_to_records(manifest, path, rows, None)))
    manifest, records, names = built[-1]
    if len(built) == 2:  # per-annotator labels, with the label column as the consensus
        names = built[0][2]
        records = tuple(
            r.model_copy(update={"human": a.human})
            for a, r in zip(built[0][1], records, strict=True)
        )
    return CalibrationSet(
        manifest=manifest,
        records=records,
        path=path,
        sha256=digest,
        verified=True,
        annotator_names=names,
    )
