"""The ceiling: judgekit's exact token ids and label parameters, to ``LLM.generate`` at once.

Rendering and tokenising are done before the clock starts; what is timed is the engine alone,
so "judgekit / raw engine" is the share of the engine's speed judgekit keeps.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from benchmarks.speed.rows import row
from judgekit.backends.vllm_engine import VLLMEngine
from judgekit.judging.plan import plan_requests
from judgekit.rubrics import Rubric
from judgekit.schema import Item


def measure(
    engine: VLLMEngine, rubric: Rubric, items: list[Item], variants: Sequence[str]
) -> dict[str, Any]:
    from vllm import SamplingParams

    planned = plan_requests(rubric, items, variants=variants, swap=True)
    prompts = [{"prompt_token_ids": engine.prompt(p.request).ids} for p in planned]
    params = [
        SamplingParams(
            max_tokens=1,
            temperature=0.0,
            logprob_token_ids=list(engine.answer_slot(p.request).queries()[()]),
        )
        for p in planned
    ]
    t = time.perf_counter()
    outputs = engine.llm.generate(prompts, params, use_tqdm=False)
    wall = time.perf_counter() - t
    prompt = sum(len(o.prompt_token_ids) for o in outputs)
    cached = sum(o.num_cached_tokens or 0 for o in outputs)
    n = len(planned)
    return row(len(items), n, wall, prompt, cached, n) | {
        "failures": 0,
        "failure_kind": "none read (raw outputs)",
    }
