"""Reading items from user files and writing judgments as they are produced.

Inputs are JSONL, CSV or Parquet with configurable column names; a bad row raises an error
naming the file, the row and the field. Outputs are JSONL or CSV, appended and flushed batch by
batch, so a run that dies keeps everything it already judged.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal

import pandas as pd
from pydantic import BaseModel, ValidationError

from judgekit.schema import Item, Judgment, PairwiseItem, PointwiseItem

Mode = Literal["pointwise", "pairwise"]
FIELDS: dict[str, tuple[str, ...]] = {
    "pointwise": ("id", "question", "answer", "context"),
    "pairwise": ("id", "question", "answer_a", "answer_b", "context"),
}
OPTIONAL = {"context"}


class InputError(ValueError):
    """An input file or one of its rows is unusable; the message says where."""


def _frame(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in {".jsonl", ".ndjson"}:
            return pd.read_json(path, lines=True, dtype=False)
        if suffix == ".json":
            return pd.read_json(path, dtype=False)
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        if suffix in {".parquet", ".pq"}:
            return pd.read_parquet(path)
    except (ValueError, OSError) as err:
        raise InputError(f"{path}: cannot read as {suffix[1:]}: {err}") from err
    raise InputError(f"{path}: unsupported input format {suffix!r} (jsonl, json, csv, parquet)")


def read_items(
    path: Path | str, mode: Mode, columns: Mapping[str, str] | None = None
) -> list[Item]:
    """Items from a file; ``columns`` maps judgekit field -> column name (e.g. question=prompt).

    Without an ``id`` column, items get their 0-based row number as id. Ids must be unique.
    """
    path = Path(path)
    frame = _frame(path)
    mapping = {field: (columns or {}).get(field, field) for field in FIELDS[mode]}
    unknown = set(columns or {}) - set(FIELDS[mode])
    if unknown:
        raise InputError(f"{path}: unknown field(s) {sorted(unknown)} for {mode} items")
    for field, column in mapping.items():
        if column not in frame.columns and field not in OPTIONAL and field != "id":
            raise InputError(
                f"{path}: field {field!r}: column {column!r} not found; columns are "
                f"{list(frame.columns)} (map one with --column {field}=NAME)"
            )
    model = PointwiseItem if mode == "pointwise" else PairwiseItem
    items: list[Item] = []
    seen: dict[str, int] = {}
    for row_number, row in enumerate(frame.to_dict(orient="records")):
        values: dict[str, Any] = {}
        for field, column in mapping.items():
            value = row.get(column)
            if value is None or (isinstance(value, float) and pd.isna(value)):
                if field == "id":
                    value = str(row_number)
                elif field in OPTIONAL:
                    continue
                else:
                    raise InputError(
                        f"{path}: row {row_number}: field {field!r} ({column}) is empty"
                    )
            if isinstance(value, int | float) or field == "id":
                value = str(value)
            values[field] = value
        try:
            item = model.model_validate(values)
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise InputError(f"{path}: row {row_number}: field {field!r}: {first['msg']}") from err
        if item.id in seen:
            raise InputError(
                f"{path}: row {row_number}: field 'id': {item.id!r} repeats row {seen[item.id]}"
            )
        seen[item.id] = row_number
        items.append(item)
    return items


def items_path(output: Path | str) -> Path:
    """Where the per-item verdicts of a run writing ``output`` go: ``<stem>.items<suffix>``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.items{output.suffix}")


def manifest_path(output: Path | str) -> Path:
    """Where a run writing ``output`` puts its manifest: ``<stem>.manifest.json``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.manifest.json")


class JudgmentWriter:
    """Appends records (judgments, item verdicts) to JSONL or CSV, flushing after every batch."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in {".jsonl", ".csv"}:
            raise InputError(f"{self.path}: output must be .jsonl or .csv (written incrementally)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._csv = suffix == ".csv"
        self._handle: IO[str] = self.path.open("w", encoding="utf-8", newline="")
        self._writer: csv.DictWriter[str] | None = None

    def write(self, records: Sequence[BaseModel]) -> None:
        for record in records:
            row = record.model_dump(mode="json")
            if self._csv:
                flat = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in row.items()}
                if self._writer is None:
                    self._writer = csv.DictWriter(self._handle, fieldnames=list(flat))
                    self._writer.writeheader()
                self._writer.writerow(flat)
            else:
                self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> JudgmentWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_judgments(path: Path | str) -> list[Judgment]:
    """Judgments written by :class:`JudgmentWriter` (JSONL)."""
    path = Path(path)
    out = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    out.append(Judgment.model_validate_json(line))
                except ValidationError as err:
                    raise InputError(f"{path}: line {line_number}: {err}") from err
    return out
