"""Bradley-Terry maximum likelihood with ties, batched over bootstrap resamples.

A battle's log-likelihood depends only on its pair's strength difference d = theta_i - theta_j,
so the data reduce to per-pair sums of A wins, ties and B wins; one Newton solve per resample
then costs O(pairs + models^3), and all resamples are solved together as stacked arrays.

Tie models (``ties``):
- ``"half"``: a tie is half a win for each side (the logistic loss with target 0.5; the same
  objective as Arena-Hard's, LMArena's and choix's with fractional counts). Soft outcomes
  (a judge's P(A)) enter as fractional wins.
- ``"davidson"``: P(tie) = nu sqrt(pi_i pi_j) / (pi_i + pi_j + nu sqrt(pi_i pi_j)) (Davidson 1970);
  the extra parameter is kappa = log nu.
- ``"rao-kupper"``: P(i wins) = sigmoid(d - eta), P(tie) = 1 - P(i) - P(j) (Rao & Kupper 1967),
  the extra parameter is eta > 0.

``theta`` is returned with the first model fixed at 0 (callers anchor it); ``prior`` adds
prior/2 * sum((theta - mean theta)^2), which keeps a model that never lost finite without
moving the differences' origin. Resamples that do not converge (a model that never loses, a
model cut off from the rest) come back as NaN and are counted by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import sparse
from scipy.special import expit, log_expit

__all__ = ["PairFit", "TieModel", "fit_pairs"]

TieModel = Literal["half", "davidson", "rao-kupper"]
MAX_ITER = 100
TOL = 1e-10


@dataclass(frozen=True)
class PairFit:
    """Fitted strengths per resample: ``theta`` (B, M), ``extra`` (B,) or None, ``converged``."""

    theta: np.ndarray
    extra: np.ndarray | None
    converged: np.ndarray


def _terms(model: TieModel, d: np.ndarray, e: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, ...]:
    """Log-likelihood per resample and its derivatives per pair.

    ``s`` is (B, P, 3): A wins, ties, B wins. Returns (ll, gd, ge, hdd, hde, hee) where g* are
    first derivatives of ll and h* are minus the second derivatives (so H is positive).
    """
    a, t, b = s[..., 0], s[..., 1], s[..., 2]
    n = a + t + b
    if model == "half":
        ll = np.sum((a + t / 2) * d - n * np.logaddexp(0, d), axis=-1)
        p = expit(d)
        zero = np.zeros_like(d)
        return ll, a + t / 2 - n * p, zero, n * p * (1 - p), zero, zero
    if model == "davidson":
        kappa = e[:, None]
        log_z = np.logaddexp(np.logaddexp(d / 2, -d / 2), kappa)
        ll = np.sum((a - b) * d / 2 + t * kappa - n * log_z, axis=-1)
        pa, pb, pt = np.exp(d / 2 - log_z), np.exp(-d / 2 - log_z), np.exp(kappa - log_z)
        diff = pa - pb
        gd = (a - b) / 2 - n * diff / 2
        ge = t - n * pt
        hdd = n * ((pa + pb) / 4 - diff**2 / 4)
        return ll, gd, ge, hdd, -n * pt * diff / 2, n * pt * (1 - pt)
    eta = e[:, None]
    u, v = d - eta, -d - eta
    with np.errstate(invalid="ignore", divide="ignore"):
        log_t = np.log(np.sinh(eta)) - np.log(np.cosh(d) + np.cosh(eta))
        ll = np.sum(a * log_expit(u) + b * log_expit(v) + np.where(t > 0, t * log_t, 0), axis=-1)
        ll = np.where(e > 0, ll, -np.inf)
        tie = np.exp(log_t)
        pu, pv = expit(u), expit(v)
        su, sv = pu * (1 - pu), pv * (1 - pv)
        gu = a * (1 - pu) - t * su / tie
        gv = b * (1 - pv) - t * sv / tie
        huu = -a * su + t * (-su * (1 - 2 * pu) / tie - su**2 / tie**2)
        hvv = -b * sv + t * (-sv * (1 - 2 * pv) / tie - sv**2 / tie**2)
        huv = -t * su * sv / tie**2
    return ll, gu - gv, -gu - gv, -(huu - 2 * huv + hvv), -(hvv - huu), -(huu + 2 * huv + hvv)


class PairLayout:
    """Sparse maps from per-pair terms to the free parameters' gradient and Hessian.

    Pair (i, j) contributes +g to model i and -g to model j; the first model is fixed at 0 and
    has no free parameter; with ``extra`` the tie parameter is the last free parameter.
    """

    def __init__(self, pairs: np.ndarray, n_models: int, extra: bool) -> None:
        self.k = n_models - 1 + int(extra)
        k, ext = self.k, n_models - 1
        rows_g, cols_g, vals_g = [], [], []
        rows_d, cols_d, vals_d, rows_e, cols_e, vals_e = [], [], [], [], [], []
        for p, (i, j) in enumerate(pairs):
            free = [(idx - 1, sign) for idx, sign in ((i, 1.0), (j, -1.0)) if idx > 0]
            for x, sx in free:
                rows_g.append(p), cols_g.append(x), vals_g.append(sx)
                for y, sy in free:
                    rows_d.append(p), cols_d.append(x * k + y), vals_d.append(sx * sy)
                if extra:
                    rows_e += [p, p]
                    cols_e += [x * k + ext, ext * k + x]
                    vals_e += [sx, sx]
        n_pairs = len(pairs)
        self.grad = sparse.csr_matrix((vals_g, (rows_g, cols_g)), shape=(n_pairs, k))
        self.hdd = sparse.csr_matrix((vals_d, (rows_d, cols_d)), shape=(n_pairs, k * k))
        self.hde = sparse.csr_matrix((vals_e, (rows_e, cols_e)), shape=(n_pairs, k * k))
        self.ext = ext if extra else None
        self.incidence = np.zeros((n_models, n_pairs))
        self.incidence[pairs[:, 0], np.arange(n_pairs)] = 1.0
        self.incidence[pairs[:, 1], np.arange(n_pairs)] = -1.0

    def assemble(
        self, gd: np.ndarray, ge: np.ndarray, hdd: np.ndarray, hde: np.ndarray, hee: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        b = gd.shape[0]
        grad = (self.grad.T @ gd.T).T
        hess = (self.hdd.T @ hdd.T).T + (self.hde.T @ hde.T).T
        hess = hess.reshape(b, self.k, self.k)
        if self.ext is not None:
            grad[:, self.ext] = ge.sum(axis=1)
            hess[:, self.ext, self.ext] = hee.sum(axis=1)
        return grad, hess


def _initial_extra(model: TieModel, s: np.ndarray) -> np.ndarray:
    share = np.clip(s[..., 1].sum(axis=-1) / s.sum(axis=(-1, -2)), 1e-3, 0.999)
    if model == "davidson":
        return np.log(2 * share / (1 - share))
    return np.log((1 + share) / (1 - share))  # logit((1 + share) / 2)


def fit_pairs(
    stats: np.ndarray,
    pairs: np.ndarray,
    n_models: int,
    *,
    ties: TieModel = "half",
    prior: float = 0.0,
    init: PairFit | None = None,
) -> PairFit:
    """Maximum-likelihood strengths for each resample of per-pair sums.

    ``stats`` is (B, P, 3) weighted counts (A wins, ties, B wins) for ``pairs`` (P, 2) of model
    indices (A = pairs[:, 0]); ``init`` warm-starts every resample (e.g. from the full-data fit).
    """
    if ties not in ("half", "davidson", "rao-kupper"):
        raise ValueError(f"ties must be 'half', 'davidson' or 'rao-kupper', got {ties!r}")
    stats = np.asarray(stats, dtype=float)
    n_res = stats.shape[0]
    extra = ties != "half"
    layout = PairLayout(np.asarray(pairs), n_models, extra)
    x = np.zeros((n_res, layout.k))
    if init is not None:
        x[:, : n_models - 1] = init.theta[:, 1:] - init.theta[:, :1]
        if extra and init.extra is not None:
            x[:, -1] = init.extra
    elif extra:
        x[:, -1] = _initial_extra(ties, stats)
    centre = np.eye(n_models) - 1.0 / n_models
    penalty = prior * centre[1:, 1:]

    def objective(x: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, ...]:
        theta = np.concatenate([np.zeros((x.shape[0], 1)), x[:, : n_models - 1]], axis=1)
        d = theta @ layout.incidence
        e = x[:, -1] if extra else np.zeros(x.shape[0])
        ll, *parts = _terms(ties, d, e, s)
        centred = theta - theta.mean(axis=1, keepdims=True)
        return ll - prior / 2 * np.sum(centred**2, axis=1), centred, *parts

    active = np.arange(n_res)
    converged = np.zeros(n_res, dtype=bool)
    for _ in range(MAX_ITER):
        if not active.size:
            break
        s, xa = stats[active], x[active]
        ll, centred, gd, ge, hdd, hde, hee = objective(xa, s)
        grad, hess = layout.assemble(gd, ge, hdd, hde, hee)
        grad[:, : n_models - 1] -= prior * centred[:, 1:]
        hess[:, : n_models - 1, : n_models - 1] += penalty
        # Hessian ridge: changes the path, never the fixed point (the gradient is exact).
        hess += 1e-12 * np.eye(layout.k)
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        scale = np.ones(active.size)
        new_ll = objective(xa + step, s)[0]
        for _ in range(40):  # halve steps that lower the likelihood (or leave its domain)
            worse = ~(new_ll >= ll - 1e-12 * np.abs(ll))
            if not worse.any():
                break
            scale[worse] /= 2
            new_ll[worse] = objective(xa[worse] + scale[worse, None] * step[worse], s[worse])[0]
        x[active] = xa + scale[:, None] * step
        done = np.max(np.abs(scale[:, None] * step), axis=1) < TOL
        converged[active[done]] = True
        active = active[~done]
    theta = np.concatenate([np.zeros((n_res, 1)), x[:, : n_models - 1]], axis=1)
    theta[~converged] = np.nan
    ext = x[:, -1].copy() if extra else None
    if ext is not None:
        ext[~converged] = np.nan
    return PairFit(theta=theta, extra=ext, converged=converged)
