"""Known strengths recovered by judgekit.rank, over many simulated tournaments.

    python benchmarks/leaderboard_recovery.py              # 200 seeds per setting
    python benchmarks/leaderboard_recovery.py --seeds 50 --questions 100

Settings (each seed draws true strengths ~ N(0, 1) for 10 models; every pair meets on every
question; each battle is judged twice, the second verdict copying the first with probability
0.5, so verdicts on a question are correlated):
- ``half``: wins, ties (30% of the less likely side) and losses with E[score] = sigmoid(d),
  fitted with ties as half wins;
- ``davidson``: outcomes drawn from the Davidson model (nu = 0.6), fitted with ties="davidson".
For each, the 90% percentile intervals are made by resampling questions (judgekit's default)
and by resampling battles (Arena-Hard's and AlpacaEval's unit). Reported: Spearman correlation
of scores with the truth, and the share of true (mean-anchored) strengths inside their
intervals. Issue 23 asks for Spearman >= 0.95 and >= 90% coverage. Results go to
``benchmarks/results/leaderboard_recovery.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from judgekit.rank import Battles, rank_battles, simulate_battles

RESULTS = Path(__file__).resolve().parent / "results"
NU = 0.6


def davidson_battles(theta: np.ndarray, n_questions: int, rng: np.random.Generator) -> Battles:
    """Every pair on every question, twice (second copies first w.p. 0.5), Davidson outcomes."""
    a, b = np.triu_indices(theta.size, k=1)
    a, b = np.tile(a, n_questions), np.tile(b, n_questions)
    q = np.repeat(np.arange(n_questions), theta.size * (theta.size - 1) // 2)
    half = np.exp((theta[a] - theta[b]) / 2)
    z = half + 1 / half + NU
    p_a, p_tie = half / z, NU / z

    def draw() -> np.ndarray:
        u = rng.random(a.size)
        return np.where(u < p_a, 1.0, np.where(u < p_a + p_tie, 0.5, 0.0))

    first = draw()
    second = np.where(rng.random(a.size) < 0.5, first, draw())
    names = np.array([f"m{i:02d}" for i in range(theta.size)], dtype=object)
    return Battles.build(
        np.tile(q, 2).astype(str), names[np.tile(a, 2)], names[np.tile(b, 2)], np.r_[first, second]
    )


def run(setting: str, seeds: int, n_models: int, n_questions: int, resamples: int) -> dict:
    out: dict[str, list[float]] = {"spearman": [], "question": [], "battle": []}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        theta = rng.normal(0, 1, n_models)
        if setting == "half":
            battles = simulate_battles(theta, n_questions, rng)
        else:
            battles = davidson_battles(theta, n_questions, rng)
        truth = theta - theta.mean()
        for unit in ("question", "battle"):
            board = rank_battles(
                battles,
                scale="strength",
                ties=setting,
                level=0.9,
                n_resamples=resamples,
                rng=rng,
                unit=unit,
            )
            rows = sorted(board.rows, key=lambda r: r.model)
            out[unit].append(
                np.mean([r.low <= t <= r.high for r, t in zip(rows, truth, strict=True)])
            )
            if unit == "question":
                out["spearman"].append(spearmanr([r.score for r in rows], truth).statistic)
    return {
        "setting": setting,
        "seeds": seeds,
        "models": n_models,
        "questions": n_questions,
        "spearman_mean": float(np.mean(out["spearman"])),
        "spearman_min": float(np.min(out["spearman"])),
        "share_seeds_spearman_ge_095": float(np.mean(np.array(out["spearman"]) >= 0.95)),
        "coverage_question": float(np.mean(out["question"])),
        "coverage_battle": float(np.mean(out["battle"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--questions", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--resamples", type=int, default=300)
    args = parser.parse_args()
    results = [
        run(s, args.seeds, args.models, q, args.resamples)
        for s in ("half", "davidson")
        for q in args.questions
    ]
    lines = [
        f"{args.seeds} seeds x {args.models} models, all pairs on every question, "
        f"2 correlated verdicts per battle; 90% intervals from {args.resamples} resamples",
        "",
        "| tie model | questions | Spearman mean (min) | seeds with Spearman >= 0.95 | "
        "coverage, questions resampled | coverage, battles resampled |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['setting']} | {r['questions']} | {r['spearman_mean']:.3f} "
            f"({r['spearman_min']:.3f}) | "
            f"{100 * r['share_seeds_spearman_ge_095']:.0f}% | "
            f"{100 * r['coverage_question']:.1f}% | {100 * r['coverage_battle']:.1f}% |"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "leaderboard_recovery.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "leaderboard_recovery.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
