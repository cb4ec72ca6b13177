"""AlpacaEval 2 (weighted_alpaca_eval_gpt4_turbo) from its released annotations: see
reproduce_leaderboards.py for how to run it and docs/leaderboards.md for the results.

Win rate, standard error and discrete win rate are compared with the published leaderboard CSV.
The length-controlled win rate needs per-instruction difficulties that AlpacaEval keeps on the
Hugging Face hub (``instruction_difficulty.csv``) and the annotations of two "gamed" baseline
variants (``df_gamed.csv``), neither in the repository. Three approximations are reported:
(a) judgekit's GLM without difficulty (AlpacaEval's ``length_controlled_minimal`` formula),
(b) the published per-model GLM weights (``metrics/weights/.../baseline_gpt4_1106_preview.csv``)
with difficulties rebuilt from the released annotations (per instruction, a ridge-penalised
logistic fit with the other weights fixed; the ridge chosen by 5-fold cross-validation over
models, never by the published LC numbers), (c) judgekit's GLM with those rebuilt difficulties.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, log_expit
from scipy.stats import spearmanr

from judgekit.rank import Battles, RankOptions, rank_pairwise, read_battles

BASELINE = "gpt4_1106_preview"
ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"
LEADERBOARD = f"src/alpaca_eval/leaderboards/data_AlpacaEval_2/{ANNOTATOR}_leaderboard.csv"
WEIGHTS = (
    f"src/alpaca_eval/metrics/weights/{ANNOTATOR}/length_controlled_v1/baseline_{BASELINE}.csv"
)
RIDGES = (0.0, 0.03, 0.1, 0.2, 0.3, 0.5, 1.0)


def _tables(battles: Battles, models: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(models x questions) preferences for the model and tanh(std length difference)."""
    base = battles.models.index(BASELINE)
    y = np.full((len(models), len(battles.questions)), np.nan)
    t = np.zeros_like(y)
    for k, name in enumerate(models):
        rows = np.flatnonzero(
            (battles.model_a == battles.models.index(name))
            & (battles.model_b == base)
            & battles.valid
        )
        delta = battles.lengths[rows, 1] - battles.lengths[rows, 0]
        y[k, battles.question[rows]] = battles.outcome[rows]
        t[k, battles.question[rows]] = np.tanh(delta / delta.std(ddof=1))
    return y, t


def _difficulty(offset: np.ndarray, slope: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
    """Per question, argmax of sum_m loglik(y | offset + slope d) - ridge/2 d^2 (Newton)."""
    seen = ~np.isnan(y)
    target = np.where(seen, y, 0.0)
    d = np.zeros(y.shape[1])
    for _ in range(200):
        p = expit(offset + slope * d)
        grad = np.where(seen, slope * (target - p), 0).sum(axis=0) - ridge * d
        hess = np.where(seen, slope**2 * p * (1 - p), 0).sum(axis=0) + ridge
        step = np.clip(grad / hess, -1, 1)
        d += step
        if np.abs(step).max() < 1e-12:
            break
    return d


def _cv_ridge(offset: np.ndarray, slope: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
    """Ridge with the best held-out log-likelihood over 5 folds of models."""
    folds = np.arange(y.shape[0]) % 5
    scores = {}
    for ridge in RIDGES:
        total = 0.0
        for f in range(5):
            train, test = folds != f, folds == f
            d = _difficulty(offset[train], slope[train], y[train], ridge)
            z = offset[test] + slope[test] * d
            seen = ~np.isnan(y[test])
            target = np.where(seen, y[test], 0)
            total += float(
                np.where(seen, target * log_expit(z) + (1 - target) * log_expit(-z), 0).sum()
            )
        scores[ridge] = total
    return max(scores, key=scores.get), scores  # type: ignore[arg-type]


def _errors(ours: pd.Series, published: pd.Series) -> dict[str, float]:
    diff = (ours - published[ours.index]).abs()
    return {
        "max_abs": float(diff.max()),
        "mean_abs": float(diff.mean()),
        "spearman": float(spearmanr(ours, published[ours.index]).statistic),
    }


def alpaca_eval(
    repo: Path,
    commit: str,
    git_show: Callable[[Path, str, str], bytes],
    git_files: Callable[[Path, str, str], list[str]],
) -> tuple[dict, list[str]]:
    folder, wanted, missing = _annotations(repo, commit, git_show, git_files)
    battles = read_battles(
        [str(folder / "results" / "*" / ANNOTATOR / "annotations.json")],
        preset="alpaca_eval",
        skip_self=True,
    )
    options = RankOptions(baseline=BASELINE, scale="win_rate", length_control=True, n_resamples=200)
    board = rank_pairwise(battles, options)[0]
    published = pd.read_csv(io.BytesIO(git_show(repo, commit, LEADERBOARD)), index_col=0)
    rows = {r.model: r for r in board.rows if r.model in published.index and r.model != BASELINE}
    ours = pd.DataFrame(
        {
            "win_rate": {m: r.observed_win_rate for m, r in rows.items()},
            "standard_error": {m: r.standard_error for m, r in rows.items()},
            "discrete_win_rate": {m: r.discrete_win_rate for m, r in rows.items()},
            "lc_minimal": {m: r.lc_win_rate for m, r in rows.items()},
        }
    )
    exact = {
        col: float((ours[col] - published.loc[ours.index, col]).abs().max())
        for col in ("win_rate", "standard_error", "discrete_win_rate")
    }
    weights = pd.read_csv(io.BytesIO(git_show(repo, commit, WEIGHTS)), index_col=0)
    lc, models = _lc_rebuilt(
        battles, options, ours, weights, published["length_controlled_winrate"]
    )
    out = {
        "annotation_files": len(wanted),
        "missing_files": missing,
        "models_compared": len(ours),
        "max_abs_difference": exact,
        "lc": lc,
    }
    return out, _markdown(out, len(models))


def _annotations(
    repo: Path,
    commit: str,
    git_show: Callable[[Path, str, str], bytes],
    git_files: Callable[[Path, str, str], list[str]],
) -> tuple[Path, list[str], list[str]]:
    """The judge's annotation files copied out of the snapshot; models whose file is absent."""
    folder = Path(tempfile.mkdtemp(prefix="alpaca_eval-"))
    wanted = [
        f for f in git_files(repo, commit, "results") if f.endswith(f"{ANNOTATOR}/annotations.json")
    ]
    missing = []
    for name in wanted:
        try:
            data = git_show(repo, commit, name)
        except subprocess.CalledProcessError:
            missing.append(name.split("/")[1])  # a snapshot without its large files
            continue
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder, wanted, missing


def _lc_rebuilt(
    battles: Battles,
    options: RankOptions,
    ours: pd.DataFrame,
    weights: pd.DataFrame,
    lc: pd.Series,
) -> tuple[dict, list[str]]:
    """The LC win rate three ways against the published one: the instruction-difficulty term is
    not released, so it is rebuilt from the published GLM weights (ridge chosen by CV)."""
    weights.columns = ["length", "difficulty", "model"]
    models = [m for m in ours.index if m in weights.index]
    y, t = _tables(battles, models)
    w = weights.loc[models]
    offset = w["model"].to_numpy()[:, None] + w["length"].to_numpy()[:, None] * t
    slope = w["difficulty"].to_numpy()[:, None]
    ridge, cv = _cv_ridge(offset, slope, y)
    difficulty = _difficulty(offset, slope, y, ridge)
    lc_weights = pd.Series(
        100 * expit(w["model"].to_numpy()[:, None] + slope * difficulty).mean(axis=1), index=models
    )
    rebuilt = dict(zip(battles.questions, difficulty, strict=True))
    with_difficulty = rank_pairwise(battles, options, difficulty=rebuilt)[0]
    lc_glm = pd.Series({r.model: r.lc_win_rate for r in with_difficulty.rows if r.model in models})
    return {
        "models": len(models),
        "ridge": ridge,
        "cv_loglik": cv,
        "judgekit_glm_minimal": _errors(ours.loc[models, "lc_minimal"], lc),
        "published_weights_rebuilt_difficulty": _errors(lc_weights, lc),
        "judgekit_glm_rebuilt_difficulty": _errors(lc_glm[models], lc),
    }, models


def _markdown(out: dict, n_lc_models: int) -> list[str]:
    exact, missing, wanted = (
        out["max_abs_difference"],
        out["missing_files"],
        out["annotation_files"],
    )
    ridge = out["lc"]["ridge"]
    lines = [
        "## AlpacaEval 2 (weighted_alpaca_eval_gpt4_turbo, baseline gpt4_1106_preview)",
        "",
        f"{wanted - len(missing)} of {wanted} annotation files read "
        f"({len(missing)} missing from this copy); {out['models_compared']} models also on the "
        "published leaderboard.",
        "",
        "| column | max abs difference to the published CSV |",
        "|---|---|",
        *[f"| {k} | {v:.2e} |" for k, v in exact.items()],
        "",
        f"Length-controlled win rate ({n_lc_models} models with published GLM weights; "
        f"difficulty ridge {ridge} chosen by 5-fold CV over models):",
        "",
        "| LC variant | max abs (points) | mean abs (points) | Spearman |",
        "|---|---|---|---|",
    ]
    for key, label in (
        ("published_weights_rebuilt_difficulty", "published weights + rebuilt difficulty"),
        ("judgekit_glm_rebuilt_difficulty", "judgekit GLM + rebuilt difficulty"),
        ("judgekit_glm_minimal", "judgekit GLM, no difficulty"),
    ):
        e = out["lc"][key]
        lines.append(
            f"| {label} | {e['max_abs']:.2f} | {e['mean_abs']:.2f} | {e['spearman']:.3f} |"
        )
    return [*lines, ""]
