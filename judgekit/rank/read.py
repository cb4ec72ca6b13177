"""Battles from verdicts already made: any judge, any table, named by field options.

A verdict column holds either P(A) as a number in [0, 1] or a label mapped through ``labels``
(default: A/model_a -> 1, B/model_b -> 0, tie/A=B -> 0.5). An empty verdict is an invalid
battle, counted and never guessed; a label outside the map is an input error naming the file,
row and field. Presets name the columns of published formats:

- ``alpaca_eval``: AlpacaEval annotations (``results/<model>/<annotator>/annotations.json``):
  the question is ``instruction``, A = ``generator_2`` (the model), B = ``generator_1`` (the
  baseline), P(A) = ``preference`` - 1 (a preference of 0 is AlpacaEval's legacy draw), answer
  texts ``output_2``/``output_1`` (lengths for the length-controlled win rate).
- ``arena_hard``: Arena-Hard-Auto's released battles (``question_id``, ``model_a``,
  ``model_b``, ``winner`` in model_a/model_b/tie/tie (bothbad)); a strong verdict is already
  repeated there, so every row weighs 1.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from judgekit.data.records import InputError, read_rows
from judgekit.rank.battles import Battles
from judgekit.rank.plan import Answer
from judgekit.rank.style import style_features

__all__ = ["DEFAULT_LABELS", "FIELDS", "Preset", "expand_paths", "read_battles", "read_scores"]

Preset = Literal["battles", "alpaca_eval", "arena_hard"]
FIELDS = (
    "question",
    "model_a",
    "model_b",
    "verdict",
    "weight",
    "category",
    "answer_a",
    "answer_b",
    "flip",
)
REQUIRED = ("question", "model_a", "model_b", "verdict")
DEFAULT_LABELS: dict[str, float] = {
    "A": 1.0,
    "B": 0.0,
    "tie": 0.5,
    "model_a": 1.0,
    "model_b": 0.0,
    "tie (bothbad)": 0.5,
    "A=B": 0.5,
    "A>B": 1.0,
    "B>A": 0.0,
}
PRESET_FIELDS: dict[str, dict[str, str]] = {
    "battles": {},
    "alpaca_eval": {
        "question": "instruction",
        "model_a": "generator_2",
        "model_b": "generator_1",
        "verdict": "preference",
        "answer_a": "output_2",
        "answer_b": "output_1",
    },
    "arena_hard": {"question": "question_id", "verdict": "winner"},
}


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files from paths, folders (their tables, recursively) and quoted glob patterns."""
    out: list[Path] = []
    for raw in paths:
        text = str(raw)
        matches = sorted(glob.glob(text, recursive=True)) if glob.has_magic(text) else [text]
        if not matches:
            raise InputError(f"{text}: no file matches")
        for match in map(Path, matches):
            if match.is_dir():
                out += sorted(
                    p
                    for p in match.rglob("*")
                    if p.suffix.lower() in {".jsonl", ".ndjson", ".json", ".csv", ".parquet"}
                )
            elif match.exists():
                out.append(match)
            else:
                raise InputError(f"{match}: no such file")
    if not out:
        raise InputError(f"no judgment files in {[str(p) for p in paths]}")
    return out


def _missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _verdict(preset: Preset, labels: Mapping[str, float]) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if _missing(value):
            return math.nan
        if preset == "alpaca_eval":
            pref = float(value)
            if pref == 0.0:
                return 0.5
            if not 1.0 <= pref <= 2.0:
                raise ValueError(f"AlpacaEval preference {pref} is outside [1, 2]")
            return pref - 1.0
        if isinstance(value, str) and value in labels:
            return labels[value]
        if isinstance(value, bool):
            raise ValueError(f"unexpected boolean {value}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"{value!r} is neither P(A) in [0, 1] nor a known label {sorted(labels)} "
                "(map it with --label VALUE=P)"
            ) from None
        if not 0.0 <= number <= 1.0:
            raise ValueError(f"P(A) {number} is outside [0, 1]")
        return number

    return parse


def _read(
    paths: Sequence[str | Path],
    columns: Mapping[str, str],
    required: Sequence[str],
    parse: Mapping[str, Callable[[Any], Any]],
    skip_self: bool = False,
) -> dict[str, list[Any]]:
    """Columns by judgekit field over all files; errors name file, row and field.

    A row of a model against itself is an error, or dropped with ``skip_self`` (AlpacaEval
    keeps the baseline's annotations against itself, 50% by construction, no information).
    """
    table: dict[str, list[Any]] = {f: [] for f in columns}
    for path in expand_paths(paths):
        rows = read_rows(path)
        present = set(rows[0]) if rows else set()
        for field in required:
            if rows and columns[field] not in present:
                raise InputError(
                    f"{path}: field {field!r}: column {columns[field]!r} not found; columns are "
                    f"{sorted(present)} (map one with --field {field}=NAME)"
                )
        for number, row in enumerate(rows, start=1):
            for field, column in columns.items():
                value = row.get(column)
                try:
                    if field in required and field not in parse and _missing(value):
                        raise ValueError("missing")
                    table[field].append(parse[field](value) if field in parse else value)
                except ValueError as err:
                    raise InputError(f"{path}: row {number}: field {field!r}: {err}") from err
            if "model_a" in table and str(table["model_a"][-1]) == str(table["model_b"][-1]):
                if not skip_self:
                    raise InputError(
                        f"{path}: row {number}: model {table['model_a'][-1]!r} against itself "
                        "(drop such rows with --skip-self)"
                    )
                for values in table.values():
                    values.pop()
    if not next(iter(table.values())):
        raise InputError(f"no rows in {[str(p) for p in paths]}")
    return table


def _weight(value: Any) -> float:
    if _missing(value):
        return 1.0
    weight = float(value)
    if not (math.isfinite(weight) and weight >= 0):
        raise ValueError(f"weight {value!r} is not a finite number >= 0")
    return weight


def read_battles(
    paths: Sequence[str | Path],
    *,
    preset: Preset = "battles",
    fields: Mapping[str, str] | None = None,
    labels: Mapping[str, float] | None = None,
    style: Sequence[str] = (),
    length: Callable[[str], int] = len,
    skip_self: bool = False,
) -> Battles:
    """Battles from judgment files; ``fields`` maps judgekit field -> column (over the preset).

    With answer columns present, answer lengths are kept (for length control); ``style`` names
    the style features to compute from the answers (see ``rank.style``).
    """
    if preset not in PRESET_FIELDS:
        raise InputError(f"unknown format {preset!r}; one of {sorted(PRESET_FIELDS)}")
    unknown = set(fields or {}) - set(FIELDS)
    if unknown:
        raise InputError(f"unknown field(s) {sorted(unknown)}; fields are {list(FIELDS)}")
    columns = {f: f for f in FIELDS} | PRESET_FIELDS[preset] | dict(fields or {})
    parse = {
        "verdict": _verdict(preset, {**DEFAULT_LABELS, **(labels or {})}),
        "weight": _weight,
    }
    return _build(_read(paths, columns, REQUIRED, parse, skip_self), style, length)


def read_scores(
    paths: Sequence[str | Path], *, fields: Mapping[str, str] | None = None
) -> tuple[list[str], list[str], np.ndarray, list[str] | None]:
    """(question, model, score, category or None) from pointwise judgment files.

    Fields: question, model, score (a number; empty = invalid, kept as NaN), category.
    """
    names = ("question", "model", "score", "category")
    unknown = set(fields or {}) - set(names)
    if unknown:
        raise InputError(f"unknown field(s) {sorted(unknown)}; fields are {list(names)}")
    columns = {f: f for f in names} | dict(fields or {})

    def score(value: Any) -> float:
        return math.nan if _missing(value) else float(value)

    table = _read(paths, columns, ("question", "model", "score"), {"score": score})
    category = None if all(_missing(c) for c in table["category"]) else table["category"]
    return (
        [str(q) for q in table["question"]],
        [str(m) for m in table["model"]],
        np.array(table["score"], dtype=float),
        None if category is None else [str(c) for c in category],
    )


def _build(
    table: dict[str, list[Any]], style: Sequence[str], length: Callable[[str], int]
) -> Battles:
    def optional(field: str) -> list[Any] | None:
        values = table[field]
        return None if all(_missing(v) for v in values) else values

    answers_a, answers_b = optional("answer_a"), optional("answer_b")
    has_answers = answers_a is not None and answers_b is not None
    if style and not has_answers:
        raise InputError("style control needs both answer texts (fields answer_a and answer_b)")
    texts_a = [str(t) if not _missing(t) else "" for t in answers_a or []]
    texts_b = [str(t) if not _missing(t) else "" for t in answers_b or []]
    flip = optional("flip")
    try:
        return Battles.build(
            [str(q) for q in table["question"]],
            [str(m) for m in table["model_a"]],
            [str(m) for m in table["model_b"]],
            np.array(table["verdict"], dtype=float),
            weight=np.array(table["weight"], dtype=float),
            category=None if optional("category") is None else [str(c) for c in table["category"]],
            lengths=(
                np.column_stack([[length(t) for t in texts_a], [length(t) for t in texts_b]])
                if has_answers
                else None
            ),
            flip=None
            if flip is None
            else np.array([np.nan if _missing(f) else float(f) for f in flip]),
            features=style_features(texts_a, texts_b, length=length, features=style)
            if style
            else None,
            feature_names=tuple(style),
        )
    except ValueError as err:
        raise InputError(f"judgments: {err}") from err


ANSWER_FIELDS = ("question_id", "question", "model", "answer", "category")


def read_answers(
    paths: Sequence[str | Path], *, fields: Mapping[str, str] | None = None
) -> list[Answer]:
    """Answers to rank: ``question_id, question, model, answer`` rows (+ ``category``), from one
    file or a folder of per-model files (no ``model`` column: the file's stem names the model).
    An empty answer is an answer; an empty id, question or model is an error naming the file,
    the row (counted from 1) and the field."""
    unknown = set(fields or {}) - set(ANSWER_FIELDS)
    if unknown:
        raise InputError(f"unknown field(s) {sorted(unknown)}; fields are {list(ANSWER_FIELDS)}")
    columns = {f: f for f in ANSWER_FIELDS} | dict(fields or {})
    out = []
    for path in expand_paths(paths):
        for number, row in enumerate(read_rows(path), start=1):
            values: dict[str, Any] = {}
            for field, column in columns.items():
                value = row.get(column)
                if field == "model" and _missing(value):
                    value = path.stem
                if field == "answer" and value == "":
                    pass  # a model may answer nothing: that answer is judged like any other
                elif _missing(value):
                    if field in ("category",):
                        continue
                    raise InputError(f"{path}: row {number}: field {field!r} ({column}) is empty")
                values[field] = str(value)
            out.append(Answer(**values))
    if not out:
        raise InputError(f"no answers in {[str(p) for p in paths]}")
    return out
