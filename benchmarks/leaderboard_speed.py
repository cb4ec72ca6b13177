"""Leaderboard speed on one core: Bradley-Terry + question bootstrap, and style control.

    python benchmarks/leaderboard_speed.py     # 30 models x 1,000 questions x 1,000 resamples
    python benchmarks/leaderboard_speed.py --repeat 5

The issue-23 target: ranking 30 models x 1,000 questions x 1,000 bootstrap resamples in under
10 s on one core. BLAS threads are pinned to 1 before numpy loads. Battles are simulated (every
pair on every question, judged once, ties included) and not timed; the timed call is
``rank_battles`` (per-question pair sums, full-data fit, 1,000 warm-started resample fits,
anchoring, rank intervals, table rows). Style control, which cannot pool battles by pair, is
timed separately at Arena-Hard's size (30 models against one baseline, both orders, 4 features,
100 resamples). Results go to ``benchmarks/results/leaderboard_speed.{json,md}``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from judgekit.rank import rank_battles, simulate_battles  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return sorted(f for f in flags.split() if f in {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})


def _time(call: Callable[[], object], repeat: int) -> dict[str, list[float]]:
    """Wall and CPU seconds per run (CPU time is what one core spent, also on a busy host)."""
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"wall": wall, "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=30)
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--style-resamples", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    theta = rng.normal(0, 1, args.models)
    battles = simulate_battles(theta, args.questions, rng, repeats=1)
    bt = _time(
        lambda: rank_battles(battles, n_resamples=args.resamples, rng=np.random.default_rng(1)),
        args.repeat,
    )
    arena = simulate_battles(theta, args.questions, rng, baseline=0, repeats=2, copy=0.0)
    features = rng.normal(size=(len(arena), 4))
    arena = arena.with_features(features, ("length", "headers", "lists", "bold"))
    style = _time(
        lambda: rank_battles(
            arena, style=True, n_resamples=args.style_resamples, rng=np.random.default_rng(2)
        ),
        args.repeat,
    )
    result = {
        "cpu": _cpu(),
        "cpu_flags": _flags(),
        "threads": 1,
        "bradley_terry": {
            "models": args.models,
            "questions": args.questions,
            "battles": len(battles),
            "resamples": args.resamples,
            "seconds": bt,
        },
        "style_control": {
            "models": args.models,
            "questions": args.questions,
            "battles": len(arena),
            "features": 4,
            "resamples": args.style_resamples,
            "seconds": style,
        },
    }
    load = os.getloadavg()

    def cells(times: dict[str, list[float]]) -> str:
        runs = ", ".join(
            f"{w:.2f}/{c:.2f}" for w, c in zip(times["wall"], times["cpu"], strict=True)
        )
        return f"{min(times['wall']):.2f} | {min(times['cpu']):.2f} | {runs}"

    result["load_average_end"] = load
    lines = [
        f"CPU: {result['cpu']} ({', '.join(result['cpu_flags'])}), 1 thread, float64; "
        f"load average at the end {load[0]:.1f} (other processes share the cores: read CPU s)",
        "",
        "| what | models | questions | battles | resamples | best wall s | best CPU s | "
        "runs (wall/CPU s) |",
        "|---|---|---|---|---|---|---|---|",
        f"| Bradley-Terry, all pairs | {args.models} | {args.questions} | {len(battles)} | "
        f"{args.resamples} | {cells(bt)} |",
        f"| style control (4 features), vs baseline | {args.models} | {args.questions} | "
        f"{len(arena)} | {args.style_resamples} | {cells(style)} |",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "leaderboard_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "leaderboard_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
