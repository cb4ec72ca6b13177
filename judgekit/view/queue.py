"""The labelling queue: the items of a run most worth a human's time, as a CSV to fill in.

Each item gets a priority in [0, 1], the mean of three figures (each in [0, 1]):

- uncertainty: the entropy of the final label distribution over log(number of labels) (for
  pairs a function of |P(A) - 0.5| alone, highest at the decision boundary); invalid counts 1;
- order sensitivity (pairs): |P(A | AB) - P(A | BA)|, how much the verdict moves with the order;
- variant disagreement: share of prompt variants whose label is not the most common one.

Pointwise items have no order, so their priority is the mean of the other two. The CSV holds the
item's content under judgekit's field names (so ``judgekit calibrate --set queue.csv
--label-column label`` reads it back with no mapping), the three figures, and an empty ``label``.
The judge's own label is left out so it does not anchor the human.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

LABEL_COLUMN = "label"


def priority(entry: Mapping[str, Any]) -> dict[str, float]:
    """The three figures and their mean for one viewer entry (``view.data.load_run``)."""
    figures = {
        "uncertainty": entry["entropy"],  # 1.0 for an invalid item (view.data)
        "variant_disagreement": entry["variant_disagreement"],
    }
    if "A" in entry["answers"]:
        figures["order_sensitivity"] = entry["order_gap"]
    return {**figures, "priority": sum(figures.values()) / len(figures)}


def label_queue(run: Mapping[str, Any], n: int | None = None) -> list[dict[str, Any]]:
    """The ``n`` items (None: all) with the highest priority (ties: by id), as CSV rows."""
    ranked = []
    for entry in run["items"]:
        figures = priority(entry)
        content = {"id": entry["id"], "question": entry["question"], "context": entry["context"]}
        if run["mode"] == "pairwise":
            content |= {"answer_a": entry["answers"]["A"], "answer_b": entry["answers"]["B"]}
        else:
            content |= {"answer": entry["answers"]["answer"]}
        rounded = {k: round(v, 4) for k, v in figures.items()}
        ranked.append(content | rounded | {LABEL_COLUMN: ""})
    ranked.sort(key=lambda row: (-row["priority"], row["id"]))
    return ranked if n is None else ranked[:n]


def merge_queue(
    existing: Sequence[Mapping[str, Any]], ranked: Sequence[Mapping[str, Any]], n: int
) -> tuple[list[dict[str, Any]], int]:
    """An existing queue with every row kept as it is (labels a person filled in included), then
    up to ``n`` of ``ranked`` that it does not hold yet; and how many were added."""
    have = {str(row["id"]) for row in existing}
    added = [dict(row) for row in ranked if str(row["id"]) not in have][:n]
    return [dict(row) for row in existing] + added, len(added)


def read_queue(path: Path | str) -> list[dict[str, Any]]:
    """A queue CSV as written (or as filled in by a person): every cell as text."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_queue(rows: Sequence[Mapping[str, Any]], out: Path | str) -> Path:
    """Write the queue CSV; the file is replaced only once the new one is complete."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for row in rows for k in row)) or [LABEL_COLUMN]
    temp = out.with_name(f".{out.name}.tmp")
    with temp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temp, out)
    return out
