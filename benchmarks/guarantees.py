"""Guarantees on clustered data, measured: abstention miss rates over random group splits of
PandaLM, cascade stages certified on what they receive, and the coverage of item vs cluster
intervals (issue 19). Pure numpy: no engine, no judge runs.

    PYTHONPATH=. python benchmarks/guarantees.py                  # 1,000 splits, ~15 min on 2 CPUs
    PYTHONPATH=. python benchmarks/guarantees.py --splits 500 --coverage-seeds 300

Abstention: PandaLM's 999 pairs in 170 instructions (the group). Each split sends every
instruction to held-out with probability 1/2; the threshold is certified on dev (old: Clopper-
Pearson over items; new: ``select_threshold(..., groups=...)``) and checked on held-out. Judges
have known agreement with the human consensus (fixed once, seed 2024): the issue's judge that
matches every A/B label (agreement = share of A/B consensus, 0.895), judges exactly at the
target's edge, one with an informative confidence, and the released GPT-3.5 / PandaLM-7B
verdicts. A *miss* is a split whose certified threshold keeps held-out items agreeing below the
target; it must happen in at most alpha of the splits. Results:
``benchmarks/results/guarantees.{json,md}``; the tables are printed and copied into
docs/cascade.md.
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

from judgekit.calibrate.measure.abstain import StageCalibration, certify_escalated, select_threshold
from judgekit.data.sets import load_calibration_set
from judgekit.stats import (
    Groups,
    bootstrap_ci,
    cohen_kappa,
    mean_ci,
    proportion_ci,
    share_ci,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"
ALPHA = 0.1
VERDICTS = {"1": "A", "2": "B"}  # released verdicts: "Tie"/"0" and "garbage" are not A/B labels


@dataclass(frozen=True)
class Pandalm:
    ids: list[str]
    groups: np.ndarray  # group index per item
    consensus: np.ndarray
    keys: list[str]


@dataclass(frozen=True)
class Judge:
    name: str
    confidence: np.ndarray  # NaN: invalid verdict, never kept
    agreed: np.ndarray
    target: float
    note: str


def load_pandalm() -> Pandalm:
    records = load_calibration_set("pandalm", data_dir=DATA).records
    keys = [r.group for r in records]
    return Pandalm(
        ids=[r.id for r in records],
        groups=Groups.of(keys, len(keys)).codes,
        consensus=np.array([str(r.consensus) for r in records]),
        keys=keys,
    )


def released(data: Pandalm, name: str, field: str) -> np.ndarray:
    """The authors' released verdicts as A / B / invalid, aligned with the records."""
    path = DATA / "pandalm" / "judge_outputs" / f"{name}-testset-v1.json"
    verdicts = {str(row["idx"]): str(row[field]) for row in json.loads(path.read_text())}
    return np.array([VERDICTS.get(verdicts[i], "invalid") for i in data.ids])


def judges(data: Pandalm) -> list[Judge]:
    """Simulated judges with known agreement (fixed once), then the two released judges."""
    rng = np.random.default_rng(2024)
    n, n_groups = len(data.ids), int(data.groups.max()) + 1
    ab = np.isin(data.consensus, ["A", "B"])
    ones = np.ones(n)
    # Item difficulty with an instruction effect (latent ICC 0.5); human ties are harder.
    difficulty = rng.normal(0, 1, n_groups)[data.groups] + rng.normal(0, 1, n)
    clustered = np.ones(n, bool)
    clustered[np.argsort(difficulty)[: n - int(0.8 * n)]] = False
    scattered = np.ones(n, bool)
    scattered[rng.choice(n, n - int(0.8 * n), replace=False)] = False
    s = 1.6 + 0.8 * rng.normal(0, 1, n_groups)[data.groups] + rng.normal(0, 1, n) - 2.0 * ~ab
    graded = 0.5 + 0.5 / (1 + np.exp(-1.5 * (s + 0.5 * rng.normal(0, 1, n))))
    out = [
        Judge("matches every A/B label", ones, ab, 0.9, "the issue's judge"),
        Judge("edge, clustered errors", ones, clustered, 0.8, "errors: hardest 20%"),
        Judge("edge, independent errors", ones, scattered, 0.8, "errors: random 20%"),
        Judge("graded confidence", graded, ab & (s > 0), 0.8, "informative confidence"),
        Judge("graded confidence", graded, ab & (s > 0), 0.9, "informative confidence"),
    ]
    for name, field in (("gpt-3.5-turbo", "gpt_result"), ("pandalm-7b", "pandalm_result")):
        verdict = released(data, name, field)
        valid = verdict != "invalid"
        out.append(
            Judge(name, np.where(valid, 1.0, np.nan), verdict == data.consensus, 0.7, "released")
        )
    return out


def agreement_at(judge: Judge, mask: np.ndarray, threshold: float) -> tuple[int, float | None]:
    """Kept items of ``mask`` at ``threshold`` and their agreement (None if none kept)."""
    kept = mask & np.isfinite(judge.confidence) & (np.nan_to_num(judge.confidence) >= threshold)
    return int(kept.sum()), float(judge.agreed[kept].mean()) if kept.any() else None


def abstention(data: Pandalm, judge: Judge, n_splits: int) -> dict[str, dict[str, float]]:
    """Per method: share certified, misses (held-out / whole-set agreement below target),
    mean held-out coverage over all splits."""
    n_groups = int(data.groups.max()) + 1
    keys = np.array(data.keys, dtype=object)
    every = np.ones(len(data.ids), bool)
    out = {}
    for method, grouped in (("item Clopper-Pearson (old)", False), ("group betting (new)", True)):
        certified = miss = miss_truth = 0
        coverage = []
        for split in range(n_splits):
            held = (np.random.default_rng(split).random(n_groups) < 0.5)[data.groups]
            dev = ~held
            choice = select_threshold(
                judge.confidence[dev],
                judge.agreed[dev],
                groups=keys[dev] if grouped else None,
                target=judge.target,
                alpha=ALPHA,
            )
            if choice.threshold is None:
                coverage.append(0.0)
                continue
            certified += 1
            n_kept, agree = agreement_at(judge, held, choice.threshold)
            coverage.append(n_kept / held.sum())
            miss += agree is not None and agree < judge.target
            miss_truth += agreement_at(judge, every, choice.threshold)[1] < judge.target
        out[method] = {
            "certified": certified / n_splits,
            "miss_heldout": miss / n_splits,
            "miss_heldout_ci_high": proportion_ci(miss, n_splits).high,
            "miss_whole_set": miss_truth / n_splits,
            "coverage_heldout": float(np.mean(coverage)),
        }
    return out


def cascade(data: Pandalm, n_splits: int, target: float = 0.8) -> dict[str, dict[str, float]]:
    """Small -> big judge on PandaLM's groups. Both judges' agreement falls with a shared item
    difficulty (instruction effect + item noise), so what the small judge escalates is harder
    for the big one too. Old: the big judge's threshold certified on all its dev items; new:
    ``certify_escalated``, on the dev items the small judge escalates (both with the group test,
    so only the choice of items differs). A miss: among the held-out items the small judge
    escalates, those the big judge keeps agree below the target."""
    rng = np.random.default_rng(7)
    n, n_groups = len(data.ids), int(data.groups.max()) + 1
    difficulty = 0.8 * rng.normal(0, 1, n_groups)[data.groups] + rng.normal(0, 1, n)
    small = -difficulty  # right on about half the items, more often when confident
    small_conf = 0.5 + 0.5 / (1 + np.exp(-1.5 * (small + 0.5 * rng.normal(0, 1, n))))
    big = 1.5 - difficulty + rng.normal(0, 1, n)
    big_conf = 0.5 + 0.5 / (1 + np.exp(-2.0 * (big + 0.3 * rng.normal(0, 1, n))))
    keys, ids = np.array(data.keys, dtype=object), np.array(data.ids)
    out = {}
    for method in (
        "big judge certified on all its dev items (old)",
        "certified on escalated dev items (new)",
    ):
        certified = miss = 0
        coverage = []
        for split in range(n_splits):
            held = (np.random.default_rng(split).random(n_groups) < 0.5)[data.groups]
            dev = ~held
            stages = [
                StageCalibration(ids[dev], conf[dev], agreed[dev], keys[dev])
                for conf, agreed in ((small_conf, small > 0), (big_conf, big > 0))
            ]
            first, second = certify_escalated(stages, target=target, alpha=ALPHA)
            if method.endswith("(old)"):
                second = select_threshold(
                    big_conf[dev], big[dev] > 0, groups=keys[dev], target=target, alpha=ALPHA
                )
            cut = np.inf if first.threshold is None else first.threshold
            escalated = held & (small_conf < cut)
            if second.threshold is None:
                coverage.append(0.0)
                continue
            certified += 1
            kept = escalated & (big_conf >= second.threshold)
            coverage.append(kept.sum() / max(escalated.sum(), 1))
            miss += kept.any() and (big[kept] > 0).mean() < target
        out[method] = {
            "certified": certified / n_splits,
            "miss_heldout": miss / n_splits,
            "coverage_escalated": float(np.mean(coverage)),
        }
    return out


def clustered_flags(
    sizes: np.ndarray, p: float, icc: float, rng: np.random.Generator
) -> np.ndarray:
    """0/1 flags whose groups share a Beta-distributed rate (mean p, intra-class corr. icc)."""
    if icc == 0:
        rates = np.full(sizes.size, p)
    else:
        a, b = p * (1 - icc) / icc, (1 - p) * (1 - icc) / icc
        rates = rng.beta(a, b, sizes.size)
    return (rng.random(int(sizes.sum())) < np.repeat(rates, sizes)).astype(float)


def _kappa2(h: np.ndarray, j: np.ndarray) -> float:
    return cohen_kappa(h, j, labels=np.arange(2))


def coverage(
    sizes: np.ndarray, seeds: int, kappa_seeds: int, n_resamples: int
) -> list[dict[str, object]]:
    """Coverage of 95% intervals, item-level vs cluster-aware, on clustered data with a known
    truth: 0/1 agreement flags with rate 0.8 whose groups (PandaLM dev's sizes) share a Beta rate
    (ICC 0, 0.1, 0.3), and the kappa of a judge that copies a fair-coin human label when it
    agrees and flips it otherwise (population kappa 2 * 0.8 - 1 = 0.6)."""
    groups = np.repeat(np.arange(sizes.size), sizes)

    def boot(statistic: Callable, by: np.ndarray | None) -> Callable:
        return lambda r, *a: bootstrap_ci(statistic, *a, rng=r, groups=by, n_resamples=n_resamples)

    intervals: dict[str, tuple[float, int, Callable]] = {
        "rate: Wilson (items)": (0.8, seeds, lambda r, x, h, j: share_ci(x)),
        "rate: Wilson, design effect (groups)": (
            0.8, seeds, lambda r, x, h, j: share_ci(x, groups=groups)
        ),
        "rate: t (items)": (0.8, seeds, lambda r, x, h, j: mean_ci(x)),
        "rate: t, CR1 (groups)": (0.8, seeds, lambda r, x, h, j: mean_ci(x, groups=groups)),
        "rate: BCa bootstrap (items)": (0.8, seeds, lambda r, x, h, j: boot(np.mean, None)(r, x)),
        "rate: BCa bootstrap (groups)": (
            0.8, seeds, lambda r, x, h, j: boot(np.mean, groups)(r, x)
        ),
        "kappa: BCa bootstrap (items)": (
            0.6, kappa_seeds, lambda r, x, h, j: boot(_kappa2, None)(r, h, j)
        ),
        "kappa: BCa bootstrap (groups)": (
            0.6, kappa_seeds, lambda r, x, h, j: boot(_kappa2, groups)(r, h, j)
        ),
    }  # fmt: skip
    rows: list[dict[str, object]] = []
    for icc in (0.0, 0.1, 0.3):
        hits = dict.fromkeys(intervals, 0)
        widths = dict.fromkeys(intervals, 0.0)
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            x = clustered_flags(sizes, 0.8, icc, rng)
            h = rng.integers(0, 2, x.size)
            j = np.where(x > 0, h, 1 - h)
            for name, (truth, n_seeds, interval) in intervals.items():
                if seed < n_seeds:
                    ci = interval(rng, x, h, j)
                    hits[name] += ci.low <= truth <= ci.high
                    widths[name] += (ci.high - ci.low) / n_seeds
        for name, (_, n_seeds, _) in intervals.items():
            rows.append({"icc": icc, "interval": name, "coverage": hits[name] / n_seeds,
                         "mean_width": widths[name], "seeds": n_seeds})  # fmt: skip
    return rows


def kappa_intervals(data: Pandalm, n_resamples: int) -> list[dict[str, object]]:
    """The released judges' kappa with the human consensus on all 999 items (an invalid verdict
    is its own category: disagreement), item vs cluster bootstrap, seed 0."""
    code = {"A": 0, "B": 1, "tie": 2, "invalid": 3}
    human = np.array([code[c] for c in data.consensus])
    rows = []
    for name, field in (("gpt-3.5-turbo", "gpt_result"), ("pandalm-7b", "pandalm_result")):
        judge = np.array([code[v] for v in released(data, name, field)])

        def kappa(h: np.ndarray, j: np.ndarray) -> float:
            return cohen_kappa(h, j, labels=np.arange(4))

        for unit, groups in (("items", None), ("instructions", data.groups)):
            ci = bootstrap_ci(
                kappa, human, judge, groups=groups, rng=np.random.default_rng(0),
                n_resamples=n_resamples,
            )  # fmt: skip
            rows.append({"judge": name, "resampled": unit, "estimate": ci.estimate,
                         "low": ci.low, "high": ci.high, "method": ci.method})  # fmt: skip
    return rows


def markdown(result: dict) -> str:
    lines = [
        f"Abstention over {result['splits']} random group splits of PandaLM (alpha {ALPHA}); "
        "miss = held-out agreement on kept items below the target (95% upper bound of the miss "
        "rate in brackets); whole-set miss = agreement on all 999 items at the certified "
        "threshold below the target.",
        "",
        "| judge | true agreement (valid items) | target | method | certified | miss (held-out) "
        "| miss (whole set) | held-out coverage |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["abstention"]:
        for method, m in row["methods"].items():
            lines.append(
                f"| {row['judge']} ({row['note']}) | {row['agreement']:.3f} | {row['target']:g} "
                f"| {method} | {m['certified']:.3f} | {m['miss_heldout']:.3f} "
                f"[<= {m['miss_heldout_ci_high']:.3f}] | {m['miss_whole_set']:.3f} "
                f"| {m['coverage_heldout']:.3f} |"
            )
    lines += ["", f"Cascade, target {result['cascade_target']:g}: the big judge's kept items "
              "among the held-out items the small judge escalates (big judge keeps: their share "
              "of the escalated items).", "",
              "| big judge's threshold | certified | miss (held-out) | big judge keeps |",
              "|---|---|---|---|"]  # fmt: skip
    for method, m in result["cascade"].items():
        lines.append(
            f"| {method} | {m['certified']:.3f} | {m['miss_heldout']:.3f} "
            f"| {m['coverage_escalated']:.3f} |"
        )
    lines += ["", "Coverage of 95% intervals on clustered data (93 groups, PandaLM dev's group "
              "sizes): a rate of 0.8, and kappa 0.6:", "",
              "| ICC | interval | coverage | mean width | seeds |",
              "|---|---|---|---|---|"]  # fmt: skip
    for row in result["coverage"]:
        lines.append(
            f"| {row['icc']:g} | {row['interval']} | {row['coverage']:.3f} "
            f"| {row['mean_width']:.4f} | {row['seeds']} |"
        )
    lines += ["", "Released judges' kappa on all 999 PandaLM items, 95% BCa:", "",
              "| judge | resampled | kappa | 95% CI | width |",
              "|---|---|---|---|---|"]  # fmt: skip
    for row in result["kappa"]:
        lines.append(
            f"| {row['judge']} | {row['resampled']} | {row['estimate']:.3f} "
            f"| [{row['low']:.3f}, {row['high']:.3f}] | {row['high'] - row['low']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=1000)
    parser.add_argument("--coverage-seeds", type=int, default=1000)
    parser.add_argument("--kappa-seeds", type=int, default=300)
    parser.add_argument("--n-resamples", type=int, default=1000)
    parser.add_argument("--name", default="guarantees")
    args = parser.parse_args()
    start = time.time()
    data = load_pandalm()
    rows = []
    for judge in judges(data):
        valid = np.isfinite(judge.confidence)
        rows.append({
            "judge": judge.name, "note": judge.note, "target": judge.target,
            "agreement": float(judge.agreed[valid].mean()),
            "methods": abstention(data, judge, args.splits),
        })  # fmt: skip
        print(rows[-1], flush=True)
    dev_sizes = Groups.of(data.keys, len(data.keys)).sizes
    sizes = np.random.default_rng(0).choice(dev_sizes, 93)
    result = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "splits": args.splits,
        "alpha": ALPHA,
        "abstention": rows,
        "cascade_target": 0.8,
        "cascade": cascade(data, args.splits),
        "coverage": coverage(sizes, args.coverage_seeds, args.kappa_seeds, args.n_resamples),
        "kappa": kappa_intervals(data, 2000),
    }
    result["seconds"] = round(time.time() - start, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (RESULTS / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
