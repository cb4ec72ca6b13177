"""The learned prompt-variant ensemble as a frozen model: fitted on dev by calibration
(``calibrate.fit.ensemble``), stored in a card, applied unchanged by every run that uses the card.

Inputs per ``variant|order`` column: the centred log-probabilities of the labels (floored at
1e-6; 0 where that prompt's verdict is invalid, i.e. no evidence either way); for pairs also
tanh((len_a - len_b) / ``length_scale``). An item with no valid column has no verdict (invalid),
never the intercept's label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from pydantic import Field
from scipy.special import log_softmax

from judgekit.schema import StrictModel

LOG_FLOOR = float(np.log(1e-6))


class LearnedEnsembleModel(StrictModel):
    """A multinomial logistic regression over the prompts' label log-probabilities."""

    kind: Literal["multinomial-logistic"] = "multinomial-logistic"
    labels: list[str]
    columns: list[str]
    length_scale: float | None
    features: list[str]
    coefficients: list[list[float]] = Field(description="features x labels")
    intercept: list[float]
    l2: float
    fitted_on: str
    n: int
    n_dropped: int = Field(description="Dev items left out of the fit (no label-set consensus).")
    dev_log_loss: float
    dev_cv_log_loss: dict[str, float] = Field(description="Out-of-fold log loss per L2 tried.")
    dev_cv_accuracy: float

    @property
    def variants(self) -> list[str]:
        """The prompt variants the model reads (a run must judge exactly these)."""
        return list(dict.fromkeys(c.rsplit("|", 1)[0] for c in self.columns))


def length_feature(lengths: np.ndarray | None, scale: float | None) -> np.ndarray | None:
    """tanh((len_a - len_b) / scale) for pairs; None for pointwise items or no scale."""
    if scale is None or lengths is None or lengths.ndim != 2:
        return None
    return np.tanh((lengths[:, 0].astype(float) - lengths[:, 1].astype(float)) / scale)


def features(
    order_probs: Mapping[str, np.ndarray],
    lengths: np.ndarray | None,
    columns: Sequence[str],
    length_scale: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Design matrix (items x features) and which items have at least one valid prompt."""
    if missing := [c for c in columns if c not in order_probs]:
        raise ValueError(f"the judge outputs lack prompts {missing} the ensemble was fitted on")
    n = len(next(iter(order_probs.values())))
    blocks, usable = [], np.zeros(n, dtype=bool)
    for column in columns:
        probs = order_probs[column]
        valid = np.isfinite(probs).all(axis=1)
        logp = np.maximum(
            np.log(np.where(valid[:, None], np.maximum(probs, 1e-300), 1.0)), LOG_FLOOR
        )
        centred = logp - logp.mean(axis=1, keepdims=True)
        blocks.append(np.where(valid[:, None], centred, 0.0))
        usable |= valid
    if (length := length_feature(lengths, length_scale)) is not None:
        blocks.append(np.nan_to_num(length)[:, None])
    return np.hstack(blocks), usable


def softmax_predict(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(x @ w + b, axis=1))


def learned_probs(
    model: LearnedEnsembleModel,
    order_probs: Mapping[str, np.ndarray],
    labels: Sequence[str],
    lengths: np.ndarray | None,
) -> np.ndarray:
    """The frozen model's distributions; NaN rows where no prompt gave a valid verdict."""
    if list(labels) != model.labels:
        raise ValueError(f"labels {list(labels)} differ from the model's {model.labels}")
    x, usable = features(order_probs, lengths, model.columns, model.length_scale)
    probs = softmax_predict(x, np.asarray(model.coefficients), np.asarray(model.intercept))
    return np.where(usable[:, None], probs, np.nan)
