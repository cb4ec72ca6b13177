"""Contextual Bradley-Terry: strengths plus per-battle covariates (style control), batched.

logit P(A better) = theta_a - theta_b + z . gamma, with z a battle's style-feature differences
(``rank.style``); ties count half (the target is the outcome in [0, 1]). This is the model of
Arena-Hard's style control and of LMArena's ``arena-rank`` ContextualBradleyTerry. Features vary
per battle, so rows cannot be pooled by pair as in ``bradley_terry``; each resample is a weight
vector over rows (a question drawn k times weighs its battles k times) and all resamples in a
chunk take their Newton steps together. ``ridge`` is an L2 penalty ridge/2 * |gamma|^2 on the
summed log-likelihood (arena-rank's ``reg`` times the number of rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.special import expit

from judgekit.rank.bradley_terry import MAX_ITER, TOL, _Layout

__all__ = ["ContextualFit", "fit_contextual"]


@dataclass(frozen=True)
class ContextualFit:
    """``theta`` (B, M) with the first model at 0, ``gamma`` (B, F), ``converged`` (B,)."""

    theta: np.ndarray
    gamma: np.ndarray
    converged: np.ndarray


class _Pairs:
    """Rows pooled by unordered model pair, for the strengths block of the Hessian."""

    def __init__(self, model_a: np.ndarray, model_b: np.ndarray, n_models: int) -> None:
        lo, hi = np.minimum(model_a, model_b), np.maximum(model_a, model_b)
        pairs, index = np.unique(np.stack([lo, hi], axis=1), axis=0, return_inverse=True)
        n = lo.shape[0]
        self.rows = sparse.csr_matrix(
            (np.ones(n), (np.arange(n), index.ravel())), shape=(n, len(pairs))
        )
        self.layout = _Layout(pairs, n_models, extra=False)


def _hessian(
    h: np.ndarray, incidence: sparse.csr_matrix, z: np.ndarray, pairs: _Pairs
) -> np.ndarray:
    """Minus the Hessian of the log-likelihood for row weights ``h`` (B, N), free parameters."""
    n_res, n_feat = h.shape[0], z.shape[1]
    m = incidence.shape[1]
    a_free = incidence[:, 1:]
    h_pair = (pairs.rows.T @ h.T).T
    theta_block = (pairs.layout.hdd.T @ h_pair.T).T.reshape(n_res, m - 1, m - 1)
    hz = (h[:, :, None] * z[None]).transpose(0, 2, 1).reshape(n_res * n_feat, h.shape[1])
    cross = (a_free.T @ hz.T).T.reshape(n_res, n_feat, m - 1).transpose(0, 2, 1)
    feat_block = np.einsum("bn,nf,ng->bfg", h, z, z)
    top = np.concatenate([theta_block, cross], axis=2)
    bottom = np.concatenate([cross.transpose(0, 2, 1), feat_block], axis=2)
    return np.concatenate([top, bottom], axis=1)


def fit_contextual(
    model_a: np.ndarray,
    model_b: np.ndarray,
    features: np.ndarray,
    outcome: np.ndarray,
    weights: np.ndarray,
    n_models: int,
    *,
    ridge: float = 0.0,
    prior: float = 0.0,
    init: ContextualFit | None = None,
) -> ContextualFit:
    """Maximum (penalised) likelihood for each row-weight vector in ``weights`` (B, N)."""
    z = np.asarray(features, dtype=float)
    y = np.asarray(outcome, dtype=float)
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    n_rows, n_feat = z.shape
    m, k = n_models, n_models - 1 + n_feat
    rows = np.arange(n_rows)
    incidence = sparse.csr_matrix(
        (np.r_[np.ones(n_rows), -np.ones(n_rows)], (np.r_[rows, rows], np.r_[model_a, model_b])),
        shape=(n_rows, m),
    )
    pooled = _Pairs(np.asarray(model_a), np.asarray(model_b), m)
    x = np.zeros((w.shape[0], k))
    if init is not None:
        x[:, : m - 1] = init.theta[:, 1:] - init.theta[:, :1]
        x[:, m - 1 :] = init.gamma
    penalty = np.zeros((k, k))
    penalty[: m - 1, : m - 1] = prior * (np.eye(m) - 1.0 / m)[1:, 1:]
    penalty[m - 1 :, m - 1 :] = ridge * np.eye(n_feat)

    def objective(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        theta = np.concatenate([np.zeros((x.shape[0], 1)), x[:, : m - 1]], axis=1)
        logits = (incidence @ theta.T).T + x[:, m - 1 :] @ z.T
        ll = np.sum(w * (y * logits - np.logaddexp(0, logits)), axis=1)
        centred = theta - theta.mean(axis=1, keepdims=True)
        ll -= prior / 2 * np.sum(centred**2, axis=1) + ridge / 2 * np.sum(x[:, m - 1 :] ** 2, 1)
        return ll, logits, centred

    active = np.arange(w.shape[0])
    converged = np.zeros(w.shape[0], dtype=bool)
    for _ in range(MAX_ITER):
        if not active.size:
            break
        xa, wa = x[active], w[active]
        ll, logits, centred = objective(xa, wa)
        p = expit(logits)
        resid = wa * (y - p)
        grad = np.concatenate(
            [(incidence[:, 1:].T @ resid.T).T - prior * centred[:, 1:], resid @ z], axis=1
        )
        grad[:, m - 1 :] -= ridge * xa[:, m - 1 :]
        hess = _hessian(wa * p * (1 - p), incidence, z, pooled) + penalty + 1e-12 * np.eye(k)
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        scale = np.ones(active.size)
        new_ll = objective(xa + step, wa)[0]
        for _ in range(40):  # halve steps that lower the likelihood
            worse = ~(new_ll >= ll - 1e-12 * np.abs(ll))
            if not worse.any():
                break
            scale[worse] /= 2
            new_ll[worse] = objective(xa[worse] + scale[worse, None] * step[worse], wa[worse])[0]
        x[active] = xa + scale[:, None] * step
        done = np.max(np.abs(scale[:, None] * step), axis=1) < TOL
        converged[active[done]] = True
        active = active[~done]
    theta = np.concatenate([np.zeros((w.shape[0], 1)), x[:, : m - 1]], axis=1)
    gamma = x[:, m - 1 :].copy()
    theta[~converged], gamma[~converged] = np.nan, np.nan
    return ContextualFit(theta=theta, gamma=gamma, converged=converged)
