"""Judge verdicts as aligned arrays: from a judgekit run, or from any judge's hard verdicts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from judgekit.bias import (
    unswap,
)
from judgekit.bias.length import answer_lengths
from judgekit.judging.aggregate import Controls, ItemTable, combine, item_table, row_mean
from judgekit.judging.results import JudgeRun


@dataclass(frozen=True)
class JudgeOutputs:
    """One judge's verdicts on a calibration set, as arrays aligned with ``item_ids``.

    ``probs`` rows are label distributions over ``labels`` (a NaN row is an invalid verdict);
    ``scores`` the expected value under ``values`` (pairwise: the preference for A). Optional
    inputs of the bias figures: ``variant_scores`` (the score under each prompt variant),
    ``p_a_ab`` / ``p_a_ba`` (preference for the original answer A, P(A) + P(tie)/2, in the AB
    and BA presentation orders, averaged over variants) and ``lengths`` (pointwise: characters of
    the answer, shape (n,); pairwise: characters of answers A and B, shape (n, 2)).
    ``order_probs`` maps ``"variant|order"`` to that prompt's items x labels distributions (BA
    unswapped to the original answer positions; pointwise order ``-``): the learned ensemble's
    inputs (``calibrate.ensemble_fit``).
    """

    item_ids: tuple[str, ...]
    labels: tuple[str, ...]
    values: tuple[float, ...]
    probs: np.ndarray
    scores: np.ndarray
    source: str
    variant_scores: dict[str, np.ndarray] = field(default_factory=dict)
    p_a_ab: np.ndarray | None = None
    p_a_ba: np.ndarray | None = None
    lengths: np.ndarray | None = None
    order_probs: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, k = len(self.item_ids), len(self.labels)
        if len(set(self.item_ids)) != n:
            raise ValueError("item_ids contain duplicates")
        if len(self.values) != k:
            raise ValueError(f"{k} labels but {len(self.values)} values")
        if self.probs.shape != (n, k):
            raise ValueError(f"probs must be {(n, k)} (items x labels), got {self.probs.shape}")
        arrays = {"scores": self.scores, "p_a_ab": self.p_a_ab, "p_a_ba": self.p_a_ba}
        arrays |= {f"variant_scores[{v!r}]": s for v, s in self.variant_scores.items()}
        for name, arr in arrays.items():
            if arr is not None and arr.shape != (n,):
                raise ValueError(f"{name} must have shape {(n,)}, got {arr.shape}")
        for name, arr in self.order_probs.items():
            if arr.shape != (n, k):
                raise ValueError(f"order_probs[{name!r}] must be {(n, k)}, got {arr.shape}")
        if self.lengths is not None and self.lengths.shape not in ((n,), (n, 2)):
            raise ValueError(f"lengths must be (n,) or (n, 2), got {self.lengths.shape}")

    @property
    def valid(self) -> np.ndarray:
        """Items with a verdict (a finite distribution)."""
        return np.isfinite(self.probs).all(axis=1)


def preference_for_a(probs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """P(A) + P(tie)/2 over the last axis: a preference in [0, 1] whatever the label values."""
    pref = probs[..., list(labels).index("A")]
    if "tie" in labels:
        pref = pref + 0.5 * probs[..., list(labels).index("tie")]
    return pref


def outputs_from_run(run: JudgeRun) -> JudgeOutputs:
    """A judge run's verdicts plus per-variant scores, per-order preferences and answer lengths.

    Each variant's score goes through the run's own swap control (as the final verdict does) but
    no ensemble, so per-variant agreement shows what the ensemble averages over.
    """
    labels = run.rubric.labels
    ids = [item.id for item in run.items]
    values = np.asarray(run.rubric.values, dtype=float)
    table = item_table(run.judgments, labels, ids, run.rubric.variants)
    per_variant_controls = Controls(swap=run.controls.swap, swap_method=run.controls.swap_method)
    variant_scores = {
        name: combine(
            ItemTable(
                table.item_ids,
                (name,),
                table.labels,
                {o: p[:, [v]] for o, p in table.probs.items()},
            ),
            per_variant_controls,
        )
        @ values
        for v, name in enumerate(table.variants)
    }
    p_a_ab = p_a_ba = None
    by_order = dict(table.probs)
    if {"AB", "BA"} <= table.probs.keys():
        ba = table.probs["BA"]
        by_order["BA"] = unswap(ba.reshape(-1, len(labels)), labels).reshape(ba.shape)
        p_a_ab = row_mean(preference_for_a(table.probs["AB"], labels))
        p_a_ba = row_mean(preference_for_a(by_order["BA"], labels))
    order_probs = {
        f"{name}|{order}": probs[:, v]
        for order, probs in by_order.items()
        for v, name in enumerate(table.variants)
    }
    return JudgeOutputs(
        item_ids=tuple(ids),
        labels=labels,
        values=tuple(float(v) for v in values),
        probs=run.item_probs,
        scores=run.item_scores,
        source=f"judgekit run ({run.rubric.ref}, {run.judge.model})",
        variant_scores=variant_scores,
        p_a_ab=p_a_ab,
        p_a_ba=p_a_ba,
        lengths=answer_lengths(run.items),
        order_probs=order_probs,
    )


def _default_values(labels: Sequence[str]) -> tuple[float, ...]:
    """Numeric labels are their own value; pairwise labels A=1, tie=0.5, B=0; else the index."""
    try:
        return tuple(float(label) for label in labels)
    except ValueError:
        pairwise = {"A": 1.0, "B": 0.0, "tie": 0.5}
        if set(labels) <= pairwise.keys():
            return tuple(pairwise[label] for label in labels)
        return tuple(float(i) for i in range(len(labels)))


def outputs_from_verdicts(
    ids: Sequence[str],
    verdicts: Sequence[str | None],
    labels: Sequence[str],
    *,
    values: Sequence[float] | None = None,
    source: str = "precomputed verdicts",
) -> JudgeOutputs:
    """Hard verdicts from any judge (e.g. an API judge's file) as one-hot distributions.

    A verdict that is None or not exactly one of ``labels`` (after stripping whitespace) is
    invalid: it is kept and counted, never mapped to a default label.
    """
    if len(ids) != len(verdicts):
        raise ValueError(f"{len(ids)} ids but {len(verdicts)} verdicts")
    labels = tuple(labels)
    values = tuple(float(v) for v in values) if values is not None else _default_values(labels)
    index = {label: k for k, label in enumerate(labels)}
    probs = np.full((len(ids), len(labels)), np.nan)
    for i, verdict in enumerate(verdicts):
        k = index.get(verdict.strip()) if isinstance(verdict, str) else None
        if k is not None:
            probs[i] = 0.0
            probs[i, k] = 1.0
    return JudgeOutputs(
        item_ids=tuple(ids),
        labels=labels,
        values=values,
        probs=probs,
        scores=probs @ np.asarray(values, dtype=float),
        source=source,
    )
