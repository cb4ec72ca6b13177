"""Bias controls measured on real human labels: position swap, frozen length correction, variants.

One command (embedded SmolLM2 judge on the real vLLM engine, data from ``../shared/data``)::

    python benchmarks/bias_controls.py                  # ~12-16 min on 2 CPUs
    python benchmarks/bias_controls.py --n 200 --summeval-n 0

Each set is one ``run_calibration``: every item is judged under the rubric's 3 prompt variants
(pairs in both orders, AB and BA); the length model is fitted on the dev items only and applied
frozen to the held-out items, where every figure is measured. PandaLM pairs
(``pairwise_preference@v1``, default 80 per split) give position, length and variant figures;
SummEval summaries (``overall_quality@v1`` against the experts' relevance, 40 per split) give the
pointwise length model with the human score as covariate. Each figure has a 95% interval (Wilson
for rates, Wald / Student t for slopes, bootstrap for kappa and alpha). Results go to
``benchmarks/results/bias_controls.json`` and ``.md`` (plus each set's calibration report in
``benchmarks/results/bias_controls_<set>/``); the tables are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's judgekit, also when run as a script

from judgekit.backends import Backend, VLLMJudge, create_backend  # noqa: E402
from judgekit.calibrate.run import run_calibration  # noqa: E402
from judgekit.cards import CalibrationCard, CalibrationOptions  # noqa: E402
from judgekit.data.sets import load_calibration_set  # noqa: E402
from judgekit.data.split import split_records  # noqa: E402
from judgekit.stats import ConfidenceInterval, proportion_ci  # noqa: E402

DATA = Path(os.environ.get("JUDGEKIT_DATA_DIR") or REPO.parent / "shared" / "data")
RESULTS = REPO / "benchmarks" / "results"
RUBRIC = "pairwise_preference@v1"
POINTWISE = "overall_quality@v1"


def _ci(x: Any) -> str:
    """An Interval (or LengthFigure) as 'estimate [low, high]'; n/a when it was not computed."""
    if x is None:
        return "n/a"
    if hasattr(x, "slope"):
        return f"{x.slope:.3f} [{x.ci_low:.3f}, {x.ci_high:.3f}]"
    return f"{x.estimate:.3f} [{x.low:.3f}, {x.high:.3f}]"


def _human_a_rate(n: int) -> ConfidenceInterval:
    """Share of held-out pairs whose human consensus is A (among A/B): where an order-free
    judge's A pick rate should sit, since PandaLM's A and B slots need not be balanced."""
    records = load_calibration_set("pandalm", data_dir=DATA).records
    held = split_records(records, "heldout")
    decisive = [r.consensus for r in held[:n] if r.consensus in ("A", "B")]
    return proportion_ci(sum(c == "A" for c in decisive), len(decisive))


def table_rows(
    card: CalibrationCard, human_a: ConfidenceInterval | None
) -> list[tuple[str, str, str, str]]:
    """(control, figure, before, after) rows from a calibration card."""
    rows = []
    if (p := card.position) is not None:
        rows += [
            ("position swap", "flip rate (argmax changes with order)", _ci(p.flip_rate), "-"),
            (
                "position swap",
                "first-position pick rate (before: per order; after: A pick, soft swap)",
                _ci(p.first_pick_before),
                _ci(p.first_pick_after),
            ),
            ("position swap", "humans: A pick rate (reference for 'after')", "-", _ci(human_a)),
        ]
    applied = "applied" if card.applies.length_correction else "not applied: after = if it were"
    length = f"length (frozen, fitted on dev; {applied})"
    if card.length_before is not None:
        unit = (
            "log-odds per tanh(len diff / dev sd)"
            if card.label_type == "pairwise"
            else "score per e-fold of length, human covariate"
        )
        rows.append(
            (length, f"length slope, {unit}", _ci(card.length_before), _ci(card.length_after))
        )
    for change in card.length_agreement:
        rows.append((length, change.metric, _ci(change.before), _ci(change.after)))
    for v in card.per_variant:
        rows.append(("variant ensemble", f"kappa vs humans: {v.variant} alone", _ci(v.kappa), "-"))
    chosen = f"{card.applies.controls.ensemble} of {', '.join(card.applies.variants)}"
    rows.append(
        ("variant ensemble", f"kappa vs humans: the card's ({chosen})", "-", _ci(card.kappa))
    )
    for level, alpha in card.variant_alpha.items():
        rows.append(
            ("variant ensemble", f"Krippendorff alpha across variants ({level})", _ci(alpha), "-")
        )
    if (d := card.variance) is not None:
        shares = (
            f"item {d.item_share:.3f} / variant {d.variant_share:.3f} / "
            f"residual {d.residual_share:.3f}"
        )
        rows.append(("variant ensemble", "variance shares of per-variant scores", shares, "-"))
    return rows


def markdown(title: str, rows: list[tuple[str, str, str, str]], meta: dict[str, Any]) -> str:
    lines = [
        f"**{title}**, {meta['per_split']} dev + {meta['per_split']} held-out items x 3 variants"
        f"{' x 2 orders' if meta['pairwise'] else ''} (length fit on {meta['n_dev_fit']} valid "
        f"dev items, figures on {meta['n_heldout']} held-out items), judge {meta['judge_model']}, "
        f"{meta['date']} ({meta['seconds']:.0f} s on {meta['machine']}); 95% intervals.",
        "",
        "| control | figure | before | after |",
        "|---|---|---|---|",
        *(f"| {' | '.join(c.replace('|', '/') for c in row)} |" for row in rows),
    ]
    return "\n".join(lines) + "\n"


def measure(
    backend: Backend, set_name: str, rubric: str, metric: str | None, n: int, args: Any
) -> tuple[CalibrationCard, dict[str, Any]]:
    """One calibration (dev fit + held-out figures); the card and the run's sizes and time."""
    start = time.perf_counter()
    options = CalibrationOptions(metric=metric, limit=n, n_resamples=args.resamples)
    with tempfile.TemporaryDirectory() as cards:
        result = run_calibration(
            set_name,
            rubric,
            backend=backend,
            options=options,
            data_dir=DATA,
            cards_dir=cards,
            out_dir=args.out / f"bias_controls_{set_name}",
        )
    card = result.card
    if card.length_model is None:
        raise SystemExit(f"{set_name}: no length model was fitted: {card.notes}")
    return card, {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "rubric": rubric,
        "metric": metric,
        "pairwise": card.label_type == "pairwise",
        "judge_model": card.judge_model,
        "per_split": n,
        "n_dev_fit": card.length_model["n"],
        "n_heldout": card.n,
        "seconds": time.perf_counter() - start,
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}",
        "notes": card.notes,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, default=80, help="PandaLM pairs per split")
    parser.add_argument(
        "--summeval-n", type=int, default=40, help="SummEval summaries per split (0: skip)"
    )
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if not DATA.is_dir():
        raise SystemExit(f"public data sets not found at {DATA} (see ../shared/README.md)")
    backend = create_backend(VLLMJudge())
    runs = [("pandalm", "PandaLM", RUBRIC, None, args.n)]
    if args.summeval_n > 0:
        runs.append(("summeval", "SummEval (relevance)", POINTWISE, "relevance", args.summeval_n))
    results, texts = {}, []
    try:
        for set_name, title, rubric, metric, n in runs:
            card, meta = measure(backend, set_name, rubric, metric, n, args)
            rows = table_rows(card, _human_a_rate(n) if card.position is not None else None)
            keys = ("control", "figure", "before", "after")
            results[set_name] = {
                "meta": meta,
                "rows": [dict(zip(keys, r, strict=True)) for r in rows],
                "card": card.model_dump(mode="json"),
            }
            texts.append(markdown(title, rows, meta))
    finally:
        backend.close()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bias_controls.json").write_text(json.dumps(results, indent=2) + "\n")
    text = "\n".join(texts)
    (args.out / "bias_controls.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
