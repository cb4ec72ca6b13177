"""Generate-then-parse: the judge writes an assessment and a last line ``Score: X``, a regex
reads X (how prometheus-eval and most API judges work); parse failures are counted."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.speed.rows import row
from judgekit.backends.vllm_engine import VLLMEngine
from judgekit.judging.plan import plan_requests
from judgekit.rubrics import Rubric
from judgekit.schema import Item, LabelRequest, Message


def generation_request(request: LabelRequest, cue: str, labels: Sequence[str]) -> LabelRequest:
    """The same prompt, asking for an assessment first and the verdict on a last line."""
    system, user, *_ = request.messages
    ask = (
        f"\n\nFirst write a short assessment (a few sentences), then finish with a last line of "
        f'the form "{cue} X" where X is one of: {", ".join(labels)}.'
    )
    messages = (system, Message("user", user.content + ask), request.messages[-1])
    return dataclasses.replace(request, messages=messages)


def parse_verdict(text: str, cue: str, labels: Sequence[str]) -> str | None:
    """The label after the last ``cue`` (or ``[RESULT]``), else a reply that is only a label."""
    alternatives = "|".join(re.escape(label) for label in sorted(labels, key=len, reverse=True))
    pattern = (
        rf"(?:{re.escape(cue.rstrip(':'))}|\[RESULT\])\s*[:=]?\s*[*\"'(\[]*\s*({alternatives})\b"
    )
    found = re.findall(pattern, text, flags=re.IGNORECASE)
    if found:
        return next(label for label in labels if label.lower() == found[-1].lower())
    bare = text.strip().strip("*.\"' ")
    return bare if bare in labels else None


def measure(
    engine: VLLMEngine,
    rubric: Rubric,
    items: list[Item],
    variants: Sequence[str],
    max_tokens: int,
) -> dict[str, Any]:
    """Greedy rationales of up to ``max_tokens`` for every request at once, then the regex."""
    before = engine.stats()
    t = time.perf_counter()
    planned = plan_requests(rubric, items, variants=variants, swap=True)
    cue = rubric.manifest.answer_cue
    requests = [generation_request(p.request, cue, rubric.labels) for p in planned]
    texts = engine.generate_text(requests, max_tokens)
    verdicts = [parse_verdict(text, cue, rubric.labels) for text in texts]
    wall = time.perf_counter() - t
    after = engine.stats()
    delta = {k: after[k] - before.get(k, 0) for k in after}
    prompt, cached = delta["generate_prompt_tokens"], delta["generate_cached_tokens"]
    generated = delta["generate_output_tokens"]
    return row(len(items), len(requests), wall, prompt, cached, generated) | {
        "max_tokens": max_tokens,
        "failures": sum(v is None for v in verdicts),
        "failure_kind": "parse failures (no label after the cue)",
        "example_output": texts[0][:400] if texts else "",
    }
