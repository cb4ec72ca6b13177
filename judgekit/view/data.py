"""The viewer's page model: one run's files (or two) -> plain, JSON-ready data per item.

A run writes ``<stem>.jsonl`` (judgments), ``<stem>.items.jsonl`` (per-item verdicts) and
``<stem>.manifest.json`` (rubric, judge, input path). The item content comes from the input file
named in the manifest (or is passed in, e.g. by a calibration run), the exact prompts are
re-rendered from the rubric with ``judgekit.rubrics``, and human labels come from an optional
column of the items file (or are passed in). Uncertainty figures are computed here once, so the
page, the label queue and the tests read the same numbers.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from judgekit.data.records import InputError, items_path, manifest_path, read_items, read_judgments
from judgekit.data.set_manifest import FileFormat
from judgekit.data.sets import read_rows
from judgekit.data.user_sets import USER_FORMATS
from judgekit.judging.run_manifest import RunManifest
from judgekit.rubrics import Rubric, load_rubric
from judgekit.schema import Item, ItemVerdict, PairwiseItem

HUMAN_COLUMN = "human_label"


def read_verdicts(output: Path) -> list[ItemVerdict]:
    path = items_path(output)
    if not path.is_file():
        raise InputError(f"{path}: not found (the run's per-item verdicts)")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [ItemVerdict.model_validate_json(line) for line in lines if line.strip()]


def _human_labels(path: Path, column: str, items: Sequence[Item]) -> dict[str, str | float]:
    """The optional human-label column of the items file, by item id (rows align with items)."""
    kind = USER_FORMATS.get(path.suffix.lower())
    if kind is None:
        return {}
    rows = read_rows(FileFormat(kind=kind), path)  # type: ignore[arg-type]
    out: dict[str, str | float] = {}
    for item, row in zip(items, rows, strict=True):
        value = row.get(column) if isinstance(row, dict) else None
        if (
            value is not None
            and value != ""
            and not (isinstance(value, float) and math.isnan(value))
        ):
            out[item.id] = value if isinstance(value, int | float) else str(value)
    return out


def entropy(probs: Sequence[float]) -> float:
    """Entropy of a label distribution, normalised to [0, 1] by log(number of labels)."""
    p = [x for x in probs if x > 0]
    return -sum(x * math.log(x) for x in p) / math.log(len(probs)) if len(probs) > 1 else 0.0


def boundary_margin(score: float, values: Sequence[float]) -> float:
    """Distance of an item's score to the nearest decision boundary between adjacent labels.

    Pairwise (values 1/0): |P(A) - 0.5|. Pointwise: distance to the nearest midpoint between two
    consecutive label values, where the rounded label would change.
    """
    ordered = sorted(values)
    mids = [(a + b) / 2 for a, b in itertools.pairwise(ordered)]
    return min(abs(score - m) for m in mids)


def variant_disagreement(labels: Sequence[str | None]) -> float:
    """Share of variants whose label is not the most common one (invalid: differing)."""
    if not labels:
        return 0.0
    present = [x for x in labels if x is not None]
    top = max(present.count(x) for x in set(present)) if present else 0
    return 1 - top / len(labels)


def _variant_labels(rows: Sequence[dict[str, Any]], labels: Sequence[str]) -> dict[str, str | None]:
    """Per variant, the argmax of its label distribution averaged over both orders (un-swapped)."""
    sums: dict[str, dict[str, float]] = {}
    valid: dict[str, bool] = {}
    for row in rows:
        variant = row["variant"]
        valid.setdefault(variant, True)
        if row["label_probs"] is None:
            valid[variant] = False
            continue
        probs = dict(row["label_probs"])
        if row["order"] == "BA":
            probs = {"A": probs.get("B", 0.0), "B": probs.get("A", 0.0)} | {
                k: v for k, v in probs.items() if k not in ("A", "B")
            }
        acc = sums.setdefault(variant, dict.fromkeys(labels, 0.0))
        for label in labels:
            acc[label] += probs.get(label, 0.0)
    return {
        v: max(sums[v], key=sums[v].__getitem__) if ok and v in sums else None
        for v, ok in valid.items()
    }


def _disagrees(human: str | float | None, label: str | None, rubric: Rubric) -> bool | None:
    if human is None:
        return None
    if label is None:
        return True
    if isinstance(human, str) and human in rubric.labels:
        return human != label
    try:
        value = float(human)
    except ValueError:
        return human != label
    nearest = min(rubric.values, key=lambda v: abs(v - value))
    return nearest != rubric.values[rubric.labels.index(label)]


def load_run(
    output: Path | str,
    *,
    items: Sequence[Item] | None = None,
    human: Mapping[str, str | float] | None = None,
    human_column: str = HUMAN_COLUMN,
    columns: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The page model of one run: its header, summary figures and one entry per item."""
    output = Path(output)
    mpath = manifest_path(output)
    if not mpath.is_file():
        raise InputError(f"{mpath}: not found (is {output} the output of a judgekit run?)")
    manifest = RunManifest.model_validate_json(mpath.read_text(encoding="utf-8"))
    rubric = load_rubric(manifest.rubric)
    notes = []
    if rubric.hash != manifest.rubric_hash:
        notes.append(
            f"rubric {manifest.rubric} changed since the run ({manifest.rubric_hash[:12]} -> "
            f"{rubric.hash[:12]}): prompts are re-rendered from the current text"
        )
    if items is None:
        if manifest.input is None:
            raise InputError(f"{mpath}: the run names no input file; pass the items")
        source = Path(manifest.input)
        items = read_items(source, rubric.manifest.mode, columns)
        if human is None:
            human = _human_labels(source, human_column, items)
    human = human or {}
    judgments = read_judgments(output)
    by_item: dict[str, list[dict[str, Any]]] = {}
    for j in judgments:
        by_item.setdefault(j.item_id, []).append(
            j.model_dump(
                include={
                    "variant",
                    "order",
                    "label_probs",
                    "label_mass",
                    "label",
                    "expected_score",
                    "valid",
                    "invalid_reason",
                }
            )
        )
    content = {item.id: item for item in items}
    entries = []
    for verdict in read_verdicts(output):
        item = content.get(verdict.item_id)
        if item is None:
            raise InputError(f"{output}: item {verdict.item_id!r} is not in the items given")
        rows = by_item.get(verdict.item_id, [])
        probs = verdict.label_probs
        score = (
            verdict.score_length_corrected
            if verdict.score_length_corrected is not None
            else verdict.score
        )
        pair = isinstance(item, PairwiseItem)
        answers = {"A": item.answer_a, "B": item.answer_b} if pair else {"answer": item.answer}
        prompts = {}
        for row in rows:
            key = f"{row['variant']} {row['order'] or ''}".strip()
            messages = rubric.render(row["variant"], item, swap=row["order"] == "BA")
            prompts[key] = [{"role": m.role, "content": m.content} for m in messages]
        labels = _variant_labels(rows, rubric.labels)
        h = human.get(verdict.item_id)
        entries.append(
            {
                "id": verdict.item_id,
                "question": item.question,
                "context": item.context,
                "answers": answers,
                "lengths": {k: len(v) for k, v in answers.items()},
                "label_probs": probs,
                "score": score,
                "label": verdict.label,
                "valid": verdict.valid,
                "flip": verdict.flip,
                "p_a_ab": verdict.p_a_ab,
                "p_a_ba": verdict.p_a_ba,
                "controls": verdict.controls,
                "label_mass": sum(r["label_mass"] for r in rows) / len(rows) if rows else None,
                "entropy": entropy(list(probs.values())) if probs else 1.0,
                "margin": boundary_margin(score, rubric.values) if score is not None else 0.0,
                "order_gap": (
                    abs(verdict.p_a_ab - verdict.p_a_ba)
                    if verdict.p_a_ab is not None and verdict.p_a_ba is not None
                    else 0.0
                ),
                "variant_labels": labels,
                "variant_disagreement": variant_disagreement(list(labels.values())),
                "human": h,
                "disagrees": _disagrees(h, verdict.label, rubric),
                "variant_disagrees": {v: _disagrees(h, x, rubric) for v, x in labels.items()},
                "judgments": rows,
                "prompts": prompts,
            }
        )
    return {
        "path": str(output),
        "rubric": manifest.rubric,
        "rubric_hash": manifest.rubric_hash,
        "mode": rubric.manifest.mode,
        "labels": list(rubric.labels),
        "values": list(rubric.values),
        "judge": manifest.judge.model,
        "controls": manifest.controls_applied,
        "variants": manifest.variants,
        "input": manifest.input,
        "finished": manifest.finished.isoformat(),
        "notes": notes,
        "items": entries,
    }


def page_model(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One run, or two side by side: items of the second joined by id, with the score change."""
    model = {"runs": list(runs)}
    if len(runs) == 2:
        second = {e["id"]: e for e in runs[1]["items"]}
        model["changes"] = {
            e["id"]: (
                abs(second[e["id"]]["score"] - e["score"])
                if e["id"] in second
                and e["score"] is not None
                and second[e["id"]]["score"] is not None
                else None
            )
            for e in runs[0]["items"]
        }
    return model


def to_json(model: Mapping[str, Any]) -> str:
    """JSON safe inside ``<script>``: no "<" at all, so "</script>" or "<!--" in candidate text
    cannot end the script or change how the HTML parser reads it (JSON reads \\u003c as "<")."""
    return json.dumps(model, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")
