"""Learned ensemble, abstention and small -> big cascades measured on human-labelled held-out data.

One command (embedded SmolLM2 as the small judge on the real vLLM engine; the released GPT-3.5
verdicts on PandaLM replayed as the big judge; data from ``../shared/data``)::

    python benchmarks/cascade.py --n 60 --set-n llmbar_natural=30 --pandalm-7b-n 250 \\
        --store ~/.cache/judgekit/cascade_store.sqlite

Per set: ``run_calibration`` judges ``--n`` dev and ``--n`` held-out items with the small judge
(3 prompt variants x 2 orders), fits the learned ensemble and chooses the abstention thresholds on
dev only, and reports every combination's held-out kappa with a bootstrap CI. The big judge gets a
card the same way (one prompt, one order: how its verdicts were made). The cascades (the small
judge with its card and its certified threshold for each target, then the big judge with its
card deciding the rest) run on the held-out items; the small judge's judgments come from the
result store the calibration filled, so its engine starts once per set. Results:
``benchmarks/results/cascade.json``, ``.md``, ``cascade.png`` and one reliability plot per set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's judgekit, also when run as a script

from judgekit.backends import JudgeSpec, ReplayJudge, VLLMJudge  # noqa: E402
from judgekit.calibrate.measure.cascade import card_policy, cascade_agreement  # noqa: E402
from judgekit.calibrate.run import prepare_set, run_calibration  # noqa: E402
from judgekit.cards import CalibrationOptions, read_card  # noqa: E402
from judgekit.cards.store import NamedCard  # noqa: E402
from judgekit.data.sets import CalibrationRecord  # noqa: E402
from judgekit.judging.cascade import CascadeResult, Stage, cascade  # noqa: E402
from judgekit.judging.store import ResultStore  # noqa: E402
from judgekit.rubrics import load_rubric  # noqa: E402
from judgekit.schema import Controls  # noqa: E402

DATA = Path(os.environ.get("JUDGEKIT_DATA_DIR") or REPO.parent / "shared" / "data")
RESULTS = REPO / "benchmarks" / "results"
RUBRIC = "pairwise_preference@v1"
TARGETS = (0.7, 0.8, 0.9)
PANDALM_MAP = {"0": "tie", "1": "A", "2": "B"}
OUTPUTS = "pandalm/judge_outputs"
#: Big judge per set: released verdicts of the PandaLM test set, replayed.
BIG = {"pandalm": ("gpt-3.5-turbo", f"{OUTPUTS}/gpt-3.5-turbo-testset-v1.json", "gpt_result")}


def replay(model: str, path: str, field: str) -> ReplayJudge:
    """Released PandaLM-test-set verdicts as a judge (by ``idx``, 0/1/2 -> tie/A/B)."""
    return ReplayJudge(
        verdicts=str(DATA / path),
        id_field="idx",
        verdict_field=field,
        label_map=PANDALM_MAP,
        model=model,
    )


def _ci(x: Any) -> str:
    return "n/a" if x is None else f"{x.estimate:.3f} [{x.low:.3f}, {x.high:.3f}]"


def calibrated(
    set_name: str,
    judge: JudgeSpec,
    name: str,
    n: int,
    args: argparse.Namespace,
    store: ResultStore | None,
    one_prompt: bool = False,
) -> tuple[NamedCard, list[CalibrationRecord], dict[str, Any]]:
    """The judge's card on ``n`` dev + ``n`` held-out items, the held-out records, and what the
    calibration cost. ``one_prompt``: one variant in one order (how a replayed judge ran)."""
    options = CalibrationOptions(
        limit=n,
        n_resamples=args.resamples,
        controls=Controls(swap=not one_prompt),
        variants=["direct"] if one_prompt else None,
    )
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as cards:
        result = run_calibration(
            set_name,
            RUBRIC,
            backend=judge,
            options=options,
            data_dir=DATA,
            cards_dir=cards,
            out_dir=args.out / f"cascade_{set_name}_{name}",
            store=store,
        )
        named = read_card(result.card_path)
    held = prepare_set(set_name, load_rubric(RUBRIC), options, data_dir=DATA).records
    cost = {
        "seconds": time.perf_counter() - start,
        "fresh_judgments": sum(not j.from_store for j in result.run.judgments),
    }
    return named, held, cost


def scored(
    stages: list[Stage], held: list[CalibrationRecord], store: ResultStore | None, resamples: int
) -> dict[str, Any]:
    """The stages as a cascade on the held-out items, scored against the humans."""
    result = cascade([r.item for r in held], load_rubric(RUBRIC), stages, store=store)
    rng = np.random.default_rng(0)
    scores = cascade_agreement(result, held, rng=rng, n_resamples=resamples)
    return {
        "result": result,
        "scores": scores,
        "tokens_per_item": result.stages[0].prompt_tokens / len(held),
    }


def measure(
    set_name: str,
    small_judge: JudgeSpec,
    small: str,
    args: argparse.Namespace,
    store: ResultStore | None,
    *,
    one_prompt: bool = False,
) -> dict[str, Any]:
    """Small judge alone, big judge alone (when the set has one) and the cascade per target."""
    n = args.set_n.get(set_name, args.n)
    card, held, cost = calibrated(set_name, small_judge, small, n, args, store, one_prompt)
    out: dict[str, Any] = {"set": set_name, "small": small, "n_heldout": len(held)}
    out |= {"n_dev": n, "small_seconds": cost["seconds"], "small_card": card.card}
    out["small_fresh_judgments"] = cost["fresh_judgments"]
    small_all = Stage(small, small_judge, card, card_policy(card.card, None))
    out["small_alone"] = scored([small_all], held, store, args.resamples)
    big_stage = None
    if set_name in BIG:
        model, path, field = BIG[set_name]
        big_card, _, _ = calibrated(
            set_name, replay(model, path, field), model, n, args, None, True
        )
        big_stage = Stage(model, replay(model, path, field), big_card)
        out["big_alone"] = scored([big_stage], held, None, args.resamples)
    out["cascades"] = {
        target: scored(
            [
                Stage(small, small_judge, card, card_policy(card.card, target, args.alpha)),
                *([big_stage] if big_stage is not None else []),
            ],
            held,
            store,
            args.resamples,
        )
        for target in TARGETS
    }
    return out


def _rows(m: dict[str, Any]) -> list[dict[str, Any]]:
    """Table rows: small alone, big alone, cascade per target, with the guarantee."""
    n = m["n_heldout"]
    small_tokens = m["small_alone"]["tokens_per_item"]
    big_tokens = m["big_alone"]["tokens_per_item"] if "big_alone" in m else 0.0
    rows = []

    def row(name: str, scores: dict, small_share: float, big_share: float, extra: str) -> None:
        decided = scores["agreement_decided"]
        rows.append(
            {
                "judge": name,
                "kappa (all items)": _ci(scores["kappa_all"]),
                "agreement (decided)": _ci(decided),
                "coverage": f"{scores['coverage']:.2f}",
                "small tokens/item": f"{small_share * small_tokens:.0f}",
                "big tokens/item (est.)": f"{big_share * big_tokens:.0f}",
                "guarantee": extra,
                "_cost": big_share,
                "_kappa": scores["kappa_all"].estimate,
                "_agreement": decided.estimate if decided else float("nan"),
            }
        )

    row(f"small alone ({m['small']})", m["small_alone"]["scores"], 1.0, 0.0, "-")
    if "big_alone" in m:
        big: CascadeResult = m["big_alone"]["result"]
        row(f"big alone ({big.stages[0].judge_model})", m["big_alone"]["scores"], 0.0, 1.0, "-")
    policies = {p.target: p for p in m["small_card"].ensemble.abstention}
    for target, c in m["cascades"].items():
        first = c["result"].stages[0]
        kept = c["scores"]["per_stage"][m["small"]]
        p = policies[target]
        guarantee = (
            f"small keeps {first.n_decided}/{n}: agreement {_ci(kept)} vs >= {target:g} "
            f"(dev threshold {p.threshold}, alpha {p.alpha:g})"
            if p.threshold is not None
            else f"target {target:g} not certifiable on dev: small keeps nothing"
        )
        escalated = (n - first.n_decided) / n if "big_alone" in m else 0.0  # else: to a human
        row(f"cascade, target {target:g}", c["scores"], 1.0, escalated, guarantee)
    return rows


def markdown(m: dict[str, Any]) -> str:
    card = m["small_card"]
    section = card.ensemble
    lines = [
        f"### {m['set']}, small judge {m['small']} "
        f"(held-out {m['n_heldout']} items; dev {m['n_dev']} for fitting)",
        "",
        "Small judge's combinations of its prompts (kappa, invalid counted as disagreement):",
        "",
        "| method | dev kappa (learned: out-of-fold) | held-out kappa [95% CI] | invalid |",
        "|---|---|---|---|",
    ]
    for r in section.comparison:
        dev = "n/a" if r.dev_kappa is None else f"{r.dev_kappa:.3f}"
        lines.append(f"| {r.method} | {dev} | {_ci(r.heldout_kappa)} | {r.n_invalid} |")
    ece = card.expected_calibration_error
    lines += [
        "",
        f"Chosen: **{section.chosen}** ({section.reason}). Learned-ensemble L2 "
        f"{section.model.l2:g} (5-fold CV on dev), n fit {section.model.n}. The card applies: "
        f"{'; '.join(card.applies.reasons) or 'the controls as judged'}.",
        f"Expected calibration error on held-out: learned ensemble "
        f"{section.expected_calibration_error:.3f}, the card's verdicts {ece:.3f}."
        if ece is not None
        else "",
        "",
        "| judge | kappa (all items) | agreement (decided) | coverage | small tokens/item | "
        "big tokens/item (est.) | guarantee |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in _rows(m):
        cells = [v for k, v in r.items() if not k.startswith("_")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(measured: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    for m in measured:
        rows = _rows(m)
        x = [r["_cost"] for r in rows]
        for ax, key in zip(axes, ("_kappa", "_agreement"), strict=True):
            label = f"{m['set']} ({m['small']} -> big)"
            ax.plot(x, [r[key] for r in rows], marker="o", linestyle="", label=label)
            for r, xi in zip(rows, x, strict=True):
                short = r["judge"].replace("cascade, target ", "t=").split(" (")[0]
                ax.annotate(short, (xi, r[key]), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)  # fmt: skip
    for ax, title in zip(
        axes, ("kappa, all held-out items", "agreement on decided items"), strict=True
    ):
        ax.set_xlabel("share of items sent to the big judge (cost)")
        ax.set_title(title)
        ax.legend()
    fig.savefig(path, dpi=100, bbox_inches="tight")


def dump(m: dict[str, Any]) -> dict[str, Any]:
    """What the results JSON keeps of one measurement."""
    return {
        "set": m["set"],
        "small": m["small"],
        "small_seconds": m["small_seconds"],
        "small_fresh_judgments": m["small_fresh_judgments"],
        "small_card_applies": m["small_card"].applies.model_dump(mode="json"),
        "small_card_ensemble": m["small_card"].ensemble.model_dump(mode="json"),
        "rows": [{k: v for k, v in r.items() if not k.startswith("_")} for r in _rows(m)],
        "cascade_stages": {
            str(t): [s.model_dump() for s in c["result"].stages] for t, c in m["cascades"].items()
        },
    }


def write_results(measured: list[dict[str, Any]], out: Path) -> str:
    """cascade.md / .json / .png and a reliability plot per set and small judge."""
    from judgekit.calibrate.report.plots import plot_reliability

    out.mkdir(parents=True, exist_ok=True)
    text = "\n".join(markdown(m) for m in measured)
    (out / "cascade.md").write_text(text)
    plot(measured, out / "cascade.png")
    for m in measured:
        bins = m["small_card"].ensemble.reliability
        png = plot_reliability(
            [b.mean_probability for b in bins],
            [b.human_agreement for b in bins],
            [b.n for b in bins],
        )
        (out / f"cascade_reliability_{m['set']}_{m['small']}.png").write_bytes(png)
    (out / "cascade.json").write_text(json.dumps([dump(m) for m in measured], indent=2) + "\n")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, default=60, help="items per split (dev and held-out)")
    parser.add_argument("--sets", default="pandalm,llmbar_natural")
    parser.add_argument(
        "--set-n",
        action="append",
        default=[],
        metavar="SET=N",
        help="items per split for one set (overrides --n), e.g. llmbar_natural=20",
    )
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument(
        "--store", type=Path, default=None, help="result store (sqlite; default: a temporary one)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--pandalm-7b-n",
        type=int,
        default=0,
        help="also: PandaLM-7B's released verdicts (replayed) as the small judge on this many "
        "PandaLM items per split, GPT-3.5 as the big one (0: skip)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.set_n = {k: int(v) for k, _, v in (x.partition("=") for x in args.set_n)}
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        store = ResultStore(args.store or Path(tmp) / "store.sqlite")
        small = VLLMJudge()
        measured = [measure(name, small, "smollm2", args, store) for name in args.sets.split(",")]
        if args.pandalm_7b_n:
            pandalm_7b = replay(
                "pandalm-7b", f"{OUTPUTS}/pandalm-7b-testset-v1.json", "pandalm_result"
            )
            wide = argparse.Namespace(**{**vars(args), "n": args.pandalm_7b_n, "set_n": {}})
            measured.append(
                measure("pandalm", pandalm_7b, "pandalm-7b", wide, None, one_prompt=True)
            )
    print(write_results(measured, args.out))


if __name__ == "__main__":
    main()
