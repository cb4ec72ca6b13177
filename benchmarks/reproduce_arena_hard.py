"""Arena-Hard-Auto's Bradley-Terry and style control beside judgekit.rank, on the same battles
with the same random draws: see reproduce_leaderboards.py for how to run it.

Bradley-Terry: the released ``data/arena_hard_battles.jsonl`` (baseline claude-3-haiku), the
publisher's ``compute_mle_elo`` and ``get_bootstrap_result`` (v0.1, ``np.random.seed(42)``).
Its resamples are rows drawn with numpy's legacy generator and are not anchored at the baseline
(the baseline name never reaches ``compute_mle_elo``), its win-rate bounds compare each model's
bound with the baseline's bound; judgekit replays the draws (``counts_from_indices``) and applies
the same definitions, then also shows its own default (questions resampled, anchored).

Style control: no released battles carry style metadata, so the verdicts are simulated (seeded)
on real answers: Arena-Hard v0.1's answers of gpt-4-0613 and gpt-3.5-turbo-0125 against the
baseline gpt-4-0314, both orders; lengths in characters (Arena-Hard counts tiktoken tokens,
whose vocabulary files cannot be fetched here). Compared: v0.1 ``construct_style_matrices`` +
``fit_bt`` + ``get_bootstrap_result_style_control`` (scikit-learn, L2 with C=1), and v2
``bootstrap_pairwise_model`` (torch L-BFGS, float32) with judgekit's v2 features.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
from collections.abc import Iterator
from types import ModuleType

import numpy as np
import pandas as pd
import torch
from sklearn import linear_model

from judgekit.rank import (
    STYLE_FEATURES,
    Battles,
    counts_from_indices,
    fit_strengths,
    markdown_counts,
    rank_battles,
    style_features,
)
from judgekit.rank.simulate import draw_outcome

HAIKU = "claude-3-haiku-20240307"
GPT4 = "gpt-4-0314"
ELO = 400 / math.log(10)
TRUTH = {"gpt-4-0314": 0.0, "gpt-4-0613": -0.3, "gpt-3.5-turbo-0125": -1.0}
LENGTH_EFFECT = 0.4


def _quiet(call, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Run publisher code without its progress bars."""
    with contextlib.redirect_stderr(io.StringIO()):
        return call(*args, **kwargs)


def _win_rate(elo: pd.Series, baseline: str) -> pd.Series:
    """Arena-Hard's predict_win_rate against the baseline, in percent."""
    return 100 / (1 + 10 ** ((elo[baseline] - elo) / 400))


def arena_hard_bradley_terry(battles: pd.DataFrame, publisher: ModuleType, rounds: int) -> tuple:
    np.random.seed(42)
    elo = _quiet(publisher.compute_mle_elo, battles, baseline_model=HAIKU)
    boot = _quiet(publisher.get_bootstrap_result, battles, publisher.compute_mle_elo, rounds, HAIKU)
    theirs = pd.DataFrame(
        {"score": elo, "lower": boot.quantile(0.025), "upper": boot.quantile(0.975)}
    )
    data = Battles.build(
        battles.question_id.astype(str),
        battles.model_a,
        battles.model_b,
        battles.winner.map({"model_a": 1.0, "model_b": 0.0, "tie": 0.5}),
    )
    legacy = np.random.RandomState(42)
    draws = np.array([legacy.randint(0, len(data), len(data)) for _ in range(rounds)])
    fit = fit_strengths(data, unit="battle", counts=counts_from_indices(draws, len(data)))
    names = list(data.models)
    anchored = fit.theta - fit.theta[names.index(HAIKU)]
    centred = fit.boot - fit.boot.mean(axis=1, keepdims=True)
    ours = pd.DataFrame(
        {
            "score": 1000 + ELO * anchored,
            "lower": np.quantile(1000 + ELO * centred, 0.025, axis=0),
            "upper": np.quantile(1000 + ELO * centred, 0.975, axis=0),
        },
        index=names,
    ).loc[theirs.index]
    elo_diff = float((ours - theirs).abs().to_numpy().max())
    wr = {
        n: (_win_rate(ours[c], HAIKU), _win_rate(theirs[c], HAIKU))
        for n, c in (("score", "score"), ("lower", "lower"), ("upper", "upper"))
    }
    wr_diff = float(max((a - b).abs().max() for a, b in wr.values()))
    default = rank_battles(
        data, baseline=HAIKU, scale="win_rate", n_resamples=1000, rng=np.random.default_rng(0)
    )
    own = {r.model: r for r in default.rows}
    lines = [
        f"## Arena-Hard-Auto Bradley-Terry ({len(data)} released battles, baseline {HAIKU})",
        "",
        f"Publisher's code vs judgekit, same {rounds} draws: max |Elo difference| "
        f"{elo_diff:.1e} (score and 2.5/97.5% bounds), max |win-rate difference| {wr_diff:.1e} "
        "points.",
        "",
        "| model | Arena-Hard win rate (95% CI, its definition) | judgekit, same definition | "
        "judgekit default (questions resampled, 95%) |",
        "|---|---|---|---|",
    ]
    for model in theirs.sort_values("score", ascending=False).index:
        t = [wr[k][1][model] for k in ("score", "lower", "upper")]
        o = [wr[k][0][model] for k in ("score", "lower", "upper")]
        r = own[model]
        lines.append(
            f"| {model} | {t[0]:.1f} ({t[1]:.1f}, {t[2]:.1f}) | {o[0]:.1f} ({o[1]:.1f}, "
            f"{o[2]:.1f}) | {r.score:.1f} ({r.low:.1f}, {r.high:.1f}) |"
        )
    out = {"battles": len(data), "rounds": rounds, "max_abs_elo": elo_diff, "max_abs_wr": wr_diff}
    return out, [*lines, ""]


def _style_battles(answers: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Both orders of each candidate against gpt-4-0314 with simulated, length-liking verdicts."""
    text = {
        m: frame.set_index("uid")["messages"].map(lambda msgs: msgs[-1]["content"]["answer"])
        for m, frame in answers.items()
    }
    rows = []
    for model in ("gpt-4-0613", "gpt-3.5-turbo-0125"):
        for uid in text[GPT4].index.intersection(text[model].index):
            rows += [(uid, text[GPT4][uid], text[model][uid], model)] * 2
    frame = pd.DataFrame(rows, columns=["question_id", "answer_a", "answer_b", "model_b"])
    frame["model_a"] = GPT4
    z = style_features(list(frame.answer_a), list(frame.answer_b), features=("length",))[:, 0]
    d = frame.model_a.map(TRUTH) - frame.model_b.map(TRUTH) + LENGTH_EFFECT * z
    outcome = draw_outcome(d.to_numpy(), 0.2, np.random.default_rng(23))
    frame["winner"] = np.select([outcome == 1, outcome == 0], ["model_a", "model_b"], "tie")
    frame["outcome"] = outcome
    return frame


def _metadata(a: str, b: str) -> dict:
    (ha, la, ba), (hb, lb, bb) = markdown_counts(a), markdown_counts(b)
    return {
        "sum_assistant_a_tokens": len(a),
        "header_count_a": ha,
        "list_count_a": la,
        "bold_count_a": ba,
        "sum_assistant_b_tokens": len(b),
        "header_count_b": hb,
        "list_count_b": lb,
        "bold_count_b": bb,
    }


@contextlib.contextmanager
def _tight_sklearn() -> Iterator[None]:
    """scikit-learn's LogisticRegression with tol 1e-12 (the publisher's fit_bt leaves 1e-4)."""
    original = linear_model.LogisticRegression
    linear_model.LogisticRegression = functools.partial(original, tol=1e-12, max_iter=100_000)
    try:
        yield
    finally:
        linear_model.LogisticRegression = original


@contextlib.contextmanager
def _tight_torch(v2: ModuleType) -> Iterator[None]:
    """The publisher's v2 fit in float64 with 2,000 L-BFGS iterations (it runs float32, 50)."""
    original, dtype = v2.fit_pairwise_model, torch.get_default_dtype()
    v2.fit_pairwise_model = functools.partial(original, max_epochs=2000, tol=1e-12)
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        v2.fit_pairwise_model = original
        torch.set_default_dtype(dtype)


def _v01(frame: pd.DataFrame, publisher: ModuleType, rounds: int) -> dict:
    frame = frame.assign(
        conv_metadata=[_metadata(a, b) for a, b in zip(frame.answer_a, frame.answer_b, strict=True)]
    )
    x, y, models = publisher.construct_style_matrices(frame)
    elo, coef = _quiet(publisher.fit_bt, x, y, models, baseline_model=GPT4)
    np.random.seed(42)
    boot, _ = _quiet(
        publisher.get_bootstrap_result_style_control,
        x,
        y,
        frame,
        models,
        publisher.fit_bt,
        num_round=rounds,
        baseline_model=GPT4,
    )
    n, k = len(frame), 4
    battles = Battles.build(
        frame.question_id,
        frame.model_a,
        frame.model_b,
        frame.outcome,
        features=x[:n, -k:],
        feature_names=STYLE_FEATURES,
    )
    legacy = np.random.RandomState(42)
    draws = np.array([legacy.randint(0, n, n) for _ in range(rounds)])
    fit = fit_strengths(
        battles,
        style=True,
        ridge=0.5,
        prior=0.5 / math.log(10) ** 2,
        unit="battle",
        counts=counts_from_indices(draws, n),
    )
    base = battles.models.index(GPT4)
    ours_elo = pd.Series(1114 + ELO * (fit.theta - fit.theta[base]), index=battles.models)
    ours_boot = pd.DataFrame(1114 + ELO * (fit.boot - fit.boot[:, [base]]), columns=battles.models)
    bounds = [
        (ours_boot[m].quantile(q), boot[m].quantile(q))
        for m in models.index
        for q in (0.025, 0.975)
    ]
    return {
        "max_abs_elo": float((ours_elo[elo.index] - elo).abs().max()),
        "max_abs_elo_bounds": float(max(abs(a - b) for a, b in bounds)),
        "max_abs_coef": float(np.abs(fit.gamma - coef).max()),
        "coefficients": dict(zip(STYLE_FEATURES, coef.tolist(), strict=True)),
    }


def _v2(frame: pd.DataFrame, v2: ModuleType, rounds: int) -> dict:
    z = style_features(list(frame.answer_b), list(frame.answer_a))  # model minus baseline
    y = 1.0 - frame.outcome.to_numpy()
    one_hot, models = v2.one_hot_encode(list(frame.model_b), baseline=GPT4)
    dtype = torch.get_default_dtype()  # float32 as in show_result.py; float64 when tightened
    features = torch.cat([one_hot.to(dtype), torch.tensor(z, dtype=dtype)], dim=1)
    np.random.seed(42)
    draws = np.random.randint(0, len(frame), size=(rounds, len(frame)))
    np.random.seed(42)
    coefs, _ = _quiet(
        v2.bootstrap_pairwise_model, features, torch.tensor(y, dtype=dtype), "bt", rounds
    )
    theirs = v2.to_winrate_probabilities(coefs[:, :-4], models, baseline_model=GPT4).numpy()
    battles = Battles.build(
        frame.question_id, frame.model_b, frame.model_a, y, features=z, feature_names=STYLE_FEATURES
    )
    fit = fit_strengths(
        battles, style=True, unit="battle", counts=counts_from_indices(draws, len(frame))
    )
    base = battles.models.index(GPT4)
    ours = 1 / (1 + np.exp(-(fit.boot - fit.boot[:, [base]])))
    ours = ours[:, [battles.models.index(m) for m in models]]
    q = (0.05, 0.5, 0.95)
    gap = np.abs(np.quantile(ours, q, axis=0) - np.quantile(theirs, q, axis=0)).max()
    coef_gap = np.abs(np.median(fit.boot_gamma, 0) - coefs[:, -4:].median(0).values.numpy()).max()
    # the full-data fits' log-likelihoods: which of the two reached the maximum
    full, _ = v2.fit_pairwise_model(features, torch.tensor(y, dtype=dtype), "bt")
    full = full.double().numpy()
    index = np.array([models.index(m) for m in frame.model_b])
    base_col = models.index(GPT4)
    ll_theirs = _loglik(full[index] - full[base_col] + z @ full[-4:], y)
    point = fit_strengths(battles, style=True, n_resamples=1, rng=np.random.default_rng(0))
    ours_index = np.array([battles.models.index(m) for m in frame.model_b])
    ll_ours = _loglik(point.theta[ours_index] - point.theta[base] + z @ point.gamma, y)
    return {
        "max_abs_win_rate_points": float(100 * gap),
        "max_abs_coef_median": float(coef_gap),
        "loglik_judgekit_minus_publisher": float(ll_ours - ll_theirs),
    }


def _loglik(logits: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(y * logits - np.logaddexp(0, logits)))


def arena_hard_style(
    answers: dict[str, pd.DataFrame], publisher: ModuleType, v2: ModuleType, rounds: int
) -> tuple:
    frame = _style_battles(answers)
    old, new = _v01(frame, publisher, rounds), _v2(frame, v2, rounds)
    with _tight_sklearn():
        old_tight = _v01(frame, publisher, rounds)
    with _tight_torch(v2):
        new_tight = _v2(frame, v2, rounds)
    lines = [
        f"## Arena-Hard-Auto style control ({len(frame)} battles, simulated verdicts on released "
        "answers, same draws)",
        "",
        "| publisher code | judgekit difference |",
        "|---|---|",
        f"| v0.1 fit_bt + bootstrap (sklearn, C=1) | Elo {old['max_abs_elo']:.1e}, bounds "
        f"{old['max_abs_elo_bounds']:.1e}, style coefficients {old['max_abs_coef']:.1e} |",
        f"| same, scikit-learn tol 1e-12 | Elo {old_tight['max_abs_elo']:.1e}, bounds "
        f"{old_tight['max_abs_elo_bounds']:.1e}, style coefficients "
        f"{old_tight['max_abs_coef']:.1e} |",
        f"| v2 bootstrap_pairwise_model (torch float32, 50 L-BFGS steps) | win rate 5/50/95% "
        f"{new['max_abs_win_rate_points']:.1e} points, coefficient medians "
        f"{new['max_abs_coef_median']:.1e}; judgekit's full fit has a log-likelihood higher by "
        f"{new['loglik_judgekit_minus_publisher']:.1e} |",
        f"| same, float64 and 2,000 steps | win rate 5/50/95% "
        f"{new_tight['max_abs_win_rate_points']:.1e} points, coefficient medians "
        f"{new_tight['max_abs_coef_median']:.1e}; log-likelihood higher by "
        f"{new_tight['loglik_judgekit_minus_publisher']:.1e} |",
        "",
        "Style coefficients (v0.1 features, publisher's fit): "
        + ", ".join(f"{k} {v:+.3f}" for k, v in old["coefficients"].items()),
        "",
    ]
    out = {
        "battles": len(frame),
        "v0.1": old,
        "v0.1_tight": old_tight,
        "v2": new,
        "v2_tight": new_tight,
    }
    return out, lines
