"""Per-request judgments -> one verdict per item, computed once: position swap, the variant
ensemble, a card's frozen corrections, then the decision rule.

Arrays are built once per run (items x variants x labels); the maths lives in ``judgekit.bias``.
Invalid judgments are NaN rows there: skipped by the ensemble, counted here. ``Verdicts`` is the
one per-item result every reader uses (summary, gates, diff, viewer, calibration, cascades).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from judgekit.bias.ensemble import aggregate_variants, valid_variant_counts
from judgekit.bias.learned import LearnedEnsembleModel, learned_probs
from judgekit.bias.length import LengthModel, correct_distributions
from judgekit.bias.position import combine_orders, unswap
from judgekit.judging.decide import decide
from judgekit.rubrics import Rubric
from judgekit.schema import Controls, Judgment


@dataclass(frozen=True)
class Corrections:
    """Frozen models fitted on a calibration card's dev split that a run applies unchanged."""

    length_model: LengthModel | None = None
    learned: LearnedEnsembleModel | None = None


@dataclass(frozen=True)
class ItemTable:
    """Distributions of a run as arrays: ``probs[order][item, variant, label]`` (NaN = invalid)."""

    item_ids: tuple[str, ...]
    variants: tuple[str, ...]
    labels: tuple[str, ...]
    probs: dict[str, np.ndarray]

    def order_probs(self) -> dict[str, np.ndarray]:
        """``"variant|order"`` -> items x labels (BA unswapped to the original answer positions;
        pointwise order ``-``): each prompt's verdicts, the learned ensemble's inputs."""
        by_order = dict(self.probs)
        if "BA" in by_order:
            ba = by_order["BA"]
            by_order["BA"] = unswap(ba.reshape(-1, len(self.labels)), self.labels).reshape(ba.shape)
        return {
            f"{name}|{order}": probs[:, v]
            for order, probs in by_order.items()
            for v, name in enumerate(self.variants)
        }


def item_table(
    judgments: Sequence[Judgment],
    labels: Sequence[str],
    item_ids: Sequence[str],
    variant_order: Sequence[str] = (),
) -> ItemTable:
    """Arrange judgments by item, variant and order (pairwise orders AB/BA, pointwise '-').

    Variants come in ``variant_order`` (the rubric's), then any others in order of appearance,
    so the table does not depend on the order requests were submitted in.
    """
    present = dict.fromkeys(j.variant for j in judgments)
    variants = tuple(v for v in variant_order if v in present) + tuple(
        v for v in present if v not in variant_order
    )
    row = {item_id: i for i, item_id in enumerate(item_ids)}
    col = {variant: v for v, variant in enumerate(variants)}
    probs: dict[str, np.ndarray] = {}
    for j in judgments:
        order = j.order or "-"
        table = probs.setdefault(
            order, np.full((len(item_ids), len(variants), len(labels)), np.nan)
        )
        if j.label_probs is not None:
            table[row[j.item_id], col[j.variant]] = [j.label_probs[label] for label in labels]
    return ItemTable(tuple(item_ids), variants, tuple(labels), probs)


def per_variant(table: ItemTable, controls: Controls) -> np.ndarray:
    """Items x variants x labels, the two orders combined (NaN where a variant is not usable).

    With the swap on, a variant counts for an item only when both of its orders are valid.
    Label roles (A, B, tie) are read from the label names, never from their position.
    """
    if "AB" in table.probs and "BA" in table.probs and controls.swap:
        n_items, n_variants, n_labels = table.probs["AB"].shape
        ab = table.probs["AB"].reshape(-1, n_labels)
        ba = unswap(table.probs["BA"].reshape(-1, n_labels), table.labels)
        combined = combine_orders(ab, ba, method=controls.swap_method, labels=table.labels)
        return combined.reshape(n_items, n_variants, n_labels)
    cube = table.probs.get("AB", table.probs.get("-"))
    if cube is None:
        return np.full((len(table.item_ids), 0, len(table.labels)), np.nan)
    return cube


def row_mean(x: np.ndarray) -> np.ndarray:
    """Mean over valid (non-NaN) entries of each row; NaN for a row with none (no warning)."""
    valid = ~np.isnan(x)
    counts = valid.sum(axis=1)
    sums = np.where(valid, x, 0.0).sum(axis=1)
    return np.divide(sums, counts, out=np.full(len(x), np.nan), where=counts > 0)


@dataclass(frozen=True)
class Verdicts:
    """One row per item, as arrays aligned with ``item_ids``: what every reader of a run uses.

    ``probs`` / ``scores`` are final (after every control the run applied: swap, ensemble, a
    card's frozen corrections); ``uncorrected`` holds the scores before the length correction
    (None when none was applied). ``labels`` come from the one decision rule
    (``judging.decide``): None for an invalid item or a pointwise exact tie; ``ties`` marks every
    tie. ``p_a_ab`` / ``p_a_ba``: P(A) in each presentation order (BA unswapped), averaged over
    variants (pairs judged in both orders only). ``groups``: each item's cluster key.
    """

    item_ids: tuple[str, ...]
    groups: tuple[str, ...]
    probs: np.ndarray
    scores: np.ndarray
    uncorrected: np.ndarray | None
    labels: tuple[str | None, ...]
    ties: np.ndarray
    n_valid_variants: np.ndarray
    n_variants: int
    p_a_ab: np.ndarray | None = None
    p_a_ba: np.ndarray | None = None

    @property
    def valid(self) -> np.ndarray:
        """Items with a verdict (a finite distribution)."""
        return np.isfinite(self.probs).all(axis=1)

    def __len__(self) -> int:
        return len(self.item_ids)


def order_preferences(table: ItemTable) -> tuple[np.ndarray, np.ndarray] | None:
    """Per item, P(A) in the AB order and (un-swapped) in BA, averaged over variants."""
    if not {"AB", "BA"} <= table.probs.keys():
        return None
    col = table.labels.index("A")
    ba = table.probs["BA"]
    ba = unswap(ba.reshape(-1, len(table.labels)), table.labels).reshape(ba.shape)
    return row_mean(table.probs["AB"][:, :, col]), row_mean(ba[:, :, col])


def aggregate(
    judgments: Sequence[Judgment],
    rubric: Rubric,
    item_ids: Sequence[str],
    controls: Controls,
    *,
    groups: Sequence[str] | None = None,
    lengths: np.ndarray | None = None,
    corrections: Corrections = Corrections(),
) -> Verdicts:
    """Every item's verdict: orders combined, variants ensembled, frozen corrections, decided.

    ``lengths`` (``bias.length.answer_lengths``) are needed by a length model and by a learned
    ensemble with a length term. ``controls.ensemble == "learned"`` needs ``corrections.learned``.
    """
    table = item_table(judgments, rubric.labels, item_ids, rubric.variants)
    variants = per_variant(table, controls)
    if controls.ensemble == "learned":
        if corrections.learned is None:
            raise ValueError("ensemble 'learned' needs a card with a learned ensemble")
        probs = learned_probs(corrections.learned, table.order_probs(), rubric.labels, lengths)
    else:
        probs = aggregate_variants(variants, method=controls.ensemble)
    values = np.asarray(rubric.values, dtype=float)
    scores = probs @ values
    uncorrected = None
    if corrections.length_model is not None:
        if lengths is None:
            raise ValueError("a length correction needs the answers' lengths")
        uncorrected = scores
        probs, scores = correct_distributions(
            probs, scores, rubric.labels, rubric.values, lengths, corrections.length_model
        )
    decisions = decide(
        probs, rubric.labels, rubric.values, rubric.manifest.mode, controls, scores=scores
    )
    orders = order_preferences(table)
    return Verdicts(
        item_ids=tuple(item_ids),
        groups=tuple(groups) if groups is not None else tuple(item_ids),
        probs=probs,
        scores=scores,
        uncorrected=uncorrected,
        labels=tuple(decisions.labels),
        ties=decisions.ties,
        n_valid_variants=valid_variant_counts(variants),
        n_variants=len(table.variants),
        p_a_ab=orders[0] if orders else None,
        p_a_ba=orders[1] if orders else None,
    )
