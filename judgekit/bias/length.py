"""Length-bias measurement, correction, and the rule that decides whether to correct.

482 lines: the two models, their fits, their one correction and the rule that applies them
share the frozen stored form; split up, each part would import the others.

Pairwise: a logistic model of the preference for A on ``tanh(length difference / scale)``, the
length term of AlpacaEval 2's length-controlled win rate, with the human A/B label as covariate
when there is one; the corrected win rate is the one predicted at zero length difference.
Pointwise: OLS of the judge score on log length, with the human score as covariate. Without the
human covariate a slope also holds the real quality humans see in longer answers (on PandaLM
humans prefer the longer answer in 67% of decisive pairs), and removing it removes agreement.

Fitted models are frozen: ``correct`` never refits and the length scale / centre come from the
fit data, so judging a new candidate later cannot move earlier corrected scores. Models are plain
frozen dataclasses with ``to_dict`` / ``from_dict`` for storage in a calibration card. Invalid
rows (NaN) are excluded from fits and counted in ``n_invalid``; ``correct`` passes them on as NaN.

This module is the one length correction: runs, calibration and diff all call
:func:`correct_distributions`. Its rule: the *score* always changes; for pairs the A:B log-odds
move, so the distribution and the argmax label can change too; pointwise distributions and labels
stay as judged (only the expected score moves). Lengths are characters of the answer text.
Whether a calibration applies its model is :func:`length_decision`'s call, made on dev only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from scipy.special import expit, logit
from scipy.stats import norm
from scipy.stats import t as student_t

from judgekit.schema import Item, PairwiseItem

__all__ = [
    "LengthDecision",
    "LengthModel",
    "PairwiseLengthModel",
    "PointwiseLengthModel",
    "answer_lengths",
    "correct_distributions",
    "fit_pairwise_length",
    "fit_pointwise_length",
    "human_preference",
    "length_decision",
    "length_slope",
    "pairwise_length_slope",
    "slope_ci_bootstrap",
]

_P_CLIP = 1e-6
_LEVEL = 0.95
_MAX_NEWTON = 100
_NO_FIT = "logistic fit did not converge (preferences separable by length, or constant length gap?)"


def _vec(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def _aligned(**arrays: np.ndarray | None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """1-D float copies of the given arrays plus the mask of rows finite in all of them."""
    out = {name: _vec(a, name) for name, a in arrays.items() if a is not None}
    sizes = {a.shape[0] for a in out.values()}
    if len(sizes) != 1:
        raise ValueError(f"arrays differ in length: { {k: v.shape[0] for k, v in out.items()} }")
    valid = np.logical_and.reduce([np.isfinite(a) for a in out.values()])
    return out, valid


def _length_feature(len_a: np.ndarray, len_b: np.ndarray, scale: float) -> np.ndarray:
    """AlpacaEval's bounded length term: very long answers cannot dominate the fit."""
    return np.tanh((np.asarray(len_a, dtype=float) - np.asarray(len_b, dtype=float)) / scale)


def _coefficients(model: PairwiseLengthModel | PointwiseLengthModel) -> dict[str, Any]:
    """A model's stored form: every field but ``decision``, which a card keeps beside it."""
    return {f.name: getattr(model, f.name) for f in fields(model) if f.name != "decision"}


def _logistic_fit(design: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Newton-Raphson for logit(E[y]) = design @ b with targets y in [0, 1]; column 0 is 1.

    The Bernoulli log-likelihood is valid for fractional targets (quasi-likelihood), so soft
    preferences are used as they are. Returns the coefficients and the inverse observed Fisher
    information (the covariance of the coefficients).
    """
    mean_y = float(np.clip(y.mean(), _P_CLIP, 1 - _P_CLIP))
    beta = np.zeros(design.shape[1])
    beta[0] = logit(mean_y)

    def loglik(b: np.ndarray) -> float:
        eta = design @ b
        return float(np.sum(y * eta - np.logaddexp(0.0, eta)))

    current = loglik(beta)
    for _ in range(_MAX_NEWTON):
        mu = expit(design @ beta)
        info = design.T @ (design * (mu * (1 - mu))[:, None])
        try:
            step = np.linalg.solve(info, design.T @ (y - mu))
        except np.linalg.LinAlgError as err:
            raise ValueError(_NO_FIT) from err
        shrink = 1.0
        while loglik(beta + shrink * step) < current and shrink > 1e-8:
            shrink /= 2
        beta = beta + shrink * step
        current = loglik(beta)
        if np.max(np.abs(shrink * step)) < 1e-10:
            break
    else:
        raise ValueError(_NO_FIT)
    mu = expit(design @ beta)
    info = design.T @ (design * (mu * (1 - mu))[:, None])
    return beta, np.linalg.inv(info)


def human_preference(consensus: Sequence[str | float | None]) -> np.ndarray:
    """Human pairwise labels as the covariate of the pairwise fit: A +1, B -1, tie 0, None NaN."""
    side = {"A": 1.0, "B": -1.0, "tie": 0.0}
    out = np.full(len(consensus), np.nan)
    for i, label in enumerate(consensus):
        if label is None:
            continue
        if label not in side:
            raise ValueError(f"row {i}: human pairwise label {label!r} is not 'A', 'B' or 'tie'")
        out[i] = side[str(label)]
    return out


def _pairwise_design(x: np.ndarray, human: np.ndarray | None) -> np.ndarray:
    """Columns 1, x [, human, tie]: with the human label, one intercept per human class
    (A, B, tie) so the slope is the length effect within a class; column 1 is the slope's."""
    if human is None:
        return np.column_stack([np.ones_like(x), x])
    if not ((human > 0).any() and (human < 0).any()):
        raise ValueError("the human labels need both A and B preferences to condition on")
    columns = [np.ones_like(x), x, human]
    if (human == 0).any():
        columns.append((human == 0).astype(float))
    return np.column_stack(columns)


@dataclass(frozen=True)
class LengthDecision:
    """Whether a fitted length model is applied, decided on dev only (``length_decision``).

    ``cv_before`` / ``cv_after``: the dev split's agreement (``metric``) as judged and after
    correcting each of ``n_folds`` group folds with a model fitted on the other folds.
    """

    apply: bool
    reason: str
    metric: str | None = None
    cv_before: float | None = None
    cv_after: float | None = None
    n_folds: int = 0


@dataclass(frozen=True)
class PairwiseLengthModel:
    """Fitted ``logit(p_A) = intercept + slope * tanh((len_a - len_b) / scale)
    [+ human_coef * h + tie_coef * (h == 0)]``, h = +1 when humans prefer A, -1 B, 0 tie.

    ``slope`` is the length effect on the log-odds scale (positive: the judge favours the longer
    answer); with the human term it is the effect beyond what humans prefer (``intercept`` is
    then midway between the human-A and human-B classes). ``human_coef`` None: the marginal
    (AlpacaEval) model, as stored by cards made before the human term. ``slope_se`` comes from
    the observed Fisher information and the CI is Wald at 95%. It assumes Bernoulli variance, so
    for soft preferences (less spread than 0/1 outcomes) the interval is conservative.
    ``scale`` is frozen from the fit data. ``decision`` (not a coefficient; stored beside them)
    says whether a calibration applies the model.
    """

    intercept: float
    slope: float
    slope_se: float
    slope_ci_low: float
    slope_ci_high: float
    scale: float
    n: int
    n_invalid: int
    human_coef: float | None = None
    tie_coef: float | None = None
    decision: LengthDecision | None = None

    def correct(self, pref: np.ndarray, len_a: np.ndarray, len_b: np.ndarray) -> np.ndarray:
        """Per-item preference with the length term removed: logit(p) - slope * x.

        ``p`` is clipped to [1e-6, 1 - 1e-6] first, so hard 0/1 preferences move very little:
        the correction is meant for the judge's soft preferences. NaN rows stay NaN.
        """
        arrays, _ = _aligned(pref=pref, len_a=len_a, len_b=len_b)
        p = np.clip(arrays["pref"], _P_CLIP, 1 - _P_CLIP)
        x = _length_feature(arrays["len_a"], arrays["len_b"], self.scale)
        return expit(logit(p) - self.slope * x)

    def length_controlled_win_rate(
        self, pref: np.ndarray, len_a: np.ndarray, len_b: np.ndarray
    ) -> float:
        """Mean corrected preference for A over valid items: the win rate at zero length gap."""
        corrected = self.correct(pref, len_a, len_b)
        valid = np.isfinite(corrected)
        return float(corrected[valid].mean()) if valid.any() else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """The coefficients (without ``decision``)."""
        return _coefficients(self)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], decision: LengthDecision | None = None
    ) -> PairwiseLengthModel:
        return cls(**data, decision=decision)


def fit_pairwise_length(
    pref: np.ndarray,
    len_a: np.ndarray,
    len_b: np.ndarray,
    *,
    human: np.ndarray | None = None,
    scale: float | None = None,
) -> PairwiseLengthModel:
    """Fit the pairwise length model on soft preferences for A (probabilities in [0, 1]).

    ``human`` (``human_preference`` of the human labels; NaN rows are left out) adds one
    intercept per human class, so a judge that prefers long answers only as often as humans do
    gets a slope near 0. Without it (AlpacaEval's marginal model) the slope also holds the
    quality humans see in longer answers, and correcting it removes agreement. ``scale``
    defaults to the standard deviation of ``len_a - len_b`` over the valid fit rows; pass a
    stored scale to measure a slope on the same feature (e.g. before vs after correction).
    Quality that varies within a human class attenuates the slope towards 0, so ``correct``
    tends to under-correct.
    """
    arrays, valid = _aligned(pref=pref, len_a=len_a, len_b=len_b, human=human)
    y = arrays["pref"][valid]
    if y.size < 3:
        raise ValueError(f"need at least 3 valid rows, got {y.size}")
    if np.any((y < 0) | (y > 1)):
        raise ValueError("preferences must lie in [0, 1]")
    diff = arrays["len_a"][valid] - arrays["len_b"][valid]
    if scale is None:
        scale = float(np.std(diff))
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"length scale must be positive, got {scale} (all lengths equal?)")
    h = arrays["human"][valid] if human is not None else None
    beta, cov = _logistic_fit(_pairwise_design(np.tanh(diff / scale), h), y)
    se = float(np.sqrt(cov[1, 1]))
    z = float(norm.ppf(0.5 + _LEVEL / 2))
    return PairwiseLengthModel(
        intercept=float(beta[0]),
        slope=float(beta[1]),
        slope_se=se,
        slope_ci_low=float(beta[1] - z * se),
        slope_ci_high=float(beta[1] + z * se),
        scale=float(scale),
        n=int(valid.sum()),
        n_invalid=int((~valid).sum()),
        human_coef=float(beta[2]) if h is not None else None,
        tie_coef=float(beta[3]) if beta.size > 3 else None,
    )


def pairwise_length_slope(
    pref: np.ndarray,
    len_a: np.ndarray,
    len_b: np.ndarray,
    *,
    human: np.ndarray | None = None,
    scale: float | None = None,
) -> tuple[float, float, float]:
    """(slope, ci_low, ci_high) of the pairwise length effect, for before/after reports."""
    model = fit_pairwise_length(pref, len_a, len_b, human=human, scale=scale)
    return model.slope, model.slope_ci_low, model.slope_ci_high


def _pointwise_design(log_len: np.ndarray, centre: float, human: np.ndarray | None) -> np.ndarray:
    columns = [np.ones_like(log_len), log_len - centre]
    if human is not None:
        columns.append(human)
    return np.column_stack(columns)


@dataclass(frozen=True)
class PointwiseLengthModel:
    """Fitted ``score = intercept + slope * (log n_tokens - centre) [+ human_coef * human]``.

    ``slope`` is the score change per e-fold of length holding the human score fixed; its SE is
    the classical OLS one and the 95% CI uses Student's t. ``centre`` (the fit data's mean log
    length) is frozen so corrections do not depend on later data. ``decision`` as for pairs.
    """

    intercept: float
    slope: float
    slope_se: float
    slope_ci_low: float
    slope_ci_high: float
    human_coef: float | None
    centre: float
    n: int
    n_invalid: int
    decision: LengthDecision | None = None

    def correct(self, score: np.ndarray, n_tokens: np.ndarray) -> np.ndarray:
        """Score with the length effect removed: score - slope * (log n - centre)."""
        arrays, _ = _aligned(score=score, n_tokens=n_tokens)
        return arrays["score"] - self.slope * (np.log(arrays["n_tokens"]) - self.centre)

    def to_dict(self) -> dict[str, Any]:
        """The coefficients (without ``decision``)."""
        return _coefficients(self)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], decision: LengthDecision | None = None
    ) -> PointwiseLengthModel:
        return cls(**data, decision=decision)


def _pointwise_rows(
    score: np.ndarray, n_tokens: np.ndarray, human: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """Valid rows as (score, log length, human or None, number of invalid rows)."""
    arrays, valid = _aligned(score=score, n_tokens=n_tokens, human=human)
    if np.any(arrays["n_tokens"][valid] <= 0):
        raise ValueError("n_tokens must be positive")
    h = arrays["human"][valid] if human is not None else None
    return arrays["score"][valid], np.log(arrays["n_tokens"][valid]), h, int((~valid).sum())


def fit_pointwise_length(
    score: np.ndarray, n_tokens: np.ndarray, human: np.ndarray | None = None
) -> PointwiseLengthModel:
    """OLS of the judge's (expected) score on centred log length, plus the human score if given.

    Without ``human`` the slope also absorbs any real link between length and quality, so it
    overstates the bias; with it, only the length effect beyond human judgement is removed.
    """
    y, log_len, h, n_invalid = _pointwise_rows(score, n_tokens, human)
    k = 2 if h is None else 3
    if y.size <= k:
        raise ValueError(f"need more than {k} valid rows, got {y.size}")
    centre = float(log_len.mean())
    design = _pointwise_design(log_len, centre, h)
    n = y.size
    beta, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    if rank < k:
        raise ValueError("design is rank-deficient (constant length or human score?)")
    resid = y - design @ beta
    sigma2 = float(resid @ resid) / (n - k)
    se = float(np.sqrt(sigma2 * np.linalg.inv(design.T @ design)[1, 1]))
    tq = float(student_t.ppf(0.5 + _LEVEL / 2, n - k))
    return PointwiseLengthModel(
        intercept=float(beta[0]),
        slope=float(beta[1]),
        slope_se=se,
        slope_ci_low=float(beta[1] - tq * se),
        slope_ci_high=float(beta[1] + tq * se),
        human_coef=float(beta[2]) if h is not None else None,
        centre=centre,
        n=n,
        n_invalid=n_invalid,
    )


def slope_ci_bootstrap(
    score: np.ndarray,
    n_tokens: np.ndarray,
    human: np.ndarray | None,
    rng: np.random.Generator,
    n_resamples: int = 2000,
    level: float = _LEVEL,
) -> tuple[float, float]:
    """Percentile-bootstrap CI of the pointwise length slope, resampling items.

    A check on the classical OLS interval, which assumes homoscedastic errors; judge scores are
    bounded and often heteroscedastic. Degenerate resamples (rank-deficient) are skipped.
    """
    y, log_len, h, _ = _pointwise_rows(score, n_tokens, human)
    design = _pointwise_design(log_len, float(log_len.mean()), h)
    n, k = design.shape
    slopes = np.full(n_resamples, np.nan)
    for i, idx in enumerate(rng.integers(0, n, size=(n_resamples, n))):
        beta, _, rank, _ = np.linalg.lstsq(design[idx], y[idx], rcond=None)
        if rank == k:
            slopes[i] = beta[1]
    alpha = (1 - level) / 2
    low, high = np.nanquantile(slopes, [alpha, 1 - alpha])
    return float(low), float(high)


def length_slope(
    score: np.ndarray, n_tokens: np.ndarray, human: np.ndarray | None = None
) -> tuple[float, float, float]:
    """(slope, ci_low, ci_high) of score on log length, for "before vs after correction" reports."""
    model = fit_pointwise_length(score, n_tokens, human)
    return model.slope, model.slope_ci_low, model.slope_ci_high


LengthModel = PairwiseLengthModel | PointwiseLengthModel


def length_decision(
    model: LengthModel, cv: tuple[float, float] | str, *, metric: str, n_folds: int
) -> LengthDecision:
    """Apply ``model`` only if it has the human covariate, its slope's 95% CI excludes 0 and
    the dev split's cross-validated ``metric`` does not drop with the correction.

    ``cv`` is (as judged, after out-of-fold correction) on dev, or why it could not be measured.
    Everything here comes from dev, so held-out figures stay out of sample. Off by default on
    purpose: a slope with no measurable effect still tips verdicts that sit near 50:50, and a
    slope without the human covariate removes real quality.
    """
    slope = f"slope {model.slope:.3g} [{model.slope_ci_low:.3g}, {model.slope_ci_high:.3g}]"
    before, after = cv if isinstance(cv, tuple) else (None, None)

    def decided(apply: bool, reason: str) -> LengthDecision:
        return LengthDecision(apply, reason, metric, before, after, n_folds)

    if model.human_coef is None:
        return decided(False, "fitted without the human label: the slope also holds quality")
    if model.slope_ci_low <= 0 <= model.slope_ci_high:
        return decided(False, f"no measurable length effect on dev: {slope} covers 0")
    if before is None or after is None:
        return decided(False, f"dev cross-validation not measured: {cv}")
    folds = f"{n_folds} group folds on dev"
    if after < before:
        return decided(
            False, f"the correction lowers {metric} from {before:.3f} to {after:.3f} ({folds})"
        )
    return decided(
        True,
        f"{slope} excludes 0 and {metric} does not drop: {before:.3f} -> {after:.3f} ({folds})",
    )


def answer_lengths(items: Sequence[Item]) -> np.ndarray:
    """Characters per answer: (n,) for pointwise items, (n, 2) for pairs (A, B)."""
    return np.array(
        [
            [len(i.answer_a), len(i.answer_b)] if isinstance(i, PairwiseItem) else len(i.answer)
            for i in items
        ],
        dtype=float,
    )


def correct_distributions(
    probs: np.ndarray,
    scores: np.ndarray,
    labels: Sequence[str],
    values: Sequence[float],
    lengths: np.ndarray,
    model: LengthModel,
) -> tuple[np.ndarray, np.ndarray]:
    """(distributions, scores) with the frozen length effect removed; NaN rows stay NaN.

    Pairwise: each distribution's A:B log-odds move by -slope * tanh((len_a - len_b) / scale),
    half on each side, a tie label keeping its relative mass; with labels A and B only this is
    exactly ``PairwiseLengthModel.correct`` on P(A). Pointwise: the expected score moves by
    -slope * (log length - centre); the distribution is left as judged.
    """
    pairwise = isinstance(model, PairwiseLengthModel)
    if pairwise != (lengths.ndim == 2):
        raise ValueError(f"{type(model).__name__} does not fit these lengths {lengths.shape}")
    if isinstance(model, PointwiseLengthModel):
        return probs, model.correct(scores, lengths)
    a, b = list(labels).index("A"), list(labels).index("B")
    shift = 0.5 * model.slope * np.tanh((lengths[:, 0] - lengths[:, 1]) / model.scale)
    log_p = np.log(np.clip(probs, 1e-6, 1.0))
    log_p[:, a] -= shift
    log_p[:, b] += shift
    with np.errstate(invalid="ignore"):  # invalid (NaN) rows stay NaN
        corrected = np.exp(log_p - np.logaddexp.reduce(log_p, axis=1, keepdims=True))
    return corrected, corrected @ np.asarray(values, dtype=float)


LENGTH_UNIT = "characters of the answer text"
NO_DECISION = (
    "the card records no dev decision (made before judgekit decided length corrections on dev; "
    "a pairwise model of that time has no human covariate): recalibrate to apply it"
)


def stored_length_model(model: LengthModel) -> dict[str, Any]:
    """The form a card stores a frozen length model in, with its dev decision beside the
    coefficients (``load_length_model`` reads it back)."""
    kind = "pairwise" if isinstance(model, PairwiseLengthModel) else "pointwise"
    decision = model.decision or LengthDecision(apply=False, reason=NO_DECISION)
    return {
        "kind": kind,
        "fitted_on": "dev",
        "n": model.n,
        "length_unit": LENGTH_UNIT,
        "applied": decision.apply,
        "reason": decision.reason,
        "cross_validation": {
            "metric": decision.metric,
            "before": decision.cv_before,
            "after": decision.cv_after,
            "n_folds": decision.n_folds,
        },
        "coefficients": model.to_dict(),
    }


def load_length_model(stored: dict[str, Any] | None) -> LengthModel | None:
    """A stored frozen length model with its dev decision. A model stored before decisions
    existed (no ``applied`` field) loads as not applied (``NO_DECISION``)."""
    if stored is None:
        return None
    kinds = {"pairwise": PairwiseLengthModel, "pointwise": PointwiseLengthModel}
    decision = LengthDecision(apply=False, reason=NO_DECISION)
    if "applied" in stored:
        cv = stored["cross_validation"]
        decision = LengthDecision(
            stored["applied"], stored["reason"], cv["metric"], cv["before"], cv["after"],
            cv["n_folds"],
        )  # fmt: skip
    return kinds[stored["kind"]].from_dict(stored["coefficients"], decision)
