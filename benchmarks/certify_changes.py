"""Changes certified on the embedded judge (issue 24.4): operational changes that should be SAFE,
deliberately harmful ones that should be NOT SAFE, and overall_quality v1 -> v2 on the pointwise
sets. Needs the engine (run under the shared lock) and ../shared/data.

    PYTHONPATH=. python benchmarks/certify_changes.py                      # every change
    PYTHONPATH=. python benchmarks/certify_changes.py --only batch,dtype    # some

Operational changes and harms: 40 held-out LLMBar-Natural pairs, the ``direct`` variant, float32
reference. overall_quality: 60 held-out items, at most 2 per article (SummEval relevance,
Newsroom relevance), every variant. Each certificate is written to
``benchmarks/results/certify/NAME.json`` and the table to ``benchmarks/results/certify.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from judgekit.audit.certify import CertifyOptions, JudgeConfig, certify_change
from judgekit.backends import VLLMJudge
from judgekit.data.sets import CalibrationSet, load_calibration_set
from judgekit.data.split import split_records
from judgekit.rubrics.load import builtin_rubrics_dir

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"
SWAPPED = "pairwise_preference_swapped@v1"
INVERTED_CUE = "overall_quality_inverted_cue@v1"


@dataclass(frozen=True)
class Case:
    """One certification: the set, the reference and the changes to it."""

    set_name: str
    rubric: str
    changes: list[str]
    variants: list[str] | None = None
    metric: str | None = None
    limit: int = 40
    per_group: int | None = None
    expected: str = "SAFE"
    note: str = ""
    reference: dict = field(default_factory=dict)


PAIRS = {"set_name": "llmbar_natural", "rubric": "pairwise_preference@v1", "variants": ["direct"]}
CASES = {
    "batch": Case(**PAIRS, changes=["batch_size=64"]),
    "block": Case(**PAIRS, changes=["block_size=64"], note="KV block 32 -> 64"),
    "block16": Case(
        **PAIRS, changes=["block_size=16"], expected="refused", note="KV block 32 -> 16"
    ),
    "dtype": Case(**PAIRS, changes=["dtype=bfloat16"], note="bf16 emulated on AVX2"),
    "harm_swapped": Case(
        **PAIRS,
        changes=[f"rubric={SWAPPED}"],
        expected="NOT SAFE",
        note="templates show answer B as A and A as B, labels unchanged",
    ),
    "harm_mass": Case(
        **PAIRS,
        changes=["min_label_mass=0.999"],
        expected="NOT SAFE",
        note="validity threshold no verdict reaches",
    ),
    "harm_cue": Case(
        set_name="newsroom",
        rubric="overall_quality@v1",
        changes=[f"rubric={INVERTED_CUE}"],
        variants=["direct"],
        metric="relevance",
        limit=60,
        per_group=2,
        expected="NOT SAFE",
        note="answer cue 'Score:' -> 'Score (1 = excellent, 5 = unusable):'",
    ),
    "oq_summeval": Case(
        set_name="summeval",
        rubric="overall_quality@v1",
        changes=["rubric=overall_quality@v2"],
        metric="relevance",
        limit=60,
        per_group=2,
        expected="?",
    ),
    "oq_newsroom": Case(
        set_name="newsroom",
        rubric="overall_quality@v1",
        changes=["rubric=overall_quality@v2"],
        metric="relevance",
        limit=60,
        per_group=2,
        expected="?",
    ),
}


def _copy(root: Path, source: str, target: str, manifest_edit: tuple[str, str] = ("", "")) -> Path:
    """Copy built-in ``source@v1`` to ``root/target/v1`` under the new name (and one manifest
    edit)."""
    folder = root / target / "v1"
    shutil.copytree(builtin_rubrics_dir() / source / "v1", folder)
    manifest = folder / "rubric.yaml"
    text = manifest.read_text().replace(f"name: {source}", f"name: {target}")
    manifest.write_text(text.replace(*manifest_edit))
    return folder


def harmful_rubrics(root: Path) -> Path:
    """The deliberately harmful rubrics. pairwise_preference_swapped: answer B shown in slot A
    and A in slot B, so a judge that reads the answers reverses its verdicts (the labels still
    name the slots). overall_quality_inverted_cue: the answer cue says 1 is excellent while the
    labels still mean 1 = unusable."""
    swapped = _copy(root, "pairwise_preference", SWAPPED.split("@")[0])
    for template in swapped.glob("*.user.j2"):
        body = template.read_text().replace("answer_a", "ANSWER_X").replace("answer_b", "answer_a")
        template.write_text(body.replace("ANSWER_X", "answer_b"))
    cue = ('answer_cue: "Score:"', 'answer_cue: "Score (1 = excellent, 5 = unusable):"')
    _copy(root, "overall_quality", INVERTED_CUE.split("@")[0], cue)
    return root


def dataset(case: Case) -> CalibrationSet:
    """The set; with ``per_group``, the held-out records kept to at most that many per group."""
    loaded = load_calibration_set(case.set_name, data_dir=DATA, metric=case.metric)
    if case.per_group is None:
        return loaded
    taken: dict[str, int] = {}
    kept = []
    for record in split_records(loaded.records, "heldout"):
        if taken.get(record.group, 0) < case.per_group:
            taken[record.group] = taken.get(record.group, 0) + 1
            kept.append(record)
    return replace(loaded, records=tuple(kept))


def certify(name: str, case: Case, rubrics: Path) -> dict:
    reference = JudgeConfig(
        judge=VLLMJudge(dtype="float32"), rubric=case.rubric, variants=case.variants
    )
    start = time.perf_counter()
    try:
        cert = certify_change(
            dataset(case),
            reference,
            reference.changed(case.changes),
            options=CertifyOptions(limit=case.limit, metric=case.metric),
            data_dir=DATA,
            rubric_paths=[rubrics],
        )
    except Exception as err:  # an engine that refuses the change is a result too
        return {"name": name, "error": f"{type(err).__name__}: {err}"[:600], "case": case.__dict__}
    out = RESULTS / "certify" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(cert.model_dump_json(indent=2) + "\n")
    return {
        "name": name,
        "seconds": round(time.perf_counter() - start, 1),
        "case": case.__dict__,
        "certificate": json.loads(cert.model_dump_json()),
    }


def row(result: dict) -> str:
    case = result["case"]
    change = "; ".join(case["changes"]) + (f" ({case['note']})" if case["note"] else "")
    where = case["set_name"] + (f":{case['metric']}" if case["metric"] else "")
    if "error" in result:
        error = result["error"][:160]
        return f"| {change} | {where} | - | refused: {error} | | | | | {case['expected']} |"
    c = result["certificate"]

    def fmt(key: str) -> str:
        value = c[key]
        return (
            "n/a"
            if value is None
            else f"{value['estimate']:.3f} [{value['low']:.3f}, {value['high']:.3f}]"
        )

    return (
        f"| {change} | {where} | {c['n']} / {c['n_groups']} | {c['rule']['metric']} "
        f"{fmt('agreement_reference')} -> {fmt('agreement_changed')} | "
        f"{fmt('agreement_difference')} | {fmt('flip_rate')} | {fmt('verdict_kappa')} | "
        f"{fmt('score_shift')} | **{c['verdict']}** (expected {case['expected']}) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(CASES))
    args = parser.parse_args()
    results_file = RESULTS / "certify.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    with tempfile.TemporaryDirectory() as tmp:
        rubrics = harmful_rubrics(Path(tmp))
        for name in args.only.split(","):
            results[name] = certify(name, CASES[name], rubrics)
            print(row(results[name]), flush=True)
            results_file.write_text(json.dumps(results, indent=2))
    head = (
        "| change | set | n / groups | agreement ref -> changed | difference | flip rate | "
        "verdict kappa | score shift | verdict |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    table = head + "".join(row(results[n]) + "\n" for n in CASES if n in results)
    (RESULTS / "certify.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
