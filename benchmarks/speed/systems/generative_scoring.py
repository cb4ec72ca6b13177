"""vLLM's own label-probability endpoint (``/generative_scoring``) on judgekit's exact prompts.

Per prefix group, the shared token prefix is the ``query`` and the rest of each prompt an item.
The endpoint returns the probability of the *first* label token only, so a verdict over k label
tokens takes k calls per group (label ids rotated, ``apply_softmax=False`` for true
probabilities). Prompts are tokenised before the clock starts, as for the raw engine row;
verdicts are read with judgekit's own label arithmetic, so their validity counts as judgekit's.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.speed.rows import row
from benchmarks.speed.spec import BenchSpec
from judgekit.backends.base import AnswerSlot, label_logprobs
from judgekit.backends.prompt import ChatEncoder, PromptTokens
from judgekit.judging.plan import plan_requests
from judgekit.judging.score import score_labels
from judgekit.rubrics import Rubric
from judgekit.schema import Item, LabelRequest

Call = tuple[list[int], int, dict[str, Any]]


def calls(
    requests: list[LabelRequest], prompts: list[PromptTokens], slots: list[AnswerSlot]
) -> list[Call]:
    """(request indices, first label id, request body) per prefix group and label token."""
    groups: dict[tuple[str, tuple[int, ...]], list[int]] = {}
    for k, (request, slot) in enumerate(zip(requests, slots, strict=True)):
        groups.setdefault((request.prefix_key, slot.queries()[()]), []).append(k)
    out = []
    for (_, label_ids), members in groups.items():
        ids = [prompts[k].ids for k in members]
        shared = next((j for j, col in enumerate(zip(*ids, strict=False)) if len(set(col)) > 1),
                      min(map(len, ids)))  # fmt: skip
        shared = min(shared, min(map(len, ids)) - 1)  # every item keeps at least one token
        for first in label_ids:
            body = {"model": "judge", "query": ids[0][:shared], "items": [i[shared:] for i in ids],
                    "label_token_ids": [first, *(t for t in label_ids if t != first)],
                    "apply_softmax": False, "add_special_tokens": False}  # fmt: skip
            out.append((members, first, body))
    return out


def measure(
    base_url: str, encoder: ChatEncoder, rubric: Rubric, items: list[Item], spec: BenchSpec
) -> dict[str, Any]:
    import httpx

    requests = [p.request for p in plan_requests(rubric, items, variants=spec.variants)]
    prompts = encoder.prompts(requests)
    slots = [encoder.answer_slot(r) for r in requests]
    if not all(slot.single_token for slot in slots):
        raise ValueError("/generative_scoring reads one next token; this rubric needs more")
    todo = calls(requests, prompts, slots)
    probs: dict[int, dict[int, float]] = {k: {} for k in range(len(requests))}
    usage = {"prompt_tokens": 0}
    with httpx.Client(base_url=base_url.removesuffix("/v1"), timeout=600) as client:

        def call(c: Call) -> None:
            members, first, body = c
            reply = client.post("/generative_scoring", json=body)
            reply.raise_for_status()
            data = reply.json()
            usage["prompt_tokens"] += data["usage"]["prompt_tokens"]
            for entry in data["data"]:
                probs[members[entry["index"]]][first] = entry["score"]

        t = time.perf_counter()
        with ThreadPoolExecutor(spec.concurrency) as pool:
            list(pool.map(call, todo))
        wall = time.perf_counter() - t
    verdicts = [
        score_labels(
            label_logprobs(slot, {(): {tok: math.log(p) for tok, p in probs[k].items() if p > 0}}),
            rubric.labels,
            rubric.values,
            min_label_mass=rubric.manifest.min_label_mass,
        )
        for k, slot in enumerate(slots)
    ]
    return row(len(items), len(requests), wall, usage["prompt_tokens"], 0, len(todo)) | {
        "calls": len(todo),
        "failures": sum(not v.valid for v in verdicts),
        "failure_kind": "invalid verdicts (label mass below threshold)",
        "note": "cached tokens not reported by the endpoint: unique tok/s counts all prompt tokens",
    }
