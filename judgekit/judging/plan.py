"""Items x rubric variants x answer orders -> label requests, grouped by shared prefix.

A prompt is [rubric variant's instructions][question][candidate answer(s)][answer cue]. Every
request with the same variant and question shares everything up to the candidate text, so the
requests are ordered to keep each such group contiguous: submitted back to back, the engine's
prefix cache computes the shared blocks once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from judgekit.rubrics import Rubric
from judgekit.schema import Item, LabelRequest, Order


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """A request plus where its verdict belongs."""

    item: Item
    variant: str
    order: Order | None
    request: LabelRequest


def request_key(item_id: str, variant: str, order: Order | None) -> str:
    return f"{item_id}|{variant}|{order or '-'}"


def plan_requests(
    rubric: Rubric,
    items: Sequence[Item],
    *,
    variants: Sequence[str] | None = None,
    swap: bool = True,
) -> list[PlannedRequest]:
    """Every request for a run, ordered so that requests sharing a prefix are adjacent.

    Pairwise items are judged in both orders (AB and BA) when ``swap`` is on; both orders share
    the rubric and question, so they sit in the same prefix group.
    """
    chosen = tuple(variants) if variants else rubric.variants
    orders: tuple[Order | None, ...] = (
        (("AB", "BA") if swap else ("AB",)) if rubric.manifest.mode == "pairwise" else (None,)
    )
    groups: dict[str, list[PlannedRequest]] = {}
    for variant in chosen:
        for item in items:
            prefix = _prefix_key(rubric, variant, item)
            for order in orders:
                messages = rubric.render(variant, item, swap=order == "BA")
                request = LabelRequest(
                    key=request_key(item.id, variant, order),
                    messages=messages,
                    labels=rubric.labels,
                    prefix_key=prefix,
                )
                groups.setdefault(prefix, []).append(PlannedRequest(item, variant, order, request))
    return [planned for group in groups.values() for planned in group]


def _prefix_key(rubric: Rubric, variant: str, item: Item) -> str:
    digest = hashlib.sha256(f"{rubric.hash}\0{variant}\0{item.question}\0{item.context}".encode())
    return digest.hexdigest()[:16]


def batches(planned: Sequence[PlannedRequest], size: int) -> Iterator[list[PlannedRequest]]:
    """Consecutive slices: a prefix group is split only where a batch boundary falls in it."""
    for start in range(0, len(planned), size):
        yield list(planned[start : start + size])
