"""Probing a rubric on a few items: is there label mass at its answer slot?

A judge that puts little probability on a rubric's labels right after the answer cue is not
unsure, it was asked the wrong way: the cue or a label's spelling does not fit the judge's
tokenizer or habits. ``probe_rubric`` judges a few items and reports the mass per variant and
criterion, so a new rubric is checked before it is calibrated or used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from judgekit.backends import Backend, JudgeSpec
from judgekit.judging.run import judge
from judgekit.rubrics import Rubric
from judgekit.rubrics.rubric import CHECK_PREFIX
from judgekit.schema import Item

#: Below this mean label mass a variant x criterion is flagged (the rubric's own min_label_mass,
#: usually 0.2, decides validity; a healthy answer slot holds far more than that).
DEFAULT_WARN_MASS = 0.5


@dataclass(frozen=True)
class ProbeRow:
    """Label mass of one variant x criterion over the probed judgments."""

    variant: str
    criterion: str | None
    n: int
    mean_mass: float
    min_mass: float
    n_invalid: int
    low: bool


def probe_rubric(
    rubric: Rubric,
    items: Sequence[Item],
    *,
    backend: Backend | JudgeSpec,
    warn_below: float = DEFAULT_WARN_MASS,
) -> list[ProbeRow]:
    """Judge ``items`` on every variant and criterion; one row per variant x criterion (a
    checklist's checks together as ``check``), ``low`` when the mean mass is below
    ``warn_below``."""
    run = judge(list(items), rubric, backend=backend)
    cells: dict[tuple[str, str | None], list[tuple[float, bool]]] = {}
    for j in run.judgments:
        criterion = j.criterion
        if rubric.manifest.checklist:
            criterion = CHECK_PREFIX
        cells.setdefault((j.variant, criterion), []).append((j.label_mass, j.valid))
    rows = []
    for (variant, criterion), found in cells.items():
        mass = np.array([m for m, _ in found])
        rows.append(
            ProbeRow(
                variant=variant,
                criterion=criterion,
                n=len(found),
                mean_mass=float(mass.mean()),
                min_mass=float(mass.min()),
                n_invalid=sum(not ok for _, ok in found),
                low=float(mass.mean()) < warn_below,
            )
        )
    names = [c.name for c in rubric.criteria]
    return sorted(
        rows,
        key=lambda r: (
            rubric.variants.index(r.variant) if r.variant in rubric.variants else len(names),
            names.index(r.criterion) if r.criterion in names else 0,
        ),
    )


def format_probe(rubric: Rubric, rows: Sequence[ProbeRow], warn_below: float) -> list[str]:
    """The probe as text: a row per variant x criterion, then a warning per low one."""
    lines = [f"{'variant':<24} {'criterion':<16} {'n':>4} {'mean mass':>9} {'min':>6} invalid"]
    for r in rows:
        lines.append(
            f"{r.variant:<24} {r.criterion or '-':<16} {r.n:>4} {r.mean_mass:>9.3f} "
            f"{r.min_mass:>6.3f} {r.n_invalid}"
        )
    for r in rows:
        if r.low:
            where = f"variant {r.variant!r}" + (
                f", criterion {r.criterion!r}" if r.criterion else ""
            )
            lines.append(
                f"WARNING {rubric.ref}: {where}: mean label mass {r.mean_mass:.3f} < "
                f"{warn_below:g}: the judge rarely answers with a label after the cue; check the "
                "answer cue and the labels' spelling (judgekit render shows the prompt)"
            )
    return lines
