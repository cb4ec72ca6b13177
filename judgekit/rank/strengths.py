"""Strengths of every model from battles, with a bootstrap that resamples questions.

Battles on one question share its difficulty and its answers, so they are not independent:
the bootstrap draws whole questions (clusters) with replacement and refits. ``unit="battle"``
resamples rows instead, which is what Arena-Hard-Auto and AlpacaEval do; it exists to reproduce
their intervals and is narrower whenever a question's battles are correlated.

All resamples are fitted together, warm-started at the full-data estimate: the plain model
pools each resample into per-pair sums with one sparse product (``bradley_terry``); style
control fits per-row weights in chunks (``contextual``). A resample whose fit does not converge
is dropped and counted in ``n_failed``; more than half failing raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import sparse

from judgekit.rank.battles import Battles
from judgekit.rank.bradley_terry import PairFit, TieModel, fit_pairs
from judgekit.rank.contextual import ContextualFit, fit_contextual

__all__ = ["Strengths", "Unit", "cluster_counts", "counts_from_indices", "fit_strengths"]

Unit = Literal["question", "battle"]
CHUNK_CELLS = 4_000_000  # resamples x rows per contextual chunk (about 32 MB per array)
DENSE_CELLS = 20_000_000  # clusters x pair sums pooled densely (160 MB at most)


@dataclass(frozen=True)
class Strengths:
    """Full-data and bootstrap estimates on the natural (log-odds) scale, first model at 0.

    ``boot`` is (B, M) with NaN rows for failed resamples; ``extra`` is the tie parameter
    (Davidson log nu or Rao-Kupper eta), ``gamma`` the style coefficients.
    """

    models: tuple[str, ...]
    theta: np.ndarray
    boot: np.ndarray
    ties: TieModel
    unit: Unit
    extra: float | None = None
    boot_extra: np.ndarray | None = None
    feature_names: tuple[str, ...] = ()
    gamma: np.ndarray | None = None
    boot_gamma: np.ndarray | None = None

    @property
    def n_failed(self) -> int:
        return int(np.isnan(self.boot).any(axis=1).sum())


def cluster_counts(n_clusters: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each cluster is drawn in each resample: (B, K) multinomial counts."""
    return rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_resamples)


def counts_from_indices(indices: np.ndarray, n_clusters: int) -> np.ndarray:
    """Counts from explicit draws (B, K) of cluster indices, e.g. to replay another tool's RNG."""
    indices = np.asarray(indices)
    offsets = np.arange(indices.shape[0])[:, None] * n_clusters
    flat = np.bincount((indices + offsets).ravel(), minlength=indices.shape[0] * n_clusters)
    return flat.reshape(indices.shape[0], n_clusters)


def _clusters(battles: Battles, unit: Unit) -> tuple[np.ndarray, np.ndarray, int]:
    """Valid row indices, their cluster index, and the number of clusters."""
    rows = np.flatnonzero(battles.valid)
    if unit == "question":
        return rows, battles.question[rows], len(battles.questions)
    if unit == "battle":
        return rows, np.arange(rows.size), rows.size
    raise ValueError(f"unit must be 'question' or 'battle', got {unit!r}")


def _pair_sums(
    battles: Battles, rows: np.ndarray, cluster: np.ndarray, n_clusters: int, ties: TieModel
) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Per-cluster sums (K, 3P) of A wins, ties and B wins for each unordered pair (lo, hi)."""
    a, b = battles.model_a[rows], battles.model_b[rows]
    y, w = battles.outcome[rows], battles.weight[rows]
    y_lo = np.where(a < b, y, 1.0 - y)
    if ties != "half" and not battles.discrete:
        raise ValueError(f"ties={ties!r} needs win/tie/loss outcomes; these include P(A) values")
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    n_models = len(battles.models)
    codes, pair = np.unique(lo * n_models + hi, return_inverse=True)
    pairs = np.stack([codes // n_models, codes % n_models], axis=1)
    tie = y_lo == 0.5
    cols = np.concatenate([3 * pair, 3 * pair + 1, 3 * pair + 2])
    vals = np.concatenate(
        [np.where(tie, 0, w * y_lo), np.where(tie, w, 0), np.where(tie, 0, w * (1 - y_lo))]
    )
    sums = sparse.csr_matrix(
        (vals, (np.tile(cluster, 3), cols)), shape=(n_clusters, 3 * len(pairs))
    )
    return sums, pairs


def _resample_sums(sums: sparse.csr_matrix, draws: np.ndarray) -> np.ndarray:
    """(B, 3P) sums per resample: a dense BLAS product when the table fits, else sparse."""
    if sums.shape[0] * sums.shape[1] <= DENSE_CELLS:
        return draws.astype(float) @ sums.toarray()
    return (sums.T @ draws.T.astype(float)).T


def _check_connected(battles: Battles, pairs: np.ndarray) -> None:
    n = len(battles.models)
    graph = sparse.csr_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    n_parts, label = sparse.csgraph.connected_components(graph, directed=False)
    if n_parts > 1:
        apart = [m for m, lab in zip(battles.models, label, strict=True) if lab != label[0]]
        raise ValueError(
            f"the battles split the models into {n_parts} groups that never met "
            f"(e.g. {apart[:3]} never played {battles.models[0]!r}); strengths across groups "
            "are not defined"
        )


def _resample_counts(
    n_clusters: int, n_resamples: int, rng: np.random.Generator | None, counts: np.ndarray | None
) -> np.ndarray:
    if counts is not None:
        counts = np.asarray(counts)
        if counts.ndim != 2 or counts.shape[1] != n_clusters:
            raise ValueError(f"counts must have shape (B, {n_clusters}), got {counts.shape}")
        return counts
    if rng is None:
        raise ValueError("pass rng (a numpy Generator) or explicit counts")
    return cluster_counts(n_clusters, n_resamples, rng)


def fit_strengths(
    battles: Battles,
    *,
    ties: TieModel = "half",
    style: bool = False,
    prior: float = 0.0,
    ridge: float = 0.0,
    n_resamples: int = 1000,
    rng: np.random.Generator | None = None,
    unit: Unit = "question",
    counts: np.ndarray | None = None,
) -> Strengths:
    """Fit strengths (and style coefficients with ``style``) on all data and on each resample.

    ``counts`` (B, K) fixes the resamples explicitly (K questions, or K valid rows with
    ``unit="battle"``); otherwise they are drawn from ``rng``.
    """
    rows, cluster, n_clusters = _clusters(battles, unit)
    if rows.size == 0:
        raise ValueError("no valid battles to rank")
    n_models = len(battles.models)
    if style:
        if battles.features is None:
            raise ValueError("style control needs per-battle style features (rank.style)")
        if ties != "half":
            raise ValueError("style control counts ties as half wins (ties='half')")
    sums, pairs = _pair_sums(battles, rows, cluster, n_clusters, ties)
    _check_connected(battles, pairs)
    draws = _resample_counts(n_clusters, n_resamples, rng, counts)
    if style:
        return _fit_style(battles, rows, cluster, draws, prior, ridge, unit)
    full = np.asarray(sums.sum(axis=0)).reshape(1, -1, 3)
    point = fit_pairs(full, pairs, n_models, ties=ties, prior=prior)
    if not point.converged.all():
        raise ValueError(_unbounded(battles))
    boot_sums = _resample_sums(sums, draws).reshape(draws.shape[0], -1, 3)
    warm = PairFit(
        theta=np.repeat(point.theta, draws.shape[0], axis=0),
        extra=None if point.extra is None else np.repeat(point.extra, draws.shape[0]),
        converged=point.converged,
    )
    boot = fit_pairs(boot_sums, pairs, n_models, ties=ties, prior=prior, init=warm)
    membership = np.zeros((len(pairs), n_models))
    membership[np.arange(len(pairs)), pairs[:, 0]] = membership[
        np.arange(len(pairs)), pairs[:, 1]
    ] = 1
    _drop_absent(boot.theta, boot_sums.sum(axis=2) @ membership)
    result = Strengths(
        models=battles.models,
        theta=point.theta[0],
        boot=boot.theta,
        ties=ties,
        unit=unit,
        extra=None if point.extra is None else float(point.extra[0]),
        boot_extra=boot.extra,
    )
    _check_failures(result.n_failed, draws.shape[0])
    return result


def _fit_style(
    battles: Battles,
    rows: np.ndarray,
    cluster: np.ndarray,
    draws: np.ndarray,
    prior: float,
    ridge: float,
    unit: Unit,
) -> Strengths:
    a, b = battles.model_a[rows], battles.model_b[rows]
    args = (
        a,
        b,
        battles.features[rows],  # type: ignore[index]
        battles.outcome[rows],
    )
    m = len(battles.models)
    w = battles.weight[rows]
    point = fit_contextual(*args, w[None], m, prior=prior, ridge=ridge)
    if not point.converged.all():
        raise ValueError(_unbounded(battles))
    chunk = max(1, CHUNK_CELLS // rows.size)
    thetas, gammas = [], []
    for start in range(0, draws.shape[0], chunk):
        weights = draws[start : start + chunk][:, cluster] * w
        size = weights.shape[0]
        warm = ContextualFit(
            theta=np.repeat(point.theta, size, 0),
            gamma=np.repeat(point.gamma, size, 0),
            converged=point.converged,
        )
        fit = fit_contextual(*args, weights, m, prior=prior, ridge=ridge, init=warm)
        played = np.stack(
            [np.bincount(a, wb, m) + np.bincount(b, wb, m) for wb in weights]
        )  # battles per model in each resample
        _drop_absent(fit.theta, played)
        thetas.append(fit.theta)
        gammas.append(fit.gamma)
    result = Strengths(
        models=battles.models,
        theta=point.theta[0],
        boot=np.concatenate(thetas),
        ties="half",
        unit=unit,
        feature_names=battles.feature_names,
        gamma=point.gamma[0],
        boot_gamma=np.concatenate(gammas),
    )
    _check_failures(result.n_failed, draws.shape[0])
    return result


def _drop_absent(theta: np.ndarray, played: np.ndarray) -> None:
    """A resample in which some model played no battle says nothing about it: mark it failed
    (in place) rather than keep the warm start as that model's estimate."""
    theta[(played <= 0).any(axis=1)] = np.nan


def _unbounded(battles: Battles) -> str:
    counts = battles.per_model_counts()
    return (
        "the maximum-likelihood strengths are unbounded (a model won or lost every battle it "
        f"played; models: {list(counts.index)}); add a prior (prior=1.0, --prior 1) to keep them "
        "finite"
    )


def _check_failures(n_failed: int, n_resamples: int) -> None:
    if n_failed * 2 > n_resamples:
        raise ValueError(
            f"the fit did not converge on {n_failed} of {n_resamples} resamples (> 50%): too few "
            "battles per model for a bootstrap interval; add a prior (--prior 1) or more battles"
        )
