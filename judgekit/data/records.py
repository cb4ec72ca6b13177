"""Writing judgments as they are produced, and reading them back (items: ``data.items``).

Outputs are JSONL or CSV, written batch by batch and
flushed and fsynced after each, so a run that dies keeps everything it already judged. An
existing output is never truncated by accident: a writer either creates a new file, overwrites
on request, or appends to resume (see ``judging.run.judge``).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ValidationError

from judgekit.data.items import FIELDS, OPTIONAL, InputError, check_items, read_items, read_rows
from judgekit.schema import Judgment

__all__ = [
    "FIELDS",
    "OPTIONAL",
    "InputError",
    "JudgmentWriter",
    "OutputExistsError",
    "RunFiles",
    "check_items",
    "drop_torn_tail",
    "items_path",
    "manifest_path",
    "read_items",
    "read_judgments",
    "read_rows",
]


def items_path(output: Path | str) -> Path:
    """Where the per-item verdicts of a run writing ``output`` go: ``<stem>.items<suffix>``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.items{output.suffix}")


def manifest_path(output: Path | str) -> Path:
    """Where a run writing ``output`` puts its manifest: ``<stem>.manifest.json``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.manifest.json")


WriteMode = Literal["new", "overwrite", "append"]


class OutputExistsError(InputError):
    """The output file exists and the caller neither asked to overwrite nor to resume it."""


class JudgmentWriter:
    """Writes records (judgments, item verdicts) to JSONL or CSV; flush + fsync after each batch.

    ``mode``: ``new`` refuses an existing file, ``overwrite`` truncates it, ``append`` adds rows
    after the existing ones (a CSV keeps its header and column order).
    """

    def __init__(self, path: Path | str, mode: WriteMode = "overwrite") -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in {".jsonl", ".csv"}:
            raise InputError(f"{self.path}: output must be .jsonl or .csv (written incrementally)")
        if mode == "new" and self.path.exists():
            raise OutputExistsError(
                f"{self.path} exists: pass --overwrite to replace it or --resume to continue it"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._csv = suffix == ".csv"
        self._writer: csv.DictWriter[str] | None = None
        header = None
        if mode == "append" and self._csv and self.path.is_file():
            with self.path.open(encoding="utf-8", newline="") as handle:
                header = next(csv.reader(handle), None)
        opening = "a" if mode == "append" else ("x" if mode == "new" else "w")
        self._handle: IO[str] = self.path.open(opening, encoding="utf-8", newline="")
        if header:
            self._writer = csv.DictWriter(self._handle, fieldnames=header)

    def write(self, records: Sequence[BaseModel]) -> None:
        for record in records:
            # no meta columns: no empty object (Parquet cannot hold it)
            drop = {"meta"} if getattr(record, "meta", None) == {} else None
            if self._csv:
                row = record.model_dump(mode="json", exclude=drop)
                flat = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in row.items()}
                if self._writer is None:
                    self._writer = csv.DictWriter(self._handle, fieldnames=list(flat))
                    self._writer.writeheader()
                self._writer.writerow(flat)
            else:  # pydantic's own serializer: a quarter of json.dumps' cost per row
                self._handle.write(record.model_dump_json(exclude=drop) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> JudgmentWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RunFiles:
    """A run's output and its sidecars, written so that nothing already there is lost.

    ``new``: the output must not exist. ``overwrite``: everything goes to temporary files beside
    the output, and ``commit`` replaces the old output and its sidecars together at the end, so a
    run killed early leaves the previous run whole. ``append`` (resume): new rows go after the
    existing ones; ``commit`` rewrites the output from the final rows (one row per request, the
    retried ones replacing their failures).
    """

    def __init__(self, output: Path | str, mode: WriteMode) -> None:
        self.output = Path(output)
        self.mode = mode
        self._temps: dict[Path, Path] = {}
        if mode == "new" and self.output.exists():
            raise OutputExistsError(
                f"{self.output} exists: pass --overwrite to replace it or --resume to continue it"
            )
        self.rows_path = self._temp(self.output) if mode == "overwrite" else self.output

    def _temp(self, final: Path) -> Path:
        temp = final.with_name(f".{final.stem}.tmp{final.suffix}")
        self._temps[final] = temp
        return temp

    def writer(self) -> JudgmentWriter:
        return JudgmentWriter(self.rows_path, mode=self.mode)

    def commit(
        self,
        items: Sequence[BaseModel],
        manifest: BaseModel,
        rows: Sequence[BaseModel] | None = None,
    ) -> None:
        """Write the sidecars (and, when given, the output's final ``rows``), then move every
        temporary file into place."""
        if rows is not None:
            with JudgmentWriter(self._temp(self.output), mode="overwrite") as writer:
                writer.write(rows)
        with JudgmentWriter(self._temp(items_path(self.output)), mode="overwrite") as writer:
            writer.write(items)
        temp = self._temp(manifest_path(self.output))
        temp.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
        for final, temp in self._temps.items():
            os.replace(temp, final)
        self._temps.clear()

    def discard(self) -> None:
        """Remove temporary files of a run that did not finish (the old output stays)."""
        for temp in self._temps.values():
            temp.unlink(missing_ok=True)


def drop_torn_tail(path: Path | str) -> int:
    """Cut a last line left half-written by a killed run (no final newline); bytes removed."""
    path = Path(path)
    with path.open("rb+") as handle:
        data = handle.read()
        if not data or data.endswith(b"\n"):
            return 0
        keep = data.rfind(b"\n") + 1
        handle.truncate(keep)
        os.fsync(handle.fileno())
    return len(data) - keep


_DICT_FIELDS = ("label_probs", "engine_settings", "meta")
_TEXT_FIELDS = ("item_id", "rubric", "variant", "label", "judge_model", "criterion")


def _judgment_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A CSV/Parquet row as Judgment fields: empty cells and NaN are None, dicts decoded.

    A converter that read the JSONL with type inference turns ids and labels like "3" into
    numbers; they are text again here.
    """
    out: dict[str, Any] = {}
    for key, value in row.items():
        if hasattr(value, "item") and not isinstance(value, str):
            value = value.item()  # numpy scalar -> Python
        if value == "" or (isinstance(value, float) and math.isnan(value)):
            value = None
        if key in _TEXT_FIELDS and isinstance(value, int | float) and value is not None:
            value = str(value)
        if key in _DICT_FIELDS and isinstance(value, str):
            value = json.loads(value)
        if key in _DICT_FIELDS and isinstance(value, dict):
            value = {k: v for k, v in value.items() if not (key == "label_probs" and v is None)}
        out[key] = value
    return out


def read_judgments(path: Path | str) -> list[Judgment]:
    """Judgments from a run's output: JSONL or CSV as written here, or Parquet converted from them.

    A bad row raises :class:`InputError` naming the file and the line (JSONL) or row.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson"}:
        out = []
        with path.open(encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        out.append(Judgment.model_validate_json(line))
                    except ValidationError as err:
                        raise InputError(f"{path}: line {line_number}: {err}") from err
        return out
    if suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            rows: list[Mapping[str, Any]] = list(csv.DictReader(handle))
    elif suffix in {".parquet", ".pq"}:
        rows = read_rows(path)
    else:
        raise InputError(f"{path}: judgments must be .jsonl, .csv or .parquet")
    out = []
    for row_number, row in enumerate(rows, start=1):
        try:
            out.append(Judgment.model_validate(_judgment_from_row(row)))
        except (ValidationError, json.JSONDecodeError) as err:
            raise InputError(f"{path}: row {row_number}: {err}") from err
    return out
