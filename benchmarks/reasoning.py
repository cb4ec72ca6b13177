"""Reasoning mode vs direct judging on a held-out slice, and what the verdict read costs.

On the held-out split of a registered set (``--set``, first ``--limit`` items), one engine:

- ``direct`` and ``reasoning`` runs of the same rubric variant (both answer orders): agreement of
  the item verdicts with the human consensus (accuracy, a judge tie or invalid verdict counted
  as disagreement; and on the items the judge decided), prompt and rationale tokens, seconds.
- the verdict read's overhead on the same prompts, each measured on an empty prefix cache:
  ``rationale`` (the rationales alone: ``LLM.generate`` with reasoning mode's sampling params),
  ``reasoning`` (rationale then the exact label read: ``VLLMEngine.reason_stream``) and
  ``generate_parse`` (the rationale prompt generated ``--parse-extra`` tokens longer, without the
  cue stop, and the label parsed from the text after the answer cue). The target: the reasoning
  path adds < 5% over generating the rationale.

    python benchmarks/reasoning.py --set llmbar_natural --limit 24 --max-tokens 64

Run it on a quiet machine: the seconds are only comparable within one run.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's judgekit, also when run as a script

from judgekit.backends import VLLMJudge, create_backend  # noqa: E402
from judgekit.backends.reasoning import rationale_messages, reasoning_plan  # noqa: E402
from judgekit.data.sets import load_calibration_set  # noqa: E402
from judgekit.data.split import split_records  # noqa: E402
from judgekit.judging import item_verdicts, judge  # noqa: E402
from judgekit.judging.plan import plan_requests  # noqa: E402
from judgekit.rubrics import load_rubric  # noqa: E402
from judgekit.schema import Reasoning  # noqa: E402


def agreement(run: Any, human: dict[str, str]) -> dict[str, Any]:
    """Accuracy of the item verdicts against the human consensus (ties and invalid = wrong)."""
    verdicts = {v.item_id: v for v in item_verdicts(run)}
    decided = [i for i, v in verdicts.items() if v.valid and not v.tie]
    right = [i for i in decided if verdicts[i].label == human[i]]
    swap = {"A": "B", "B": "A"}
    # single judgments, labels in the original letters (a BA row names the answer shown first A)
    said = [
        (swap.get(j.label, j.label) if j.order == "BA" else j.label, human[j.item_id])
        for j in run.judgments
        if j.valid
    ]
    return {
        "n": len(verdicts),
        "accuracy": len(right) / len(verdicts),
        "n_decided": len(decided),
        "accuracy_decided": len(right) / len(decided) if decided else None,
        "judgment_accuracy": sum(a == b for a, b in said) / len(said) if said else None,
        "says_first_shown": sum(j.label == "A" for j in run.judgments if j.valid)
        / max(len(said), 1),
        "n_invalid_judgments": sum(not j.valid for j in run.judgments),
    }


def timed_run(engine: Any, items: list, rubric: Any, args: argparse.Namespace, reason: bool):
    engine.llm.reset_prefix_cache()
    before = dict(engine.stats())
    start = time.perf_counter()
    run = judge(
        items,
        rubric,
        backend=engine,
        variants=[args.variant],
        reasoning=Reasoning(max_tokens=args.max_tokens) if reason else None,
    )
    seconds = time.perf_counter() - start
    after = engine.stats()
    return run, seconds, {k: after[k] - before.get(k, 0) for k in after}


def overhead(engine: Any, items: list, rubric: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Seconds of the three paths on the same requests, best of ``--repeats``, each on an
    empty prefix cache."""
    from vllm import SamplingParams

    requests = [p.request for p in plan_requests(rubric, items, variants=[args.variant])]
    plan = reasoning_plan(rubric, Reasoning(max_tokens=args.max_tokens))
    encoder = engine.encoder
    prompts = [
        {"prompt_token_ids": encoder.encode_chat(rationale_messages(r, plan.instruction), None).ids}
        for r in requests
    ]
    cue = requests[0].messages[-1].content.strip()
    rationale = SamplingParams(max_tokens=args.max_tokens, temperature=0.0, stop=[cue])
    parse = SamplingParams(max_tokens=args.max_tokens + args.parse_extra, temperature=0.0)
    pattern = re.compile(
        re.escape(cue) + r"\s*\W*(" + "|".join(map(re.escape, rubric.labels)) + ")"
    )

    def generate(params: Any) -> Any:
        return engine.llm.generate(prompts, params, use_tqdm=False)

    def reason() -> Any:
        return [kv for chunk in engine.reason_stream(requests, plan, 64) for kv in chunk]

    best: dict[str, float] = {}
    parsed = 0
    for _ in range(args.repeats):
        for name, call in (
            ("rationale", lambda: generate(rationale)),
            ("reasoning", reason),
            ("generate_parse", lambda: generate(parse)),
        ):
            engine.llm.reset_prefix_cache()
            start = time.perf_counter()
            out = call()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
            if name == "generate_parse":
                parsed = sum(bool(pattern.search(o.outputs[0].text)) for o in out)
    return {
        "requests": len(requests),
        "seconds": best,
        "verdict_read_overhead": best["reasoning"] / best["rationale"] - 1,
        "vs_generate_parse": best["reasoning"] / best["generate_parse"] - 1,
        "generate_parse_parsed": parsed,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--set", default="llmbar_natural")
    parser.add_argument("--rubric", default="pairwise_preference@v1")
    parser.add_argument("--variant", default="direct")
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--parse-extra", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--overhead-only", action="store_true", help="Only time the verdict read's overhead."
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/reasoning.json")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    loaded = load_calibration_set(args.set, data_dir=args.data_dir)
    records = split_records(loaded.records, "heldout")[: args.limit]
    items = [r.item for r in records]
    human = {r.id: str(r.consensus) for r in records}
    rubric = load_rubric(args.rubric)
    engine = create_backend(VLLMJudge(dtype="float32"))
    try:
        judge(items[:1], rubric, backend=engine, variants=[args.variant])  # warm-up
        results: dict[str, Any] = {
            "set": args.set,
            "rubric": rubric.ref,
            "args": {**vars(args), "out": str(args.out)},
        }
        systems = () if args.overhead_only else (("direct", False), ("reasoning", True))
        for name, reason in systems:
            run, seconds, counts = timed_run(engine, items, rubric, args, reason)
            results[name] = {
                **agreement(run, human),
                "seconds": seconds,
                "prompt_tokens": sum(j.num_prompt_tokens for j in run.judgments),
                "counts": counts,
            }
            print(name, json.dumps(results[name]), flush=True)
        results["overhead"] = overhead(engine, items, rubric, args)
        print("overhead", json.dumps(results["overhead"]), flush=True)
    finally:
        engine.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
