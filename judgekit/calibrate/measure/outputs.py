"""Judge verdicts as aligned arrays: from a judgekit run, or from any judge's hard verdicts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from judgekit.bias.ensemble import aggregate_variants
from judgekit.bias.length import answer_lengths
from judgekit.judging.aggregate import ItemTable, item_table, per_variant, row_mean
from judgekit.judging.decide import TIE, Decisions, decide
from judgekit.judging.results import JudgeRun
from judgekit.schema import Controls, Mode


@dataclass(frozen=True)
class JudgeOutputs:
    """One judge's verdicts on a calibration set, as arrays aligned with ``item_ids``.

    ``probs`` rows are label distributions over ``labels`` (a NaN row is an invalid verdict);
    ``scores`` the expected value under ``values`` (pairwise: the preference for A). Optional
    inputs of the bias figures: ``variant_probs`` (each prompt variant's distributions, orders
    combined),
    ``p_a_ab`` / ``p_a_ba`` (preference for the original answer A, P(A) + P(tie)/2, in the AB
    and BA presentation orders, averaged over variants) and ``lengths`` (pointwise: characters of
    the answer, shape (n,); pairwise: characters of answers A and B, shape (n, 2)).
    ``order_probs`` maps ``"variant|order"`` to that prompt's items x labels distributions (BA
    unswapped to the original answer positions; pointwise order ``-``): the learned ensemble's
    inputs (``calibrate.fit.ensemble``). ``controls`` and ``mode`` give the decision rule the
    labels are read with (``decisions``, ``judging.decide``): a calibration scores exactly the
    labels a run with the same controls reports. ``mode`` None: pairwise when the labels include
    A and B.
    """

    item_ids: tuple[str, ...]
    labels: tuple[str, ...]
    values: tuple[float, ...]
    probs: np.ndarray
    scores: np.ndarray
    source: str
    variant_probs: dict[str, np.ndarray] = field(default_factory=dict)
    p_a_ab: np.ndarray | None = None
    p_a_ba: np.ndarray | None = None
    lengths: np.ndarray | None = None
    order_probs: dict[str, np.ndarray] = field(default_factory=dict)
    controls: Controls = field(default_factory=Controls)
    mode: Mode | None = None

    def __post_init__(self) -> None:
        n, k = len(self.item_ids), len(self.labels)
        if len(set(self.item_ids)) != n:
            raise ValueError("item_ids contain duplicates")
        if len(self.values) != k:
            raise ValueError(f"{k} labels but {len(self.values)} values")
        if self.probs.shape != (n, k):
            raise ValueError(f"probs must be {(n, k)} (items x labels), got {self.probs.shape}")
        arrays = {"scores": self.scores, "p_a_ab": self.p_a_ab, "p_a_ba": self.p_a_ba}
        for name, arr in arrays.items():
            if arr is not None and arr.shape != (n,):
                raise ValueError(f"{name} must have shape {(n,)}, got {arr.shape}")
        for what, table in (
            ("order_probs", self.order_probs),
            ("variant_probs", self.variant_probs),
        ):
            for name, arr in table.items():
                if arr.shape != (n, k):
                    raise ValueError(f"{what}[{name!r}] must be {(n, k)}, got {arr.shape}")
        if self.lengths is not None and self.lengths.shape not in ((n,), (n, 2)):
            raise ValueError(f"lengths must be (n,) or (n, 2), got {self.lengths.shape}")

    @property
    def valid(self) -> np.ndarray:
        """Items with a verdict (a finite distribution)."""
        return np.isfinite(self.probs).all(axis=1)

    @property
    def rule_mode(self) -> Mode:
        return self.mode or ("pairwise" if {"A", "B"} <= set(self.labels) else "pointwise")

    @cached_property
    def decisions(self) -> Decisions:
        """The verdict label of each item under the one decision rule (ties as ties)."""
        return decide(
            self.probs, self.labels, self.values, self.rule_mode, self.controls, self.scores
        )

    def decide(self, probs: np.ndarray) -> Decisions:
        """Labels of other distributions over the same labels (a variant's, an ensemble's)
        under the same rule."""
        return decide(probs, self.labels, self.values, self.rule_mode, self.controls)

    @cached_property
    def variant_scores(self) -> dict[str, np.ndarray]:
        """Each variant's expected score (pairwise: P(A)), orders combined."""
        values = np.asarray(self.values, dtype=float)
        return {name: probs @ values for name, probs in self.variant_probs.items()}


def preference_for_a(probs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """P(A) + P(tie)/2 over the last axis: a preference in [0, 1] whatever the label values."""
    pref = probs[..., list(labels).index("A")]
    if "tie" in labels:
        pref = pref + 0.5 * probs[..., list(labels).index("tie")]
    return pref


def outputs_from_run(run: JudgeRun) -> JudgeOutputs:
    """A judge run's final verdicts (as the run decided them) plus per-variant scores, per-order
    preferences and answer lengths.

    Each variant's score goes through the run's own swap control (as the final verdict does) but
    no ensemble, so per-variant agreement shows what the ensemble averages over.
    """
    if run.items is None:
        raise ValueError("calibration needs the run's items (read_run(..., content=True))")
    labels = run.rubric.labels
    ids = list(run.verdicts.item_ids)
    values = np.asarray(run.rubric.values, dtype=float)
    table = item_table(run.judgments, labels, ids, run.rubric.variants)
    swap_only = Controls(swap=run.controls.swap, swap_method=run.controls.swap_method)
    variant_probs = {
        name: aggregate_variants(per_variant(_one_variant(table, v), swap_only))
        for v, name in enumerate(table.variants)
    }
    order_probs = table.order_probs()
    p_a_ab = p_a_ba = None
    if {"AB", "BA"} <= table.probs.keys():
        stacked = {
            o: np.stack([order_probs[f"{n}|{o}"] for n in table.variants], axis=1)
            for o in ("AB", "BA")
        }
        p_a_ab = row_mean(preference_for_a(stacked["AB"], labels))
        p_a_ba = row_mean(preference_for_a(stacked["BA"], labels))
    return JudgeOutputs(
        item_ids=tuple(ids),
        labels=labels,
        values=tuple(float(v) for v in values),
        probs=run.verdicts.probs,
        scores=run.verdicts.scores,
        source=f"judgekit run ({run.rubric.ref}, {run.judge.model})",
        variant_probs=variant_probs,
        p_a_ab=p_a_ab,
        p_a_ba=p_a_ba,
        lengths=answer_lengths(run.items),
        order_probs=order_probs,
        controls=run.controls,
        mode=run.rubric.manifest.mode,
    )


def _one_variant(table: ItemTable, v: int) -> ItemTable:
    return ItemTable(
        table.item_ids,
        (table.variants[v],),
        table.labels,
        {o: p[:, [v]] for o, p in table.probs.items()},
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
    invalid: it is kept and counted, never mapped to a default label. "tie" under labels A and B
    without a tie label is an even split, which the decision rule reads as a tie (as a replay).
    """
    if len(ids) != len(verdicts):
        raise ValueError(f"{len(ids)} ids but {len(verdicts)} verdicts")
    labels = tuple(labels)
    values = tuple(float(v) for v in values) if values is not None else _default_values(labels)
    index = {label: k for k, label in enumerate(labels)}
    even = {"A", "B"} <= set(labels) and TIE not in labels  # a tie is an even split of A and B
    probs = np.full((len(ids), len(labels)), np.nan)
    for i, verdict in enumerate(verdicts):
        text = verdict.strip() if isinstance(verdict, str) else None
        if text in index:
            probs[i] = 0.0
            probs[i, index[text]] = 1.0
        elif text == TIE and even:
            probs[i] = 0.0
            probs[i, [index["A"], index["B"]]] = 0.5
    return JudgeOutputs(
        item_ids=tuple(ids),
        labels=labels,
        values=values,
        probs=probs,
        scores=probs @ np.asarray(values, dtype=float),
        source=source,
    )
