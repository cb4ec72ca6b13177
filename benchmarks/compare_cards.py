"""Two calibrations of the same items, compared paired: is rubric version B's agreement worse?

Each card's kappa interval is about one rubric alone; the question a new rubric version raises is
the difference on the same items, so this resamples the items jointly (paired bootstrap) and
reports kappa(B) - kappa(A) with its interval::

    judgekit calibrate --rubric pairwise_preference@v1 --set pandalm --limit 200 --out cal/v1
    judgekit calibrate --rubric pairwise_preference@v2 --set pandalm --limit 200 --out cal/v2
    python benchmarks/compare_cards.py cal/v1 cal/v2 --set pandalm --data-dir ../shared/data

Invalid verdicts count as their own category (disagreement), as in the cards' headline kappa.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from judgekit.data.sets import load_calibration_set
from judgekit.data.split import split_records
from judgekit.stats.agreement import cohen_kappa
from judgekit.stats.bootstrap import bootstrap_ci

INVALID = "invalid"


def verdicts(folder: Path) -> dict[str, str]:
    """Item id -> the most probable label, as the card's confusion matrix reads it (no tie band;
    ``invalid`` for an invalid item)."""
    rows = (json.loads(line) for line in (folder / "run.items.jsonl").open(encoding="utf-8"))
    return {
        r["item_id"]: max(r["label_probs"], key=r["label_probs"].get) if r["valid"] else INVALID
        for r in rows
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="calibration output folder (run.items.jsonl)")
    parser.add_argument("b", type=Path, help="the other version's folder")
    parser.add_argument("--set", required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--limit", type=int, default=None, help="as given to calibrate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    records = load_calibration_set(args.set, data_dir=args.data_dir).records
    heldout = split_records(records, "heldout", 0.5)[: args.limit]  # calibrate's default split
    humans = {r.id: r.consensus for r in heldout if r.consensus is not None}
    a, b = verdicts(args.a), verdicts(args.b)
    ids = sorted(set(a) & set(b) & set(humans))
    human = np.array([str(humans[i]) for i in ids])
    ja, jb = np.array([a[i] for i in ids]), np.array([b[i] for i in ids])

    def difference(h: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
        return cohen_kappa(h, y) - cohen_kappa(h, x)

    rng = np.random.default_rng(args.seed)
    ci = bootstrap_ci(difference, human, ja, jb, rng=rng)
    print(f"items compared: {len(ids)}")
    for name, judged in ((args.a, ja), (args.b, jb)):
        print(f"kappa {name}: {cohen_kappa(human, judged):.3f}")
    print(f"difference (b - a): {ci.estimate:+.3f} [{ci.low:+.3f}, {ci.high:+.3f}] ({ci.method})")
    print(f"same verdict on {np.mean(ja == jb):.1%} of items")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
