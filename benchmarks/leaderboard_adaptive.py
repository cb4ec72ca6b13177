"""Adaptive comparisons against judging every pair, at equal rank stability.

    python benchmarks/leaderboard_adaptive.py              # 10 tournaments of 10 models
    python benchmarks/leaderboard_adaptive.py --seeds 5 --models 6

Each tournament: true strengths evenly spaced ``--gap`` apart (shuffled), verdicts drawn with
ties (E[score] = sigmoid(d)), a pool of ``--questions`` questions. Both designs stop at the same
rule, the ranking stable at 95%: every adjacent pair of the current ranking is reversed in at
most 5% / (M - 1) of 500 question resamples (``rank.adaptive``).
- every pair: each round judges all M(M-1)/2 pairs on one new question, then checks the rule;
- adaptive (``rank.adaptive_rank``): a warm-up ring, then rounds of M(M-1)/2 battles (the same
  cadence of checks) on the adjacent pairs that are least surely ordered.
Reported per design: judgments until stable (median, and the share of tournaments that became
stable within the question pool), Kendall tau with the true order, and exact-order share.
Results go to ``benchmarks/results/leaderboard_adaptive.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from judgekit.rank import Battles, adaptive_rank, fit_strengths, order_flips, outcome_oracle
from judgekit.rank.adaptive import stability_threshold
from judgekit.rank.simulate import draw_outcome

RESULTS = Path(__file__).resolve().parent / "results"
CONFIDENCE = 0.95


def every_pair(theta: np.ndarray, n_questions: int, rng: np.random.Generator) -> tuple:
    """Round-robin on new questions until the ranking is stable; (judgments, order, stable)."""
    m = theta.size
    a, b = np.triu_indices(m, k=1)
    names = np.array([f"m{i:02d}" for i in range(m)], dtype=object)
    rows: list[tuple] = []
    stable, order = False, np.arange(m)
    for q in range(n_questions):
        outcome = draw_outcome(theta[a] - theta[b], 0.3, rng)
        rows += [(str(q), names[i], names[j], y) for i, j, y in zip(a, b, outcome, strict=True)]
        if q < 2:
            continue
        battles = Battles.build(*zip(*rows, strict=True))
        fit = fit_strengths(battles, prior=0.1, n_resamples=500, rng=rng)
        idx, flips = order_flips(fit)
        order = np.array([int(battles.models[i][1:]) for i in idx])
        if (flips <= stability_threshold(m, CONFIDENCE)).all():
            stable = True
            break
    return len(rows), order, stable


def summarise(runs: list[tuple], theta_list: list[np.ndarray]) -> dict:
    judgments = np.array([r[0] for r in runs])
    taus, exact = [], []
    for (_, order, _), theta in zip(runs, theta_list, strict=True):
        truth = np.argsort(-theta)
        taus.append(kendalltau(np.argsort(order), np.argsort(truth)).statistic)
        exact.append(bool(np.array_equal(order, truth)))
    return {
        "judgments_median": float(np.median(judgments)),
        "judgments": judgments.tolist(),
        "stable_share": float(np.mean([r[2] for r in runs])),
        "kendall_tau_mean": float(np.mean(taus)),
        "exact_order_share": float(np.mean(exact)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--gap", type=float, default=0.3)
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=None, help="battles per round (M(M-1)/2)")
    args = parser.parse_args()
    full, adaptive, thetas = [], [], []
    questions = [str(q) for q in range(args.questions)]
    n_pairs = args.models * (args.models - 1) // 2
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        theta = (np.arange(args.models) * args.gap)[rng.permutation(args.models)]
        thetas.append(theta)
        full.append(every_pair(theta, args.questions, rng))
        run = adaptive_rank(
            [f"m{i:02d}" for i in range(args.models)],
            questions,
            outcome_oracle(theta, rng, tie_rate=0.3),
            budget=n_pairs * args.questions,
            rng=rng,
            batch=args.batch or n_pairs,
            confidence=CONFIDENCE,
        )
        order = np.array([int(r.model[1:]) for r in run.leaderboard.rows])
        adaptive.append((len(run.battles), order, run.stopped == "stable"))
    result = {
        "seeds": args.seeds,
        "models": args.models,
        "gap": args.gap,
        "questions": args.questions,
        "every_pair": summarise(full, thetas),
        "adaptive": summarise(adaptive, thetas),
    }
    saved = 1 - result["adaptive"]["judgments_median"] / result["every_pair"]["judgments_median"]
    result["saved_share_median"] = saved
    lines = [
        f"{args.seeds} tournaments x {args.models} models (strengths {args.gap} apart), "
        f"pool of {args.questions} questions; stop when every adjacent pair is reversed in "
        f"<= {100 * (1 - CONFIDENCE):.0f}% / {args.models - 1} of 500 question resamples",
        "",
        "| design | judgments until stable (median) | stable | Kendall tau | exact order |",
        "|---|---|---|---|---|",
    ]
    for name in ("every_pair", "adaptive"):
        r = result[name]
        lines.append(
            f"| {name.replace('_', ' ')} | {r['judgments_median']:.0f} | "
            f"{100 * r['stable_share']:.0f}% | {r['kendall_tau_mean']:.3f} | "
            f"{100 * r['exact_order_share']:.0f}% |"
        )
    lines += ["", f"Judgments saved by the adaptive design (median): {100 * saved:.0f}%"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "leaderboard_adaptive.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "leaderboard_adaptive.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
