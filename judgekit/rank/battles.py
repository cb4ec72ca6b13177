"""Battles: judged comparisons of two models on one question, as aligned arrays.

One row is one verdict on (question, model_a, model_b). ``outcome`` is the probability that A's
answer is better: 1 (A wins), 0 (B wins), 0.5 (a tie, and a tie is only ever a tie), or a
judge's P(A) in between. A row whose verdict is missing (abstained, unparseable, no label mass)
keeps ``outcome = NaN``: it is counted per model, never fitted and never turned into a label.
Rows on the same question form a cluster; intervals resample questions, not rows.

Optional per-row columns travel with the battles: style ``features`` (A minus B, see
``rank.style``), answer ``lengths`` (A, B) for the length-controlled win rate, a ``category``
for per-category tables, and ``flip`` (1.0 when the verdict changed with the answer order, 0.0
when it held, NaN when unknown) for the position-flip rate shown beside the ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

__all__ = ["Battles"]


def _codes(values: Sequence[str] | np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), sort=True)
    return codes.astype(np.intp), tuple(str(u) for u in uniques)


def _check_rows(what: str, values: np.ndarray, shape: tuple[int, int]) -> None:
    if values.shape != shape:
        raise ValueError(f"{what} have shape {values.shape}, expected {shape}")
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad.size:
        raise ValueError(f"row {bad[0]}: non-finite {what}")


@dataclass(frozen=True)
class Battles:
    """Aligned per-battle arrays (build with ``Battles.build``; fields are not copied)."""

    models: tuple[str, ...]
    questions: tuple[str, ...]
    question: np.ndarray
    model_a: np.ndarray
    model_b: np.ndarray
    outcome: np.ndarray
    weight: np.ndarray
    features: np.ndarray | None = None
    feature_names: tuple[str, ...] = ()
    category: np.ndarray | None = None
    lengths: np.ndarray | None = None
    flip: np.ndarray | None = None

    @classmethod
    def build(
        cls,
        question: Sequence[str],
        model_a: Sequence[str],
        model_b: Sequence[str],
        outcome: Sequence[float] | np.ndarray,
        *,
        weight: Sequence[float] | np.ndarray | None = None,
        features: np.ndarray | None = None,
        feature_names: Sequence[str] = (),
        category: Sequence[str] | None = None,
        lengths: np.ndarray | None = None,
        flip: Sequence[float] | np.ndarray | None = None,
    ) -> Battles:
        """Validate and encode; errors name the first bad row (0-based)."""
        n = len(question)
        out = np.asarray(outcome, dtype=float)
        w = np.ones(n) if weight is None else np.asarray(weight, dtype=float)
        sizes = {len(model_a), len(model_b), out.shape[0], w.shape[0]}
        if sizes != {n}:
            raise ValueError(f"battle columns differ in length: {sorted(sizes | {n})}")
        if n == 0:
            raise ValueError("no battles")
        bad = np.flatnonzero(~np.isnan(out) & ((out < 0) | (out > 1)))
        if bad.size:
            raise ValueError(f"row {bad[0]}: outcome {out[bad[0]]} is outside [0, 1]")
        bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
        if bad.size:
            raise ValueError(f"row {bad[0]}: weight {w[bad[0]]} is not a finite value >= 0")
        models, names = _codes(np.concatenate([np.asarray(model_a, object), model_b]))
        same = np.flatnonzero(models[:n] == models[n:])
        if same.size:
            raise ValueError(f"row {same[0]}: model {names[models[same[0]]]!r} against itself")
        q, questions = _codes(question)
        if features is not None:
            features = np.asarray(features, dtype=float)
            _check_rows("style features", features, (n, len(feature_names)))
        if lengths is not None:
            lengths = np.asarray(lengths, dtype=float)
            _check_rows("answer lengths", lengths, (n, 2))
        return cls(
            models=names,
            questions=questions,
            question=q,
            model_a=models[:n],
            model_b=models[n:],
            outcome=out,
            weight=w,
            features=features,
            feature_names=tuple(feature_names),
            category=None if category is None else np.asarray(category, dtype=object),
            lengths=lengths,
            flip=None if flip is None else np.asarray(flip, dtype=float),
        )

    def __len__(self) -> int:
        return int(self.question.shape[0])

    @property
    def valid(self) -> np.ndarray:
        """Rows with a verdict (and a positive weight)."""
        return ~np.isnan(self.outcome) & (self.weight > 0)

    @property
    def discrete(self) -> bool:
        """Every valid outcome is a win, a loss or a tie (the tie models need this)."""
        out = self.outcome[self.valid]
        return bool(np.isin(out, (0.0, 0.5, 1.0)).all())

    def subset(self, rows: np.ndarray) -> Battles:
        """The battles at ``rows`` (a mask or indices), re-encoded so unused names drop out."""
        idx = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows)

        def pick(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[idx]

        return Battles.build(
            np.asarray(self.questions, object)[self.question[idx]],
            np.asarray(self.models, object)[self.model_a[idx]],
            np.asarray(self.models, object)[self.model_b[idx]],
            self.outcome[idx],
            weight=self.weight[idx],
            features=pick(self.features),
            feature_names=self.feature_names,
            category=pick(self.category),
            lengths=pick(self.lengths),
            flip=pick(self.flip),
        )

    def with_features(self, features: np.ndarray, names: Sequence[str]) -> Battles:
        """The same battles with per-battle style features (A minus B, see ``rank.style``)."""
        features = np.asarray(features, dtype=float)
        _check_rows("style features", features, (len(self), len(names)))
        return replace(self, features=features, feature_names=tuple(names))

    def per_model_counts(self) -> pd.DataFrame:
        """Battles, invalid battles and questions per model (both sides counted)."""
        n, n_q = len(self.models), len(self.questions)
        model = np.r_[self.model_a, self.model_b]
        invalid = np.isnan(np.r_[self.outcome, self.outcome])
        seen = np.unique(model * n_q + np.r_[self.question, self.question])
        return pd.DataFrame(
            {
                "n_battles": np.bincount(model, minlength=n),
                "n_invalid": np.bincount(model, invalid, minlength=n).astype(int),
                "n_questions": np.bincount(seen // n_q, minlength=n),
            },
            index=pd.Index(self.models, name="model"),
        )
