"""Items x rubric variants x answer orders x criteria -> label requests, ordered by shared prefix.

Requests are sorted by their prompt text (system message, then user message): in that order any
set of prompts sharing a prefix is contiguous, whatever the rubric puts first. A v1 rubric's
variant text comes first, so its requests group by variant, then question; a rubric that puts
the shared material first and the variant's instruction last (``overall_quality@v2``) groups all
variants and answer orders of an item together, and they share everything but their tail.
Submitted back to back, the engine's prefix cache computes each shared block once.
``prefix_key`` (system text + question + context) routes a prefix family to one server replica.
A multi-criterion rubric asks each criterion (a checklist rubric each check) in its own request;
rubrics that render the shared material first and the criterion last share that prefix too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from judgekit.rubrics import Rubric
from judgekit.schema import Item, LabelRequest, Message, Order


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
