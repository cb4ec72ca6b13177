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

from judgekit.rank.bradley_terry import MAX_ITER, TOL, PairLayout

__all__ = ["ContextualFit", "fit_contextual"]


@dataclass(frozen=True)
class ContextualFit:
    """``theta`` (B, M) with the first model at 0, ``gamma`` (B, F), ``converged`` (B,)."""

    theta: np.ndarray
    gamma: np.ndarray
    converged: np.ndarray


class _Design:
    """Rows sorted by unordered model pair, so per-pair sums are one ``reduceat`` per array."""

    def __init__(self, a: np.ndarray, b: np.ndarray, z: np.ndarray, n_models: int) -> None:
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        key = lo * n_models + hi
        self.order = np.argsort(key, kind="stable")
        codes, self.starts = np.unique(key[self.order], return_index=True)
        pairs = np.stack([codes // n_models, codes % n_models], axis=1)
        self.a, self.b, self.z = a[self.order], b[self.order], z[self.order]
        self.zz = (self.z[:, :, None] * self.z[:, None, :]).reshape(len(a), -1)
        self.layout = PairLayout(pairs, n_models, extra=False)
        # a row counts for its pair (lo, hi) with sign +1 when A is lo; pair_free maps pair sums
        # to the free strengths (+1 for lo, -1 for hi; the first model is fixed at 0)
        self.sign = np.where(self.a < self.b, 1.0, -1.0)
        self.pair_free = self.layout.grad.toarray()

    def pool(self, values: np.ndarray) -> np.ndarray:
        """(B, N) per-row values summed within each pair -> (B, P)."""
        return np.add.reduceat(values, self.starts, axis=1)

    def hessian(self, h: np.ndarray) -> np.ndarray:
        """Minus the Hessian of the log-likelihood for row weights ``h`` (B, N)."""
        n_res, n_feat = h.shape[0], self.z.shape[1]
        m1 = self.pair_free.shape[1]
        theta_block = (self.layout.hdd.T @ self.pool(h).T).T.reshape(n_res, m1, m1)
        signed = h * self.sign
        cross = np.zeros((n_res, m1, n_feat))
        for f in range(n_feat):
            cross[:, :, f] = self.pool(signed * self.z[:, f]) @ self.pair_free
        feat_block = (h @ self.zz).reshape(n_res, n_feat, n_feat)
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
    m = n_models
    design = _Design(np.asarray(model_a), np.asarray(model_b), np.asarray(features, float), m)
    z, a, b = design.z, design.a, design.b
    y = np.asarray(outcome, dtype=float)[design.order]
    w = np.atleast_2d(np.asarray(weights, dtype=float))[:, design.order]
    n_feat = z.shape[1]
    k = m - 1 + n_feat
    x = np.zeros((w.shape[0], k))
    if init is not None:
        x[:, : m - 1] = init.theta[:, 1:] - init.theta[:, :1]
        x[:, m - 1 :] = init.gamma
    penalty = np.zeros((k, k))
    penalty[: m - 1, : m - 1] = prior * (np.eye(m) - 1.0 / m)[1:, 1:]
    penalty[m - 1 :, m - 1 :] = ridge * np.eye(n_feat)

    def objective(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Penalised log-likelihood per resample, P(A) per row, centred strengths."""
        theta = np.concatenate([np.zeros((x.shape[0], 1)), x[:, : m - 1]], axis=1)
        logits = theta[:, a] - theta[:, b] + x[:, m - 1 :] @ z.T
        e = np.exp(-np.abs(logits))
        softplus = np.maximum(logits, 0) + np.log1p(e)
        p = np.where(logits >= 0, 1, e) / (1 + e)
        ll = np.sum(w * (y * logits - softplus), axis=1)
        centred = theta - theta.mean(axis=1, keepdims=True)
        ll -= prior / 2 * np.sum(centred**2, axis=1) + ridge / 2 * np.sum(x[:, m - 1 :] ** 2, 1)
        return ll, p, centred

    active = np.arange(w.shape[0])
    converged = np.zeros(w.shape[0], dtype=bool)
    ll, p, centred = objective(x, w)
    for _ in range(MAX_ITER):
        if not active.size:
            break
        xa, wa = x[active], w[active]
        resid = wa * (y - p)
        grad = np.concatenate(
            [
                design.pool(resid * design.sign) @ design.pair_free - prior * centred[:, 1:],
                resid @ z - ridge * xa[:, m - 1 :],
            ],
            axis=1,
        )
        hess = design.hessian(wa * p * (1 - p)) + penalty + 1e-12 * np.eye(k)
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        scale = np.ones(active.size)
        new_ll, new_p, new_centred = objective(xa + step, wa)
        for _ in range(40):  # halve steps that lower the likelihood
            worse = np.flatnonzero(~(new_ll >= ll - 1e-12 * np.abs(ll)))
            if not worse.size:
                break
            scale[worse] /= 2
            trial = objective(xa[worse] + scale[worse, None] * step[worse], wa[worse])
            new_ll[worse], new_p[worse], new_centred[worse] = trial
        x[active] = xa + scale[:, None] * step
        done = np.max(np.abs(scale[:, None] * step), axis=1) < TOL
        converged[active[done]] = True
        keep = ~done
        active, ll, p, centred = active[keep], new_ll[keep], new_p[keep], new_centred[keep]
    theta = np.concatenate([np.zeros((w.shape[0], 1)), x[:, : m - 1]], axis=1)
    gamma = x[:, m - 1 :].copy()
    theta[~converged], gamma[~converged] = np.nan, np.nan
    return ContextualFit(theta=theta, gamma=gamma, converged=converged)
