"""Reasoning mode on the real engine (embedded SmolLM2, float32): rationales, exact label
probabilities after them in both orders, the prefix cache serving the verdict read, and the
speculative-config passthrough giving the same verdicts."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from judgekit.backends import Backend
from judgekit.backends.reasoning import kept_rationale, rationale_messages, reasoning_plan
from judgekit.data.records import read_items
from judgekit.judging.run import judge
from judgekit.rubrics import load_rubric
from judgekit.schema import Reasoning

REPO = Path(__file__).resolve().parents[1]
RUBRIC = load_rubric("pairwise_preference@v1")
VARIANT = RUBRIC.variants[0]
#: Short rationales: the engine test proves the mechanism, the benchmark measures quality.
BUDGET = 24


def _items() -> list:
    return read_items(REPO / "examples" / "sample_pairwise.jsonl", "pairwise")[:3]


def _reference(engine: Backend, judgment, item) -> dict[str, float]:
    """The label probabilities recomputed independently with ``LLM.generate``: the same greedy
    rationale, then prompt + rationale + cue ids read with exact label log-probabilities."""
    from vllm import SamplingParams

    from judgekit.judging.plan import plan_requests

    request = next(
        p.request
        for p in plan_requests(RUBRIC, [item], variants=[VARIANT])
        if p.order == judgment.order
    )
    plan = reasoning_plan(RUBRIC, Reasoning(max_tokens=BUDGET))
    encoder = engine.encoder  # type: ignore[attr-defined]
    prompt = encoder.encode_chat(rationale_messages(request, plan.instruction), None).ids
    slot, cue = encoder.cue_ids(request)
    params = SamplingParams(max_tokens=BUDGET, temperature=0.0, stop=[slot.tail.strip()])
    (out,) = engine.llm.generate([{"prompt_token_ids": prompt}], params, use_tqdm=False)  # type: ignore[attr-defined]
    completion = out.outputs[0]
    stop = completion.stop_reason if isinstance(completion.stop_reason, str) else None
    tokenizer = encoder.tokenizer
    ids = kept_rationale(completion.token_ids, stop, {tokenizer.eos_token_id}, tokenizer.decode)
    assert tokenizer.decode(ids, skip_special_tokens=True).strip() == judgment.rationale
    labels = {label: seqs[0][0] for label, seqs in slot.sequences.items()}
    read = SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=list(labels.values()))
    (verdict,) = engine.llm.generate(  # type: ignore[attr-defined]
        [{"prompt_token_ids": prompt + ids + cue}], read, use_tqdm=False
    )
    logprobs = verdict.outputs[0].logprobs[0]
    raw = {label: math.exp(logprobs[t].logprob) for label, t in labels.items()}
    return {label: p / sum(raw.values()) for label, p in raw.items()}


@pytest.mark.engine
def test_reasoning_mode_on_the_engine(engine: Backend) -> None:
    items = _items()
    before = dict(engine.stats() or {})
    run = judge(
        items,
        RUBRIC,
        backend=engine,
        variants=[VARIANT],
        reasoning=Reasoning(max_tokens=BUDGET),
    )
    rows = run.judgments
    assert len(rows) == 2 * len(items) and {j.order for j in rows} == {"AB", "BA"}
    assert all(j.rationale and len(j.rationale) > 10 for j in rows)
    assert all(j.num_cached_tokens > 0 for j in rows)  # the verdict read hit the prefix cache
    # the read re-used at least the whole rationale prompt (its blocks), not just a system prefix
    assert all(j.num_cached_tokens >= j.num_prompt_tokens - 32 - 12 for j in rows)
    assert run.judge.settings["reasoning_max_tokens"] == BUDGET
    valid = [j for j in rows if j.valid]
    assert valid, [j.invalid_reason for j in rows]
    by_id = {item.id: item for item in items}
    for j in valid:
        # float32; the reference computes the rationale's KV in one prefill, the run reuses the
        # blocks written while decoding it: sums in another order (1.4e-4 measured)
        assert j.label_probs == pytest.approx(_reference(engine, j, by_id[j.item_id]), abs=2e-3)
    stats = engine.stats() or {}
    assert stats["rationale_requests"] - before.get("rationale_requests", 0) == len(rows)
    assert stats["verdict_cached_tokens"] > before.get("verdict_cached_tokens", 0)


NGRAM = {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 4}


#: The child process of the test below: a second engine in this process would tear down vLLM's
#: process-wide state under the session engine when it fails.
_SPECULATIVE_CHILD = f"""
from judgekit.backends import CapabilityError, VLLMJudge, create_backend, engine_settings
engine_settings.CPU_SPECULATIVE_METHODS = ("ngram",)
try:
    create_backend(VLLMJudge(dtype="float32", speculative_config={NGRAM!r}))
except CapabilityError as err:
    print("REFUSED:", err)
"""


@pytest.mark.engine
def test_a_speculative_engine_that_cannot_read_labels_is_refused_at_start() -> None:
    """On the CPU build 'ngram' is refused before the engine loads; let it through (in a child
    process) to prove the check a GPU build relies on: the engine starts, its probe label read
    fails, and the config is refused before any item is judged."""
    child = subprocess.run(
        [sys.executable, "-c", _SPECULATIVE_CHILD],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert "REFUSED:" in child.stdout, child.stdout[-2000:] + child.stderr[-3000:]
    assert "cannot read exact label log-probabilities" in child.stdout
