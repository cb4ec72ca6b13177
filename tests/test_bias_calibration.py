"""Frozen length correction and variant figures in calibration cards.

The scripted judges here have a planted length preference, so the fitted slope can be checked
against the truth; the one real-engine test checks that ``run_calibration`` fits on dev, stores
the model and fills the bias figures on a small PandaLM run.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import card_for, card_with_length
from scipy.special import expit

from judgekit.bias.length import load_length_model as _load
from judgekit.calibrate.fit.length import fit_length_model
from judgekit.calibrate.measure.outputs import JudgeOutputs
from judgekit.calibrate.report.write import write_report
from judgekit.calibrate.run import run_calibration
from judgekit.cards import CalibrationCard, CalibrationOptions, save_card
from judgekit.data.sets import CalibrationRecord
from judgekit.data.split import HeldOutError, heldout_mask
from judgekit.rubrics import load_rubric
from judgekit.schema import Controls, PairwiseItem, PointwiseItem

RESAMPLES = 200
VARIANTS = ("direct", "instruction_following", "expert")


def _calibrate(records, outputs: JudgeOutputs, **kw) -> CalibrationCard:
    kw.setdefault("split", "heldout")
    model = kw.pop("length_model", None)
    if model is not None:
        return card_with_length(records, outputs, model, resamples=RESAMPLES, **kw)
    return card_for(records, outputs, resamples=RESAMPLES, **kw)


def load_length_model(card: CalibrationCard):  # type: ignore[no-untyped-def]
    return _load(card.length_model)


def _dev_scale(ids: list[str], diff: np.ndarray) -> float:
    """The length scale the fit will freeze: sd of the dev items' length differences."""
    return float(np.std(diff[~heldout_mask(ids)]))


def _pairwise(
    n: int, slope: float, quality_sd: float, seed: int, start: int = 0
) -> tuple[list[CalibrationRecord], JudgeOutputs]:
    """A judge with logit P(A) = 0.2 + quality + slope * tanh((len_a - len_b) / dev sd).

    Humans (3 annotators) prefer the answer of higher quality; lengths are independent of
    quality, so every bit of the length effect is bias. Each variant adds its own noise.
    """
    rng = np.random.default_rng(seed)
    ids = [f"p{i}" for i in range(start, start + n)]
    lengths = rng.integers(20, 1500, size=(n, 2)).astype(float)
    diff = lengths[:, 0] - lengths[:, 1]
    quality = rng.normal(0.0, quality_sd, n) if quality_sd > 0 else np.zeros(n)
    logit_a = 0.2 + quality + slope * np.tanh(diff / _dev_scale(ids, diff))
    p_a = expit(logit_a)
    records = []
    for i, item_id in enumerate(ids):
        truth = "A" if quality[i] > 0 or (quality_sd == 0 and rng.random() < 0.5) else "B"
        item = PairwiseItem(
            id=item_id,
            question="q",
            answer_a="a" * int(lengths[i, 0]),
            answer_b="b" * int(lengths[i, 1]),
        )
        records.append(
            CalibrationRecord(id=item_id, item=item, human=(truth,) * 3, consensus=truth)
        )
    variant_probs = {
        v: np.column_stack([p, 1 - p])
        for k, v in enumerate(VARIANTS)
        if (p := expit(logit_a + rng.normal(0, 0.2 + 0.2 * k, n))) is not None
    }
    outputs = JudgeOutputs(
        item_ids=tuple(ids),
        labels=("A", "B"),
        values=(1.0, 0.0),
        probs=np.column_stack([p_a, 1 - p_a]),
        scores=p_a,
        source="scripted length-biased judge",
        variant_probs=variant_probs,
        lengths=lengths,
    )
    return records, outputs


def test_fit_recovers_the_planted_pairwise_slope_and_removes_it_on_heldout() -> None:
    records, outputs = _pairwise(400, slope=1.2, quality_sd=0.0, seed=1)
    model = fit_length_model(records, outputs, "dev")
    dev = ~heldout_mask([r.id for r in records])
    assert model.n == dev.sum()
    assert model.slope == pytest.approx(1.2, abs=1e-6)
    assert model.intercept == pytest.approx(0.2, abs=1e-6)

    card = _calibrate(records, outputs, length_model=model)
    assert card.length_before is not None and card.length_after is not None
    assert card.length_before.n == card.n == (~dev).sum()
    assert card.length_before.slope == pytest.approx(1.2, abs=1e-6)  # same judge on held-out
    assert card.length_after.slope == pytest.approx(0.0, abs=1e-6)


def test_fit_refuses_heldout_and_ignores_heldout_outputs() -> None:
    records, outputs = _pairwise(200, slope=1.0, quality_sd=1.0, seed=2)
    with pytest.raises(HeldOutError, match="held-out"):
        fit_length_model(records, outputs, "heldout")
    with pytest.raises(ValueError, match="unknown split"):
        fit_length_model(records, outputs, "all")

    held = heldout_mask(list(outputs.item_ids))
    scrambled = outputs.probs.copy()
    scrambled[held] = scrambled[held][:, ::-1]  # held-out verdicts reversed: must not matter
    other = JudgeOutputs(
        item_ids=outputs.item_ids,
        labels=outputs.labels,
        values=outputs.values,
        probs=scrambled,
        scores=scrambled[:, 0],
        source="scrambled held-out",
        lengths=outputs.lengths,
    )
    assert fit_length_model(records, other, "dev") == fit_length_model(records, outputs, "dev")


def test_card_stores_the_frozen_model_and_load_round_trips(tmp_path: Path) -> None:
    records, outputs = _pairwise(300, slope=1.0, quality_sd=1.0, seed=3)
    model = fit_length_model(records, outputs, "dev")
    card = _calibrate(records, outputs, length_model=model)
    stored = card.length_model
    assert stored is not None
    assert (stored["kind"], stored["fitted_on"], stored["n"]) == ("pairwise", "dev", model.n)
    assert stored["length_unit"] == "characters of the answer text"
    assert load_length_model(card) == model
    path = save_card(card, tmp_path)
    reloaded = CalibrationCard.model_validate_json(path.read_text())
    assert load_length_model(reloaded) == model
    assert load_length_model(_calibrate(records, outputs)) is None


def test_adding_items_never_refits() -> None:
    """A later calibration with more items reuses the stored coefficients as they are."""
    records, outputs = _pairwise(200, slope=1.0, quality_sd=1.0, seed=4)
    first = _calibrate(records, outputs, length_model=fit_length_model(records, outputs, "dev"))
    more_records, more = _pairwise(200, slope=2.5, quality_sd=1.0, seed=5, start=200)
    combined = JudgeOutputs(
        item_ids=outputs.item_ids + more.item_ids,
        labels=outputs.labels,
        values=outputs.values,
        probs=np.vstack([outputs.probs, more.probs]),
        scores=np.concatenate([outputs.scores, more.scores]),
        source="more candidates",
        lengths=np.vstack([outputs.lengths, more.lengths]),
    )
    all_records = records + more_records
    later = _calibrate(all_records, combined, length_model=load_length_model(first))
    assert later.length_model == first.length_model
    refit = fit_length_model(all_records, combined, "dev")
    assert refit.slope != pytest.approx(first.length_model["coefficients"]["slope"], abs=0.05)


def test_correction_flattens_a_noisy_judge_and_helps_agreement() -> None:
    """With quality in the judge's logits the marginal (AlpacaEval-style) slope is attenuated,
    so the frozen correction removes most of the length effect, not all of it."""
    records, outputs = _pairwise(1200, slope=2.0, quality_sd=1.0, seed=6)
    card = _calibrate(records, outputs, length_model=fit_length_model(records, outputs, "dev"))
    before, after = card.length_before, card.length_after
    assert before is not None and after is not None
    assert before.ci_low > 1.0
    assert abs(after.slope) < before.slope / 4 and after.ci_high < before.ci_low
    (kappa,) = card.length_agreement
    assert kappa.metric == "kappa (ties and invalid verdicts as their own categories)"
    assert kappa.after == card.kappa  # the headline is what a run with the card reports
    assert kappa.before is not None and kappa.after.estimate > kappa.before.estimate + 0.2


def test_variant_alpha_and_variance_decomposition() -> None:
    records, outputs = _pairwise(300, slope=1.0, quality_sd=1.5, seed=7)
    card = _calibrate(records, outputs)
    assert set(card.variant_alpha) == {"nominal", "interval"}
    alpha = card.variant_alpha["interval"]
    assert 0 < alpha.low < alpha.estimate < alpha.high < 1
    v = card.variance
    assert v is not None and v.n_variants == 3 and v.n_items == card.n
    assert v.item_share + v.variant_share + v.residual_share == pytest.approx(1.0)
    assert v.item_share > v.residual_share  # quality varies more than the per-variant noise


def _pointwise(n: int, slope: float, seed: int) -> tuple[list[CalibrationRecord], JudgeOutputs]:
    """An ordinal 1-5 judge: score = human mean + slope * log(characters / 300) + noise."""
    rng = np.random.default_rng(seed)
    human = rng.integers(1, 6, size=(n, 3)).astype(float)
    human_mean = human.mean(axis=1)
    chars = np.exp(rng.uniform(np.log(30), np.log(3000), n))
    score = np.clip(human_mean + slope * np.log(chars / 300) + rng.normal(0, 0.3, n), 1, 5)
    values = np.arange(1.0, 6.0)
    probs = np.exp(-2.0 * (values[None, :] - score[:, None]) ** 2)
    probs /= probs.sum(axis=1, keepdims=True)
    records = [
        CalibrationRecord(
            id=f"o{i}",
            item=PointwiseItem(id=f"o{i}", question="q", answer="x" * int(chars[i])),
            human=tuple(human[i]),
            consensus=float(human_mean[i]),
        )
        for i in range(n)
    ]
    outputs = JudgeOutputs(
        item_ids=tuple(r.id for r in records),
        labels=("1", "2", "3", "4", "5"),
        values=tuple(values),
        probs=probs,
        scores=probs @ values,
        source="scripted verbose ordinal judge",
        lengths=np.floor(chars),
    )
    return records, outputs


def test_pointwise_frozen_correction() -> None:
    records, outputs = _pointwise(800, slope=0.4, seed=8)
    model = fit_length_model(records, outputs, "dev")
    assert model.human_coef is not None and model.human_coef > 0.5
    assert model.slope == pytest.approx(0.4, abs=0.06)
    card = _calibrate(records, outputs, length_model=model, label_type="ordinal")
    assert card.length_model is not None and card.length_model["kind"] == "pointwise"
    assert card.length_before is not None and card.length_before.ci_low > 0.2
    assert card.length_after is not None
    assert card.length_after.ci_low < 0 < card.length_after.ci_high
    metrics = [a.metric for a in card.length_agreement]
    assert metrics == [
        "kappa (ties and invalid verdicts as their own categories)",
        "quadratic weighted kappa (decided verdicts)",
    ]
    qwk = card.length_agreement[1]
    assert qwk.before is not None and qwk.after is not None
    # argmax labels: the pointwise correction moves the score, the labels stay as judged
    assert qwk.after.estimate == qwk.before.estimate
    # labels read at the score (nearest_score rule) move with it, towards the humans
    nearest = replace(outputs, controls=Controls(pointwise_label="nearest_score"))
    card = _calibrate(records, nearest, length_model=model, label_type="ordinal")
    qwk = card.length_agreement[1]
    assert qwk.before is not None and qwk.after is not None
    assert qwk.after.estimate > qwk.before.estimate + 0.02


def test_report_shows_the_bias_figures(tmp_path: Path) -> None:
    records, outputs = _pairwise(300, slope=1.5, quality_sd=1.5, seed=9)
    card = _calibrate(records, outputs, length_model=fit_length_model(records, outputs, "dev"))
    paths = write_report(card, tmp_path, records=records, outputs=outputs)
    md, page = paths["markdown"].read_text(), paths["html"].read_text()
    assert card.length_before is not None and card.length_after is not None
    for text in (
        "Frozen length model (pairwise, fitted on dev",
        "after the frozen correction",
        f"{card.length_after.slope:.3f}",
        "Agreement before / after the length correction",
        "Krippendorff's alpha across prompt variants",
        "Variance decomposition of per-variant scores",
        "ensemble (the verdict)",
    ):
        assert text in md
    assert "Variance decomposition of per-variant scores" in page
    assert "Krippendorff&#x27;s alpha across prompt variants" in page


@pytest.mark.engine
def test_run_calibration_fits_length_on_dev(engine, shared_data: Path, tmp_path: Path) -> None:
    """12 held-out + 12 dev PandaLM pairs on the embedded judge (144 prompts)."""
    result = run_calibration(
        "pandalm",
        load_rubric("pairwise_preference@v1"),
        backend=engine,
        options=CalibrationOptions(limit=12, n_resamples=200),
        data_dir=shared_data,
        cards_dir=tmp_path / "cards",
        out_dir=tmp_path / "report",
    )
    card = result.card
    assert card.split.name == "heldout" and card.n == 12
    assert card.length_model is not None, card.notes
    assert card.length_model["fitted_on"] == "dev" and card.length_model["n"] == 12
    assert load_length_model(card) is not None
    assert card.length_before is not None and card.length_after is not None
    assert card.position is not None and card.position.flip_rate is not None
    assert [v.variant for v in card.per_variant] == list(VARIANTS)
    assert card.variance is not None and card.variance.n_variants == 3
    md = result.report["markdown"].read_text()
    assert "Position bias" in md and "Variance decomposition" in md
