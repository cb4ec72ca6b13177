"""The viewer's page model: one run (or two) -> plain, JSON-ready data per item.

A run is read with the one run reader (``judging.read.read_run``): its final verdicts as it
reported them, its judgments, and the item content from the input file its manifest names
(absolute path and column mapping; or passed in, e.g. by a calibration run). The exact prompts
are re-rendered from the rubric, and human labels come from an optional column of the input file
(or are passed in). Verdict rates come from the run summary (shares of all items, invalid
included), so the page and the terminal show the same numbers; uncertainty figures are computed
here once, so the page, the label queue and the tests read the same numbers.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from judgekit.data.records import read_rows
from judgekit.judging.read import read_run
from judgekit.judging.results import JudgeRun
from judgekit.judging.summary import summarize
from judgekit.judging.views import item_verdicts
from judgekit.rubrics import Rubric
from judgekit.schema import Item, ItemVerdict, PairwiseItem, history

HUMAN_COLUMN = "human_label"


def _human_labels(path: Path, column: str, items: Sequence[Item]) -> dict[str, str | float]:
    """The optional human-label column of the items file, by item id (rows align with items)."""
    rows = read_rows(path)
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
    rubric: Rubric | None = None,
) -> dict[str, Any]:
    """The page model of one run (read with ``read_run``): header, figures, one entry per item.

    The items come from the input file the run's manifest names (absolute path, column mapping,
    hash checked), unless given; human labels from ``human`` or that file's ``human_column``.
    ``rubric``: the run's rubric when it is not on the search path.
    """
    run = read_run(output, items=items, rubric=rubric)
    assert run.items is not None  # read with content
    if human is None:
        human = (
            _human_labels(Path(run.source.path), human_column, run.items)
            if run.source is not None
            else {}
        )
    by_item: dict[str, list[dict[str, Any]]] = {}
    for j in run.judgments:
        by_item.setdefault(j.item_id, []).append(
            j.model_dump(
                include={
                    "variant",
                    "order",
                    "criterion",
                    "label_probs",
                    "label_mass",
                    "label",
                    "expected_score",
                    "valid",
                    "invalid_reason",
                    "rationale",
                }
            )
        )
    summary = summarize(run)
    entries = [
        _entry(run, verdict, item, by_item.get(verdict.item_id, []), human.get(verdict.item_id))
        for verdict, item in zip(item_verdicts(run), run.items, strict=True)
    ]
    return {
        "path": str(output),
        "rubric": run.rubric.ref,
        "rubric_hash": run.rubric.hash,
        "mode": run.mode,
        "labels": list(run.rubric.labels),
        "values": list(run.rubric.values),
        "judge": run.judge.model,
        "controls": summary.controls,
        "variants": sorted({j.variant for j in run.judgments}),
        "input": run.source.path if run.source is not None else None,
        "rates": {k: list(v) for k, v in summary.label_rates.items()},
        "notes": [],
        "meta_columns": list(dict.fromkeys(k for row in run.meta for k in row)),
        "items": entries,
    }


def _entry(
    run: JudgeRun,
    verdict: ItemVerdict,
    item: Item,
    rows: list[dict[str, Any]],
    h: str | float | None,
) -> dict[str, Any]:
    """One item of the page: content, final verdict, per-variant labels, uncertainty, prompts."""
    rubric = run.rubric
    probs, score = verdict.label_probs, verdict.score
    pair = isinstance(item, PairwiseItem)
    answers = {"A": item.answer_a, "B": item.answer_b} if pair else {"answer": item.answer}
    prompts = {}
    for row in rows:
        key = " ".join(x for x in (row["variant"], row["order"], row["criterion"]) if x)
        messages = rubric.render(
            row["variant"], item, swap=row["order"] == "BA", criterion=row["criterion"]
        )
        prompts[key] = [{"role": m.role, "content": m.content} for m in messages]
    labels = _variant_labels(rows, rubric.labels)
    return {
        "id": verdict.item_id,
        "question": item.question,
        "context": item.context,
        "conversation": [{"role": t.role, "content": t.content} for t in history(item)],
        "reference": item.reference,
        "meta": dict(verdict.meta),
        "criteria": {
            name: {"label": c.label, "score": c.score, "valid": c.valid, "check": c.check}
            for name, c in (verdict.criteria or {}).items()
        },
        "pass_ratio": verdict.pass_ratio,
        "answers": answers,
        "lengths": {k: len(v) for k, v in answers.items()},
        "label_probs": probs,
        "score": score,
        "label": verdict.label,
        "tie": verdict.tie,
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


def page_model(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One run, or two side by side: items of the second joined by id, with the signed change
    of the score (second minus first; None where either run has no valid verdict)."""
    model = {"runs": list(runs)}
    if len(runs) == 2:
        second = {e["id"]: e for e in runs[1]["items"]}
        model["changes"] = {
            e["id"]: (
                second[e["id"]]["score"] - e["score"]
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
