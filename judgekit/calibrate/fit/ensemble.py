"""A learned, frozen prompt-variant ensemble: fitted on dev, applied unchanged everywhere else.

A plain mean of the variants lets a variant that only adds noise (or always picks the first
answer) drag the others down. Here a small multinomial logistic regression maps each prompt's
label log-probabilities (every variant, both answer orders) and, for pairs, the length difference
to one calibrated distribution; L2 shrinks the weight of uninformative prompts towards zero.
The L2 strength is chosen by K-fold cross-validation on dev, and the out-of-fold predictions are
what dev-side choices (which combination to use, the abstention threshold) are made on, so no
choice is scored on the data that fitted it. Folds split by group (the record's ``group``: its
question or article), never inside one: an item whose sibling trained the fold's model would be
scored on what the model has in effect seen. numpy/scipy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

from judgekit.bias import learned
from judgekit.bias.learned import LearnedEnsembleModel
from judgekit.calibrate.measure.agreement import join_split
from judgekit.calibrate.measure.outputs import JudgeOutputs
from judgekit.data.sets import CalibrationRecord
from judgekit.data.split import require_dev
from judgekit.stats import Groups

L2_GRID = (0.01, 0.1, 1.0, 10.0)
FOLDS = 5


@dataclass(frozen=True)
class FittedEnsemble:
    """The stored model plus its dev out-of-fold distributions (item id -> row of ``oof``)."""

    model: LearnedEnsembleModel
    dev_ids: tuple[str, ...]
    oof: np.ndarray


def group_folds(groups: Sequence[str], k: int, rng: np.random.Generator) -> np.ndarray:
    """Fold of each item: groups (numbered by first appearance) shuffled and dealt round-robin
    into ``k`` folds, so a group never straddles two. All-distinct groups give exactly the item
    folds ``rng.permutation(np.arange(n) % k)``."""
    clusters = Groups.of(groups, len(groups))
    if clusters.n_groups < k:
        raise ValueError(f"{clusters.n_groups} groups cannot fill {k} cross-validation folds")
    return rng.permutation(np.arange(clusters.n_groups) % k)[clusters.codes]


def features(
    outputs: JudgeOutputs, columns: Sequence[str], length_scale: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """The frozen model's design matrix for these outputs (``bias.learned.features``)."""
    return learned.features(outputs.order_probs, outputs.lengths, columns, length_scale)


def _dev_length_scale(outputs: JudgeOutputs, rows: Sequence[int]) -> float | None:
    if outputs.lengths is None or outputs.lengths.ndim != 2 or not rows:
        return None
    diff = outputs.lengths[list(rows), 0].astype(float) - outputs.lengths[list(rows), 1]
    sd = float(np.nanstd(diff))
    return sd if sd > 0 else None


def _feature_names(outputs: JudgeOutputs, columns: Sequence[str], scale: float | None) -> list[str]:
    names = [f"{c}:logp({label})" for c in columns for label in outputs.labels]
    return names + (["tanh(len_a - len_b) / scale"] if scale is not None else [])


def fit_softmax_regression(
    x: np.ndarray, y: np.ndarray, k: int, l2: float
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax regression, mean log loss + l2/2 |W|^2 (intercept lightly penalised so a label
    never seen on dev gets a finite, small probability)."""
    n, d = x.shape
    onehot = np.eye(k)[y]
    l2_intercept = 1e-3 * l2

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: d * k].reshape(d, k), theta[d * k :]
        logp = log_softmax(x @ w + b, axis=1)
        residual = (np.exp(logp) - onehot) / n
        value = -np.sum(onehot * logp) / n + 0.5 * l2 * np.sum(w * w) + 0.5 * l2_intercept * b @ b
        grad = np.concatenate(
            [(x.T @ residual + l2 * w).ravel(), residual.sum(0) + l2_intercept * b]
        )
        return float(value), grad

    result = minimize(loss, np.zeros(d * k + k), jac=True, method="L-BFGS-B")
    return result.x[: d * k].reshape(d, k), result.x[d * k :]


def _log_loss(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.maximum(probs[np.arange(len(y)), y], 1e-300))))


def fit_ensemble(
    records: Sequence[CalibrationRecord],
    outputs: JudgeOutputs,
    split: str,
    *,
    rng: np.random.Generator,
    heldout_fraction: float = 0.5,
    use_length: bool = True,
) -> FittedEnsemble:
    """Fit on the dev split only (``split="heldout"`` raises HeldOutError); the folds of the
    L2 choice split by the records' groups (``group_folds``).

    Items whose human consensus is not one of the judge's labels (e.g. a human tie under a rubric
    without one) cannot be targets and are left out of the fit (counted in ``n_dropped``).
    Pairs with answer lengths get the length feature (``use_length``), scaled by the dev items'
    standard deviation of the length difference, so the model absorbs the length correction.
    """
    require_dev(split)
    if not outputs.order_probs:
        raise ValueError("the judge outputs carry no per-prompt distributions (order_probs)")
    joined = join_split(records, outputs, "dev", heldout_fraction)
    index = {label: k for k, label in enumerate(outputs.labels)}
    rows, targets, groups = [], [], []
    for record, row in zip(joined.records, joined.rows, strict=True):
        if row >= 0 and isinstance(record.consensus, str) and record.consensus in index:
            rows.append(int(row))
            targets.append(index[record.consensus])
            groups.append(record.group)
    columns = sorted(outputs.order_probs)
    length_scale = _dev_length_scale(outputs, rows) if use_length else None
    x_all, usable = features(outputs, columns, length_scale)
    keep = [i for i, r in enumerate(rows) if usable[r]]
    rows, y = [rows[i] for i in keep], np.array([targets[i] for i in keep], dtype=int)
    groups = [groups[i] for i in keep]
    if len(rows) < 2 * FOLDS:
        raise ValueError(f"{len(rows)} usable dev items; the ensemble needs {2 * FOLDS}+")
    x = x_all[rows]
    k = len(outputs.labels)
    fold = group_folds(groups, FOLDS, rng)
    cv_loss, oof_by_l2 = {}, {}
    for l2 in L2_GRID:
        oof = np.zeros((len(rows), k))
        for f in range(FOLDS):
            w, b = fit_softmax_regression(x[fold != f], y[fold != f], k, l2)
            oof[fold == f] = learned.softmax_predict(x[fold == f], w, b)
        cv_loss[f"{l2:g}"], oof_by_l2[l2] = _log_loss(oof, y), oof
    best = min(L2_GRID, key=lambda l2: cv_loss[f"{l2:g}"])
    w, b = fit_softmax_regression(x, y, k, best)
    model = LearnedEnsembleModel(
        labels=list(outputs.labels),
        columns=columns,
        length_scale=length_scale,
        features=_feature_names(outputs, columns, length_scale),
        coefficients=w.tolist(),
        intercept=b.tolist(),
        l2=best,
        fitted_on="dev",
        n=len(rows),
        n_dropped=len(joined.records) - len(rows),
        dev_log_loss=_log_loss(learned.softmax_predict(x, w, b), y),
        dev_cv_log_loss=cv_loss,
        dev_cv_accuracy=float(np.mean(oof_by_l2[best].argmax(axis=1) == y)),
    )
    dev_ids = tuple(outputs.item_ids[r] for r in rows)
    return FittedEnsemble(model, dev_ids, oof_by_l2[best])


def ensemble_probs(model: LearnedEnsembleModel, outputs: JudgeOutputs) -> np.ndarray:
    """The frozen model's distributions; NaN rows where no prompt gave a valid verdict."""
    return learned.learned_probs(model, outputs.order_probs, outputs.labels, outputs.lengths)


def apply_ensemble(model: LearnedEnsembleModel, outputs: JudgeOutputs) -> JudgeOutputs:
    """``outputs`` with the learned ensemble's verdicts as the final ones."""
    probs = ensemble_probs(model, outputs)
    return replace(
        outputs,
        probs=probs,
        scores=probs @ np.asarray(outputs.values, dtype=float),
        source=f"{outputs.source}, learned ensemble (frozen, fitted on dev)",
    )
