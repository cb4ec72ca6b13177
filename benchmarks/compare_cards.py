"""Two calibrations of the same items, compared paired: is rubric version B's agreement worse?

Each card's kappa interval is about one rubric alone; the question a new rubric version raises is
the difference on the same items, so this resamples the items jointly (paired bootstrap) and
reports kappa(B) - kappa(A) with its interval::

    judgekit calibrate --rubric pairwise_preference@v1 --set pandalm --limit 200 --out cal/v1
    judgekit calibrate --rubric pairwise_preference@v2 --set pandalm --limit 200 --out cal/v2
    python benchmarks/compare_cards.py cal/v1 cal/v2 --set pandalm --limit 200

Each folder's final run (``run.jsonl``, read with ``judgekit.read_run``) gives the verdicts a run
with that card makes (the one decision rule): a judge tie is its own category and an invalid
verdict another (both disagreement), as in the cards' headline kappa.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's judgekit, also when run as a script

from judgekit.data.sets import load_calibration_set  # noqa: E402
from judgekit.data.split import split_records  # noqa: E402
from judgekit.judging import read_run  # noqa: E402
from judgekit.stats.agreement import cohen_kappa  # noqa: E402
from judgekit.stats.bootstrap import bootstrap_ci  # noqa: E402

INVALID, TIE = "invalid", "tie"


def verdicts(folder: Path) -> dict[str, str]:
    """Item id -> the run's verdict label (``tie`` for a tie, ``invalid`` for no verdict)."""
    v = read_run(folder / "run.jsonl", content=False).verdicts
    return {
        item_id: INVALID if not valid else TIE if tie or label is None else label
        for item_id, label, tie, valid in zip(v.item_ids, v.labels, v.ties, v.valid, strict=True)
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("a", type=Path, help="calibration output folder (run.jsonl)")
    parser.add_argument("b", type=Path, help="the other version's folder")
    parser.add_argument("--set", required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--limit", type=int, default=None, help="as given to calibrate")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    dataset = load_calibration_set(args.set, data_dir=args.data_dir)
    if dataset.manifest.label_type == "ordinal":  # a mean of raters is no label to agree with
        raise SystemExit(f"{args.set}: ordinal human scores; compare the cards' weighted kappas")
    heldout = split_records(dataset.records, "heldout", 0.5)[: args.limit]  # calibrate's default
    humans = {r.id: r.consensus for r in heldout if r.consensus is not None}
    a, b = verdicts(args.a), verdicts(args.b)
    ids = sorted(set(a) & set(b) & set(humans))
    human = np.array([str(humans[i]) for i in ids])
    ja, jb = np.array([a[i] for i in ids]), np.array([b[i] for i in ids])

    def difference(h: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
        return cohen_kappa(h, y) - cohen_kappa(h, x)

    ci = bootstrap_ci(difference, human, ja, jb, rng=np.random.default_rng(args.seed))
    print(f"items compared: {len(ids)}")
    for name, judged in ((args.a, ja), (args.b, jb)):
        print(f"kappa {name}: {cohen_kappa(human, judged):.3f}")
    print(f"difference (b - a): {ci.estimate:+.3f} [{ci.low:+.3f}, {ci.high:+.3f}] ({ci.method})")
    print(f"same verdict on {np.mean(ja == jb):.1%} of items")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
