"""Per-request judgments -> one verdict per item: position swap, then the variant ensemble.

Arrays are built once per run (items x variants x labels); the maths lives in ``judgekit.bias``.
Invalid judgments are NaN rows there: skipped by the ensemble, counted here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from judgekit.bias.ensemble import aggregate_variants
from judgekit.bias.position import combine_orders, unswap
from judgekit.schema import Judgment, StrictModel

EnsembleMethod = Literal["mean", "majority", "median"]
SwapMethod = Literal["soft", "hard"]


class Controls(StrictModel):
    """Which bias controls a run applies, and how a pairwise verdict is decided; in its manifest.

    ``tie_band``: a pairwise item is a tie when P(A) / (P(A) + P(B)) is within this distance of
    0.5 (or when the rubric's "tie" label is the most probable). 0.05 means the judge must put at
    least 55:45 odds on one answer to pick it; a judge that only ever prefers whichever answer is
    shown first combines to exactly 50:50 under either swap method, and so yields ties, not wins.
    """

    swap: bool = True
    swap_method: SwapMethod = "soft"
    ensemble: EnsembleMethod = "mean"
    tie_band: float = Field(default=0.05, ge=0.0, lt=0.5)


@dataclass(frozen=True)
class ItemTable:
    """Distributions of a run as arrays: ``probs[order][item, variant, label]`` (NaN = invalid)."""

    item_ids: tuple[str, ...]
    variants: tuple[str, ...]
    labels: tuple[str, ...]
    probs: dict[str, np.ndarray]


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
        raise ValueError("no judgments to aggregate")
    return cube


def combine(table: ItemTable, controls: Controls) -> np.ndarray:
    """Final items x labels distributions: orders combined per variant, then variants ensembled."""
    return aggregate_variants(per_variant(table, controls), method=controls.ensemble)


def row_mean(x: np.ndarray) -> np.ndarray:
    """Mean over valid (non-NaN) entries of each row; NaN for a row with none (no warning)."""
    valid = ~np.isnan(x)
    counts = valid.sum(axis=1)
    sums = np.where(valid, x, 0.0).sum(axis=1)
    return np.divide(sums, counts, out=np.full(len(x), np.nan), where=counts > 0)
