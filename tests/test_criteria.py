"""Several criteria and checklists in one run (issue 22): one request per criterion (check),
per-criterion verdicts through the one decision rule, the weighted overall, pass ratios, read
back; per-order replayed verdicts under the swap rule; slices' cluster-resampled intervals;
``rubrics new`` / ``validate --probe``; a criteria calibration table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from scripted import ScriptedBackend, constant, lend
from typer.testing import CliRunner

from judgekit.backends import ReplayJudge
from judgekit.cli import app
from judgekit.judging import item_verdicts, items_frame, judge, read_run
from judgekit.judging.decide import decide
from judgekit.judging.plan import plan_requests
from judgekit.judging.results import criterion_run
from judgekit.judging.summary import clustered_interval
from judgekit.rubrics import load_rubric, load_rubric_dir
from judgekit.rubrics.load import builtin_rubrics_dir
from judgekit.schema import Controls, PointwiseItem
from judgekit.stats import bootstrap_ci

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
runner = CliRunner()

#: per criterion, a distribution over 1-5 (the scripted judge answers by criterion)
BY_CRITERION = {
    "coherence": {"5": 0.7, "4": 0.3},
    "consistency": {"1": 0.6, "2": 0.4},
    "fluency": {"3": 0.5, "4": 0.5},
    "relevance": {"2": 0.2, "3": 0.8},
}


class ByCriterion(ScriptedBackend):
    """Answers each request by its criterion (the request says which)."""

    def _one(self, request):  # type: ignore[no-untyped-def]
        self.script = constant(BY_CRITERION[request.criterion])
        return super()._one(request)


def _items() -> list[PointwiseItem]:
    return [
        PointwiseItem(id=f"a{a}-s{s}", question="Summarize.", context=f"article {a}",
                      answer=f"summary {s}", group=f"a{a}", meta={"system": f"s{s}"})
        for a in range(3) for s in range(2)
    ]  # fmt: skip


def test_one_request_per_criterion_sharing_the_material_prefix() -> None:
    rubric = load_rubric("summary_quality")
    planned = plan_requests(rubric, _items()[:1])
    assert len(planned) == 3 * 4 and {p.criterion for p in planned} == set(BY_CRITERION)
    users = [p.request.messages[1].content for p in planned]
    material = users[0].split("[End of summary]")[0]
    assert all(u.startswith(material) for u in users)  # the article and summary come first
    cues = {p.criterion: p.request.messages[-1].content for p in planned}
    assert cues["fluency"] == "Fluency score:"
    assert len({p.request.key for p in planned}) == 12


def test_criteria_go_through_the_one_rule_and_combine_into_the_weighted_overall(
    tmp_path: Path,
) -> None:
    rubric = load_rubric("summary_quality")
    run = judge(_items(), rubric, backend=ByCriterion(constant({})), output=tmp_path / "r.jsonl")
    frame = items_frame(run)
    labels = rubric.labels
    for name, dist in BY_CRITERION.items():
        probs = np.array([[dist.get(label, 0.0) for label in labels]])
        expected = decide(probs, labels, rubric.values, "pointwise", Controls())
        assert set(frame[f"label[{name}]"]) == {expected.labels[0]}
        assert frame[f"score[{name}]"].iloc[0] == pytest.approx((probs @ rubric.values)[0])
    # equal weights: the overall is the mean distribution, its score the mean score
    mean = np.mean([[d.get(label, 0.0) for label in labels] for d in BY_CRITERION.values()], 0)
    assert frame.loc[0, [f"p_{label}" for label in labels]].tolist() == pytest.approx(mean)
    assert frame["score"].iloc[0] == pytest.approx(np.mean(
        [frame[f"score[{n}]"].iloc[0] for n in BY_CRITERION]))  # fmt: skip
    assert frame["label"].iloc[0] == decide(mean[None], labels, rubric.values, "pointwise",
                                            Controls()).labels[0]  # fmt: skip
    # one criterion as a run of its own gives the same verdicts (calibration measures these)
    alone = criterion_run(run, "consistency").verdicts
    assert np.allclose(alone.scores, frame["score[consistency]"])
    assert list(alone.labels) == list(frame["label[consistency]"])
    # the items file carries every criterion and reads back as written
    back = read_run(tmp_path / "r.jsonl", content=False)
    assert item_verdicts(back) == item_verdicts(run)
    row = json.loads((tmp_path / "r.items.jsonl").read_text().splitlines()[0])
    assert row["criteria"]["coherence"]["label"] == "5" and row["meta"] == {"system": "s0"}


def test_criterion_weights_and_an_invalid_criterion(tmp_path: Path) -> None:
    folder = tmp_path / "summary_quality" / "v1"
    shutil.copytree(builtin_rubrics_dir() / "summary_quality" / "v1", folder)
    manifest = yaml.safe_load((folder / "rubric.yaml").read_text())
    manifest["criteria"]["coherence"]["weight"] = 3.0
    (folder / "rubric.yaml").write_text(yaml.safe_dump(manifest))
    rubric = load_rubric_dir(folder)
    fails = {**BY_CRITERION, "fluency": {}}  # no mass at all: invalid, never a default label

    class Backend(ScriptedBackend):
        def _one(self, request):  # type: ignore[no-untyped-def]
            item = request.item_id
            self.script = constant(fails[request.criterion] if item == "a0-s0" else
                                   BY_CRITERION[request.criterion])  # fmt: skip
            return super()._one(request)

    run = judge(_items(), rubric, backend=Backend(constant({})))
    frame = items_frame(run)
    scores = {n: frame[f"score[{n}]"].iloc[1] for n in BY_CRITERION}
    weighted = 3 * scores["coherence"] + sum(v for n, v in scores.items() if n != "coherence")
    assert frame["score"].iloc[1] == pytest.approx(weighted / 6)
    first = item_verdicts(run)[0]
    assert not first.valid and first.label is None and first.criteria is not None
    assert not first.criteria["fluency"].valid and first.criteria["coherence"].valid


def test_checklist_reads_each_check_and_reports_the_pass_ratio(tmp_path: Path) -> None:
    def script(item: str, variant: str, order: str) -> dict[str, float]:
        return {"Yes": 0.9, "No": 0.1}

    class ByCheck(ScriptedBackend):
        def _one(self, request):  # type: ignore[no-untyped-def]
            passed = request.criterion in ("check1", "check3")
            self.script = constant({"Yes": 0.9, "No": 0.1} if passed else {"Yes": 0.2, "No": 0.8})
            return super()._one(request)

    run = judge(EXAMPLES / "checklist.jsonl", "instruction_checklist",
                backend=ByCheck(script), output=tmp_path / "c.jsonl")  # fmt: skip
    assert len(run.judgments) == 3 * (3 + 3 + 3 + 2)
    rows = {v.item_id: v for v in item_verdicts(run)}
    assert rows["c1"].pass_ratio == pytest.approx(2 / 3)
    assert rows["c4"].pass_ratio == pytest.approx(1 / 2)
    assert rows["c1"].score == pytest.approx((0.9 + 0.2 + 0.9) / 3)
    assert rows["c4"].criteria is not None and list(rows["c4"].criteria) == ["check1", "check2"]
    assert rows["c4"].criteria["check1"].check == "Is the response written in French?"
    assert rows["c4"].criteria["check2"].label == "No"
    back = read_run(tmp_path / "c.jsonl")
    assert back.verdicts.pass_ratio is not None
    assert back.verdicts.pass_ratio.tolist() == pytest.approx([2 / 3, 2 / 3, 2 / 3, 1 / 2])


def test_replayed_verdicts_in_both_orders_combine_by_the_swap_rule() -> None:
    spec = ReplayJudge(
        verdicts=str(EXAMPLES / "verdicts_both_orders.jsonl"),
        verdict_field="verdict_ab",
        verdict_ba_field="verdict_ba",
    )
    run = judge(EXAMPLES / "reference_pairwise.jsonl", "correctness_reference_pairwise",
                backend=spec, variants=["direct"])  # fmt: skip
    labels = dict(zip(run.verdicts.item_ids, run.verdicts.labels, strict=True))
    # q1 A/A agree -> A; q2 A/B disagree -> tie (as a live judge's flip); q3 B/B -> B
    assert (labels["q1"], labels["q2"], labels["q3"]) == ("A", "tie", "B")
    flips = {v.item_id: v.flip for v in item_verdicts(run)}
    assert flips["q2"] is True and flips["q1"] is False
    # the BA verdict named by the letter shown: "A" in BA is the original B
    shown = judge(
        EXAMPLES / "reference_pairwise.jsonl",
        "correctness_reference_pairwise",
        backend=spec.model_copy(update={"ba_as_shown": True}),
        variants=["direct"],
    )
    relabelled = dict(zip(shown.verdicts.item_ids, shown.verdicts.labels, strict=True))
    assert (relabelled["q1"], relabelled["q2"], relabelled["q3"]) == ("tie", "A", "tie")


def test_clustered_interval_resamples_groups() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=30)
    alone = clustered_interval(values, [f"{i:02d}" for i in range(30)])  # clusters in item order
    direct = bootstrap_ci(np.mean, values, rng=np.random.default_rng(0))
    assert alone is not None and (alone.low, alone.high) == pytest.approx((direct.low, direct.high))
    # every item twice in its own cluster: the same interval (not a narrower one)
    doubled = clustered_interval(
        np.repeat(values, 2), [f"{i:02d}" for i in range(30) for _ in "ab"]
    )
    assert doubled is not None and (doubled.low, doubled.high) == pytest.approx(
        (alone.low, alone.high)
    )
    assert clustered_interval(values[:3], ["g"] * 3) is None


def test_rubrics_new_validates_probes_judges_and_calibrates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = runner.invoke(app, ["rubrics", "new", "pass_fail", "--mode", "pointwise", "--labels",
                               "pass=1,fail=0", "--dir", str(tmp_path)])  # fmt: skip
    assert made.exit_code == 0, made.output
    rubric = load_rubric_dir(tmp_path / "pass_fail" / "v1")
    assert rubric.labels == ("pass", "fail") and len(rubric.variants) == 3
    assert rubric.reads >= {"reference", "conversation", "context"}
    again = runner.invoke(app, ["rubrics", "new", "pass_fail", "--mode", "pointwise",
                                "--labels", "a,b", "--dir", str(tmp_path)])  # fmt: skip
    assert again.exit_code == 2 and "make v2" in again.output

    def script(item: str, variant: str, order: str) -> dict[str, float]:
        # the 'strict' wording gets little mass on the labels: the probe must say so
        return {"pass": 0.05, "fail": 0.05} if variant == "strict" else {"pass": 0.7, "fail": 0.2}

    lend(monkeypatch, ScriptedBackend(script))
    items = EXAMPLES / "pass_fail_labelled.jsonl"
    probed = runner.invoke(app, ["rubrics", "validate", str(rubric.path), "--probe", str(items),
                                 "--probe-n", "4", "--column", "id=id"])  # fmt: skip
    assert probed.exit_code == 0, probed.output
    assert "ok  pass_fail@v1" in probed.output
    assert "WARNING pass_fail@v1: variant 'strict': mean label mass 0.100 < 0.5" in probed.output
    assert "variant 'direct'" not in probed.output.split("WARNING", 1)[1]
    judged = runner.invoke(app, ["judge", "--rubric", "pass_fail", "--rubrics-dir", str(tmp_path),
                                 "-i", str(items), "-o", str(tmp_path / "j.jsonl")])  # fmt: skip
    assert judged.exit_code == 0, judged.output
    assert "rate pass" in judged.output
    calibrated = runner.invoke(app, [
        "calibrate", "--rubric", "pass_fail", "--rubrics-dir", str(tmp_path), "--set", str(items),
        "--label-column", "human", "--split", "all", "--no-fit-dev", "--n-resamples", "50",
        "--out", str(tmp_path / "cal"), "--cards-dir", str(tmp_path / "cards"), "--min-n", "2",
    ])  # fmt: skip
    assert calibrated.exit_code == 0, calibrated.output
    card = json.loads((tmp_path / "cal" / "card.json").read_text())
    assert card["n"] == 12 and card["label_type"] == "binary"
    # the scripted judge says pass to every item: half the human labels agree
    assert card["accuracy"]["estimate"] == pytest.approx(0.5)


def test_criteria_calibration_against_a_user_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = runner.invoke(app, ["rubrics", "new", "helpful_honest", "--mode", "pointwise",
                               "--labels", "1,2,3", "--criteria", "helpful,honest",
                               "--dir", str(tmp_path)])  # fmt: skip
    assert made.exit_code == 0, made.output
    rows = [
        {"id": str(i), "question": f"q{i // 2}", "answer": f"a{i}",
         "helpful_label": 1 + i % 3, "honest_label": 3 - i % 3}
        for i in range(12)
    ]  # fmt: skip
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    class ByCriterionAndItem(ScriptedBackend):
        def _one(self, request):  # type: ignore[no-untyped-def]
            i = int(request.item_id)
            value = 1 + i % 3 if request.criterion == "helpful" else 3 - i % 3
            self.script = constant({str(value): 0.8, "2" if value != 2 else "1": 0.2})
            return super()._one(request)

    lend(monkeypatch, ByCriterionAndItem(constant({})))
    result = runner.invoke(app, [
        "calibrate", "--rubric", "helpful_honest", "--rubrics-dir", str(tmp_path), "--set",
        str(path), "--criterion-labels", "helpful=helpful_label", "--criterion-labels",
        "honest=honest_label", "--split", "all", "--n-resamples", "50",
        "--out", str(tmp_path / "cal"), "--cards-dir", str(tmp_path / "cards"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    table = json.loads((tmp_path / "cal" / "criteria.json").read_text())
    assert [r["criterion"] for r in table["rows"]] == ["helpful", "honest"]
    assert [r["metric"] for r in table["rows"]] == ["helpful_label", "honest_label"]
    # the scripted judge gives each item its human label on both criteria: perfect agreement
    assert all(r["kappa"]["estimate"] == pytest.approx(1.0) for r in table["rows"])
    assert all(r["spearman"]["estimate"] == pytest.approx(1.0) for r in table["rows"])
    assert table["n_items_judged"] == 12
    assert "| helpful | helpful_label | 12 |" in result.output


def test_calibration_card_reports_every_slice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user file's other columns are meta; --by measures the card per slice of one."""

    def script(item: str, variant: str, order: str) -> dict[str, float]:
        return {"pass": 0.8, "fail": 0.2}

    lend(monkeypatch, ScriptedBackend(script))
    made = runner.invoke(app, ["rubrics", "new", "pass_fail", "--mode", "pointwise", "--labels",
                               "pass=1,fail=0", "--dir", str(tmp_path)])  # fmt: skip
    assert made.exit_code == 0, made.output
    base = [
        "calibrate",
        "--rubric",
        "pass_fail",
        "--rubrics-dir",
        str(tmp_path),
        "--set",
        str(EXAMPLES / "pass_fail_labelled.jsonl"),
        "--label-column",
        "human",
        "--split",
        "all",
        "--no-fit-dev",
        "--n-resamples",
        "50",
        "--cards-dir",
        str(tmp_path / "c"),
    ]
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "cal"), "--by", "topic"])
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "cal" / "card.json").read_text())
    slices = {s["value"]: s for s in card["slices"]}
    assert list(slices) == ["language", "math", "science", "geography"]
    assert [slices[v]["n"] for v in slices] == [4, 2, 4, 2]
    # the judge says pass everywhere: a slice's accuracy is its share of human passes
    assert slices["language"]["accuracy"]["estimate"] == pytest.approx(0.5)
    assert "by topic:" in result.output
    bad = runner.invoke(app, [*base, "--out", str(tmp_path / "bad"), "--by", "colour"])
    assert bad.exit_code == 2 and "--by colour: no such meta column" in bad.output


def test_a_user_file_with_references_calibrates_correctness_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [json.loads(line) for line in (EXAMPLES / "reference.jsonl").read_text().splitlines()]
    path = tmp_path / "labelled.jsonl"
    path.write_text("".join(json.dumps(r | {"human": 5 if r["id"].endswith("good") else 1}) + "\n"
                            for r in rows))  # fmt: skip
    lend(monkeypatch, ScriptedBackend(constant({"5": 0.6, "1": 0.4})))
    result = runner.invoke(app, [
        "calibrate", "--rubric", "correctness_reference", "--set", str(path), "--label-column",
        "human", "--split", "all", "--no-fit-dev", "--n-resamples", "50", "--by", "category",
        "--out", str(tmp_path / "cal"), "--cards-dir", str(tmp_path / "cards"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "cal" / "card.json").read_text())
    assert card["n"] == 12 and [s["value"] for s in card["slices"]] == [
        "math", "extraction", "qa", "code"
    ]  # fmt: skip
