"""Cascades: replay backends (released PandaLM-7B and GPT-3.5 verdicts) on a calibration set and
on the sample file; one proof with the real engine as the small judge."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scripted import Lent

from judgekit.backends.replay import ReplayBackend, read_verdicts
from judgekit.calibrate.measure.abstain import GROUP_BETTING, select_threshold
from judgekit.calibrate.measure.cascade import (
    StageMismatchError,
    card_policy,
    card_threshold,
    cascade_agreement,
    certify_stages,
    policy_card,
)
from judgekit.calibrate.run import run_calibration
from judgekit.cards import CalibrationOptions, read_card
from judgekit.cards.model import CalibrationCard, EnsembleCard, SplitInfo
from judgekit.data.records import read_items
from judgekit.data.sets import load_calibration_set
from judgekit.data.split import heldout_mask
from judgekit.judging.cascade import Stage, cascade
from judgekit.judging.run import card_use, judge
from judgekit.judging.views import items_frame
from judgekit.rubrics import load_rubric

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("JUDGEKIT_DATA_DIR", REPO.parent / "shared" / "data"))
RUBRIC = "pairwise_preference@v1"
PANDALM_MAP = {"0": "tie", "1": "A", "2": "B"}


@pytest.fixture(scope="module")
def data() -> Path:
    if not (DATA / "pandalm").is_dir():
        pytest.skip(f"public data sets not found at {DATA}")
    return DATA


def _replay(data: Path, name: str, field: str) -> ReplayBackend:
    path = data / "pandalm" / "judge_outputs" / f"{name}-testset-v1.json"
    verdicts = read_verdicts(path, id_field="idx", verdict_field=field, label_map=PANDALM_MAP)
    return ReplayBackend(verdicts, model=name, source=str(path))


def test_replay_swaps_ba_and_refuses_non_labels():
    rubric = load_rubric(RUBRIC)
    items = read_items(REPO / "examples" / "sample_pairwise.jsonl", "pairwise")
    verdicts = {items[0].id: "A", items[1].id: "tie"}  # the rest: no verdict
    run = judge(
        items[:3], rubric, backend=ReplayBackend(verdicts, model="api"), variants=["direct"]
    )
    by = {(j.item_id, j.order): j for j in run.judgments}
    assert by[(items[0].id, "AB")].label == "A" and by[(items[0].id, "BA")].label == "B"
    assert items_frame(run)["label"].iloc[0] == "A"  # unswapped: the orders agree
    assert items_frame(run)["label"].iloc[1] == "tie"  # a replayed tie is a tie, not a win
    assert by[(items[1].id, "AB")].label_probs == {"A": 0.5, "B": 0.5}
    assert "no replayed verdict" in by[(items[2].id, "AB")].invalid_reason
    assert by[(items[0].id, "AB")].num_prompt_tokens > 50  # chars / 4 estimate


@pytest.fixture(scope="module")
def pandalm_named(data: Path, tmp_path_factory):
    """PandaLM-7B's replayed verdicts calibrated (one variant) with the learned ensemble."""
    rubric = load_rubric(RUBRIC)
    out = tmp_path_factory.mktemp("card")
    result = run_calibration(
        "pandalm",
        rubric,
        backend=_replay(data, "pandalm-7b", "pandalm_result"),
        options=CalibrationOptions(n_resamples=200),
        data_dir=data,
        cards_dir=out / "cards",
        out_dir=out / "report",
    )
    return read_card(result.card_path)


def test_replayed_judge_gets_a_card_with_an_ensemble(pandalm_named):
    pandalm_card = pandalm_named.card
    section = pandalm_card.ensemble
    assert section is not None and section.model.n > 50
    methods = {r.method for r in section.comparison}
    assert {"plain mean", "majority", "learned ensemble"} <= methods
    assert section.chosen in methods and "dev kappa" in section.reason
    assert {p.target for p in section.abstention} == {0.7, 0.8, 0.9}


def test_cascade_on_a_calibration_set(data: Path, pandalm_named, tmp_path: Path):
    """PandaLM-7B (abstaining below its threshold certified for 0.7) -> GPT-3.5 (the rest)."""
    rubric = load_rubric(RUBRIC)
    records = load_calibration_set("pandalm", data_dir=data).records
    held = [r for r, m in zip(records, heldout_mask([r.id for r in records]), strict=True) if m]
    held = held[:120]
    stages = [
        Stage("pandalm-7b", _replay(data, "pandalm-7b", "pandalm_result"), pandalm_named,
              card_policy(pandalm_named.card, 0.7)),
        Stage("gpt-3.5", _replay(data, "gpt-3.5-turbo", "gpt_result")),
    ]  # fmt: skip
    out = tmp_path / "cascade.jsonl"
    result = cascade([r.item for r in held], rubric, stages, output=out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 120 and {r["decided_by"] for r in rows} <= {"pandalm-7b", "gpt-3.5", None}
    first, second = result.stages
    assert first.n_items == 120 and second.n_items == 120 - first.n_decided
    assert first.n_decided + second.n_decided + result.n_needs_human == 120
    # what GPT-3.5 leaves (a free-text verdict is invalid) needs a human; a tie is a verdict
    assert result.n_needs_human == 120 - first.n_decided - second.n_decided
    assert first.prompt_tokens > second.prompt_tokens > 0
    table = json.loads(out.with_name("cascade.stages.json").read_text())
    assert [s["name"] for s in table["stages"]] == ["pandalm-7b", "gpt-3.5"]
    scores = cascade_agreement(result, held, rng=np.random.default_rng(0), n_resamples=200)
    assert set(scores["per_stage"]) == {"pandalm-7b", "gpt-3.5"}
    assert 0.4 < scores["agreement_decided"].estimate <= 1.0
    # items sharing an instruction are one unit: cluster bootstrap, design-effect Wilson
    assert "cluster bootstrap over" in scores["kappa_all"].method
    assert "design effect" in scores["agreement_decided"].method
    assert "stage" in result.format() and "needs a human" in result.format()


@pytest.mark.engine
def test_cascade_small_engine_then_replay_on_the_sample_file(judge_backend, tmp_path: Path):
    """The embedded SmolLM2 first (keeps every valid verdict whose both orders agree), then a
    replay judge with a verdict for every sample item decides the rest, each with its own
    verdict."""
    rubric = load_rubric(RUBRIC)
    items = read_items(REPO / "examples" / "sample_pairwise.jsonl", "pairwise")
    replayed = {item.id: "AB"[k % 2] for k, item in enumerate(items)}  # both labels occur
    small_runs = []

    def orders_agree(run):
        from judgekit.judging.cascade import plain_decision

        small_runs.append(run)
        d = plain_decision(run)
        ab, ba = run.verdicts.p_a_ab, run.verdicts.p_a_ba
        return d.__class__(d.confidence, d.keep & ((ab > 0.5) == (ba > 0.5)), "agree")

    stages = [
        Stage("smollm2", Lent(judge_backend), policy=orders_agree),  # the session keeps it open
        Stage("api", ReplayBackend(replayed, model="api")),
    ]
    result = cascade(items, rubric, stages, output=tmp_path / "c.jsonl")
    (run,) = small_runs
    v = run.verdicts
    kept = v.valid & ((v.p_a_ab > 0.5) == (v.p_a_ba > 0.5))
    small, big = result.stages
    assert small.n_items == len(items) and small.prompt_tokens > 0 and small.seconds > 0
    assert small.n_decided == int(kept.sum()) and big.n_items == len(items) - small.n_decided
    assert big.n_decided == big.n_items and result.n_needs_human == 0
    for i, row in enumerate(result.items):
        assert row.item_id == items[i].id == v.item_ids[i]
        if kept[i]:
            assert (row.decided_by, row.label) == ("smollm2", v.labels[i])
        else:
            assert (row.decided_by, row.label) == ("api", replayed[row.item_id])
            assert row.judges_seen == ["smollm2", "api"]


def test_cli_cascade_with_cards_and_replay(data: Path, pandalm_named, tmp_path: Path):
    from typer.testing import CliRunner

    from judgekit.cli import app

    records = load_calibration_set("pandalm", data_dir=data).records
    held = [r for r, m in zip(records, heldout_mask([r.id for r in records]), strict=True) if m]
    items = tmp_path / "items.jsonl"
    items.write_text("".join(r.item.model_dump_json() + "\n" for r in held[:40]))
    card = tmp_path / "card.json"
    card.write_text(pandalm_named.card.model_dump_json())
    outputs = data / "pandalm" / "judge_outputs"
    small = f"replay:{outputs / 'pandalm-7b-testset-v1.json'}:idx:pandalm_result={card}"
    big = f"replay:{outputs / 'gpt-3.5-turbo-testset-v1.json'}:idx:gpt_result"
    maps = [x for pair in PANDALM_MAP.items() for x in ("--label-map", "=".join(pair))]
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        app,
        ["cascade", "--rubric", RUBRIC, "-i", str(items), "-o", str(out), "--stage", small,
         "--stage", big, "--target-agreement", "0.7", *maps],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 40 and "needs a human" in result.output
    assert {r["decided_by"] for r in rows} <= {
        "pandalm-7b-testset-v1",
        "gpt-3.5-turbo-testset-v1",
        None,
    }
    assert (tmp_path / "out.stages.json").is_file()


def test_report_renders_the_ensemble_section(pandalm_named, tmp_path: Path):
    from judgekit.calibrate.report.write import write_report

    paths = write_report(pandalm_named.card, tmp_path)
    text = paths["markdown"].read_text()
    assert "Prompt combinations (chosen:" in text and "Abstention" in text
    assert paths["reliability_learned"].stat().st_size > 1000


# --- stage certification on escalated items (pure: cards built from their dev arrays) -------------


def _card(key: str, conf, agreed, ids, groups, salt: str = "judgekit-split-v1") -> CalibrationCard:
    """A card holding only what certification reads (the rest of a card is not needed)."""
    section = EnsembleCard.model_construct(
        calibration_confidence=[None if np.isnan(c) else float(c) for c in conf],
        calibration_agreed=[bool(a) for a in agreed],
        calibration_ids=list(ids),
        calibration_groups=list(groups),
    )
    split = SplitInfo.model_construct(
        name="heldout", heldout_fraction=0.5, salt=salt, group_by="{instruction}"
    )
    return CalibrationCard.model_construct(
        key=key, set_name="pandalm", set_sha256="abc", split=split, ensemble=section
    )


def _two_stages(seed: int = 0) -> tuple[CalibrationCard, CalibrationCard, np.ndarray]:
    """120 groups of 5, half the items easy. The small judge is confident (and right) on the
    easy ones; the big judge is right on every easy item but on 60% of hard ones, equally
    confident on all: on all its dev items it agrees ~0.8, on what the small judge escalates
    ~0.6."""
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(120), 5)
    easy = rng.random(codes.size) < 0.5
    ids = [f"item{i}" for i in range(codes.size)]
    groups = [f"q{c}" for c in codes]
    small_conf = np.where(easy, 0.95, 0.55)
    big_agreed = easy | (rng.random(codes.size) < 0.6)
    small = _card("s" * 64, small_conf, easy, ids, groups)
    big = _card("b" * 64, np.full(codes.size, 0.9), big_agreed, ids, groups)
    return small, big, easy


def test_later_stage_is_certified_only_on_what_earlier_stages_escalate():
    small, big, easy = _two_stages()
    whole = card_threshold(big, 0.7)
    # on all its dev items every threshold keeps everything: the lowest one is certified
    assert whole.threshold == 0.0 and whole.n_kept == 600 and whole.method == GROUP_BETTING
    first, second = certify_stages([small, big], 0.7)
    # the small judge keeps its easy items (thresholds 0.95 .. 0.56), escalates the rest
    assert first.threshold == pytest.approx(0.56) and first.n_kept == easy.sum()
    assert second.threshold is None and second.n == (~easy).sum()  # only the escalated items
    hard = np.flatnonzero(~easy)
    by_hand = select_threshold(
        np.full(hard.size, 0.9),
        np.array(big.ensemble.calibration_agreed)[hard],
        groups=[big.ensemble.calibration_groups[i] for i in hard],
        target=0.7,
    )
    assert second == by_hand


def test_stage_that_certifies_nothing_escalates_everything():
    small, big, _ = _two_stages()
    nothing = _card("n" * 64, np.full(600, 0.6), np.zeros(600, bool),
                    small.ensemble.calibration_ids, small.ensemble.calibration_groups)  # fmt: skip
    first, second = certify_stages([nothing, big], 0.7)
    assert first.threshold is None and second == card_threshold(big, 0.7)


def test_cards_from_different_splits_or_groupings_are_refused():
    small, big, _ = _two_stages()
    other = big.model_copy(update={"split": big.split.model_copy(update={"salt": "other"})})
    with pytest.raises(StageMismatchError, match="same set and split"):
        certify_stages([small, other], 0.7)
    old = big.model_copy(
        update={"ensemble": big.ensemble.model_copy(update={"calibration_ids": []})}
    )
    with pytest.raises(StageMismatchError, match="no dev item ids"):
        certify_stages([small, old], 0.7)
    regrouped = big.model_copy(
        update={"ensemble": big.ensemble.model_copy(
            update={"calibration_groups": [f"x{i}" for i in range(600)]}
        )}
    )  # fmt: skip
    with pytest.raises(StageMismatchError, match="group the set differently"):
        certify_stages([small, regrouped], 0.7)


def test_a_stage_runs_the_prompts_its_ensemble_was_fitted_on(pandalm_named):
    """A card whose plain runs use another combination (here: a variant the ensemble never saw)
    still judges, in a cascade, exactly the prompts its learned ensemble and thresholds need."""
    card = pandalm_named.card
    plain = card.applies.model_copy(
        update={"variants": ["elsewhere"], "controls": card.applies.controls.model_copy(
            update={"ensemble": "mean"})}
    )  # fmt: skip
    named = replace(pandalm_named, card=card.model_copy(update={"applies": plain}))
    staged = policy_card(named)
    assert staged.card.applies.variants == list(card.ensemble.model.variants) != ["elsewhere"]
    use = card_use(staged, controls=None, variants=None)
    assert use.controls.ensemble == "learned" and use.corrections.learned is card.ensemble.model
    assert use.corrections.length_model is None and staged.ref == pandalm_named.ref
