"""Agreement between raters: kappas, Krippendorff's alpha, correlations, and the human ceiling.

Every function takes plain arrays and returns plain floats. Inputs are validated up front so a
degenerate case either has a documented value or raises ``ValueError``; none returns NaN.

Conventions shared by the chance-corrected coefficients (Cohen, Fleiss, Krippendorff): when the
expected disagreement is zero (every rating is the same single value) the observed disagreement is
necessarily zero too, and the coefficient is defined as ``1.0``. scikit-learn returns NaN with a
warning there and statsmodels divides 0 by 0; the ``krippendorff`` package raises.

441 lines: one family of coefficients sharing validation and conventions; split apart,
the conventions would have to be restated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

__all__ = [
    "HumanCeiling",
    "accuracy",
    "cohen_kappa",
    "confusion_matrix",
    "fleiss_kappa",
    "human_ceiling",
    "kendall_tau",
    "krippendorff_alpha",
    "pearson",
    "spearman",
]

Weights = Literal["linear", "quadratic"] | None
Level = Literal["nominal", "ordinal", "interval", "ratio"]
Kind = Literal["categorical", "ordinal", "interval"]


def _is_missing(v: object) -> bool:
    return v is None or (isinstance(v, float | np.floating) and bool(np.isnan(v)))


def _labels(*arrays: ArrayLike) -> tuple[np.ndarray, ...]:
    """Label arrays checked element by element: no missing value, one kind of value.

    ``np.asarray`` alone hides both problems: a NaN or None among strings becomes the category
    "nan" / "None", and ``[1, "2", 3]`` becomes the strings "1", "2", "3" (equal to [1, 2, 3]
    after the same coercion). Numeric arrays take a fast path; anything else is checked here.
    """
    out, kinds = [], set()
    for a in arrays:
        x = np.asarray(a) if isinstance(a, np.ndarray) else np.asarray(a, dtype=object)
        if x.dtype.kind in "biuf":
            if x.dtype.kind == "f" and np.isnan(x).any():
                raise ValueError("NaN in labels: drop missing pairs before computing agreement")
            kinds.add("number")
            out.append(x)
            continue
        for v in x.ravel().tolist():
            if _is_missing(v):
                raise ValueError(
                    f"{'None' if v is None else 'NaN'} in labels (a missing value): drop missing "
                    "pairs before computing agreement"
                )
            if isinstance(v, str | np.str_):
                kinds.add("text")
            elif isinstance(v, bool | int | float | np.number):
                kinds.add("number")
            else:
                raise ValueError(f"unsupported label {v!r} of type {type(v).__name__}")
        out.append(np.asarray(x.tolist()) if x.size else x)
    if len(kinds) > 1:
        raise ValueError(
            "labels mix text and numbers (e.g. '2' and 2): they are different labels; "
            "convert them to one type first"
        )
    return tuple(out)


def _pair(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate two paired 1-D label vectors: same non-zero length, no missing values."""
    x, y = _labels(a, b)
    if x.ndim != 1 or y.ndim != 1:
        raise ValueError(f"expected 1-D label vectors, got shapes {x.shape} and {y.shape}")
    if x.shape != y.shape:
        raise ValueError(f"paired inputs differ in length: {x.size} vs {y.size}")
    if x.size == 0:
        raise ValueError("empty input: agreement needs at least one paired item")
    return x, y


def _encode(values: np.ndarray, labels: Sequence | None) -> tuple[np.ndarray, int]:
    """Map values to codes 0..k-1 in the order of ``labels`` (sorted unique values if None)."""
    if labels is None:
        uniq, codes = np.unique(values, return_inverse=True)
        return codes.reshape(values.shape), uniq.size
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.size == 0:
        raise ValueError("labels must be a non-empty 1-D sequence")
    order = np.argsort(lab, kind="stable")
    sorted_lab = lab[order]
    if np.any(sorted_lab[1:] == sorted_lab[:-1]):
        raise ValueError(f"labels contain duplicates: {list(lab)}")
    pos = np.clip(np.searchsorted(sorted_lab, values), 0, lab.size - 1)
    unknown = sorted_lab[pos] != values
    if np.any(unknown):
        raise ValueError(f"values not in labels: {sorted(set(values[unknown].tolist()))}")
    return order[pos], lab.size


def confusion_matrix(a: ArrayLike, b: ArrayLike, labels: Sequence | None = None) -> np.ndarray:
    """Counts of (a, b) label pairs; rows follow ``a``, columns ``b``, both in ``labels`` order.

    Unlike scikit-learn, a value missing from ``labels`` raises instead of being dropped silently.
    """
    x, y = _pair(a, b)
    codes, k = _encode(np.concatenate([x, y]), labels)
    return np.bincount(codes[: x.size] * k + codes[x.size :], minlength=k * k).reshape(k, k)


def accuracy(a: ArrayLike, b: ArrayLike) -> float:
    """Raw agreement rate: the share of items on which both raters give the same label."""
    x, y = _pair(a, b)
    return float(np.mean(x == y))


def _kappa_from_confusion(conf: np.ndarray, weights: Weights) -> float:
    """Cohen's kappa from a k x k table, same formula as scikit-learn's cohen_kappa_score."""
    dist = np.abs(np.subtract.outer(np.arange(conf.shape[0]), np.arange(conf.shape[0])))
    if weights is None:
        w = (dist != 0).astype(float)
    elif weights == "linear":
        w = dist.astype(float)
    elif weights == "quadratic":
        w = dist.astype(float) ** 2
    else:
        raise ValueError(f"weights must be None, 'linear' or 'quadratic', got {weights!r}")
    expected = np.outer(conf.sum(axis=1), conf.sum(axis=0)) / conf.sum()
    expected_disagreement = float(np.sum(w * expected))
    if expected_disagreement == 0.0:
        # Both raters used one and the same label for every item, so they also agree perfectly.
        return 1.0
    return 1.0 - float(np.sum(w * conf)) / expected_disagreement


def cohen_kappa(
    a: ArrayLike,
    b: ArrayLike,
    labels: Sequence | None = None,
    weights: Weights = None,
) -> float:
    """Cohen's kappa: agreement of two raters corrected for what their label frequencies predict.

    Matches ``sklearn.metrics.cohen_kappa_score``. Weighted variants measure distance by position
    in ``labels`` (or in the sorted unique values), not by the label values themselves. When both
    raters use a single identical label throughout (chance agreement 1) the result is ``1.0``,
    where scikit-learn returns NaN; observed agreement below 1 cannot occur in that case.
    """
    return _kappa_from_confusion(confusion_matrix(a, b, labels), weights)


def fleiss_kappa(ratings: np.ndarray) -> float:
    """Fleiss' kappa for ``items x raters`` categorical labels, every item rated by every rater.

    Matches ``statsmodels.stats.inter_rater.fleiss_kappa`` on ``aggregate_raters(ratings)``.
    Missing ratings (NaN) raise: Fleiss' formula assumes a constant number of raters per item; use
    ``krippendorff_alpha`` for incomplete data. If every rating is the same label the result is
    ``1.0`` (statsmodels gives NaN).
    """
    r = (
        np.asarray(ratings)
        if isinstance(ratings, np.ndarray)
        else np.asarray(ratings, dtype=object)
    )
    if r.ndim != 2:
        raise ValueError(f"ratings must be 2-D (items x raters), got shape {r.shape}")
    n_items, n_raters = r.shape
    if n_items == 0:
        raise ValueError("empty input: Fleiss' kappa needs at least one item")
    if n_raters < 2:
        raise ValueError(f"Fleiss' kappa needs at least 2 raters per item, got {n_raters}")
    try:
        (r,) = _labels(r)
    except ValueError as err:
        raise ValueError(
            f"{err} (Fleiss' kappa needs complete data: use krippendorff_alpha for NaN)"
        ) from err
    codes, k = _encode(r.ravel(), None)
    item = np.repeat(np.arange(n_items), n_raters)
    counts = np.bincount(item * k + codes, minlength=n_items * k).reshape(n_items, k)
    p_cat = counts.sum(axis=0) / (n_items * n_raters)
    p_item = (np.sum(counts**2, axis=1) - n_raters) / (n_raters * (n_raters - 1))
    p_bar, p_e = float(p_item.mean()), float(np.sum(p_cat**2))
    if p_e == 1.0:
        return 1.0
    return (p_bar - p_e) / (1.0 - p_e)


def _distance_matrix(values: np.ndarray, n_c: np.ndarray, level: Level) -> np.ndarray:
    """Krippendorff's squared distance between every pair of observed values (not interval)."""
    if level == "nominal":
        return 1.0 - np.eye(values.size)
    if level == "ordinal":
        idx = np.arange(values.size)
        lo, hi = np.minimum.outer(idx, idx), np.maximum.outer(idx, idx)
        cum = np.concatenate([[0.0], np.cumsum(n_c)])
        between = cum[hi + 1] - cum[lo]
        return (between - (n_c[:, None] + n_c[None, :]) / 2.0) ** 2
    diff, total = np.subtract.outer(values, values), np.add.outer(values, values)
    return np.divide(diff, total, out=np.zeros_like(diff), where=total != 0) ** 2


def _interval_alpha(r: np.ndarray, present: np.ndarray) -> float:
    """Interval alpha from sums of squares, without a values x values matrix.

    Over ordered pairs, sum (x_i - x_j)^2 = 2 m SS, so the coincidence form reduces to
    1 - (n - 1) * sum_u(m_u SS_u / (m_u - 1)) / (n SS_total): exact, and linear in the data, which
    matters for continuous scores where every value is distinct. Alpha does not change under
    r -> (r - c) / s, so the values are centred and scaled to [-1, 1] first: squares of 1e200 would
    overflow to inf (and NaN) otherwise.
    """
    r = r / np.max(np.abs(r[present]))
    r = r - r[present].mean()
    spread = np.max(np.abs(r[present]))
    if spread == 0.0:
        return 1.0
    r = r / spread
    m = present.sum(axis=0)
    means = np.where(present, r, 0.0).sum(axis=0) / m
    ss_unit = np.where(present, (r - means) ** 2, 0.0).sum(axis=0)
    values = r[present]
    ss_total = float(np.sum((values - values.mean()) ** 2))
    if ss_total == 0.0:
        return 1.0
    n = values.size
    return 1.0 - (n - 1) * float(np.sum(m * ss_unit / (m - 1))) / (n * ss_total)


def krippendorff_alpha(ratings: np.ndarray, level: Level = "nominal") -> float:
    """Krippendorff's alpha for ``raters x items`` numeric ratings with NaN as missing.

    Same orientation and result as ``krippendorff.alpha(reliability_data=...)``. Items with fewer
    than two ratings carry no pairing information and are ignored; if none has two, raise. When all
    pairable ratings share one value (no expected disagreement) the result is ``1.0``, where the
    ``krippendorff`` package raises. The ratio level needs non-negative values. Nominal, ordinal
    and ratio build a matrix over distinct values, so use them on label-like data; interval is
    computed in linear time and suits continuous scores.
    """
    if level not in ("nominal", "ordinal", "interval", "ratio"):
        raise ValueError(f"level must be nominal, ordinal, interval or ratio, got {level!r}")
    r = np.asarray(ratings, dtype=float)
    if r.ndim != 2:
        raise ValueError(f"ratings must be 2-D (raters x items), got shape {r.shape}")
    if np.isinf(r).any():
        raise ValueError("ratings contain inf; use NaN for missing values")
    pairable = (~np.isnan(r)).sum(axis=0) >= 2
    if not pairable.any():
        raise ValueError("no item has two or more ratings: alpha is undefined")
    r = r[:, pairable]
    present = ~np.isnan(r)
    if level == "ratio" and np.any(r[present] < 0):
        raise ValueError("ratio level needs non-negative values")
    if level == "interval":
        return _interval_alpha(r, present)
    n_items = r.shape[1]
    item = np.broadcast_to(np.arange(n_items), r.shape)[present]
    values, codes = np.unique(r[present], return_inverse=True)
    k = values.size
    counts = np.bincount(item * k + codes, minlength=n_items * k).reshape(n_items, k).astype(float)
    inv = 1.0 / (present.sum(axis=0) - 1.0)
    coincidence = (counts * inv[:, None]).T @ counts - np.diag(inv @ counts)
    n_c = coincidence.sum(axis=1)
    expected = (np.outer(n_c, n_c) - np.diag(n_c)) / (n_c.sum() - 1.0)
    dist = _distance_matrix(values, n_c, level)
    expected_disagreement = float(np.sum(expected * dist))
    if expected_disagreement == 0.0:
        return 1.0
    return 1.0 - float(np.sum(coincidence * dist)) / expected_disagreement


def _numeric_pair(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate two paired finite 1-D vectors with at least two items and some variation."""
    u, v = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if u.ndim != 1 or v.ndim != 1:
        raise ValueError(f"expected 1-D vectors, got shapes {u.shape} and {v.shape}")
    if u.shape != v.shape:
        raise ValueError(f"paired inputs differ in length: {u.size} vs {v.size}")
    if u.size < 2:
        raise ValueError(f"a correlation needs at least 2 paired items, got {u.size}")
    if not (np.isfinite(u).all() and np.isfinite(v).all()):
        raise ValueError("NaN or inf in input: drop missing pairs before correlating")
    if np.ptp(u) == 0 or np.ptp(v) == 0:
        raise ValueError("constant input: the correlation is undefined")
    return u, v


def _unit_centred(u: np.ndarray) -> np.ndarray:
    """``u`` centred and scaled into [-1, 1] (scale first, so the mean cannot overflow)."""
    u = u / np.max(np.abs(u))
    u = u - u.mean()
    return u / np.max(np.abs(u))


def _pearson(u: np.ndarray, v: np.ndarray) -> float:
    """Pearson's r on centred, unit-scaled data: no overflow or underflow at extreme scales."""
    uc, vc = _unit_centred(u), _unit_centred(v)
    r = float(uc @ vc) / float(np.sqrt(uc @ uc) * np.sqrt(vc @ vc))
    if not np.isfinite(r):
        raise ValueError("the correlation is not a finite number for this input")
    return min(1.0, max(-1.0, r))


def pearson(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson correlation; constant input raises instead of scipy's NaN with a warning."""
    return _pearson(*_numeric_pair(x, y))


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman rank correlation (average ranks for ties), as ``scipy.stats.spearmanr``."""
    u, v = _numeric_pair(x, y)
    return _pearson(sps.rankdata(u), sps.rankdata(v))


def kendall_tau(x: ArrayLike, y: ArrayLike) -> float:
    """Kendall's tau-b (tie-corrected), as ``scipy.stats.kendalltau``."""
    u, v = _numeric_pair(x, y)
    return float(sps.kendalltau(u, v).statistic)


@dataclass(frozen=True)
class HumanCeiling:
    """How well a judge agrees with humans, next to how well humans agree with each other.

    ``loo_human[r]`` is annotator r against the consensus (majority, or mean for interval data) of
    the other annotators; ``loo_judge[r]`` is the judge against that same consensus on the same
    items. ``judge_vs_human_ratio`` = mean(loo_judge) / mean(loo_human): about 1 means the judge
    is as close to the human consensus as a typical human is.
    """

    kind: str
    metric: str
    n_items: int
    n_annotators: int
    annotator_pairs: tuple[tuple[int, int], ...]
    pairwise_annotator: tuple[float, ...]
    mean_pairwise_annotator: float
    judge_vs_annotator: tuple[float, ...]
    mean_judge_vs_annotator: float
    judge_vs_consensus: float
    n_consensus_items: int
    n_consensus_ties_dropped: int
    loo_human: tuple[float, ...]
    loo_judge: tuple[float, ...]
    loo_n_items: tuple[int, ...]
    loo_ties_dropped: tuple[int, ...]
    mean_loo_human: float
    mean_loo_judge: float
    judge_vs_human_ratio: float


def _consensus(
    ratings: np.ndarray, labels: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-item consensus of ``items x raters`` ratings: (values, defined mask, ties dropped).

    With ``labels`` the consensus is the majority label and items whose top count is tied are
    dropped; without, it is the mean of the available ratings. Items with no rating are undefined.
    """
    present = ~np.isnan(ratings)
    rated = present.any(axis=1)
    if labels is None:
        sums = np.where(present, ratings, 0.0).sum(axis=1)
        return sums / np.maximum(present.sum(axis=1), 1), rated, 0
    k = labels.size
    codes = np.searchsorted(labels, np.where(present, ratings, labels[0]))
    item = np.broadcast_to(np.arange(ratings.shape[0])[:, None], ratings.shape)
    counts = np.bincount((item * k + codes)[present], minlength=ratings.shape[0] * k)
    counts = counts.reshape(ratings.shape[0], k)
    top = counts.max(axis=1)
    tied = rated & ((counts == top[:, None]).sum(axis=1) > 1)
    return labels[counts.argmax(axis=1)], rated & ~tied, int(tied.sum())


def human_ceiling(
    annotators: np.ndarray,
    judge: np.ndarray,
    *,
    kind: Kind,
    labels: Sequence | None = None,
) -> HumanCeiling:
    """Compare judge-human agreement with human-human agreement on the same items.

    ``annotators`` is ``items x raters`` with NaN for missing; ``judge`` has one value per item (NaN
    = no verdict, the item is left out of every judge comparison). The agreement metric is Cohen's
    kappa for ``categorical``, quadratic-weighted kappa for ``ordinal`` (weights follow ``labels``
    order, default sorted values), Pearson for ``interval``. Each comparison uses only the items
    both sides rated; annotator pairs sharing fewer than two items are skipped. Majority ties are
    dropped and counted. Raises if the mean human leave-one-out agreement is not positive, because
    the ratio would then be meaningless.
    """
    ann = np.asarray(annotators, dtype=float)
    jdg = np.asarray(judge, dtype=float)
    if ann.ndim != 2:
        raise ValueError(f"annotators must be 2-D (items x raters), got shape {ann.shape}")
    n_items, n_raters = ann.shape
    if n_items == 0:
        raise ValueError("empty input: human_ceiling needs at least one item")
    if n_raters < 2:
        raise ValueError(f"human_ceiling needs at least 2 annotators, got {n_raters}")
    if jdg.shape != (n_items,):
        raise ValueError(f"judge must have one value per item ({n_items}), got shape {jdg.shape}")
    if np.isinf(ann).any() or np.isinf(jdg).any():
        raise ValueError("inf in ratings; use NaN for missing values")

    metric_name, agree, lab = _ceiling_metric(kind, ann, jdg, labels)

    def compare(x: np.ndarray, y: np.ndarray, what: str) -> float:
        both = ~np.isnan(x) & ~np.isnan(y)
        try:
            return agree(x[both], y[both])
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from err

    pairs, pairwise = [], []
    for i, j in combinations(range(n_raters), 2):
        if np.sum(~np.isnan(ann[:, i]) & ~np.isnan(ann[:, j])) >= 2:
            pairs.append((i, j))
            pairwise.append(compare(ann[:, i], ann[:, j], f"annotators {i} and {j}"))
    if not pairs:
        raise ValueError("no pair of annotators shares two or more items")
    judge_each = [compare(jdg, ann[:, r], f"judge vs annotator {r}") for r in range(n_raters)]

    cons, ok, ties = _consensus(ann, lab)
    judge_cons = compare(jdg, np.where(ok, cons, np.nan), "judge vs consensus")

    loo_h, loo_j, loo_n, loo_ties = [], [], [], []
    for r in range(n_raters):
        others, others_ok, others_ties = _consensus(np.delete(ann, r, axis=1), lab)
        keep = others_ok & ~np.isnan(ann[:, r]) & ~np.isnan(jdg)
        target = np.where(keep, others, np.nan)
        loo_h.append(compare(ann[:, r], target, f"annotator {r} vs the others"))
        loo_j.append(compare(jdg, target, f"judge vs consensus without annotator {r}"))
        loo_n.append(int(keep.sum()))
        loo_ties.append(others_ties)

    mean_h, mean_j = float(np.mean(loo_h)), float(np.mean(loo_j))
    if mean_h <= 0.0:
        raise ValueError(
            f"mean human leave-one-out {metric_name} is {mean_h:.3f} <= 0: humans do not agree "
            "beyond chance, so a judge/human ratio is meaningless"
        )
    return HumanCeiling(
        kind=kind,
        metric=metric_name,
        n_items=n_items,
        n_annotators=n_raters,
        annotator_pairs=tuple(pairs),
        pairwise_annotator=tuple(pairwise),
        mean_pairwise_annotator=float(np.mean(pairwise)),
        judge_vs_annotator=tuple(judge_each),
        mean_judge_vs_annotator=float(np.mean(judge_each)),
        judge_vs_consensus=judge_cons,
        n_consensus_items=int(np.sum(ok & ~np.isnan(jdg))),
        n_consensus_ties_dropped=ties,
        loo_human=tuple(loo_h),
        loo_judge=tuple(loo_j),
        loo_n_items=tuple(loo_n),
        loo_ties_dropped=tuple(loo_ties),
        mean_loo_human=mean_h,
        mean_loo_judge=mean_j,
        judge_vs_human_ratio=mean_j / mean_h,
    )


def _ceiling_metric(
    kind: Kind, ann: np.ndarray, jdg: np.ndarray, labels: Sequence | None
) -> tuple[str, Callable[[np.ndarray, np.ndarray], float], np.ndarray | None]:
    """Pick the agreement metric for ``kind`` and the sorted label set the consensus uses."""
    if kind == "interval":
        return "pearson", pearson, None
    if kind not in ("categorical", "ordinal"):
        raise ValueError(f"kind must be categorical, ordinal or interval, got {kind!r}")
    observed = np.concatenate([ann[~np.isnan(ann)], jdg[~np.isnan(jdg)]])
    lab_seq = np.unique(observed) if labels is None else np.asarray(labels, dtype=float)
    if labels is not None:
        _encode(observed, lab_seq)  # raises on values outside labels
    weights: Weights = "quadratic" if kind == "ordinal" else None

    def agree(x: np.ndarray, y: np.ndarray) -> float:
        return cohen_kappa(x, y, lab_seq, weights)

    name = "quadratic-weighted kappa" if kind == "ordinal" else "cohen kappa"
    return name, agree, np.sort(lab_seq)
