"""Items x rubric variants x answer orders x criteria -> label requests, ordered by shared prefix.

Requests are sorted by their prompt text (system message, then user message): in that order any
set of prompts sharing a prefix is contiguous, whatever the rubric puts first. A v1 rubric's
variant text comes first, so its requests group by variant, then question; a rubric that puts
the shared material first and the variant's instruction last (``overall_quality@v2``) groups all
variants and answer orders of an item together, and they share everything but their tail.
Submitted back to back, the engine's prefix cache computes each shared block once.
``prefix_key`` (system text + question + context) routes a prefix family to one server replica.
``partition`` cuts a plan into batches of whole clusters (an item's variants, orders and criteria,
and the items of its group), so an executor that spreads batches over engines (Ray actors) keeps
each prefix family on one engine.
A multi-criterion rubric asks each criterion (a checklist rubric each check) in its own request;
rubrics that render the shared material first and the criterion last share that prefix too.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from judgekit.rubrics import Rubric
from judgekit.schema import Item, LabelRequest, Message, Order, item_group

Partitioning = Literal["prefix", "random"]


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """A request plus where its verdict belongs."""

    item: Item
    variant: str
    order: Order | None
    request: LabelRequest

    @property
    def criterion(self) -> str | None:
        return self.request.criterion


def plan_requests(
    rubric: Rubric,
    items: Sequence[Item],
    *,
    variants: Sequence[str] | None = None,
    swap: bool = True,
) -> list[PlannedRequest]:
    """Every request for a run, ordered so that requests sharing a prefix are adjacent.

    Pairwise items are judged in both orders (AB and BA) when ``swap`` is on, and on every
    criterion of the rubric (every check of the item's checklist).
    """
    chosen = rubric.chosen_variants(variants)
    orders: tuple[Order | None, ...] = (
        (("AB", "BA") if swap else ("AB",)) if rubric.manifest.mode == "pairwise" else (None,)
    )
    planned = []
    for variant in chosen:
        for item in items:
            for order in orders:
                for criterion in rubric.criteria_for(item):
                    messages = rubric.render(variant, item, swap=order == "BA", criterion=criterion)
                    request = LabelRequest(
                        item_id=item.id,
                        variant=variant,
                        order=order,
                        messages=messages,
                        labels=rubric.labels,
                        prefix_key=_prefix_key(messages, item),
                        criterion=criterion,
                    )
                    planned.append(PlannedRequest(item, variant, order, request))
    return sorted(planned, key=lambda p: tuple(m.content for m in p.request.messages))


def _prefix_key(messages: Sequence[Message], item: Item) -> str:
    text = f"{messages[0].content}\0{item.question}\0{item.context}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def batches(planned: Sequence[PlannedRequest], size: int) -> Iterator[list[PlannedRequest]]:
    """Consecutive slices: a prefix group is split only where a batch boundary falls in it."""
    for start in range(0, len(planned), size):
        yield list(planned[start : start + size])


def partition(
    planned: Sequence[PlannedRequest],
    size: int,
    how: Partitioning = "prefix",
    seed: int = 0,
) -> list[list[int]]:
    """Positions of ``planned`` cut into batches of about ``size`` requests.

    ``prefix``: whole clusters (``schema.item_group``: an item's variants, orders and criteria,
    and every item sharing its group, article or question) go to one batch, filled in plan order
    up to ``size`` (a cluster larger than ``size`` is one batch of its own), so the engine that
    runs a batch computes each shared prefix once. Inside a batch the plan's order (by prompt
    text) is kept. ``random``: requests dealt at random (the baseline the benchmark compares
    against: prefix families scatter over engines).
    """
    if how == "random":
        order = list(range(len(planned)))
        random.Random(seed).shuffle(order)
        return [sorted(order[i : i + size]) for i in range(0, len(order), size)]
    clusters: dict[str, list[int]] = {}
    for n, p in enumerate(planned):
        clusters.setdefault(item_group(p.item), []).append(n)
    out: list[list[int]] = []
    current: list[int] = []
    for members in clusters.values():
        if current and len(current) + len(members) > size:
            out.append(sorted(current))
            current = []
        current.extend(members)
    if current:
        out.append(sorted(current))
    return out
