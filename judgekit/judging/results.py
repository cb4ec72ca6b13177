"""A finished judge run and its views: per judgment, per item, and the verdict rows written out.

``JudgeRun`` holds what a run produced and derives views from it; summaries, gates and the run
manifest are functions over it (``judging.summary``, ``ci.gates``, ``judging.run_manifest``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from judgekit.bias.ensemble import aggregate_variants, valid_variant_counts
from judgekit.bias.length import LengthModel, answer_lengths, correct_distributions
from judgekit.bias.position import unswap
from judgekit.judging.aggregate import Controls, ItemTable, item_table, per_variant, row_mean
from judgekit.judging.decide import Decisions, decide
from judgekit.rubrics import Rubric
from judgekit.schema import Item, ItemVerdict, JudgeIdentity, Judgment

if TYPE_CHECKING:
    from judgekit.judging.summary import RunSummary


@dataclass
class JudgeRun:
    """Everything a run produced: per-request judgments, per-item verdicts and timings."""

    rubric: Rubric
    judge: JudgeIdentity
    controls: Controls
    items: list[Item]
    judgments: list[Judgment]
    seconds: float
    length_model: LengthModel | None = None
    backend_stats: dict[str, Any] | None = None
    table: ItemTable = field(init=False)
    variant_probs: np.ndarray = field(init=False)
    item_probs: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.table = item_table(
            self.judgments,
            self.rubric.labels,
            [i.id for i in self.items],
            self.rubric.variants,
        )
        self.variant_probs = per_variant(self.table, self.controls)
        self.item_probs = aggregate_variants(self.variant_probs, method=self.controls.ensemble)

    @property
    def item_scores(self) -> np.ndarray:
        """Expected score per item (pointwise) or P(A preferred) (pairwise); NaN if invalid."""
        return self.item_probs @ np.asarray(self.rubric.values, dtype=float)

    @property
    def corrected(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(item distributions, item scores) after the frozen length correction, if a model is set.

        The rule is ``bias.length.correct_distributions``': scores change, and for pairs the
        distribution (so the label) too. Lengths are answer lengths in characters.
        """
        if self.length_model is None:
            return None
        return correct_distributions(
            self.item_probs,
            self.item_scores,
            self.rubric.labels,
            self.rubric.values,
            answer_lengths(self.items),
            self.length_model,
        )

    @property
    def corrected_scores(self) -> np.ndarray | None:
        """Item scores with the frozen length effect removed (None without a length model)."""
        corrected = self.corrected
        return None if corrected is None else corrected[1]

    @property
    def final_probs(self) -> np.ndarray:
        """Item distributions that labels are read from: length-corrected when a model is set."""
        corrected = self.corrected
        return self.item_probs if corrected is None else corrected[0]

    @property
    def final_scores(self) -> np.ndarray:
        """What summaries and gates use: length-corrected when a length model is given."""
        corrected = self.corrected
        return self.item_scores if corrected is None else corrected[1]

    @property
    def decisions(self) -> Decisions:
        """Verdict labels and ties, read from ``final_probs`` (see ``judging.decide``)."""
        return decide(
            self.final_probs,
            self.rubric.labels,
            self.rubric.manifest.mode,
            tie_band=self.controls.tie_band,
        )

    @property
    def valid_variants(self) -> np.ndarray:
        """Per item, how many variants the ensemble used (pairwise: both orders valid)."""
        return valid_variant_counts(self.variant_probs)

    def to_pandas(self) -> pd.DataFrame:
        """One row per judgment (item x variant x order), label probabilities as columns."""
        rows = []
        for j in self.judgments:
            row = j.model_dump(exclude={"label_probs", "engine_settings"})
            for label in self.rubric.labels:
                row[f"p_{label}"] = j.label_probs[label] if j.label_probs else math.nan
            rows.append(row)
        return pd.DataFrame(rows)

    def items_frame(self) -> pd.DataFrame:
        """One row per item: the aggregated distribution, score and verdict label."""
        frame = pd.DataFrame(
            self.item_probs, columns=[f"p_{label}" for label in self.rubric.labels]
        )
        frame.insert(0, "item_id", [item.id for item in self.items])
        frame["score"] = self.item_scores
        if (corrected := self.corrected_scores) is not None:
            frame["score_length_corrected"] = corrected
        decisions = self.decisions
        frame["label"] = pd.Series(decisions.labels, dtype=object)
        frame["tie"] = decisions.ties
        return frame

    def controls_applied(self) -> dict[str, str]:
        """Which bias controls shaped the item verdicts (swap only applies to pairs)."""
        swapped = self.rubric.manifest.mode == "pairwise" and self.controls.swap
        n_variants = len({j.variant for j in self.judgments})
        return {
            "position_swap": self.controls.swap_method if swapped else "off",
            "ensemble": f"{self.controls.ensemble} of {n_variants}" if n_variants > 1 else "off",
            "length": "frozen (from calibration)" if self.length_model is not None else "off",
        }

    def order_preferences(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Per item, P(A) in the AB order and (un-swapped) in BA, averaged over variants."""
        if not {"AB", "BA"} <= self.table.probs.keys():
            return None
        col = self.rubric.labels.index("A")
        ba = self.table.probs["BA"]
        ba = unswap(ba.reshape(-1, len(self.rubric.labels)), self.rubric.labels).reshape(ba.shape)
        return row_mean(self.table.probs["AB"][:, :, col]), row_mean(ba[:, :, col])

    def item_verdicts(self) -> list[ItemVerdict]:
        """One row per item, with per-order preferences and the controls that shaped it.

        Built from arrays, not from a frame, so an item without any valid verdict comes out as
        an invalid row (label None) rather than a NaN that fails validation.
        """
        n_judged: dict[str, int] = {}
        n_valid: dict[str, int] = {}
        for j in self.judgments:
            n_judged[j.item_id] = n_judged.get(j.item_id, 0) + 1
            n_valid[j.item_id] = n_valid.get(j.item_id, 0) + int(j.valid)
        orders = self.order_preferences()
        controls = self.controls_applied()
        decisions = self.decisions
        scores, corrected = self.item_scores, self.corrected_scores
        used = self.valid_variants
        n_variants = len(self.table.variants)
        verdicts = []
        for i, item in enumerate(self.items):
            valid = bool(np.isfinite(self.item_probs[i]).all())
            probs = (
                dict(zip(self.rubric.labels, map(float, self.item_probs[i]), strict=True))
                if valid
                else None
            )
            a = None if orders is None else _number(orders[0][i])
            b = None if orders is None else _number(orders[1][i])
            verdicts.append(
                ItemVerdict(
                    item_id=item.id,
                    rubric=self.rubric.name,
                    rubric_version=self.rubric.version,
                    rubric_hash=self.rubric.hash,
                    judge_model=self.judge.model,
                    label_probs=probs,
                    score=_number(scores[i]),
                    score_length_corrected=None if corrected is None else _number(corrected[i]),
                    label=decisions.labels[i],
                    tie=bool(decisions.ties[i]),
                    valid=valid,
                    n_judgments=n_judged.get(item.id, 0),
                    n_valid_judgments=n_valid.get(item.id, 0),
                    n_variants=n_variants,
                    n_valid_variants=int(used[i]),
                    partial=valid and int(used[i]) < n_variants,
                    p_a_ab=a,
                    p_a_ba=b,
                    flip=None if a is None or b is None else (a > 0.5) != (b > 0.5),
                    controls=controls,
                )
            )
        return verdicts

    # Deprecated in 0.2 (removed in 0.3): summaries and gates are functions over a run.

    def summary(self) -> RunSummary:
        """Deprecated: use ``judgekit.summarize(run)``."""
        from judgekit.judging.summary import summarize

        _deprecated("run.summary()", "judgekit.summarize(run)")
        return summarize(self)

    def assert_mean_at_least(self, minimum: float) -> None:
        """Deprecated: use ``judgekit.assert_mean_at_least(run, minimum)``."""
        from judgekit.ci import gates

        _deprecated("run.assert_mean_at_least()", "judgekit.assert_mean_at_least(run, ...)")
        gates.assert_mean_at_least(self, minimum)

    def assert_win_rate_at_least(self, minimum: float, label: str = "A") -> None:
        """Deprecated: use ``judgekit.assert_win_rate_at_least(run, minimum, label)``."""
        from judgekit.ci import gates

        _deprecated("run.assert_win_rate_at_least()", "judgekit.assert_win_rate_at_least(run, ...)")
        gates.assert_win_rate_at_least(self, minimum, label)

    def assert_invalid_rate_at_most(self, maximum: float) -> None:
        """Deprecated: use ``judgekit.assert_invalid_rate_at_most(run, maximum)``."""
        from judgekit.ci import gates

        _deprecated(
            "run.assert_invalid_rate_at_most()", "judgekit.assert_invalid_rate_at_most(run, ...)"
        )
        gates.assert_invalid_rate_at_most(self, maximum)


def _number(x: float) -> float | None:
    """A finite array value as a float, NaN as None (the JSON/pydantic form of "no value")."""
    return None if math.isnan(x) else float(x)


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated, use {new}", DeprecationWarning, stacklevel=3)
