"""Judging throughput: judgekit against what users would otherwise run, and against prefill.

One command, every system in the same run, same judge, same items::

    python benchmarks/throughput.py                 # 1,000 pointwise items, 500 pairs (both orders)
    python benchmarks/throughput.py --quick         # 64 items, 32 pairs, 32-token rationales
    python benchmarks/throughput.py --gpu-dummy     # random-weight Llama-3-8B shape, + MFU (GPU)
    python benchmarks/throughput.py --cpu-dummy-tiny --quick   # the same path, tiny, on CPU
    python benchmarks/throughput.py --render benchmarks/results/NAME.json   # re-draw a table

(``python -m benchmarks.throughput`` from the repository root is the same.) The workloads,
systems, machine probes and report are the modules of ``benchmarks/speed/``; see
``docs/benchmarks.md`` for what each system and column measures. Results go to
``benchmarks/results/<name>.json`` and ``.md``; the table is printed.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's judgekit and benchmarks, also as a script

from benchmarks.speed.spec import RUBRICS, SYSTEMS, WORKLOADS, BenchSpec  # noqa: E402
from judgekit.backends.spec import CPU_BLOCK_SIZE  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add = parser.add_argument
    add("--items", type=int, default=None, help="pointwise items (1000)")
    add("--pairs", type=int, default=None, help="pairwise pairs (500, both orders)")
    add("--quick", action="store_true", help="64 items, 32 pairs, 32-token rationales")
    add("--rationale-tokens", type=int, default=None,
        help="generate-then-parse max tokens (256; 32 with --quick)")  # fmt: skip
    add("--systems", default=",".join(SYSTEMS), help=f"subset of {SYSTEMS}")
    add("--workloads", default=",".join(WORKLOADS))
    add("--variants", default="direct",
        help="rubric variants per item, comma-separated, or 'all' (judgekit's own default "
        "ensembles all three: ~3x the requests per item)")  # fmt: skip
    add("--model", default=None, help="judge model dir or hub id (embedded SmolLM2)")
    add("--gpu-dummy", action="store_true",
        help="random-weight Llama-3-8B shape (load_format=dummy) + MFU")  # fmt: skip
    add("--cpu-dummy-tiny", action="store_true",
        help="the --gpu-dummy path with a 2-layer, 256-wide model (CPU rehearsal)")  # fmt: skip
    add("--batch-size", type=int, default=1024, help="judge() requests submitted at once")
    add("--concurrency", type=int, default=64, help="server client concurrency")
    add("--rubric-version", type=int, default=2, choices=(1, 2),
        help="2 (default): variants share a prefix")  # fmt: skip
    add("--block-size", type=int, default=None, help=f"KV block size ({CPU_BLOCK_SIZE} on CPU)")
    add("--limit-tokens", type=int, default=2048, help="limit prompt length (0: no limit row)")
    add("--max-model-len", type=int, default=4096)
    add("--gpu-memory-utilization", type=float, default=0.85)
    add("--peak-tflops", type=float, default=None,
        help="peak dense FLOP/s in TFLOPs for MFU (H100/H200: 989, detected)")  # fmt: skip
    add("--profile", action="store_true", help="cProfile the judgekit default run")
    add("--name", default=None, help="results file stem")
    add("--timeout", type=float, default=3600, help="per-system seconds")
    add("--host-items", type=int, default=1000, help="host row: items and pairs/2 (1000)")
    add("--repeat", type=int, default=1, help="engine rows: runs per workload, median reported")
    add("--render", type=Path, help="re-write the .md of a results JSON and stop")
    for hidden in ("--_worker", "--_spec", "--_out", "--_server-pid"):
        add(hidden, help=argparse.SUPPRESS)
    return parser


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The systems to run, judgekit default first (the others are compared with it)."""
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if unknown := set(systems) - set(SYSTEMS):
        parser.error(f"unknown systems {sorted(unknown)}; choose from {SYSTEMS}")
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if unknown := set(workloads) - set(WORKLOADS):
        parser.error(f"unknown workloads {sorted(unknown)}; choose from {WORKLOADS}")
    if args.gpu_dummy and args.cpu_dummy_tiny:
        parser.error("--gpu-dummy or --cpu-dummy-tiny, not both")
    if "judgekit" in systems:
        systems = ["judgekit"] + [s for s in systems if s != "judgekit"]
    return systems


def build_spec(args: argparse.Namespace, systems: list[str], work: Path) -> tuple[str, BenchSpec]:
    """The results name and the spec every worker reads (dummy models written to ``work``)."""
    from benchmarks.speed.machine import machine
    from benchmarks.speed.models import choose_model, layer_params, peak_flops
    from judgekit.backends import VLLMJudge
    from judgekit.backends.engine_settings import cpu_dtype
    from judgekit.backends.vllm_engine import is_cpu_build
    from judgekit.rubrics import load_rubric

    items = args.items if args.items is not None else (64 if args.quick else 1000)
    pairs = args.pairs if args.pairs is not None else (32 if args.quick else 500)
    rubrics = {name: ref.format(args.rubric_version) for name, ref in RUBRICS.items()}
    variants = (
        list(load_rubric(rubrics["pointwise"]).variants)
        if args.variants == "all"
        else [v.strip() for v in args.variants.split(",")]
    )
    cpu = is_cpu_build()
    model = choose_model(args.model, args.gpu_dummy, args.cpu_dummy_tiny, work)
    engine_dtype = VLLMJudge().dtype  # "auto", or $JUDGEKIT_DTYPE when set
    spec = BenchSpec(
        systems=systems,
        workloads=[w.strip() for w in args.workloads.split(",") if w.strip()],
        items=items,
        pairs=pairs,
        variants=variants,
        rubrics=rubrics,
        rationale_tokens=args.rationale_tokens or (32 if args.quick else 256),
        host_items=args.host_items,
        repeat=args.repeat,
        host_pairs=args.host_items // 2,
        batch_size=args.batch_size,
        server_batch_size=max(args.batch_size, args.concurrency),
        concurrency=args.concurrency,
        limit_tokens=args.limit_tokens,
        max_model_len=args.max_model_len,
        gpu_memory_utilization=args.gpu_memory_utilization,
        block_size=args.block_size,
        model=None if (args.model is None and model.load_format == "auto") else model.model_dir,
        model_dir=model.model_dir,
        load_format=model.load_format,
        engine_dtype=engine_dtype,
        dtype=(cpu_dtype() if cpu else "auto") if engine_dtype == "auto" else engine_dtype,
        device="cpu" if cpu else "cuda",
        offline=model.offline,
        profile=args.profile,
        out_dir=str(work),
        peak_flops=peak_flops(args.peak_tflops, machine().get("gpu", ""), cpu),
        layer_params=layer_params(model.config) if model.config else None,
        model_label=model.label,
    )
    name = args.name or f"{'cpu' if cpu else 'gpu'}-{model.tag}-{items}x{pairs}"
    return name, spec


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args._worker:  # one system, in its own process (started by orchestrate.run_system)
        from benchmarks.speed.worker import worker

        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run finally: blocks (server)
        spec = BenchSpec.model_validate_json(Path(args._spec).read_text())
        worker(args._worker, spec, Path(args._out), Path(args._server_pid))
        return 0
    if args.render:
        from benchmarks.speed.report import render

        markdown = render(json.loads(args.render.read_text()))
        args.render.with_suffix(".md").write_text(markdown)
        print(markdown)
        return 0
    systems = check_args(parser, args)
    from benchmarks.speed.orchestrate import run_all

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still write what was measured
    work = Path(tempfile.mkdtemp(prefix="judgekit-bench-"))
    name, spec = build_spec(args, systems, work)
    run_all(name, spec, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
