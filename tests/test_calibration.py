"""Calibration cards and reports: the PandaLM baselines reproduce, the trust logic and the store.

Real-data tests read ``../shared/data`` (``shared_data`` fixture) and skip when it is absent.
PandaLM has 3 annotators with labels 0 = tie, 1, 2; the consensus is the plurality, and the set has
no item where all three differ (the authors removed high-disagreement items), so every item has a
consensus and "tie" is simply a third category. The README's "63 unparseable" GPT-3.5 verdicts
are 25 free-text answers plus 38 literal "Tie" strings (GPT-3.5 never wrote "0"), so the verdict
map is exactly {"0": tie, "1": A, "2": B} and "Tie" is invalid.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import card_for
from scipy.special import expit, logit

from judgekit.backends import ReplayJudge
from judgekit.calibrate.measure.outputs import JudgeOutputs, outputs_from_run, outputs_from_verdicts
from judgekit.calibrate.report.plots import plot_confusion, plot_reliability, plot_variants
from judgekit.calibrate.report.write import write_report
from judgekit.calibrate.run import run_calibration
from judgekit.cards import (
    CalibrationCard,
    CalibrationOptions,
    Interval,
    TrustThresholds,
    card_key,
    decide_trust,
    read_card,
    save_card,
)
from judgekit.data.sets import CalibrationRecord, load_calibration_set
from judgekit.data.split import heldout_mask
from judgekit.judging import JudgeRun, build_run
from judgekit.rubrics import load_rubric
from judgekit.schema import Controls, JudgeIdentity, Judgment, PairwiseItem, PointwiseItem

PANDALM_MAP = {"0": "tie", "1": "A", "2": "B"}
RESAMPLES = 200
PNG = b"\x89PNG\r\n\x1a\n"


def _calibrate(records, outputs: JudgeOutputs, split: str = "all", **kw) -> CalibrationCard:
    return card_for(records, outputs, split=split, resamples=RESAMPLES, **kw)


@pytest.fixture(scope="module")
def pandalm(shared_data: Path):
    return load_calibration_set("pandalm", data_dir=shared_data)


def _released(shared_data: Path, name: str, field: str) -> JudgeOutputs:
    rows = json.loads((shared_data / "pandalm" / "judge_outputs" / f"{name}.json").read_text())
    return outputs_from_verdicts(
        [str(r["idx"]) for r in rows],
        [PANDALM_MAP.get(str(r[field])) for r in rows],
        ("A", "B", "tie"),
        source=name,
    )


@pytest.fixture(scope="module")
def gpt35(shared_data: Path) -> JudgeOutputs:
    return _released(shared_data, "gpt-3.5-turbo-testset-v1", "gpt_result")


@pytest.fixture(scope="module")
def gpt35_card(pandalm, gpt35: JudgeOutputs) -> CalibrationCard:
    return _calibrate(pandalm.records, gpt35)


# --------------------------------------------------------------------------- PandaLM baselines


def test_pandalm_majority_is_always_defined(pandalm, shared_data: Path) -> None:
    rows = json.loads((shared_data / "pandalm" / "testset-v1.json").read_text())
    labels = [{r["annotator1"], r["annotator2"], r["annotator3"]} for r in rows]
    assert len(rows) == 999
    assert sum(len(s) == 3 for s in labels) == 0  # no three-way split: the plurality exists
    assert all(r.consensus is not None for r in pandalm.records)
    assert sum(r.consensus == "tie" for r in pandalm.records) == 105


def test_gpt35_reproduces_published_kappa(gpt35_card: CalibrationCard) -> None:
    card = gpt35_card
    assert (card.n, card.n_invalid, card.n_no_consensus) == (999, 63, 0)
    # README: "kappa ~0.47 (63 of 999 verdicts unparseable, counted as disagreement)".
    assert card.kappa.estimate == pytest.approx(0.4705, abs=5e-4)
    assert card.kappa_valid_only is not None
    assert card.kappa_valid_only.estimate == pytest.approx(0.5226, abs=5e-4)
    assert card.kappa_valid_only.n == 936
    assert card.kappa.low < card.kappa.estimate < card.kappa.high
    # items of one PandaLM instruction are one cluster: the card's intervals resample them
    assert card.kappa.method == "bca; cluster bootstrap over 170 groups"
    assert card.kappa.n_groups == 170 and card.accuracy.n_groups == 170
    assert card.confusion.columns == ["A", "B", "tie", "invalid"]
    assert sum(row[-1] for row in card.confusion.counts) == 63
    assert card.accuracy.estimate == pytest.approx(692 / 999)


def test_gpt35_tie_strings_as_ties_gives_the_alternative_figure(pandalm, shared_data: Path) -> None:
    rows = json.loads(
        (shared_data / "pandalm" / "judge_outputs" / "gpt-3.5-turbo-testset-v1.json").read_text()
    )
    lenient = {**PANDALM_MAP, "Tie": "tie"}
    outputs = outputs_from_verdicts(
        [str(r["idx"]) for r in rows],
        [lenient.get(r["gpt_result"]) for r in rows],
        ("A", "B", "tie"),
    )
    card = _calibrate(pandalm.records, outputs)
    assert card.n_invalid == 25
    assert card.kappa.estimate == pytest.approx(0.4755, abs=5e-4)


def test_pandalm_7b_reproduces_published_kappa(pandalm, shared_data: Path) -> None:
    outputs = _released(shared_data, "pandalm-7b-testset-v1", "pandalm_result")
    card = _calibrate(pandalm.records, outputs)
    assert card.n_invalid == 0
    assert card.kappa.estimate == pytest.approx(0.4354, abs=5e-4)  # README: ~0.44
    assert card.kappa_valid_only is not None
    assert card.kappa_valid_only.estimate == card.kappa.estimate


def test_pandalm_human_ceiling(gpt35_card: CalibrationCard) -> None:
    ceiling = gpt35_card.human_ceiling
    assert ceiling is not None
    assert ceiling.n_annotators == 3
    # README: annotators agree at Cohen's kappa 0.85-0.88.
    assert 0.85 <= ceiling.mean_pairwise_annotator <= 0.88
    assert ceiling.mean_loo_human == pytest.approx(0.9256, abs=5e-4)
    assert ceiling.mean_loo_judge == pytest.approx(0.4915, abs=5e-4)
    assert ceiling.ratio == pytest.approx(0.531, abs=1e-3)
    assert ceiling.judge_vs_consensus == pytest.approx(gpt35_card.kappa.estimate)
    assert not gpt35_card.verdict.trusted
    failed = [r for r in gpt35_card.verdict.reasons if r.startswith("FAIL")]
    assert failed == ["FAIL: judge/human-ceiling ratio = 0.531 (need >= 0.800)"]
    assert "ratio 0.53" in (gpt35_card.ceiling_sentence() or "")


# --------------------------------------------------------------------------- verdict logic


def _interval(estimate: float, low: float, high: float, n: int = 100) -> Interval:
    return Interval(
        estimate=estimate, low=low, high=high, level=0.95, method="bca", n=n, n_resamples=100
    )


def test_decide_trust_passes_and_fails_with_numbers() -> None:
    t = TrustThresholds()
    good = dict(n=200, invalid_rate=0.02, trust_metric="kappa", thresholds=t, n_annotators=3)
    ok = decide_trust(trust_kappa=_interval(0.7, 0.6, 0.8), ceiling_ratio=0.9, **good)
    assert ok.trusted
    assert all(r.startswith("PASS") for r in ok.reasons)

    low_ci = decide_trust(trust_kappa=_interval(0.5, 0.35, 0.6), ceiling_ratio=0.9, **good)
    assert not low_ci.trusted
    assert any(r.startswith("FAIL") and "lower bound 0.350" in r for r in low_ci.reasons)

    few = decide_trust(
        n=20, invalid_rate=0.3, trust_metric="kappa", thresholds=t,
        trust_kappa=_interval(0.9, 0.8, 0.95), ceiling_ratio=None, n_annotators=1,
    )  # fmt: skip
    assert not few.trusted
    assert "FAIL: n = 20 (need >= 50)" in few.reasons
    assert "FAIL: invalid rate = 0.300 (need <= 0.100)" in few.reasons
    assert any(r.startswith("SKIP: human-ceiling") for r in few.reasons)

    # a set with 2+ annotators must have a ceiling: a missing one fails, never reads as a pass
    no_ceiling = decide_trust(trust_kappa=_interval(0.7, 0.6, 0.8), ceiling_ratio=None, **good)
    assert not no_ceiling.trusted
    assert any(r.startswith("FAIL: judge/human-ceiling ratio: missing") for r in no_ceiling.reasons)
    single = {**good, "n_annotators": 1}
    assert decide_trust(trust_kappa=_interval(0.7, 0.6, 0.8), ceiling_ratio=None, **single).trusted
    nan = decide_trust(trust_kappa=_interval(0.7, 0.6, 0.8), ceiling_ratio=float("nan"), **good)
    assert not nan.trusted
    strict = TrustThresholds(min_ceiling_ratio=0.95)
    assert not decide_trust(
        n=200, invalid_rate=0.0, trust_metric="kappa", thresholds=strict,
        trust_kappa=_interval(0.7, 0.6, 0.8), ceiling_ratio=0.9, n_annotators=3,
    ).trusted  # fmt: skip


def _synthetic_pairwise(n: int, accuracy: float, seed: int) -> tuple[list, JudgeOutputs]:
    """3 mostly agreeing annotators; a hard-verdict judge right ``accuracy`` of the time."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(["A", "B"], size=n)
    records, verdicts = [], []
    for i, t in enumerate(truth):
        other = "B" if t == "A" else "A"
        human = tuple(t if rng.random() < 0.9 else other for _ in range(3))
        consensus = max(set(human), key=human.count)
        item = PairwiseItem(id=f"s{i}", question="q", answer_a="a", answer_b="b")
        records.append(CalibrationRecord(id=f"s{i}", item=item, human=human, consensus=consensus))
        verdicts.append(consensus if rng.random() < accuracy else other)
    return records, outputs_from_verdicts([r.id for r in records], verdicts, ("A", "B"))


def test_calibrate_trusts_a_good_judge_and_not_a_coin() -> None:
    records, good = _synthetic_pairwise(300, 0.95, seed=1)
    card = _calibrate(records, good, split="heldout")
    assert card.verdict.trusted, card.verdict.reasons
    assert card.split.n_split == int(heldout_mask([r.id for r in records]).sum()) == card.n

    records, coin = _synthetic_pairwise(300, 0.5, seed=2)
    card = _calibrate(records, coin, split="heldout")
    assert not card.verdict.trusted
    assert any("kappa" in r and r.startswith("FAIL") for r in card.verdict.reasons)


def test_dev_and_heldout_partition_the_set() -> None:
    records, outputs = _synthetic_pairwise(120, 0.8, seed=3)
    dev, held = (_calibrate(records, outputs, split=s) for s in ("dev", "heldout"))
    assert dev.n + held.n == 120
    assert any(r.startswith("NOTE: split 'dev'") for r in dev.verdict.reasons)


# --------------------------------------------------------------------------- key and store


def test_card_key_is_stable_and_covers_its_inputs() -> None:
    settings = {"dtype": "float32", "max_model_len": 4096, "vllm": "0.32.0"}
    options = CalibrationOptions().model_dump(mode="json") | {"set": "pandalm"}
    key = card_key("r", "f", settings, options)
    assert key == card_key("r", "f", dict(reversed(settings.items())), options)
    others = {
        card_key("r2", "f", settings, options),
        card_key("r", "f2", settings, options),
        card_key("r", "f", {**settings, "dtype": "bfloat16"}, options),
        card_key("r", "f", {**settings, "max_model_len": 2048}, options),
        card_key("r", "f", {**settings, "vllm": "0.33.0"}, options),
        card_key("r", "f", {**settings, "label_probs": "top-k"}, options),
        card_key("r", "f", settings, {**options, "set": "other"}),
        card_key("r", "f", settings, {**options, "split": "dev"}),
        # every option that changes what the card measures: a 60-item smoke card has its own key
        card_key("r", "f", settings, {**options, "limit": 60}),
        card_key("r", "f", settings, {**options, "consensus": "dawid-skene"}),
        card_key("r", "f", settings, {**options, "heldout_fraction": 0.3}),
        card_key("r", "f", settings, {**options, "min_annotator_reliability": 0.6}),
    }
    assert key not in others and len(others) == 12
    # purely operational settings never change a verdict, so they do not split cards
    operational = {
        **settings,
        "enforce_eager": True,
        "enable_prefix_caching": False,
        "tensor_parallel_size": 2,
    }
    assert card_key("r", "f", operational, options) == key


def test_save_card_newest_replaces_and_reads_back(tmp_path: Path) -> None:
    records, good = _synthetic_pairwise(300, 0.95, seed=1)
    card = _calibrate(records, good, split="heldout")
    path = save_card(card, tmp_path)
    assert path.name == f"{card.key}.json"
    named = read_card(path)
    assert named.card == card and named.ref.key == card.key
    assert named.ref.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # a newer failing card for the same key replaces the older passing one
    records, coin = _synthetic_pairwise(300, 0.5, seed=2)
    newer = _calibrate(records, coin, split="heldout")
    assert newer.key == card.key and save_card(newer, tmp_path) == path
    assert not read_card(path).card.verdict.trusted and len(list(tmp_path.iterdir())) == 1


def test_card_records_the_split_group(shared_data: Path, tmp_path: Path) -> None:
    """PandaLM held out by instruction (77 of 170; by item id it was 496 items)."""
    verdicts = shared_data / "pandalm" / "judge_outputs" / "gpt-3.5-turbo-testset-v1.json"
    result = run_calibration(
        "pandalm",
        load_rubric("pairwise_preference@v1"),
        backend=ReplayJudge(verdicts=str(verdicts), id_field="idx", verdict_field="gpt_result"),
        options=CalibrationOptions(n_resamples=RESAMPLES, fit_dev=False, variants=["direct"]),
        data_dir=shared_data,
        cards_dir=tmp_path / "cards",
        out_dir=tmp_path / "out",
    )
    split = result.card.split
    assert split.group_by == "template {instruction}\n\n{input}"
    assert (split.n_split, split.n_groups, result.card.n) == (440, 77, 440)
    assert result.card.judge_settings == {}  # a replay's source path and token estimate: none


# --------------------------------------------------------------------------- judge runs


def _judgment(item_id: str, variant: str, order: str, probs: dict[str, float] | None) -> Judgment:
    return Judgment(
        item_id=item_id, rubric="pairwise_preference", rubric_version=1, rubric_hash="r" * 64,
        variant=variant, order=order, label_probs=probs, label_mass=1.0 if probs else 0.0,
        expected_score=probs["A"] if probs else None, label=None, valid=probs is not None,
        invalid_reason=None if probs else "no label", judge_model="scripted",
        judge_fingerprint="f" * 64, engine_settings={}, num_prompt_tokens=10, num_cached_tokens=0,
    )  # fmt: skip


@pytest.fixture(scope="module")
def scripted_run(pandalm) -> tuple[list[CalibrationRecord], JudgeRun]:
    """A pairwise judge on 200 PandaLM pairs: knows the consensus, favours the first position
    (odds x e^0.8) and the longer answer, three variants, one of them noisy with invalid rows."""
    records = list(pandalm.records[:200])
    rng = np.random.default_rng(7)
    judgments = []
    for r in records:
        q = {"A": 0.85, "B": 0.15, "tie": 0.5}[str(r.consensus)]
        longer = np.sign(len(r.item.answer_a) - len(r.item.answer_b)) * 0.3
        for variant, noise in (("direct", 0.3), ("instruction_following", 0.5), ("expert", 1.5)):
            base = logit(q) + longer + rng.normal(0, noise)
            for order, first in (("AB", 0.8), ("BA", -0.8)):
                p_a = float(expit(base + first))
                shown = {"A": p_a, "B": 1 - p_a} if order == "AB" else {"A": 1 - p_a, "B": p_a}
                invalid = variant == "expert" and rng.random() < 0.2
                judgments.append(_judgment(r.id, variant, order, None if invalid else shown))
    rubric = load_rubric("pairwise_preference@v1")
    identity = JudgeIdentity(
        backend="scripted", model="scripted", fingerprint="f" * 64, settings={}
    )
    run = build_run(rubric, identity, Controls(), [r.item for r in records], judgments, seconds=1.0)
    return records, run


def test_outputs_from_run(scripted_run) -> None:
    records, run = scripted_run
    out = outputs_from_run(run)
    assert out.labels == ("A", "B") and out.values == (1.0, 0.0)
    np.testing.assert_array_equal(out.probs, run.verdicts.probs)
    assert set(out.variant_scores) == {"direct", "instruction_following", "expert"}
    assert np.isnan(out.variant_scores["expert"]).sum() > 10
    assert not np.isnan(out.variant_scores["direct"]).any()
    assert out.p_a_ab is not None and out.p_a_ba is not None
    # The scripted first-position boost: A is preferred more when shown first.
    assert np.nanmean(out.p_a_ab) > np.nanmean(out.p_a_ba) + 0.1
    assert out.lengths is not None and out.lengths.shape == (200, 2)
    assert out.lengths[0, 0] == len(records[0].item.answer_a)


def test_calibrate_run_has_bias_figures(scripted_run) -> None:
    records, run = scripted_run
    card = _calibrate(records, outputs_from_run(run), split="heldout")
    assert [v.variant for v in card.per_variant] == ["direct", "instruction_following", "expert"]
    direct, _, expert = card.per_variant
    assert direct.kappa is not None and expert.kappa is not None
    assert expert.n_invalid > 0 and direct.kappa.estimate > expert.kappa.estimate
    assert card.position is not None and card.position.flip_rate is not None
    assert card.position.first_pick_before is not None
    assert card.position.first_pick_before.estimate > 0.55
    assert card.length is not None and card.length.ci_low > 0  # the scripted length preference
    assert card.reliability and card.expected_calibration_error is not None
    # reliability bins hold the decided items: valid and not a tie inside the tie band
    assert sum(b.n for b in card.reliability) == round(card.coverage * card.n) < card.n


# --------------------------------------------------------------------------- ordinal and binary


def _ordinal_records(n: int, seed: int) -> tuple[list[CalibrationRecord], JudgeOutputs]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 6, size=n)
    records, probs = [], []
    for i, t in enumerate(truth):
        human = tuple(float(np.clip(t + rng.integers(-1, 2), 1, 5)) for _ in range(3))
        item = PointwiseItem(id=f"o{i}", question="q", answer="x" * int(rng.integers(5, 500)))
        records.append(
            CalibrationRecord(id=f"o{i}", item=item, human=human, consensus=float(np.mean(human)))
        )
        logits = -0.8 * (np.arange(1, 6) - t) ** 2
        p = np.exp(logits) / np.exp(logits).sum()
        probs.append(p if rng.random() > 0.03 else np.full(5, np.nan))
    probs_arr = np.array(probs)
    values = np.arange(1.0, 6.0)
    outputs = JudgeOutputs(
        item_ids=tuple(r.id for r in records),
        labels=("1", "2", "3", "4", "5"),
        values=tuple(values),
        probs=probs_arr,
        scores=probs_arr @ values,
        source="scripted ordinal",
        lengths=np.array([len(r.item.answer) for r in records], dtype=float),
    )
    return records, outputs


def test_ordinal_card() -> None:
    records, outputs = _ordinal_records(150, seed=4)
    card = _calibrate(records, outputs)
    assert card.label_type == "ordinal"
    assert card.ordinal is not None
    o = card.ordinal
    assert o.weighted_kappa_quadratic is not None and o.spearman is not None
    assert o.weighted_kappa_quadratic.estimate > card.kappa.estimate  # near misses count
    assert o.spearman.estimate > 0.7 and o.kendall is not None and o.pearson is not None
    assert set(card.alpha) == {"ordinal", "interval"}
    assert card.human_ceiling is not None
    assert card.human_ceiling.metric == "quadratic-weighted kappa"
    assert card.trust_metric.startswith("quadratic weighted kappa")
    assert card.length is not None and card.length.model.startswith("judge score on log length")


def test_binary_consensus_as_label_values() -> None:
    rng = np.random.default_rng(5)
    records, verdicts = [], []
    for i in range(80):
        t = float(rng.integers(0, 2))
        item = PointwiseItem(id=f"b{i}", question="q", answer="a")
        records.append(CalibrationRecord(id=f"b{i}", item=item, human=(t, t), consensus=t))
        verdicts.append(("no", "yes")[int(t)] if rng.random() < 0.9 else "maybe")
    outputs = outputs_from_verdicts([r.id for r in records], verdicts, ("no", "yes"))
    assert outputs.values == (0.0, 1.0)
    card = _calibrate(records, outputs)
    assert card.label_type == "binary"
    assert card.confusion.rows == ["no", "yes"]
    assert card.accuracy_valid_only == 1.0
    assert card.kappa_valid_only is not None and card.kappa_valid_only.estimate == 1.0
    assert card.kappa.estimate < 1.0


def test_outputs_from_verdicts_marks_unparseable_invalid() -> None:
    out = outputs_from_verdicts(["1", "2", "3", "4"], ["A", " B ", None, "Tie"], ("A", "B", "tie"))
    np.testing.assert_array_equal(out.valid, [True, True, False, False])
    np.testing.assert_array_equal(out.scores[:2], [1.0, 0.0])
    with pytest.raises(ValueError, match="duplicates"):
        outputs_from_verdicts(["1", "1"], ["A", "B"], ("A", "B"))


# --------------------------------------------------------------------------- report


def test_plot_functions_return_png() -> None:
    assert (
        plot_confusion(np.array([[3, 1, 0], [2, 5, 1]]), ["A", "B"], ["A", "B", "invalid"])[:8]
        == PNG
    )
    assert plot_reliability([0.55, 0.95], [0.5, 0.9], [10, 40])[:8] == PNG
    assert plot_variants(["a", "b"], [0.5, 0.6], [0.4, 0.5], [0.6, 0.7], reference=0.55)[:8] == PNG


def test_write_report(scripted_run, tmp_path: Path) -> None:
    records, run = scripted_run
    outputs = outputs_from_run(run)
    card = _calibrate(records, outputs, split="heldout")
    paths = write_report(card, tmp_path, records=records, outputs=outputs)
    assert {"card", "markdown", "html", "confusion", "reliability", "length", "variants"} <= set(
        paths
    )
    assert all(p.is_file() for p in paths.values())
    assert CalibrationCard.model_validate_json(paths["card"].read_text()) == card

    html_text = paths["html"].read_text()
    assert html_text.count("data:image/png;base64,") == 4
    assert 'src="http' not in html_text and "<script" not in html_text

    md = paths["markdown"].read_text()
    verdict = "TRUSTED" if card.verdict.trusted else "NOT TRUSTED"
    assert f"**{verdict}**" in md and f">{verdict}</h2>" in html_text
    for label, value in (
        ("verdict", verdict),
        ("items compared (n)", str(card.n)),
        ("invalid verdicts", f"{card.n_invalid} ({card.invalid_rate:.1%})"),
        ("kappa, invalid counted as disagreement (headline)", card.kappa.format()),
        ("accuracy, invalid counted as wrong", card.accuracy.format()),
    ):
        assert f"| {label} | {value} |" in md
        assert f"<td>{html.escape(label)}</td><td>{html.escape(value)}</td>" in html_text
    assert card.kappa_valid_only is not None
    assert f"{card.kappa_valid_only.estimate:.3f}" in md
    ceiling = card.human_ceiling
    assert ceiling is not None and card.ceiling_sentence() in md
    assert f"ratio {ceiling.ratio:.2f}" in md
    rows = re.findall(r"^\| (?:A|B|tie) \|((?: \d+ \|)+)$", md, re.MULTILINE)
    assert [[int(c) for c in row.split("|") if c.strip()] for row in rows] == card.confusion.counts


def test_report_escapes_text(gpt35_card: CalibrationCard, tmp_path: Path) -> None:
    card = gpt35_card.model_copy(update={"judge_model": "<script>alert(1)</script>"})
    paths = write_report(card, tmp_path)
    html_text = paths["html"].read_text()
    assert "<script>" not in html_text and "&lt;script&gt;" in html_text
    assert "length" not in paths  # no per-item data given: no scatter
