"""Per-request judgments -> one verdict per item, computed once: position swap, the variant
ensemble, a card's frozen corrections, then the decision rule.

Arrays are built once per run (items x variants x labels); the maths lives in ``judgekit.bias``.
Invalid judgments are NaN rows there: skipped by the ensemble, counted here. ``Verdicts`` is the
one per-item result every reader uses (summary, gates, diff, viewer, calibration, cascades).

A multi-criterion (or checklist) rubric is aggregated the same way per *unit*, an item's
criterion (check): each unit goes through the swap, the ensemble and the one decision rule
(``Verdicts.criteria``), and the item's own verdict is the weighted mixture of its units'
distributions (the overall), decided by the same rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def unit_key(item_id: str, criterion: str | None) -> str:
    """The row of one item's criterion in a multi-criterion table (criterion names hold no #)."""
    return item_id if criterion is None else f"{item_id}#{criterion}"


def _judgment_unit(j: Judgment) -> str:
    return unit_key(j.item_id, j.criterion)


def item_table(
    judgments: Sequence[Judgment],
    labels: Sequence[str],
    item_ids: Sequence[str],
    variant_order: Sequence[str] = (),
    key: Callable[[Judgment], str] = _judgment_unit,
) -> ItemTable:
    """Arrange judgments by item, variant and order (pairwise orders AB/BA, pointwise '-').

    Variants come in ``variant_order`` (the rubric's), then any others in order of appearance,
    so the table does not depend on the order requests were submitted in. ``key``: a
    judgment's row in ``item_ids`` (default: its item, or its item's criterion).
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
            table[row[key(j)], col[j.variant]] = [j.label_probs[label] for label in labels]
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
    ``criteria``: a multi-criterion run's per-criterion verdicts (the item rows are then their
    overall); ``pass_ratio``: a checklist's share of checks decided "pass", per item.
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
    criteria: CriterionTable | None = None
    pass_ratio: np.ndarray | None = None

    @property
    def valid(self) -> np.ndarray:
        """Items with a verdict (a finite distribution)."""
        return np.isfinite(self.probs).all(axis=1)

    def __len__(self) -> int:
        return len(self.item_ids)


@dataclass(frozen=True)
class CriterionTable:
    """A multi-criterion run's verdicts per unit (an item's criterion or check).

    ``verdicts`` has one row per unit (``item_ids`` are unit keys, ``groups`` their items'
    clusters); ``item_index`` maps each unit to its item's row, ``names`` to its criterion.
    """

    names: tuple[str, ...]
    item_index: np.ndarray
    verdicts: Verdicts

    @property
    def criteria(self) -> tuple[str, ...]:
        """Criterion names in order of first appearance."""
        return tuple(dict.fromkeys(self.names))

    def column(self, name: str, values: np.ndarray, n_items: int) -> np.ndarray:
        """A per-unit array as one value per item for criterion ``name`` (NaN: no such unit)."""
        out = np.full((n_items, *values.shape[1:]), np.nan)
        chosen = np.array([n == name for n in self.names], dtype=bool)
        out[self.item_index[chosen]] = values[chosen]
        return out


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
    A multi-criterion rubric's items get their criteria's overall (see the module docstring).
    """
    if rubric.multi:
        return _overall(judgments, rubric, item_ids, controls, groups, corrections)
    return _verdicts(judgments, rubric, item_ids, controls, groups, lengths, corrections)


def _verdicts(
    judgments: Sequence[Judgment],
    rubric: Rubric,
    item_ids: Sequence[str],
    controls: Controls,
    groups: Sequence[str] | None,
    lengths: np.ndarray | None,
    corrections: Corrections,
) -> Verdicts:
    """The verdict of each row of ``item_ids`` (items, or a multi-criterion run's units)."""
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


def _units(
    judgments: Sequence[Judgment], rubric: Rubric, item_ids: Sequence[str]
) -> tuple[list[int], list[str]]:
    """(item row, criterion) of every unit, item by item: the rubric's criteria, or the checks
    an item was judged on, in check order."""
    if not rubric.manifest.checklist:
        names = [c.name for c in rubric.criteria if c.name is not None]
        return [i for i in range(len(item_ids)) for _ in names], names * len(item_ids)
    seen: dict[str, set[str]] = {}
    for j in judgments:
        if j.criterion is not None:
            seen.setdefault(j.item_id, set()).add(j.criterion)
    rows, names = [], []
    for i, item_id in enumerate(item_ids):
        for name in sorted(seen.get(item_id, ()), key=lambda c: (len(c), c)):
            rows.append(i)
            names.append(name)
    return rows, names


def _overall(
    judgments: Sequence[Judgment],
    rubric: Rubric,
    item_ids: Sequence[str],
    controls: Controls,
    groups: Sequence[str] | None,
    corrections: Corrections,
) -> Verdicts:
    """Per-unit verdicts (the one rule each), then each item's weighted mixture of them, decided
    by the same rule; an item with an invalid criterion (or none) is invalid, never partial."""
    if corrections.length_model is not None or controls.ensemble == "learned":
        raise ValueError(
            f"{rubric.ref} has several criteria: frozen corrections (length model, learned "
            "ensemble) apply to single-criterion rubrics only"
        )
    rows, names = _units(judgments, rubric, item_ids)
    index = np.asarray(rows, dtype=int)
    group_of = list(groups) if groups is not None else list(item_ids)
    units = _verdicts(
        judgments,
        rubric,
        [unit_key(item_ids[i], name) for i, name in zip(rows, names, strict=True)],
        controls,
        [group_of[i] for i in rows],
        None,
        Corrections(),
    )
    n, k = len(item_ids), len(rubric.labels)
    weights = np.array([rubric.weight(name) for name in names], dtype=float)
    total = np.bincount(index, weights=weights, minlength=n)
    mixed = np.zeros((n, k))
    np.add.at(mixed, index, weights[:, None] * units.probs)
    probs = np.where(total[:, None] > 0, mixed / np.where(total > 0, total, 1.0)[:, None], np.nan)
    scores = probs @ np.asarray(rubric.values, dtype=float)
    decisions = decide(
        probs, rubric.labels, rubric.values, rubric.manifest.mode, controls, scores=scores
    )
    n_valid = np.full(n, units.n_variants)
    np.minimum.at(n_valid, index, units.n_valid_variants)

    def weighted(per_unit: np.ndarray | None) -> np.ndarray | None:
        if per_unit is None:
            return None
        summed = np.zeros(n)
        np.add.at(summed, index, weights * per_unit)
        return np.where(total > 0, summed / np.where(total > 0, total, 1.0), np.nan)

    return Verdicts(
        item_ids=tuple(item_ids),
        groups=tuple(group_of),
        probs=probs,
        scores=scores,
        uncorrected=None,
        labels=tuple(decisions.labels),
        ties=decisions.ties,
        n_valid_variants=n_valid,
        n_variants=units.n_variants,
        p_a_ab=weighted(units.p_a_ab),
        p_a_ba=weighted(units.p_a_ba),
        criteria=CriterionTable(tuple(names), index, units),
        pass_ratio=_pass_ratio(units, index, n, rubric) if rubric.manifest.checklist else None,
    )


def _pass_ratio(units: Verdicts, index: np.ndarray, n: int, rubric: Rubric) -> np.ndarray:
    """Share of each item's checks decided as the top-valued label ("yes"); NaN when a check
    has no valid verdict (or the item no checks)."""
    passing = rubric.labels[int(np.argmax(rubric.values))]
    passed = np.array([label == passing for label in units.labels], dtype=float)
    passed[~units.valid] = np.nan
    counts = np.bincount(index, minlength=n)
    sums = np.zeros(n)
    np.add.at(sums, index, passed)
    return np.where(counts > 0, sums / np.where(counts > 0, counts, 1), np.nan)
