"""Learned ensemble, abstention and small -> big cascades measured on human-labelled held-out data.

One command (embedded SmolLM2 as the small judge on the real vLLM engine; the released GPT-3.5
verdicts on PandaLM replayed as the big judge; data from ``../shared/data``)::

    PYTHONPATH=. python benchmarks/cascade.py --n 60 --set-n llmbar_natural=30 --pandalm-7b-n 250 \
        --store ~/.cache/judgekit/cascade_store.sqlite

Per set: the small judge judges ``--n`` dev and ``--n`` held-out items (3 prompt variants x 2
orders); the learned ensemble and the abstention thresholds are fitted / chosen on dev only; the
card (``calibrate``) reports every combination's held-out kappa with a bootstrap CI and the
realised agreement on kept items. The cascade (small with its card's threshold for each target,
then the big judge deciding the rest) runs on the held-out items. Results:
``benchmarks/results/cascade.json``, ``.md`` and ``cascade.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("JUDGEKIT_DATA_DIR", REPO.parent / "shared" / "data"))
RESULTS = REPO / "benchmarks" / "results"
RUBRIC = "pairwise_preference@v1"
TARGETS = (0.7, 0.8, 0.9)
BIG = {
    "pandalm": (
        "gpt-3.5-turbo",
        "pandalm/judge_outputs/gpt-3.5-turbo-testset-v1.json",
        "gpt_result",
    )
}
PANDALM_MAP = {"0": "tie", "1": "A", "2": "B"}


def _ci(x: Any) -> str:
    return "n/a" if x is None else f"{x.estimate:.3f} [{x.low:.3f}, {x.high:.3f}]"


def _splits(set_name: str, n: int) -> tuple[list, list]:
    from judgekit.data.sets import load_calibration_set
    from judgekit.data.split import heldout_mask

    records = load_calibration_set(set_name, data_dir=DATA).records
    mask = heldout_mask([r.id for r in records])
    dev = [r for r, m in zip(records, mask, strict=True) if not m][:n]
    held = [r for r, m in zip(records, mask, strict=True) if m][:n]
    return dev, held


def _card(dev: list, held: list, outputs: Any, model: str, args: Any) -> Any:
    import numpy as np

    from judgekit.calibrate.ensemble_fit import fit_ensemble
    from judgekit.calibrate.measure import calibrate

    fitted = fit_ensemble(dev, outputs, "dev", rng=np.random.default_rng(0))
    return calibrate(
        held,
        outputs,
        rubric_ref=RUBRIC,
        rubric_hash="-",
        judge_model=model,
        judge_fingerprint=model,
        set_name="-",
        set_sha256="-",
        split="heldout",
        rng=np.random.default_rng(0),
        n_resamples=args.resamples,
        ensemble=fitted,
        dev_records=dev,
    )


def _alone(stage: Any, held: list, store: Any, args: Any) -> dict[str, Any]:
    """One judge deciding every held-out item on its own: a one-stage cascade."""
    import numpy as np

    from judgekit.calibrate.cascade_policy import cascade_agreement
    from judgekit.judging.cascade import cascade
    from judgekit.rubrics import load_rubric

    result = cascade([r.item for r in held], load_rubric(RUBRIC), [stage], store=store)
    scores = cascade_agreement(
        result, held, rng=np.random.default_rng(0), n_resamples=args.resamples
    )
    return {
        "result": result,
        "scores": scores,
        "tokens_per_item": result.stages[0].prompt_tokens / len(held),
    }


def measure(
    set_name: str, small_backend: Any, small: str, args: Any, *, one_prompt: bool = False
) -> dict[str, Any]:
    """``one_prompt``: the small judge is a replay (one verdict per item): one variant, one
    order, as the replayed judge was run."""
    import numpy as np

    from judgekit.backends.replay import ReplayBackend
    from judgekit.calibrate.cascade_policy import card_policy, card_variants, cascade_agreement
    from judgekit.calibrate.outputs import outputs_from_run
    from judgekit.calibrate.run import read_verdicts
    from judgekit.judging.aggregate import Controls
    from judgekit.judging.cascade import Stage, cascade
    from judgekit.judging.run import judge
    from judgekit.judging.store import ResultStore
    from judgekit.rubrics import load_rubric

    rubric = load_rubric(RUBRIC)
    store = ResultStore(args.store) if args.store else None
    dev, held = _splits(set_name, args.set_n.get(set_name, args.n))
    items = [r.item for r in dev + held]
    start = time.perf_counter()
    small_controls = Controls(swap=False) if one_prompt else None
    small_variants = ["direct"] if one_prompt else None
    small_run = judge(
        items,
        rubric,
        backend=small_backend,
        store=store,
        variants=small_variants,
        controls=small_controls,
    )
    small_seconds = time.perf_counter() - start
    n_fresh = sum(not j.from_store for j in small_run.judgments)
    small_card = _card(dev, held, outputs_from_run(small_run), small, args)
    out: dict[str, Any] = {
        "set": set_name,
        "small": small,
        "n_dev": len(dev),
        "n_heldout": len(held),
        "small_seconds": small_seconds,
        "small_fresh_judgments": n_fresh,
        "small_card": small_card,
    }
    small_all = Stage(
        small,
        small_backend,
        card_policy(small_card, None),
        card_variants(small_card),
        small_controls,
    )
    out["small_alone"] = _alone(small_all, held, store, args)
    big_stage = None
    if set_name in BIG:
        model, path, field = BIG[set_name]
        verdicts = read_verdicts(
            DATA / path, id_field="idx", verdict_field=field, label_map=PANDALM_MAP
        )
        big = ReplayBackend(verdicts, model=model, source=path)
        one_order = Controls(swap=False)
        big_stage = Stage(model, big, None, ["direct"], one_order)
        out["big_alone"] = _alone(big_stage, held, None, args)
    cascades = {}
    for target in TARGETS:
        stages = [
            Stage(
                small,
                small_backend,
                card_policy(small_card, target, args.alpha),
                card_variants(small_card),
                small_controls,
            ),
            *([big_stage] if big_stage is not None else []),
        ]
        result = cascade([r.item for r in held], rubric, stages, store=store)
        scores = cascade_agreement(
            result, held, rng=np.random.default_rng(0), n_resamples=args.resamples
        )
        cascades[target] = {"result": result, "scores": scores}
    out["cascades"] = cascades
    return out


def _rows(m: dict[str, Any]) -> list[dict[str, str]]:
    """Table rows: small alone, big alone, cascade per target, with the guarantee."""
    n = m["n_heldout"]
    small_tokens = m["small_alone"]["tokens_per_item"]
    rows = []

    def row(name: str, scores: dict, small_share: float, big_share: float, extra: str) -> None:
        big_tokens = m["big_alone"]["tokens_per_item"] if "big_alone" in m else 0.0
        rows.append(
            {
                "judge": name,
                "kappa (all items)": _ci(scores["kappa_all"]),
                "agreement (decided)": _ci(scores["agreement_decided"]),
                "coverage": f"{scores['coverage']:.2f}",
                "small tokens/item": f"{small_share * small_tokens:.0f}",
                "big tokens/item (est.)": f"{big_share * big_tokens:.0f}",
                "guarantee": extra,
                "_cost": big_share,
                "_kappa": scores["kappa_all"].estimate,
                "_agreement": scores["agreement_decided"].estimate
                if scores["agreement_decided"]
                else float("nan"),
            }
        )

    row(f"small alone ({m['small']})", m["small_alone"]["scores"], 1.0, 0.0, "-")
    if "big_alone" in m:
        row(f"big alone ({m['big_alone']['result'].stages[0].judge_model})",
            m["big_alone"]["scores"], 0.0, 1.0, "-")  # fmt: skip
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
    ece_plain = card.expected_calibration_error
    lines += [
        "",
        f"Chosen: **{section.chosen}** ({section.reason}). Learned-ensemble L2 "
        f"{section.model.l2:g} (5-fold CV on dev), n fit {section.model.n}.",
        f"Expected calibration error on held-out: learned ensemble "
        f"{section.expected_calibration_error:.3f}, plain mean "
        f"{ece_plain:.3f}."
        if ece_plain is not None
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    parser.add_argument("--store", type=Path, default=None, help="result store (sqlite)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--pandalm-7b-n",
        type=int,
        default=0,
        help="also: PandaLM-7B's released verdicts (replayed) as the small judge on this many "
        "PandaLM items per split, GPT-3.5 as the big one (0: skip)",
    )
    args = parser.parse_args()
    args.set_n = {k: int(v) for k, _, v in (x.partition("=") for x in args.set_n)}
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from judgekit.backends import create_backend
    from judgekit.backends.replay import ReplayBackend
    from judgekit.calibrate.run import read_verdicts

    backend = create_backend("vllm")
    try:
        measured = [measure(name, backend, "smollm2", args) for name in args.sets.split(",")]
    finally:
        backend.close()
    if args.pandalm_7b_n:
        verdicts = read_verdicts(
            DATA / "pandalm/judge_outputs/pandalm-7b-testset-v1.json",
            id_field="idx",
            verdict_field="pandalm_result",
            label_map=PANDALM_MAP,
        )
        replay = ReplayBackend(verdicts, model="pandalm-7b")
        wide = argparse.Namespace(**{**vars(args), "n": args.pandalm_7b_n, "store": None})
        measured.append(measure("pandalm", replay, "pandalm-7b", wide, one_prompt=True))
    args.out.mkdir(parents=True, exist_ok=True)
    text = "\n".join(markdown(m) for m in measured)
    (args.out / "cascade.md").write_text(text)
    plot(measured, args.out / "cascade.png")
    from judgekit.calibrate.plots import plot_reliability

    for m in measured:
        bins = m["small_card"].ensemble.reliability
        png = plot_reliability(
            [b.mean_probability for b in bins],
            [b.human_agreement for b in bins],
            [b.n for b in bins],
        )
        (args.out / f"cascade_reliability_{m['set']}_{m['small']}.png").write_bytes(png)
    dump = [
        {
            "set": m["set"],
            "small": m["small"],
            "small_seconds": m["small_seconds"],
            "small_fresh_judgments": m["small_fresh_judgments"],
            "small_card_ensemble": m["small_card"].ensemble.model_dump(mode="json"),
            "rows": [{k: v for k, v in r.items() if not k.startswith("_")} for r in _rows(m)],
            "cascade_stages": {
                str(t): [s.model_dump() for s in c["result"].stages]
                for t, c in m["cascades"].items()
            },
        }
        for m in measured
    ]
    (args.out / "cascade.json").write_text(json.dumps(dump, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
