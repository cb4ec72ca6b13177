"""The length correction keeps quality: fitted with the human label, applied only when dev says so.

PandaLM's humans prefer the longer answer in 67.5% of decisive pairs, so a judge that only
follows the humans looks length-biased to a model without the human label, and correcting it
removes real agreement. These tests run scripted judges on PandaLM's real answers, labels and
dev/held-out split (by instruction) and check the held-out kappa a card's correction leads to.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import card_for, card_with_length
from scipy.special import expit, softmax

from judgekit.bias.length import (
    NO_DECISION,
    LengthModel,
    answer_lengths,
    fit_pairwise_length,
    human_preference,
)
from judgekit.bias.length import load_length_model as _load
from judgekit.calibrate.fit.length import (
    _group_folds,
    _length_corrected,
    fit_length_model,
)
from judgekit.calibrate.measure.agreement import Calibrator, join_split
from judgekit.calibrate.measure.outputs import JudgeOutputs, outputs_from_verdicts, preference_for_a
from judgekit.cards import CalibrationCard, save_card
from judgekit.data.sets import CalibrationRecord, load_calibration_set
from judgekit.data.split import split_records
from judgekit.schema import PointwiseItem
from judgekit.stats import cohen_kappa

KAPPA = "kappa (ties and invalid verdicts as their own categories)"


@pytest.fixture(scope="module")
def pandalm(shared_data: Path) -> list[CalibrationRecord]:
    return list(load_calibration_set("pandalm", data_dir=shared_data).records)


def _outputs(records: list[CalibrationRecord], probs: np.ndarray, labels: tuple[str, ...]):
    values = {"A": 1.0, "B": 0.0, "tie": 0.5}
    v = tuple(values[label] for label in labels)
    return JudgeOutputs(
        item_ids=tuple(r.id for r in records),
        labels=labels,
        values=v,
        probs=probs,
        scores=probs @ np.array(v),
        source="scripted",
        lengths=answer_lengths([r.item for r in records]),
    )


def _replay(records: list[CalibrationRecord], seed: int) -> JudgeOutputs:
    """A judge that never sees length: softmax(2 * one-hot(human plurality) + N(0, 1) noise)
    over A, B, tie."""
    labels = ("A", "B", "tie")
    human = np.array([labels.index(str(r.consensus)) for r in records])
    logits = 2.0 * np.eye(3)[human] + np.random.default_rng(seed).normal(0, 1, (len(human), 3))
    return _outputs(records, softmax(logits, axis=1), labels)


def _length_x(records: list[CalibrationRecord]) -> np.ndarray:
    """tanh(length gap / dev sd): the feature the fit freezes."""
    lengths = answer_lengths([r.item for r in records])
    dev = {r.id for r in split_records(records, "dev")}
    gap = lengths[:, 0] - lengths[:, 1]
    return np.tanh(gap / np.std(gap[[r.id in dev for r in records]]))


def _heldout_kappa(records: list[CalibrationRecord], outputs: JudgeOutputs) -> float:
    """The held-out headline kappa as a point estimate."""
    c = Calibrator(
        join_split(records, outputs, "heldout", 0.5),
        outputs,
        "pairwise",
        np.random.default_rng(0),
        0,
    )
    return cohen_kappa(c.human_idx, c.judge_all, labels=np.arange(c.k + 1))


def _card(records, outputs: JudgeOutputs, model: LengthModel, **kw) -> CalibrationCard:
    """The card a calibration makes: it applies the model when its dev decision says so."""
    if model.decision is not None and model.decision.apply:
        return card_with_length(records, outputs, model, split="heldout", **kw)
    return card_for(records, outputs, split="heldout", length_model=model, **kw)


def load_length_model(card: CalibrationCard) -> LengthModel | None:
    return _load(card.length_model)


def applied_length_model(card: CalibrationCard) -> LengthModel | None:
    """What ``judge --card`` applies: the card's model when the card's controls apply it."""
    return load_length_model(card) if card.applies.length_correction else None


def _marginal(records: list[CalibrationRecord], outputs: JudgeOutputs) -> LengthModel:
    """The model calibration fitted before the human covariate: on dev, no human label."""
    dev = np.isin(outputs.item_ids, [r.id for r in split_records(records, "dev")])
    pref = preference_for_a(outputs.probs[dev], outputs.labels)
    return fit_pairwise_length(pref, outputs.lengths[dev, 0], outputs.lengths[dev, 1])


def test_judge_that_never_sees_length_keeps_its_heldout_kappa(pandalm) -> None:
    outputs = _replay(pandalm, seed=0)
    before = _heldout_kappa(pandalm, outputs)
    assert before == pytest.approx(0.7480, abs=1e-4)  # near-even pairs are ties (tie band)

    # The old model (no human label) finds a "length bias" and its correction costs kappa.
    old = _marginal(pandalm, outputs)
    assert (old.slope, old.slope_ci_low) == pytest.approx((0.872, 0.509), abs=1e-3)
    assert _heldout_kappa(pandalm, _length_corrected(outputs, old)) == pytest.approx(
        0.7019, abs=1e-4
    )

    model = fit_length_model(pandalm, outputs, "dev")
    assert model.n == 559 and model.human_coef == pytest.approx(1.306, abs=1e-3)
    assert model.slope == pytest.approx(-0.063, abs=1e-3)
    assert model.slope_ci_low < 0 < model.slope_ci_high
    assert model.decision is not None and not model.decision.apply
    assert model.decision.reason.startswith("no measurable length effect on dev")

    card = _card(pandalm, outputs, model)
    assert card.kappa.estimate == pytest.approx(before, abs=1e-12)
    assert card.length_model is not None and card.length_model["applied"] is False
    assert applied_length_model(card) is None  # judge --card corrects nothing: kappa as is
    assert any(
        "length model fitted on 559 dev items" in n and "NOT applied" in n for n in card.notes
    )
    # Even if it were applied, the slope given the human label barely moves the verdicts.
    (change,) = card.length_agreement
    assert change.after is not None and change.after.estimate == pytest.approx(0.7550, abs=1e-4)
    assert card.length_before is not None and card.length_before.ci_low < 0


def test_never_applied_and_old_model_always_lost_kappa_over_seeds(pandalm) -> None:
    """20 noise draws of the same judge: the decision never applies the new model, and the old
    model's correction lowered the held-out kappa every time."""
    applied, old_drop = [], []
    for seed in range(1, 21):
        outputs = _replay(pandalm, seed)
        applied.append(fit_length_model(pandalm, outputs, "dev").decision.apply)
        corrected = _length_corrected(outputs, _marginal(pandalm, outputs))
        old_drop.append(_heldout_kappa(pandalm, outputs) - _heldout_kappa(pandalm, corrected))
    assert not any(applied)
    assert min(old_drop) == pytest.approx(0.0063, abs=1e-4)
    assert np.mean(old_drop) == pytest.approx(0.0367, abs=1e-4)


def test_length_biased_judge_is_recovered_and_corrected(pandalm) -> None:
    """logit P(A) = 1.5 h + 1.5 tanh(gap / dev sd) + N(0, 0.5): the slope beyond the humans is
    1.5, the fit recovers it, dev says apply, and held-out kappa rises."""
    h = human_preference([r.consensus for r in pandalm])
    noise = np.random.default_rng(0).normal(0, 0.5, len(pandalm))
    p_a = expit(1.5 * h + 1.5 * _length_x(pandalm) + noise)
    outputs = _outputs(pandalm, np.column_stack([p_a, 1 - p_a]), ("A", "B"))
    model = fit_length_model(pandalm, outputs, "dev")
    assert model.slope_ci_low < 1.5 < model.slope_ci_high
    assert model.slope == pytest.approx(1.470, abs=1e-3)
    assert model.decision is not None and model.decision.apply, model.decision
    cv = (model.decision.cv_before, model.decision.cv_after)
    assert cv == pytest.approx((0.827, 0.885), abs=1e-3)

    card = _card(pandalm, outputs, model)
    assert card.length_model is not None and card.length_model["applied"] is True
    assert applied_length_model(card) == model
    (change,) = card.length_agreement
    assert change.after is not None
    assert (change.before.estimate, change.after.estimate) == pytest.approx(
        (0.695, 0.820), abs=1e-3
    )
    before, after = card.length_before, card.length_after
    assert before is not None and after is not None
    assert before.ci_low > 1.0 and after.ci_low < 0 < after.ci_high


def _biased_replay(records: list[CalibrationRecord], b: float) -> JudgeOutputs:
    """The never-looks judge (seed 0) plus b/2 * tanh(gap / dev sd) on A's logit, minus on B's."""
    outputs = _replay(records, seed=0)
    logits = np.log(outputs.probs)
    logits[:, 0] += b / 2 * _length_x(records)
    logits[:, 1] -= b / 2 * _length_x(records)
    return _outputs(records, softmax(logits, axis=1), outputs.labels)


def _gpt35(records: list[CalibrationRecord], shared_data: Path) -> JudgeOutputs:
    """The PandaLM authors' released GPT-3.5 verdicts (hard; unparseable ones invalid)."""
    rows = json.loads(
        (shared_data / "pandalm/judge_outputs/gpt-3.5-turbo-testset-v1.json").read_text()
    )
    verdict = {str(r["idx"]): {"0": "tie", "1": "A", "2": "B"}.get(str(r["gpt_result"]).strip())
               for r in rows}  # fmt: skip
    ids = [r.id for r in records]
    labels = ("A", "B", "tie")
    hard = outputs_from_verdicts(ids, [verdict.get(i) for i in ids], labels)
    return _outputs(records, hard.probs, labels)


@pytest.mark.parametrize(
    ("judge", "old", "new", "decision", "kappas"),
    [
        # judge, old slope / held-out kappa after, new slope [CI], (applied, dev CV kappa as
        # judged, after), held-out kappa as judged / after the new model if it were applied
        # (docs/bias.md, "a judge that never looks at length")
        ("bias 1.0", (1.338, 0.734), (0.556, 0.089, 1.024), (True, 0.799, 0.806), (0.784, 0.771)),
        ("bias 2.0", (1.807, 0.761), (1.184, 0.688, 1.680), (True, 0.797, 0.801), (0.787, 0.788)),
        ("gpt-3.5", (1.191, 0.454), (0.290, -0.190, 0.771), (False, 0.484, 0.484), (0.454, 0.454)),
    ],
)
def test_pandalm_table(pandalm, shared_data: Path, judge, old, new, decision, kappas) -> None:
    outputs = (
        _gpt35(pandalm, shared_data)
        if judge == "gpt-3.5"
        else _biased_replay(pandalm, float(judge.split()[1]))
    )
    marginal = _marginal(pandalm, outputs)
    old_after = _heldout_kappa(pandalm, _length_corrected(outputs, marginal))
    assert (marginal.slope, old_after) == pytest.approx(old, abs=1e-3)
    model = fit_length_model(pandalm, outputs, "dev")
    fitted = (model.slope, model.slope_ci_low, model.slope_ci_high)
    assert fitted == pytest.approx(new, abs=1e-3)
    d = model.decision
    assert d is not None and d.apply is decision[0]
    assert (d.cv_before, d.cv_after) == pytest.approx(decision[1:], abs=1e-3)
    as_judged = _heldout_kappa(pandalm, outputs)
    would_be = _heldout_kappa(pandalm, _length_corrected(outputs, model))
    assert (as_judged, would_be) == pytest.approx(kappas, abs=1e-3)


def test_model_with_no_measurable_effect_is_not_applied(pandalm) -> None:
    """A near-chance judge (P(A) ~ 0.5, as the embedded judge after the swap) with no length
    effect: any correction tips its verdicts; the card records the model as not applied."""
    p_a = expit(np.random.default_rng(3).normal(0.0, 0.1, len(pandalm)))
    outputs = _outputs(pandalm, np.column_stack([p_a, 1 - p_a]), ("A", "B"))
    model = fit_length_model(pandalm, outputs, "dev")
    assert model.slope_ci_low < 0 < model.slope_ci_high
    assert model.decision is not None and not model.decision.apply
    card = _card(pandalm, outputs, model)
    assert card.length_model is not None and card.length_model["applied"] is False
    assert card.length_model["reason"] == model.decision.reason
    assert applied_length_model(card) is None


def _ordinal(n: int, slope: float, seed: int) -> tuple[list[CalibrationRecord], JudgeOutputs]:
    """A 1-5 judge: score = human mean + slope * log(characters / 300) + noise; four answers
    share each question (the split and the folds keep them together)."""
    rng = np.random.default_rng(seed)
    human = rng.integers(1, 6, size=(n, 3)).astype(float)
    chars = np.exp(rng.uniform(np.log(30), np.log(3000), n))
    score = np.clip(human.mean(axis=1) + slope * np.log(chars / 300) + rng.normal(0, 0.3, n), 1, 5)
    values = np.arange(1.0, 6.0)
    probs = np.exp(-2.0 * (values[None, :] - score[:, None]) ** 2)
    probs /= probs.sum(axis=1, keepdims=True)
    records = [
        CalibrationRecord(
            id=f"o{i}",
            item=PointwiseItem(id=f"o{i}", question="q", answer="x" * int(chars[i])),
            human=tuple(human[i]),
            consensus=float(human[i].mean()),
            group=f"q{i // 4}",
        )
        for i in range(n)
    ]
    outputs = JudgeOutputs(
        item_ids=tuple(r.id for r in records),
        labels=("1", "2", "3", "4", "5"),
        values=tuple(values),
        probs=probs,
        scores=probs @ values,
        source="scripted ordinal judge",
        lengths=np.floor(chars),
    )
    return records, outputs


def test_pointwise_follows_the_same_rule() -> None:
    records, outputs = _ordinal(800, slope=0.4, seed=8)
    model = fit_length_model(records, outputs, "dev")
    assert model.human_coef is not None and model.slope_ci_low < 0.4 < model.slope_ci_high
    assert model.decision is not None and model.decision.apply, model.decision
    metric = "dev cross-validated quadratic weighted kappa (decided verdicts)"
    assert model.decision.metric == metric
    card = _card(records, outputs, model, label_type="ordinal")
    qwk = card.length_agreement[1]
    assert qwk.metric.startswith("quadratic")
    # argmax labels stay as judged (the pointwise correction moves the score): never lower
    assert qwk.after is not None and qwk.after.estimate >= qwk.before.estimate

    records, outputs = _ordinal(800, slope=0.0, seed=9)
    model = fit_length_model(records, outputs, "dev")
    assert model.slope_ci_low < 0 < model.slope_ci_high
    assert model.decision is not None and not model.decision.apply


def test_card_stores_the_decision_and_old_cards_are_not_applied(pandalm, tmp_path: Path) -> None:
    outputs = _replay(pandalm, seed=0)
    model = fit_length_model(pandalm, outputs, "dev")
    card = _card(pandalm, outputs, model)
    stored = card.length_model
    assert stored is not None and model.decision is not None
    assert (stored["applied"], stored["reason"]) == (False, model.decision.reason)
    assert stored["cross_validation"] == {
        "metric": "dev cross-validated " + KAPPA,
        "before": model.decision.cv_before,
        "after": model.decision.cv_after,
        "n_folds": 5,
    }
    assert "decision" not in stored["coefficients"]
    reloaded = CalibrationCard.model_validate_json(save_card(card, tmp_path).read_text())
    assert load_length_model(reloaded) == model

    # A card written before this change: no decision, no human term in the coefficients.
    old_coefficients = {
        k: v for k, v in stored["coefficients"].items() if k not in ("human_coef", "tie_coef")
    }
    old = {k: stored[k] for k in ("kind", "fitted_on", "n", "length_unit")}
    old_card = card.model_copy(update={"length_model": {**old, "coefficients": old_coefficients}})
    loaded = load_length_model(old_card)
    assert loaded is not None and loaded.human_coef is None
    assert loaded.decision is not None and loaded.decision.reason == NO_DECISION
    assert applied_length_model(old_card) is None


def test_group_folds_keep_groups_together_and_ignore_order() -> None:
    groups = [f"g{i % 37}" for i in range(300)]
    folds = _group_folds(groups, 5)
    for g in set(groups):
        assert len(set(folds[[x == g for x in groups]])) == 1
    per_fold = [len({g for g, f in zip(groups, folds, strict=True) if f == k}) for k in range(5)]
    assert sorted(per_fold) == [7, 7, 7, 8, 8]
    shuffled = list(reversed(groups))
    assert list(_group_folds(shuffled, 5)) == list(reversed(folds))
