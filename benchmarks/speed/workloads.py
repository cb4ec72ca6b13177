"""The items each workload judges, read with judgekit's own set loaders.

* pointwise: SummEval (``load_calibration_set("summeval")``), articles in file order, each with
  its 16 system summaries: the article is the shared context, the shared-prefix case.
* pairwise: the PandaLM test set (``load_calibration_set("pandalm")``), instruction (+ input)
  and two responses.

The data is looked up in ``$JUDGEKIT_DATA_DIR``, else ``<repo>/../shared/data``; without it the
workloads fall back to synthetic text and say so (numbers from it are not comparable).
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from benchmarks.speed.spec import REPO, BenchSpec
from judgekit.data.set_manifest import DatasetError
from judgekit.data.sets import CalibrationSet, load_calibration_set
from judgekit.schema import Item, PairwiseItem, PointwiseItem

#: What an empty PandaLM response (54 of 999 pairs) is judged as, the same on every system.
EMPTY = "(empty)"
DATA = Path(os.environ.get("JUDGEKIT_DATA_DIR") or REPO.parent / "shared" / "data")


def note(msg: str) -> None:
    """Progress and warnings go to stderr; the tables go to stdout."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Workload:
    """One workload's rubric and items, and where the items came from."""

    name: str
    rubric: str
    items: list[Item]
    source: str


def workloads(spec: BenchSpec, host: bool = False) -> list[Workload]:
    """The workloads ``spec`` names; the host row uses its own, larger sizes."""
    n_items, n_pairs = (spec.host_items, spec.host_pairs) if host else (spec.items, spec.pairs)
    build = {"pointwise": (pointwise_items, n_items), "pairwise": (pairwise_items, n_pairs)}
    out = []
    for name in spec.workloads:
        make, n = build[name]
        items, source = make(n)
        out.append(Workload(name, spec.rubrics[name], items, source))
    return out


def _source(title: str, path: Path) -> str:
    try:
        shown = path.resolve().relative_to(REPO.parent)
    except ValueError:
        shown = path
    return f"{title} ({shown})"


def _repeat(items: list[Item], n: int) -> list[Item]:
    """More items than the set has: repeat it with fresh ids and a marked question."""
    base = len(items)
    while len(items) < n:
        k = len(items) // base
        items += [
            i.model_copy(update={"id": f"r{k}-{i.id}", "question": f"({k}) {i.question}"})
            for i in items[:base]
        ]
    return items[:n]


@cache
def _dataset(name: str) -> CalibrationSet:
    """A set as judgekit loads it (verified against its manifest's sha256), read once."""
    metric = "relevance" if name == "summeval" else None  # any: the labels are not used
    return load_calibration_set(name, data_dir=DATA, metric=metric)


def pointwise_items(n: int) -> tuple[list[Item], str]:
    """SummEval summaries, 16 per article (a prefix group), articles in file order."""
    try:
        dataset = _dataset("summeval")
    except DatasetError as err:
        note(f"{err}: SYNTHETIC pointwise text (numbers are not comparable)")
        return synthetic_pointwise(n), "SYNTHETIC (SummEval not found)"
    items: list[Item] = [r.item for r in dataset.records]
    return _repeat(items, n), _source("SummEval", dataset.path)


def pairwise_items(n: int) -> tuple[list[Item], str]:
    """PandaLM pairs; an empty response becomes "(empty)" (every system gets the same text)."""
    try:
        dataset = _dataset("pandalm")
    except DatasetError as err:
        note(f"{err}: SYNTHETIC pairwise text (numbers are not comparable)")
        return synthetic_pairwise(n), "SYNTHETIC (PandaLM not found)"
    items: list[Item] = [
        r.item.model_copy(
            update={
                "answer_a": r.item.answer_a or "(empty)",
                "answer_b": r.item.answer_b or "(empty)",
            }
        )
        for r in dataset.records
        if isinstance(r.item, PairwiseItem)
    ]
    return _repeat(items, n), _source("PandaLM", dataset.path)


def _synthetic_words() -> list[str]:
    text = (REPO / "README.md").read_text() if (REPO / "README.md").is_file() else __doc__ or ""
    return re.findall(r"[A-Za-z]+", text) or ["lorem", "ipsum"]


def synthetic_pointwise(n: int) -> list[Item]:
    """Articles of 380 words shared by 16 summaries of 70, as SummEval is laid out."""
    words = _synthetic_words()
    return [
        PointwiseItem(
            id=f"syn-{i}",
            question="Summarize the following news article.",
            context=" ".join(words[(i // 16 * 7 + j) % len(words)] for j in range(380)),
            answer=" ".join(words[(i * 13 + j) % len(words)] for j in range(70)),
        )
        for i in range(n)
    ]


def synthetic_pairwise(n: int) -> list[Item]:
    words = _synthetic_words()
    return [
        PairwiseItem(
            id=f"syn-{i}",
            question=" ".join(words[(i * 3 + j) % len(words)] for j in range(30)),
            answer_a=" ".join(words[(i * 5 + j) % len(words)] for j in range(60)),
            answer_b=" ".join(words[(i * 11 + j) % len(words)] for j in range(60)),
        )
        for i in range(n)
    ]


def long_text(n_words: int) -> str:
    """Natural text for the limit prompt: SummEval's articles joined (or synthetic words)."""
    try:
        articles = list(dict.fromkeys(r.item.context for r in _dataset("summeval").records))
    except DatasetError:
        articles = [" ".join(_synthetic_words())]
    words: list[str] = []
    while len(words) < n_words:
        for article in articles:
            words += article.split()
            if len(words) >= n_words:
                break
    return " ".join(words[:n_words])


def warmup_items(mode: str, n: int = 4) -> list[Item]:
    """Items that share nothing with the workloads beyond the rubric's first tokens."""
    tag = uuid.uuid4().hex
    if mode == "pointwise":
        return [
            PointwiseItem(id=f"w{i}", question=f"{tag} warm-up {i}", answer="A short answer.")
            for i in range(n)
        ]
    return [
        PairwiseItem(id=f"w{i}", question=f"{tag} warm-up {i}", answer_a="Yes.", answer_b="No.")
        for i in range(n)
    ]


def workload_meta(spec: BenchSpec) -> dict[str, dict[str, object]]:
    """What the report says about each workload (its size, source, rubric and requests)."""
    variants = f"{len(spec.variants)} rubric variant(s) ({', '.join(spec.variants)})"
    meta: dict[str, dict[str, object]] = {
        "pointwise": {
            "items": spec.items,
            "unit": "items",
            "source": pointwise_items(1)[1] if "pointwise" in spec.workloads else "",
            "rubric": spec.rubrics["pointwise"],
            "requests_note": f"{variants} per item: one request per item per variant; items "
            "grouped 16 per article (shared prefix).",
        },
        "pairwise": {
            "items": spec.pairs,
            "unit": "pairs",
            "source": pairwise_items(1)[1] if "pairwise" in spec.workloads else "",
            "rubric": spec.rubrics["pairwise"],
            "requests_note": f"{variants}, both orders (AB, BA): 2 requests per pair per variant.",
        },
    }
    return meta
