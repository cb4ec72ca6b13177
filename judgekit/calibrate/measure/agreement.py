"""Agreement figures of one split: judge verdicts against the human consensus and annotators.

434 lines: one measuring class over the aligned arrays of a split; each method is one
figure of the card.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from judgekit.bias import (
    VarianceDecomposition,
    length_slope,
    pairwise_length_slope,
    position_stats,
    variance_decomposition,
    variant_agreement,
)
from judgekit.bias.length import human_preference
from judgekit.calibrate.measure.outputs import JudgeOutputs, preference_for_a
from judgekit.cards.model import (
    CeilingSummary,
    ConfusionTable,
    Interval,
    LabelType,
    LengthFigure,
    OrdinalAgreement,
    PositionFigures,
    ReliabilityBin,
    SplitName,
    VariantAgreement,
)
from judgekit.data.sets import CalibrationRecord
from judgekit.data.split import split_records
from judgekit.schema import PairwiseItem
from judgekit.stats import (
    ConfidenceInterval,
    bootstrap_ci,
    bootstrap_ci_2d,
    cohen_kappa,
    confusion_matrix,
    human_ceiling,
    kendall_tau,
    krippendorff_alpha,
    pearson,
    spearman,
)
from judgekit.stats.agreement import Weights
from judgekit.stats.bootstrap import ONE_GROUP

INVALID = "invalid"
RELIABILITY_BINS = 10


@dataclass(frozen=True)
class Joined:
    """Records (with a consensus) of the split, aligned with their judge rows (-1 = missing)."""

    records: list[CalibrationRecord]
    rows: np.ndarray
    n_split: int
    n_no_consensus: int
    n_groups: int


def join_split(
    records: Sequence[CalibrationRecord], outputs: JudgeOutputs, split: SplitName, fraction: float
) -> Joined:
    chosen = split_records(records, split, fraction)
    kept = [r for r in chosen if r.consensus is not None]
    row = {item_id: i for i, item_id in enumerate(outputs.item_ids)}
    rows = np.array([row.get(r.id, -1) for r in kept], dtype=int)
    return Joined(kept, rows, len(chosen), len(chosen) - len(kept), len({r.group for r in chosen}))


def infer_label_type(records: Sequence[CalibrationRecord], outputs: JudgeOutputs) -> LabelType:
    if records and isinstance(records[0].item, PairwiseItem):
        return "pairwise"
    return "binary" if len(outputs.labels) == 2 else "ordinal"


def _category(value: str | float, outputs: JudgeOutputs) -> str:
    """A human label as a category name: strings as they are, numbers via the label values."""
    if isinstance(value, str):
        return value
    for label, v in zip(outputs.labels, outputs.values, strict=True):
        if np.isclose(v, float(value)):
            return label
    return f"{float(value):g}"


def _nearest(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Index into ``scale`` of the value nearest each entry (NaN -> -1)."""
    finite = np.isfinite(values)
    idx = np.abs(np.where(finite, values, 0.0)[:, None] - scale[None, :]).argmin(axis=1)
    return np.where(finite, idx, -1)


class Calibrator:
    """Holds the aligned arrays of one calibration so the measurements stay small functions."""

    def __init__(
        self,
        joined: Joined,
        outputs: JudgeOutputs,
        label_type: LabelType,
        rng: np.random.Generator,
        n_resamples: int,
    ) -> None:
        self.outputs, self.label_type = outputs, label_type
        self.rng, self.n_resamples = rng, n_resamples
        self.notes: list[str] = []
        self.records = joined.records
        self.groups = np.array([r.group for r in self.records], dtype=object)
        present = joined.rows >= 0
        safe = np.where(present, joined.rows, 0)
        nan_rows = np.full((len(self.records), len(outputs.labels)), np.nan)
        self.rows = joined.rows
        self.probs = np.where(present[:, None], outputs.probs[safe], nan_rows)
        self.scores = np.where(present, outputs.scores[safe], np.nan)
        self.valid = np.isfinite(self.probs).all(axis=1)

        decided = outputs.decisions
        tie_code = "tie"
        judged = [
            (decided.labels[row] if decided.labels[row] is not None else tie_code)
            if row >= 0 and self.valid[i]
            else None
            for i, row in enumerate(joined.rows)
        ]
        if label_type == "ordinal":
            # Categories in scale order, so weighted kappas measure distance along the scale.
            order = np.argsort(outputs.values, kind="stable")
            self.scale = np.asarray(outputs.values, dtype=float)[order]
            self.categories = [outputs.labels[i] for i in order]
            self.human_idx = _nearest(
                np.array([float(r.consensus) for r in self.records]), self.scale
            )
        else:
            humans = {_category(r.consensus, outputs) for r in self.records}
            for r in self.records:
                humans |= {_category(h, outputs) for h in r.human if h is not None}
            self.categories = list(outputs.labels) + sorted(humans - set(outputs.labels))
        # A judge tie is a category of its own unless the labels have one: against a human A/B
        # label it is a disagreement, never a win for the first label.
        if any(j == tie_code for j in judged) and tie_code not in self.categories:
            self.categories.append(tie_code)
        code = {c: i for i, c in enumerate(self.categories)}
        if label_type != "ordinal":
            self.human_idx = np.array([code[_category(r.consensus, outputs)] for r in self.records])
        self.k = len(self.categories)
        self.judge_idx = np.array([code[j] if j is not None else -1 for j in judged], dtype=int)
        # decided: a valid verdict that is one of the rubric's labels (what agreement on decided
        # items and coverage are measured on). A tie the labels do not offer (a pair inside the
        # tie band of an A/B rubric, an exact pointwise tie) is undecided; a "tie" label is not.
        self.decided = np.array([j in outputs.labels for j in judged], dtype=bool)
        # "invalid" is the last category: it never matches a human label, so it is disagreement.
        self.judge_all = np.where(self.valid, self.judge_idx, self.k)

    # -- helpers ------------------------------------------------------------------------------

    def _boot(
        self,
        name: str,
        statistic: Callable[..., float],
        *arrays: np.ndarray,
        where: np.ndarray | None = None,
    ) -> Interval | None:
        """BCa interval resampling the records' groups (``where``: the mask the arrays were
        taken with), [-1, 1] around the estimate when they are one group, or None (with a note)
        when the data cannot support one."""
        n = len(arrays[0])
        groups = self.groups if where is None else self.groups[where]
        if n and len(set(groups)) == 1:
            # one cluster: the estimate stands, no interval (every statistic here is in [-1, 1])
            one = ConfidenceInterval(statistic(*arrays), -1.0, 1.0, 0.95, ONE_GROUP, 0, 0, 1)
            return Interval.of(one, n)
        try:
            ci = bootstrap_ci(
                statistic, *arrays, rng=self.rng, n_resamples=self.n_resamples, groups=groups
            )
        except ValueError as err:
            self.notes.append(f"{name}: not computed ({err})")
            return None
        return Interval.of(ci, n)

    def _kappa_all(self, x: np.ndarray, y: np.ndarray) -> float:
        """Kappa over the categories plus "invalid" (the judge's failures count against it)."""
        return cohen_kappa(x, y, labels=np.arange(self.k + 1))

    def _kappa_valid(self, x: np.ndarray, y: np.ndarray, weights: Weights = None) -> float:
        return cohen_kappa(x, y, labels=np.arange(self.k), weights=weights)

    # -- measurements -------------------------------------------------------------------------

    def kappas(self) -> tuple[Interval, Interval | None]:
        headline = self._boot("kappa", self._kappa_all, self.human_idx, self.judge_all)
        if headline is None:
            raise ValueError(f"the headline kappa is undefined on these data: {self.notes[-1]}")
        valid_only = self._boot(
            "kappa on decided verdicts",
            self._kappa_valid,
            self.human_idx[self.decided],
            self.judge_idx[self.decided],
            where=self.decided,
        )
        return headline, valid_only

    def confusion(self) -> ConfusionTable:
        counts = confusion_matrix(self.human_idx, self.judge_all, labels=np.arange(self.k + 1))
        return ConfusionTable(
            rows=self.categories,
            columns=[*self.categories, INVALID],
            counts=counts[: self.k].tolist(),
        )

    def human_matrix(self) -> np.ndarray:
        """Items x annotators on the category codes (ordinal: scale values), NaN = missing."""
        width = max((len(r.human) for r in self.records), default=0)
        out = np.full((len(self.records), width), np.nan)
        code = {c: i for i, c in enumerate(self.categories)}
        for i, r in enumerate(self.records):
            for j, h in enumerate(r.human):
                if h is None:
                    continue
                if self.label_type == "ordinal":
                    out[i, j] = self.scale[_nearest(np.array([float(h)]), self.scale)[0]]
                else:
                    out[i, j] = code[_category(h, self.outputs)]
        return out

    def human_mean(self) -> np.ndarray:
        """Mean annotator value per item (ordinal), the consensus where there are no annotations."""
        return np.array(
            [
                np.mean([float(h) for h in r.human if h is not None])
                if any(h is not None for h in r.human)
                else float(r.consensus)
                for r in self.records
            ]
        )

    def ordinal(self) -> OrdinalAgreement:
        """Weighted kappas on decided verdicts (a tie has no place on the scale); correlations
        of the expected score on every valid verdict."""
        d, v = self.decided, self.valid
        h, j = self.human_idx[d], self.judge_idx[d]
        mean, score = self.human_mean()[v], self.scores[v]
        return OrdinalAgreement(
            weighted_kappa_linear=self._boot(
                "linear weighted kappa",
                partial(self._kappa_valid, weights="linear"),
                h,
                j,
                where=d,
            ),
            weighted_kappa_quadratic=self._boot(
                "quadratic weighted kappa",
                partial(self._kappa_valid, weights="quadratic"),
                h,
                j,
                where=d,
            ),
            spearman=self._boot("spearman", spearman, score, mean, where=v),
            kendall=self._boot("kendall", kendall_tau, score, mean, where=v),
            pearson=self._boot("pearson", pearson, score, mean, where=v),
        )

    def alpha(self, humans: np.ndarray) -> dict[str, Interval]:
        """Krippendorff's alpha with the judge as one more rater (invalid = missing)."""
        if self.label_type == "ordinal":
            judge_rated = np.where(self.decided, self.scale[np.maximum(self.judge_idx, 0)], np.nan)
            rows = {
                "ordinal": np.vstack([humans.T, judge_rated]),
                "interval": np.vstack([humans.T, np.where(self.valid, self.scores, np.nan)]),
            }
        else:
            judge_rated = np.where(self.valid, self.judge_all, np.nan)
            rows = {"nominal": np.vstack([humans.T, judge_rated])}
        return self._alpha_cis(rows, krippendorff_alpha, "krippendorff alpha")

    def ceiling(self, humans: np.ndarray) -> CeilingSummary | None:
        if humans.shape[1] < 2:
            return None
        if self.label_type == "ordinal":
            kind, labels = "ordinal", self.scale
            judge = np.where(self.decided, self.scale[np.maximum(self.judge_idx, 0)], np.nan)
            handling = "invalid verdicts and ties left out (no place on an ordinal scale)"
        else:
            kind, labels = "categorical", np.arange(self.k + 1, dtype=float)
            judge = self.judge_all.astype(float)
            handling = "invalid verdicts and ties counted as disagreement (own categories)"
        try:
            c = human_ceiling(humans, judge, kind=kind, labels=labels)
        except ValueError as err:
            self.notes.append(f"human ceiling: not computed ({err})")
            return None
        return CeilingSummary(
            metric=c.metric,
            n_items=c.n_items,
            n_annotators=c.n_annotators,
            mean_pairwise_annotator=c.mean_pairwise_annotator,
            judge_vs_consensus=c.judge_vs_consensus,
            mean_loo_human=c.mean_loo_human,
            mean_loo_judge=c.mean_loo_judge,
            ratio=c.judge_vs_human_ratio,
            ties_dropped=c.n_consensus_ties_dropped,
            invalid_handling=handling,
        )

    def _aligned(self, arr: np.ndarray) -> np.ndarray:
        return np.where(self.rows >= 0, arr[np.maximum(self.rows, 0)], np.nan)

    def _variant_codes(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """A variant's category codes on this split under the run's decision rule (a tie is
        the tie category, invalid ``k``) and which of its verdicts are valid."""
        raw = self.outputs.variant_probs[name]
        probs = np.column_stack([self._aligned(raw[:, k]) for k in range(raw.shape[1])])
        decisions = self.outputs.decide(probs)
        valid = np.isfinite(probs).all(axis=1)
        code = {c: i for i, c in enumerate(self.categories)}
        codes = np.array(
            [
                code.get(label if label is not None else "tie", self.k) if ok else self.k
                for label, ok in zip(decisions.labels, valid, strict=True)
            ],
            dtype=int,
        )
        return codes, valid

    def per_variant(self) -> list[VariantAgreement]:
        """Kappa per prompt variant, each variant's labels read with the run's decision rule."""
        out = []
        for name in self.outputs.variant_probs:
            judged, valid = self._variant_codes(name)
            kappa = self._boot(f"kappa ({name})", self._kappa_all, self.human_idx, judged)
            rho = None
            if self.label_type == "ordinal":
                score = self._aligned(self.outputs.variant_scores[name])
                rho = self._boot(
                    f"spearman ({name})",
                    spearman,
                    score[valid],
                    self.human_mean()[valid],
                    where=valid,
                )
            out.append(
                VariantAgreement(
                    variant=name, n_invalid=int((~valid).sum()), kappa=kappa, spearman=rho
                )
            )
        return out

    def position(self) -> PositionFigures | None:
        if self.outputs.p_a_ab is None or self.outputs.p_a_ba is None:
            return None
        ab, ba = self._aligned(self.outputs.p_a_ab), self._aligned(self.outputs.p_a_ba)
        stats = position_stats(
            np.column_stack([ab, 1 - ab]), np.column_stack([ba, 1 - ba]), labels=("A", "B")
        )

        def interval(ci: ConfidenceInterval | None, n: int) -> Interval | None:
            return Interval.of(ci, n) if ci is not None else None

        return PositionFigures(
            flip_rate=interval(stats.flip_rate, stats.n_valid),
            first_pick_before=interval(stats.first_pick_before, stats.n_valid),
            first_pick_after=interval(stats.first_pick_after, stats.n_valid),
            n_valid=stats.n_valid,
            n_invalid=stats.n_invalid,
        )

    def length(self, scale: float | None = None, *, human: bool = False) -> LengthFigure | None:
        """Length slope of the verdicts; pairwise ``scale`` fixes the feature (a frozen model's),
        so slopes before and after a correction are in the same units. Pairwise ``human`` adds
        the human label as covariate (as the length model does); pointwise always has it."""
        lengths = self.outputs.lengths
        if lengths is None:
            return None
        rows = np.maximum(self.rows, 0)
        missing = self.rows < 0
        try:
            if lengths.ndim == 2:
                pref = preference_for_a(self.probs, self.outputs.labels)
                len_a = np.where(missing, np.nan, lengths[rows, 0])
                len_b = np.where(missing, np.nan, lengths[rows, 1])
                h = human_preference([r.consensus for r in self.records]) if human else None
                slope, low, high = pairwise_length_slope(pref, len_a, len_b, human=h, scale=scale)
                sd = "sd" if scale is None else f"{scale:.1f} (frozen dev sd)"
                given = ", one intercept per human label" if human else ""
                model = f"logit P(A) on tanh((len_a - len_b) / {sd}){given}; log-odds per unit"
            else:
                n_chars = np.where(missing, np.nan, lengths[rows])
                slope, low, high = length_slope(self.scores, n_chars, self.human_mean())
                model = "judge score on log length, human score as covariate; per e-fold"
        except ValueError as err:
            self.notes.append(f"length slope: not computed ({err})")
            return None
        n = int((self.valid & ~missing).sum())
        return LengthFigure(model=model, slope=slope, ci_low=low, ci_high=high, n=n)

    def variant_matrix(self) -> np.ndarray:
        """Items x variants scores on this split (NaN = invalid or missing)."""
        return np.column_stack([self._aligned(s) for s in self.outputs.variant_scores.values()])

    def variant_alpha(self) -> dict[str, Interval]:
        """Alpha with the variants as raters, on their verdicts and on their scores.

        Verdicts are each variant's labels under the run's decision rule (ties and invalid
        verdicts missing); the interval-level alpha on scores also sees variants that agree on
        the label but not on the confidence.
        """
        if len(self.outputs.variant_probs) < 2:
            return {}
        codes = np.column_stack([self._variant_codes(n)[0] for n in self.outputs.variant_probs])
        rated = np.where(codes < len(self.outputs.labels), codes, -1)
        if self.label_type == "ordinal":
            verdicts = np.where(rated >= 0, self.scale[np.maximum(rated, 0)], np.nan)
        else:
            verdicts = np.where(rated >= 0, rated, np.nan).astype(float)
        level = "ordinal" if self.label_type == "ordinal" else "nominal"
        rows = {level: verdicts.T, "interval": self.variant_matrix().T}
        return self._alpha_cis(
            rows, lambda r, lv: variant_agreement(r.T, lv), "alpha across variants"
        )

    def _alpha_cis(
        self, rows: dict[str, np.ndarray], alpha: Callable[[np.ndarray, str], float], what: str
    ) -> dict[str, Interval]:
        """Bootstrap CI (resampling the items' groups) of an alpha per measurement level; raters
        x items."""
        out = {}
        for level, data in rows.items():
            try:
                ci = bootstrap_ci_2d(
                    lambda r, lv=level: alpha(r, lv),
                    data,
                    rng=self.rng,
                    n_resamples=self.n_resamples,
                    resample_raters=False,
                    groups=self.groups,
                )
            except ValueError as err:
                self.notes.append(f"{what} ({level}): not computed ({err})")
                continue
            out[level] = Interval.of(ci, data.shape[1])
        return out

    def variance(self) -> VarianceDecomposition | None:
        """Item vs variant vs residual variance of the per-variant scores."""
        if len(self.outputs.variant_probs) < 2:
            return None
        try:
            return variance_decomposition(self.variant_matrix())
        except ValueError as err:
            self.notes.append(f"variance decomposition: not computed ({err})")
            return None

    def reliability(self) -> tuple[list[ReliabilityBin], float | None]:
        """Binned probability of the judge's predicted label vs how often humans agreed."""
        v = self.decided
        if not v.any():
            return [], None
        confidence = self.probs[v, self._label_columns()[self.judge_idx[v]]]
        agreed = (self.judge_idx[v] == self.human_idx[v]).astype(float)
        edges = np.linspace(0.0, 1.0, RELIABILITY_BINS + 1)
        which = np.minimum((confidence * RELIABILITY_BINS).astype(int), RELIABILITY_BINS - 1)
        bins, ece = [], 0.0
        for b in range(RELIABILITY_BINS):
            inside = which == b
            if not inside.any():
                continue
            p, a = float(confidence[inside].mean()), float(agreed[inside].mean())
            ece += inside.sum() / v.sum() * abs(p - a)
            bins.append(
                ReliabilityBin(
                    low=float(edges[b]),
                    high=float(edges[b + 1]),
                    n=int(inside.sum()),
                    mean_probability=p,
                    human_agreement=a,
                )
            )
        return bins, float(ece)

    def _label_columns(self) -> np.ndarray:
        """Category index -> column of ``probs`` (categories are the judge's labels first)."""
        return np.array(
            [self.outputs.labels.index(c) for c in self.categories[: len(self.outputs.labels)]]
        )
