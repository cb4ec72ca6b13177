"""Reading items from user files: columns -> item fields, the rest -> meta; errors say where.

Inputs are JSONL, CSV or Parquet with configurable column names; a bad row raises an error
naming the file, the row and the field. Besides the answer(s), an item may carry a
``conversation`` (a list of ``{role, content}`` turns), a ``reference`` answer and a
``checklist`` (a list of checks); in a CSV file the lists are JSON text. Every column not mapped
to a field is the item's ``meta``, carried to the outputs; one named like a judgekit field is
refused (it would be ambiguous in the outputs). ``check_items`` refuses items a rubric cannot
judge (a field it needs is missing, or one it would silently ignore is there) before any engine
starts.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from judgekit.rubrics import Rubric
from judgekit.schema import (
    CONTENT_FIELDS,
    Item,
    PairwiseItem,
    PointwiseItem,
    Scalar,
    reserved_column,
)

Mode = Literal["pointwise", "pairwise"]
FIELDS: dict[str, tuple[str, ...]] = {
    "pointwise": ("id", "question", "answer", "context", "group"),
    "pairwise": ("id", "question", "answer_a", "answer_b", "context", "group"),
}
OPTIONAL = {"context", "group"}
#: Fields holding a list (a JSON list in a CSV cell).
LISTS = ("conversation", "checklist")
EXTRA = ("conversation", "reference", "checklist")


class InputError(ValueError):
    """An input file or one of its rows is unusable; the message says where."""


def read_rows(path: Path | str) -> list[dict[str, Any]]:
    """A table's rows as written: JSONL/JSON values as parsed, CSV cells as text, Parquet values
    as stored (no type inference, so an id column keeps "007" and 12 stays 12, never 12.0)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in {".jsonl", ".ndjson"}:
            with path.open(encoding="utf-8") as handle:
                rows = [json.loads(line) for line in handle if line.strip()]
        elif suffix == ".json":
            rows = json.loads(path.read_text(encoding="utf-8"))
        elif suffix == ".csv":
            with path.open(encoding="utf-8", newline="") as handle:
                rows = list(csv.DictReader(handle))
        elif suffix in {".parquet", ".pq"}:
            import pyarrow.parquet as pq

            rows = pq.read_table(path).to_pylist()
        else:
            raise InputError(
                f"{path}: unsupported input format {suffix!r} (jsonl, json, csv, parquet)"
            )
    except (ValueError, OSError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"{path}: cannot read as {suffix[1:]}: {err}") from err
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError(f"{path}: expected one object per row")
    return rows


def _missing(value: Any) -> bool:
    """No value at all (an empty string is a value: a candidate may answer nothing)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value: Any) -> str:
    """A cell as text, exactly as written (12 -> "12", 1.5 -> "1.5", "007" stays)."""
    if isinstance(value, bool | dict | list):
        raise TypeError(f"expected text or a number, got {json.dumps(value)[:40]}")
    return value if isinstance(value, str) else str(value)


def _listed(field: str, value: Any) -> list[Any]:
    """A list field's value: a list, or (CSV) the JSON text of one."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise TypeError(
                f"expected a list (JSON text in a CSV cell), got {value[:40]!r}"
            ) from None
    if hasattr(value, "tolist"):  # a numpy array from Parquet
        value = value.tolist()
    if not isinstance(value, list | tuple):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    if field == "checklist" and not all(isinstance(check, str) for check in value):
        raise TypeError("expected a list of strings (one check each)")
    if field == "conversation" and not all(isinstance(turn, dict) for turn in value):
        raise TypeError("expected a list of {role, content} turns")
    return list(value)


def _meta(value: Any) -> Scalar:
    """A meta cell as stored: scalars as they are, anything nested as its JSON text."""
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()  # numpy scalar -> Python
    if _missing(value):
        return None
    if isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _mapping(
    path: Path, mode: Mode, columns: Mapping[str, str] | None, header: dict[str, None]
) -> tuple[dict[str, str], list[str]]:
    """(field -> column for the fields to read, the meta columns), refusing what cannot work."""
    known = (*FIELDS[mode], *EXTRA)
    if unknown := set(columns or {}) - set(known):
        raise InputError(f"{path}: unknown field(s) {sorted(unknown)} for {mode} items")
    mapping = {field: (columns or {}).get(field, field) for field in known}
    derived = {"question", "answer"} if mapping["conversation"] in header else set()
    for field, column in mapping.items():
        if column in header or field in (*OPTIONAL, *EXTRA, "id") or field in derived:
            continue
        raise InputError(
            f"{path}: field {field!r}: column {column!r} not found; columns are "
            f"{list(header)} (map one with --column {field}=NAME)"
        )
    used = {*mapping.values(), "meta"}  # a "meta" column (an object per row) is meta as well
    meta = [column for column in header if column not in used]
    for column in meta:
        if (why := reserved_column(column)) is not None:
            raise InputError(
                f"{path}: column {column!r}: not carried as meta because {why}; rename it, or "
                "map it to a field with --column FIELD=" + column
            )
    return mapping, meta


def _values(mapping: dict[str, str], row: dict[str, Any], row_number: int) -> dict[str, Any]:
    """One row's field values (TypeError/InputError naming the field); absent optionals left out."""
    values: dict[str, Any] = {}
    for field, column in mapping.items():
        value = row.get(column)
        if _missing(value) or (value == "" and field in ("id", *OPTIONAL, *EXTRA)):
            if field == "id":
                values[field] = str(row_number)
            continue
        try:
            values[field] = _listed(field, value) if field in LISTS else _text(value)
        except TypeError as err:
            raise InputError(f"field {field!r}: {err}") from err
    return values


def read_items(
    path: Path | str, mode: Mode, *, columns: Mapping[str, str] | None = None
) -> list[Item]:
    """Items from a file; ``columns`` maps judgekit field -> column name (e.g. question=prompt).

    Without an ``id`` column, items get their 1-based row number as id. Ids must be unique and
    are kept exactly as written. Rows are counted from 1 (the first data row), as people count
    them; an error names the file, the row and the field. Columns not mapped to a field become
    each item's ``meta`` (every item gets every meta column, None where its row has no value).
    """
    path = Path(path)
    rows = read_rows(path)
    header = dict.fromkeys(key for row in rows for key in row)
    if not rows:
        raise InputError(f"{path}: no items (the file has no data rows)")
    mapping, meta = _mapping(path, mode, columns, header)
    model = PointwiseItem if mode == "pointwise" else PairwiseItem
    items: list[Item] = []
    seen: dict[str, int] = {}
    for row_number, row in enumerate(rows, start=1):
        try:
            values = _values(mapping, row, row_number)
        except InputError as err:
            raise InputError(f"{path}: row {row_number}: {err}") from err
        values["meta"] = _row_meta(row, meta, path, row_number)
        try:
            item = model.model_validate(values)
        except ValidationError as err:
            raise InputError(f"{path}: row {row_number}: {_first_error(err)}") from err
        if item.id in seen:
            raise InputError(
                f"{path}: row {row_number}: field 'id': {item.id!r} repeats row {seen[item.id]}"
            )
        seen[item.id] = row_number
        items.append(item)
    return items


def _row_meta(
    row: dict[str, Any], columns: Sequence[str], path: Path, row_number: int
) -> dict[str, Scalar]:
    """The row's meta columns, plus the entries of a ``meta`` object (a file judgekit wrote)."""
    out = {column: _meta(row.get(column)) for column in columns}
    given = row.get("meta")
    if isinstance(given, str) and given:
        given = json.loads(given) if given.startswith("{") else given
    if _missing(given) or given == "":
        return out
    if not isinstance(given, dict):
        raise InputError(f"{path}: row {row_number}: field 'meta': expected an object")
    for key, value in given.items():
        if key in out or (why := reserved_column(key)) is not None:
            raise InputError(
                f"{path}: row {row_number}: field 'meta': key {key!r} "
                + ("repeats a column" if key in out else f"is not allowed: {why}")
            )
        out[key] = _meta(value)
    return out


def _first_error(err: ValidationError) -> str:
    """The first validation error as ``field 'NAME': message`` (a model-level one names its own)."""
    first = err.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    loc = [str(p) for p in first["loc"]]
    if not loc:
        return message
    if loc[0] in ("conversation", "checklist") and len(loc) > 1:
        where = f"{loc[0]}, item {int(loc[1]) + 1}" if loc[1].isdigit() else loc[0]
        return f"field {loc[0]!r} ({where}): {message}"
    return f"field {loc[0]!r}: {message}"


def check_items(items: Sequence[Item], rubric: Rubric, source: str | None = None) -> None:
    """Refuse items ``rubric`` cannot judge as they are, naming the row (1-based position in the
    file) and field: a field the rubric requires is missing, or one it never reads is present
    (its content would be silently dropped from the judge's prompt)."""
    where = f"{source}: " if source else ""
    requires = set(rubric.manifest.requires)
    ignored = [f for f in CONTENT_FIELDS if f not in rubric.reads and f != "context"]
    for row, item in enumerate(items, start=1):
        at = f"{where}row {row} (item {item.id!r})" if source else f"item {item.id!r}"
        for field in sorted(requires):
            value = getattr(item, field)
            if value is None or value == "":
                raise InputError(f"{at}: field {field!r} is missing; rubric {rubric.ref} needs it")
        for field in ignored:
            if getattr(item, field) is not None:
                raise InputError(
                    f"{at}: field {field!r} is given but rubric {rubric.ref} does not read it "
                    f"(its prompt would leave it out); use a rubric that does, or rename the "
                    "column to keep it as meta"
                )


def same_meta_columns(items: Sequence[Item]) -> list[Item]:
    """Items whose ``meta`` all have the same columns, in first-seen order (None where an item
    had none), so every output row has every meta column (a CSV needs one header)."""
    columns = list(dict.fromkeys(key for item in items for key in item.meta))
    return [
        item
        if list(item.meta) == columns
        else item.model_copy(update={"meta": {c: item.meta.get(c) for c in columns}})
        for item in items
    ]


def check_slices(items: Sequence[Item], by: Sequence[str], source: str | None = None) -> None:
    """Refuse a ``--by`` column that no item has in its meta (before anything is judged)."""
    columns = dict.fromkeys(key for item in items for key in item.meta)
    for column in by:
        if column not in columns:
            raise InputError(
                f"{source or 'items'}: --by {column}: no such meta column; the meta columns "
                f"are {list(columns)} (columns not mapped to an item field)"
            )
