"""Size and power of certify-change's non-inferiority test on clustered data, by simulation.

    PYTHONPATH=. python benchmarks/noninferiority.py                 # 1,000 seeds, ~10 min
    PYTHONPATH=. python benchmarks/noninferiority.py --seeds 200 --resamples 500

The test (``judgekit.stats.noninferiority``) rejects H0: agree(changed) <= agree(reference) -
delta when the clustered paired bootstrap's lower bound (level 1 - 2 alpha) is above -delta.
*Size*: the share of seeds that reject when the change costs exactly delta in the population (it
must be <= alpha). *Power*: the share that reject when the change is harmless.

Two scenarios, each with strong cluster effects (items of one question or article share their
difficulty and the judges' errors):

* kappa (binary labels, balanced): cluster g's reference accuracy is expit(logit(0.8) + 1.0 z_g);
  the changed judge flips the reference's right verdicts with probability f1 and its wrong ones
  with f0 = 0.03, so its accuracy is E[p](1 - f1) + (1 - E[p]) f0 and, with balanced labels and
  label-independent errors, population kappa = 2 accuracy - 1 exactly (E[p] by Gauss-Hermite
  quadrature). At the margin f1 makes the kappa difference -delta; harmless: 0.
* spearman (1-5 ordinal means): human h = u_g + e (u_g cluster effect, variance share 0.5), the
  reference score h + noise (half of it shared by the cluster), the changed score the reference's
  plus more noise. Everything is Gaussian, so population Spearman = 6/pi asin(r/2) exactly; at
  the margin the added noise costs exactly delta; harmless: a 5% sd perturbation (~0.001).

Results: ``benchmarks/results/noninferiority.{json,md}``; the table is copied into
docs/certify.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy import optimize, special

from judgekit.stats import cohen_kappa, spearman
from judgekit.stats.noninferiority import noninferiority

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
P0, CLUSTER_SD, F0 = 0.8, 1.0, 0.03


@dataclass(frozen=True)
class Design:
    """``groups`` clusters of ``size`` items."""

    groups: int
    size: int

    @property
    def label(self) -> str:
        return f"{self.groups} x {self.size}"


DESIGNS = (Design(20, 10), Design(50, 4), Design(100, 2))
Sample = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def mean_accuracy() -> float:
    """E[expit(logit(P0) + CLUSTER_SD z)], z standard normal (Gauss-Hermite, 80 nodes)."""
    x, w = np.polynomial.hermite_e.hermegauss(80)
    return float(np.sum(w * special.expit(special.logit(P0) + CLUSTER_SD * x)) / np.sum(w))


def kappa_flip(delta: float) -> float:
    """f1 making the changed judge's population kappa exactly ``delta`` below the reference's."""
    p = mean_accuracy()
    return ((1 - p) * F0 + delta / 2) / p


def kappa_sample(design: Design, f1: float, rng: np.random.Generator) -> Sample:
    g = np.repeat(np.arange(design.groups), design.size)
    p = special.expit(special.logit(P0) + CLUSTER_SD * rng.standard_normal(design.groups))[g]
    human = rng.integers(0, 2, g.size)
    right = rng.random(g.size) < p
    ref = np.where(right, human, 1 - human)
    flip = rng.random(g.size) < np.where(right, f1, F0)
    return human, ref, np.where(flip, 1 - ref, ref), g


def _kappa(h: np.ndarray, j: np.ndarray) -> float:
    return cohen_kappa(h, j, labels=[0, 1])


def _rho(r: float) -> float:
    return 6 / np.pi * np.arcsin(r / 2)


SIGMA_REF = 1.0  # reference judge noise sd (human sd 1): Pearson 0.707, Spearman 0.69


def spearman_noise(delta: float) -> float:
    """Added noise sd making the population Spearman exactly ``delta`` lower."""
    target = _rho(1 / np.sqrt(1 + SIGMA_REF**2)) - delta
    return float(
        optimize.brentq(lambda s: _rho(1 / np.sqrt(1 + SIGMA_REF**2 + s**2)) - target, 0, 10)
    )


def spearman_sample(design: Design, extra: float, rng: np.random.Generator) -> Sample:
    g = np.repeat(np.arange(design.groups), design.size)
    half = np.sqrt(0.5)

    def clustered(sd: float) -> np.ndarray:
        return sd * (
            half * rng.standard_normal(design.groups)[g] + half * rng.standard_normal(g.size)
        )

    human = clustered(1.0)
    ref = human + clustered(SIGMA_REF)
    return human, ref, ref + clustered(extra), g


SCENARIOS: dict[str, tuple[Callable, Callable[[float], float], Callable, float]] = {
    # name: (sampler, parameter at the margin, agreement, harmless parameter)
    "kappa": (kappa_sample, kappa_flip, _kappa, kappa_flip(0.0)),
    "spearman": (spearman_sample, spearman_noise, spearman, 0.05 * SIGMA_REF),
}


def rejection_rate(
    scenario: str,
    design: Design,
    parameter: float,
    *,
    delta: float,
    alpha: float,
    seeds: int,
    resamples: int,
    first_seed: int = 0,
) -> float:
    """Share of seeds whose test declares non-inferiority."""
    sampler, _, agreement, _ = SCENARIOS[scenario]
    rejected = 0
    for seed in range(first_seed, first_seed + seeds):
        rng = np.random.default_rng(seed)
        human, ref, new, groups = sampler(design, parameter, rng)
        test = noninferiority(
            agreement,
            human,
            ref,
            new,
            rng=rng,
            delta=delta,
            alpha=alpha,
            groups=groups,
            n_resamples=resamples,
        )
        rejected += test.non_inferior
    return rejected / seeds


def run(seeds: int, resamples: int, delta: float, alpha: float, scenarios: list[str]) -> list[dict]:
    rows = []
    for scenario in scenarios:
        _, at_margin, _, harmless = SCENARIOS[scenario]
        for design in DESIGNS:
            start = time.perf_counter()
            size = rejection_rate(
                scenario,
                design,
                at_margin(delta),
                delta=delta,
                alpha=alpha,
                seeds=seeds,
                resamples=resamples,
            )
            power = rejection_rate(
                scenario,
                design,
                harmless,
                delta=delta,
                alpha=alpha,
                seeds=seeds,
                resamples=resamples,
            )
            rows.append(
                {
                    "scenario": scenario,
                    "design": design.label,
                    "n": design.groups * design.size,
                    "size": size,
                    "power": power,
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    head = (
        f"delta {meta['delta']}, alpha {meta['alpha']}, {meta['seeds']} seeds, "
        f"{meta['resamples']} resamples per test ({meta['date']}, {meta['machine']})\n\n"
        "| metric | clusters x items | n | size at the margin (<= alpha) | power, harmless |\n"
        "|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['scenario']} | {r['design']} | {r['n']} | {r['size']:.3f} | {r['power']:.3f} |\n"
        for r in rows
    )
    return head + body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--delta", type=float, default=0.05)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS))
    args = parser.parse_args()
    scenarios = args.scenario or list(SCENARIOS)
    rows = run(args.seeds, args.resamples, args.delta, args.alpha, scenarios)
    meta = {
        "seeds": args.seeds,
        "resamples": args.resamples,
        "delta": args.delta,
        "alpha": args.alpha,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {platform.python_version()}",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "noninferiority" + (
        "" if len(scenarios) == len(SCENARIOS) else "_" + "_".join(scenarios)
    )
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    table = markdown(rows, meta)
    (RESULTS / f"{stem}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
