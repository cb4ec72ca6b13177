"""A run as tables: one row per judgment, one row per item, the rows its items file holds.

Frames are flat for analysis: meta columns as columns, a multi-criterion run's criteria as
``score[NAME]``, ``label[NAME]`` and ``p_<label>[NAME]`` (a checklist's checks ``check1``...).
The items file keeps them as the ``criteria`` and ``meta`` objects of each row.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from judgekit.judging.aggregate import Verdicts
from judgekit.judging.results import JudgeRun
from judgekit.schema import CriterionVerdict, ItemVerdict


def judgments_frame(run: JudgeRun) -> pd.DataFrame:
    """One row per judgment (item x variant x order), label probabilities as ``p_<label>``."""
    rows = []
    for j in run.judgments:
        row = j.model_dump(exclude={"label_probs", "engine_settings", "meta"})
        for label in run.rubric.labels:
            row[f"p_{label}"] = j.label_probs[label] if j.label_probs else math.nan
        rows.append(row | j.meta)
    return pd.DataFrame(rows)


def items_frame(run: JudgeRun) -> pd.DataFrame:
    """One row per item: final distribution, score, label and tie (invalid: NaN, label None)."""
    v = run.verdicts
    frame = pd.DataFrame(v.probs, columns=[f"p_{label}" for label in run.rubric.labels])
    frame.insert(0, "item_id", list(v.item_ids))
    frame.insert(1, "group", list(v.groups))
    frame["score"] = v.scores
    if v.uncorrected is not None:
        frame["score_uncorrected"] = v.uncorrected
    frame["label"] = pd.Series(v.labels, dtype=object)
    frame["tie"] = v.ties
    if v.pass_ratio is not None:
        frame["pass_ratio"] = v.pass_ratio
    if (table := v.criteria) is not None:
        n, units = len(v), table.verdicts
        for name in table.criteria:
            frame[f"score[{name}]"] = table.column(name, units.scores, n)
            labels = np.array(units.labels, dtype=object)
            chosen = np.array([c == name for c in table.names], dtype=bool)
            column = np.full(n, None, dtype=object)
            column[table.item_index[chosen]] = labels[chosen]
            frame[f"label[{name}]"] = column
            probs = table.column(name, units.probs, n)
            for k, label in enumerate(run.rubric.labels):
                frame[f"p_{label}[{name}]"] = probs[:, k]
    for column in dict.fromkeys(key for row in run.meta for key in row):
        frame[column] = pd.Series([row.get(column) for row in run.meta], dtype=object)
    return frame


def controls_applied(run: JudgeRun) -> dict[str, str]:
    """Which bias controls shaped the item verdicts (swap only applies to pairs)."""
    swapped = run.mode == "pairwise" and run.controls.swap
    n_variants = run.verdicts.n_variants
    ensemble = run.controls.ensemble
    return {
        "position_swap": run.controls.swap_method if swapped else "off",
        "ensemble": (
            "learned (frozen, from calibration)"
            if ensemble == "learned"
            else (f"{ensemble} of {n_variants}" if n_variants > 1 else "off")
        ),
        "length": "frozen (from calibration)"
        if run.corrections.length_model is not None
        else "off",
        "decision": _rule(run),
    }


def _rule(run: JudgeRun) -> str:
    if run.mode == "pairwise":
        return f"tie band {run.controls.tie_band:g}"
    return run.controls.pointwise_label


def item_verdicts(run: JudgeRun) -> list[ItemVerdict]:
    """One row per item for the items file, with per-order preferences and the controls.

    Built from arrays, not from a frame, so an item without any valid verdict comes out as an
    invalid row (label None) rather than a NaN that fails validation.
    """
    n_judged: dict[str, int] = {}
    n_valid: dict[str, int] = {}
    for j in run.judgments:
        n_judged[j.item_id] = n_judged.get(j.item_id, 0) + 1
        n_valid[j.item_id] = n_valid.get(j.item_id, 0) + int(j.valid)
    v = run.verdicts
    controls = controls_applied(run)
    criteria = _criterion_rows(run)
    has_verdict = v.valid  # computed once: per item it made this loop quadratic
    out = []
    for i, item_id in enumerate(v.item_ids):
        valid = bool(has_verdict[i])
        a = None if v.p_a_ab is None else _number(v.p_a_ab[i])
        b = None if v.p_a_ba is None else _number(v.p_a_ba[i])
        out.append(
            ItemVerdict(
                item_id=item_id,
                group=v.groups[i],
                rubric=run.rubric.name,
                rubric_version=run.rubric.version,
                rubric_hash=run.rubric.hash,
                judge_model=run.judge.model,
                label_probs=dict(zip(run.rubric.labels, map(float, v.probs[i]), strict=True))
                if valid
                else None,
                score=_number(v.scores[i]),
                score_uncorrected=None if v.uncorrected is None else _number(v.uncorrected[i]),
                label=v.labels[i],
                tie=bool(v.ties[i]),
                valid=valid,
                n_judgments=n_judged.get(item_id, 0),
                n_valid_judgments=n_valid.get(item_id, 0),
                n_variants=v.n_variants,
                n_valid_variants=int(v.n_valid_variants[i]),
                partial=valid and int(v.n_valid_variants[i]) < v.n_variants,
                p_a_ab=a,
                p_a_ba=b,
                flip=None if a is None or b is None else (a > 0.5) != (b > 0.5),
                controls=controls,
                criteria=criteria[i] if criteria is not None else None,
                pass_ratio=None if v.pass_ratio is None else _number(v.pass_ratio[i]),
                meta=run.meta[i] if run.meta else {},
            )
        )
    return out


def _criterion_rows(run: JudgeRun) -> list[dict[str, CriterionVerdict]] | None:
    """Per item, its criteria's verdicts (a check's text when the run has its items)."""
    v = run.verdicts
    if v.criteria is None:
        return None
    units: Verdicts = v.criteria.verdicts
    out: list[dict[str, CriterionVerdict]] = [{} for _ in v.item_ids]
    for u, (name, i) in enumerate(zip(v.criteria.names, v.criteria.item_index, strict=True)):
        valid = bool(units.valid[u])
        check = None
        if run.rubric.manifest.checklist and run.items is not None:
            check = run.rubric.criterion(name, run.items[int(i)]).description
        out[int(i)][name] = CriterionVerdict(
            label_probs=dict(zip(run.rubric.labels, map(float, units.probs[u]), strict=True))
            if valid
            else None,
            score=_number(units.scores[u]),
            label=units.labels[u],
            tie=bool(units.ties[u]),
            valid=valid,
            n_valid_variants=int(units.n_valid_variants[u]),
            check=check,
        )
    return out


def _number(x: float) -> float | None:
    """A finite array value as a float, NaN as None (the JSON/pydantic form of "no value")."""
    return None if np.isnan(x) else float(x)
