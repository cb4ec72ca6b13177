"""The one run reader: a finished run read back from its files, exactly as it reported itself.

A run writing ``X.jsonl`` (or ``.csv``; a Parquet copy ``X.parquet`` converted from it reads the
same) leaves ``X.items.jsonl`` (per-item verdicts, after every control and correction it applied)
and ``X.manifest.json`` (rubric, judge, controls, card, the input file with its column mapping,
absolute path and hash). ``read_run`` returns the same ``JudgeRun`` the run returned: diff,
series, the viewer, the label queue and gates after the fact all read runs through it, so none of
them recomputes a verdict another way. Runs written by judgekit 0.2 read too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from judgekit.bias.learned import LearnedEnsembleModel
from judgekit.bias.length import load_length_model
from judgekit.data.records import (
    InputError,
    items_path,
    manifest_path,
    read_items,
    read_judgments,
    read_rows,
)
from judgekit.files import sha256_file
from judgekit.judging.aggregate import Corrections, CriterionTable, Verdicts, unit_key
from judgekit.judging.results import JudgeRun
from judgekit.judging.run_manifest import RunManifest
from judgekit.rubrics import Rubric, RubricError, load_rubric
from judgekit.schema import CriterionVerdict, InputRef, Item, ItemVerdict, Judgment


def read_manifest(output: Path | str) -> RunManifest:
    """The manifest beside a run's output (InputError naming the file when missing or bad)."""
    path = manifest_path(output)
    if not path.is_file():
        raise InputError(f"{path}: not found (is {output} the output of a judgekit run?)")
    raw = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(raw.get("input"), str):  # judgekit 0.2: the input path as given
        raw["input"] = {"path": str((path.parent / raw["input"]).resolve()), "sha256": ""}
    try:
        return RunManifest.model_validate(raw)
    except ValueError as err:
        raise InputError(f"{path}: not a judgekit run manifest: {err}") from err


def read_run(
    output: Path | str,
    *,
    content: bool = True,
    items: Sequence[Item] | None = None,
    rubric: str | Rubric | None = None,
) -> JudgeRun:
    """A finished run from its output file and sidecars.

    ``content``: also read the judged items from the input file the manifest names (with the
    column mapping it was read with; refused when the file changed since the run). ``items``:
    the content, given (e.g. a calibration set's items). Without either, ``run.items`` is None.
    ``rubric``: the rubric the run used when it is not on the search path (a user's folder);
    its hash is checked like a found one's.
    """
    output = Path(output)
    manifest = read_manifest(output)
    rubric = load_rubric(rubric if rubric is not None else manifest.rubric)
    if rubric.hash != manifest.rubric_hash:
        raise RubricError(
            f"{output}: judged with {manifest.rubric} hash {manifest.rubric_hash[:12]}, but the "
            f"installed {rubric.ref} has hash {rubric.hash[:12]}"
        )
    judgments = _latest(read_judgments(output))
    rows = _verdict_rows(output)
    if items is None and content:
        items = _content(manifest.input, rubric.manifest.mode, output)
    if items is not None:
        known = {item.id for item in items}
        if missing := [r.item_id for r in rows if r.item_id not in known]:
            raise InputError(f"{output}: items {missing[:3]} are not in the items given")
        by_id = {item.id: item for item in items}
        items = [by_id[r.item_id] for r in rows]
    learned = manifest.corrections.get("learned")
    corrections = Corrections(
        length_model=load_length_model(manifest.corrections.get("length_model")),
        learned=LearnedEnsembleModel.model_validate(learned) if learned else None,
    )
    return JudgeRun(
        rubric,
        manifest.judge,
        manifest.controls,
        tuple(judgments),
        _verdicts(rows, rubric.labels),
        items=tuple(items) if items is not None else None,
        corrections=corrections,
        card=manifest.card,
        seconds=(manifest.finished - manifest.started).total_seconds(),
        judge_name=manifest.judge_name,
        source=manifest.input,
        meta=tuple(r.meta for r in rows),
    )


def _latest(judgments: list[Judgment]) -> list[Judgment]:
    """One judgment per request: a resumed run's retry replaces the row that failed."""
    kept = {(j.item_id, j.variant, j.order, j.criterion): j for j in judgments}
    return list(kept.values())


def _content(source: InputRef | None, mode: str, output: Path) -> list[Item]:
    if source is None:
        raise InputError(f"{manifest_path(output)}: the run names no input file; pass the items")
    path = Path(source.path)
    if not path.is_file():
        raise InputError(f"{path}: not found (the input of {output}, per its manifest)")
    if source.sha256 and sha256_file(path) != source.sha256:
        raise InputError(f"{path}: changed since {output} was judged (its sha256 differs)")
    return read_items(path, mode, columns=source.columns)  # type: ignore[arg-type]


def _verdict_rows(output: Path) -> list[ItemVerdict]:
    """The items file of a run: ``<stem>.items<suffix>``, else the JSONL the run wrote."""
    candidates = [items_path(output), output.with_name(f"{output.stem}.items.jsonl")]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise InputError(f"{candidates[0]}: not found (the run's per-item verdicts)")
    out = []
    for n, row in enumerate(read_rows(path), start=1):
        try:
            out.append(ItemVerdict.model_validate(_upgrade(row)))
        except ValueError as err:
            raise InputError(f"{path}: row {n}: {err}") from err
    return out


def _upgrade(row: dict[str, Any]) -> dict[str, Any]:
    """An items row as this version writes it (0.2 rows, CSV cells and Parquet values too)."""
    row = {k: (None if v == "" else v) for k, v in row.items()}
    for key in ("label_probs", "controls", "criteria", "meta"):
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    if "score_length_corrected" in row:  # 0.2: score = uncorrected, plus the corrected one
        corrected = row.pop("score_length_corrected")
        if corrected is not None:
            row["score_uncorrected"], row["score"] = row["score"], corrected
        else:
            row["score_uncorrected"] = None
    row.setdefault("group", str(row["item_id"]))
    for key in ("item_id", "group", "label"):
        if row.get(key) is not None:
            row[key] = str(row[key])
    for key in ("tie", "valid", "partial", "flip"):
        if isinstance(row.get(key), str):
            row[key] = row[key] == "True"
    return row


def _probs(rows: Sequence[ItemVerdict | CriterionVerdict], labels: Sequence[str]) -> np.ndarray:
    return np.array(
        [
            [r.label_probs[label] for label in labels] if r.label_probs else [np.nan] * len(labels)
            for r in rows
        ],
        dtype=float,
    ).reshape(len(rows), len(labels))


def _column(rows: Sequence[ItemVerdict | CriterionVerdict], name: str) -> np.ndarray:
    return np.array(
        [np.nan if getattr(r, name) is None else getattr(r, name) for r in rows], dtype=float
    )


def _criteria(rows: Sequence[ItemVerdict], labels: Sequence[str]) -> CriterionTable | None:
    """A multi-criterion run's per-criterion verdicts, as its items file reported them."""
    if not any(r.criteria for r in rows):
        return None
    units = [(i, name, c) for i, r in enumerate(rows) for name, c in (r.criteria or {}).items()]
    verdicts = [c for _, _, c in units]
    table = Verdicts(
        item_ids=tuple(unit_key(rows[i].item_id, name) for i, name, _ in units),
        groups=tuple(rows[i].group for i, _, _ in units),
        probs=_probs(verdicts, labels),
        scores=_column(verdicts, "score"),
        uncorrected=None,
        labels=tuple(c.label for c in verdicts),
        ties=np.array([c.tie for c in verdicts], dtype=bool),
        n_valid_variants=np.array([c.n_valid_variants for c in verdicts], dtype=int),
        n_variants=max((r.n_variants for r in rows), default=0),
    )
    index = np.array([i for i, _, _ in units], dtype=int)
    return CriterionTable(tuple(name for _, name, _ in units), index, table)


def _verdicts(rows: Sequence[ItemVerdict], labels: Sequence[str]) -> Verdicts:
    def column(name: str) -> np.ndarray:
        return _column(rows, name)

    probs = _probs(rows, labels)
    has_orders = any(r.p_a_ab is not None for r in rows)
    return Verdicts(
        item_ids=tuple(r.item_id for r in rows),
        groups=tuple(r.group for r in rows),
        probs=probs,
        scores=column("score").astype(float),
        uncorrected=column("score_uncorrected").astype(float)
        if any(r.score_uncorrected is not None for r in rows)
        else None,
        labels=tuple(r.label for r in rows),
        ties=np.array([r.tie for r in rows], dtype=bool),
        n_valid_variants=np.array([r.n_valid_variants for r in rows], dtype=int),
        n_variants=max((r.n_variants for r in rows), default=0),
        p_a_ab=column("p_a_ab").astype(float) if has_orders else None,
        p_a_ba=column("p_a_ba").astype(float) if has_orders else None,
        criteria=_criteria(rows, labels),
        pass_ratio=column("pass_ratio") if any(r.pass_ratio is not None for r in rows) else None,
    )
