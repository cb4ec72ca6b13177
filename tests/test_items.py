"""Items as users have them (issue 22): conversations, references, checklists, meta columns;
bad inputs refused before any engine starts, naming file, row and field; meta carried through
to every output and read back."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from scripted import ScriptedBackend, constant, forbid_engines, lend
from typer.testing import CliRunner

from judgekit.cli import app
from judgekit.data.items import InputError, read_items
from judgekit.judging import items_frame, judge, judgments_frame, read_run, summarize
from judgekit.schema import PairwiseItem, PointwiseItem

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
runner = CliRunner()
TURNS = [
    {"role": "user", "content": "Hi, what is 2+2?"},
    {"role": "assistant", "content": "4."},
    {"role": "user", "content": "And times 3?"},
]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_conversation_items_take_question_and_answer_from_their_turns(tmp_path: Path) -> None:
    reply = {"role": "assistant", "content": "12."}
    point = read_items(
        _write(tmp_path / "p.jsonl", [{"conversation": [*TURNS, reply]}]), "pointwise"
    )
    assert (point[0].question, point[0].answer) == ("And times 3?", "12.")
    pair = read_items(
        _write(tmp_path / "q.jsonl", [{"conversation": TURNS, "answer_a": "12", "answer_b": "7"}]),
        "pairwise",
    )
    assert pair[0].question == "And times 3?" and len(pair[0].conversation or ()) == 3
    # a CSV cell holds the list as JSON text; the item is the same
    pd.DataFrame([{"conversation": json.dumps([*TURNS, reply])}]).to_csv(
        tmp_path / "p.csv", index=False
    )
    assert read_items(tmp_path / "p.csv", "pointwise") == point


@pytest.mark.parametrize(
    ("mode", "row", "message"),
    [
        (
            "pointwise",
            {"conversation": TURNS},
            "row 1: field 'conversation': must end with the assistant reply being judged",
        ),
        (
            "pairwise",
            {"conversation": [*TURNS, {"role": "assistant", "content": "x"}], "answer_a": "a",
             "answer_b": "b"},
            "row 1: field 'conversation': a pair's shared history must end with the user turn",
        ),
        (
            "pointwise",
            {"question": "q", "answer": "a", "checklist": "Is it short?"},
            "row 1: field 'checklist': expected a list (JSON text in a CSV cell)",
        ),
        (
            "pointwise",
            {"question": "q", "answer": "a", "checklist": [1, 2]},
            "row 1: field 'checklist': expected a list of strings",
        ),
        (
            "pointwise",
            {"question": "q", "answer": "a", "score": 3},
            "column 'score': not carried as meta because it is the name of a judgekit field",
        ),
        (
            "pointwise",
            {"conversation": [*TURNS, {"role": "assistant", "content": "12"}], "answer": "13"},
            "row 1: field 'answer' differs from the conversation's last turn",
        ),
    ],
)  # fmt: skip
def test_bad_items_name_file_row_and_field(
    tmp_path: Path, mode: str, row: dict, message: str
) -> None:
    path = _write(tmp_path / "items.jsonl", [row])
    with pytest.raises(InputError) as info:
        read_items(path, mode)  # type: ignore[arg-type]
    assert str(path) in str(info.value) and message in str(info.value)


@pytest.mark.parametrize(
    ("rubric", "first", "row", "message"),
    [
        (
            "correctness_reference",
            {"reference": "r"},
            {},
            "row 2 (item '2'): field 'reference' is missing; rubric correctness_reference@v1",
        ),
        (
            "overall_quality",
            {},
            {"reference": "gold"},
            "row 2 (item '2'): field 'reference' is given but rubric overall_quality@v1 does "
            "not read it",
        ),
        (
            "instruction_checklist",
            {"checklist": ["Is it short?"]},
            {},
            "row 2 (item '2'): field 'checklist' is missing",
        ),
    ],
)
def test_judge_refuses_items_the_rubric_cannot_judge_before_any_engine(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rubric: str,
    first: dict,
    row: dict,
    message: str,
) -> None:
    forbid_engines(monkeypatch)
    path = _write(tmp_path / "items.jsonl", [{"question": "q", "answer": "a"} | r for r in
                                             (first, row)])  # fmt: skip
    result = runner.invoke(app, ["judge", "--rubric", rubric, "-i", str(path), "-o",
                                 str(tmp_path / "out.jsonl")])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert str(path) in result.output and message in " ".join(result.output.split())
    assert not (tmp_path / "out.jsonl").exists()


def test_a_criterion_without_labels_is_refused_naming_file_and_field(tmp_path: Path) -> None:
    import shutil

    import yaml

    from judgekit.rubrics import RubricError, load_rubric_dir
    from judgekit.rubrics.load import builtin_rubrics_dir

    folder = tmp_path / "summary_quality" / "v1"
    shutil.copytree(builtin_rubrics_dir() / "summary_quality" / "v1", folder)
    manifest = yaml.safe_load((folder / "rubric.yaml").read_text())
    del manifest["labels"]
    manifest["criteria"]["fluency"]["labels"] = [
        {"label": str(k), "value": k, "meaning": "m"} for k in range(1, 6)
    ]
    (folder / "rubric.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(RubricError) as info:
        load_rubric_dir(folder)
    assert str(folder / "rubric.yaml") in str(info.value)
    assert "criteria.coherence: no labels" in str(info.value)
    manifest["criteria"]["coherence"]["labels"] = []
    (folder / "rubric.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(RubricError, match=r"criteria\.coherence\.labels"):
        load_rubric_dir(folder)


def test_meta_columns_reach_judgments_items_file_frames_and_read_back(tmp_path: Path) -> None:
    for suffix in ("jsonl", "csv"):
        out = tmp_path / f"run.{suffix}"
        run = judge(
            EXAMPLES / "meta.csv",
            "overall_quality",
            backend=ScriptedBackend(constant({"4": 0.7, "2": 0.3})),
            variants=["direct"],
            output=out,
        )
        assert run.meta[0] == {
            "model": "model-x", "category": "cooking", "language": "en", "difficulty": "easy"
        }  # fmt: skip
        frame = items_frame(run)
        assert list(frame["category"])[:3] == ["cooking", "cooking", "coding"]
        rows = judgments_frame(run).set_index("item_id")
        assert rows.loc["5", "language"] == "es" and rows.loc["8", "difficulty"] == "hard"
        back = read_run(out, content=False)
        assert back.meta == run.meta
        assert list(items_frame(back)["model"]) == ["model-x", "model-y"] * 4
        rows = pd.read_csv(out) if suffix == "csv" else pd.read_json(out, lines=True)
        meta = rows["meta"].map(lambda m: json.loads(m) if isinstance(m, str) else m)
        by_id = dict(zip(rows["item_id"].astype(str), meta, strict=True))
        assert by_id["1"]["difficulty"] == "easy" and by_id["6"]["language"] == "es"


def test_runs_without_meta_write_and_read_as_before(tmp_path: Path) -> None:
    items = [PointwiseItem(id="1", question="q", answer="a")]
    run = judge(items, "overall_quality", backend=ScriptedBackend(constant({"3": 1.0})),
                output=tmp_path / "r.jsonl")  # fmt: skip
    row = json.loads((tmp_path / "r.items.jsonl").read_text().splitlines()[0])
    assert "meta" not in row and row["criteria"] is None
    assert read_run(tmp_path / "r.jsonl", content=False).meta == ({},) and run.meta == ({},)


def test_judge_by_category_prints_slices_and_refuses_an_unknown_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lend(monkeypatch, ScriptedBackend(lambda i, v, o: {"5": 0.9, "1": 0.1} if int(i) % 2 else
                                      {"1": 0.9, "5": 0.1}))  # fmt: skip
    base = ["judge", "--rubric", "overall_quality", "-i", str(EXAMPLES / "meta.csv")]
    result = runner.invoke(app, [*base, "-o", str(tmp_path / "a.jsonl"), "--by", "category",
                                 "--by", "model"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "by category (95% CIs resample groups)" in result.output
    assert "by model" in result.output
    # model-x answers are the odd rows: all 5s; model-y all 1s
    line = next(x for x in result.output.splitlines() if x.strip().startswith("model-x"))
    assert "mean 4.600" in line
    forbid_engines(monkeypatch)
    bad = runner.invoke(app, [*base, "-o", str(tmp_path / "b.jsonl"), "--by", "colour"])
    assert bad.exit_code == 2 and "--by colour: no such meta column" in bad.output


def test_pairwise_conversation_item_is_a_cluster_of_its_history() -> None:
    one = PairwiseItem(id="1", conversation=TURNS, answer_a="a", answer_b="b")
    other = PairwiseItem(
        id="2", conversation=[{"role": "user", "content": "And times 3?"}], answer_a="a",
        answer_b="b",
    )  # fmt: skip
    from judgekit.schema import item_group

    assert item_group(one) != item_group(other)  # same last question, different histories
    assert item_group(PointwiseItem(id="x", question="q", answer="a")) == item_group(
        PointwiseItem(id="y", question="q", answer="b")
    )


def test_viewer_filters_by_meta_columns(tmp_path: Path) -> None:
    from judgekit.view import write_view

    out = tmp_path / "run.jsonl"
    judge(EXAMPLES / "conversation_pairwise.jsonl", "conversation_preference",
          backend=ScriptedBackend(constant({"A": 0.6, "B": 0.4})), output=out)  # fmt: skip
    page = write_view([out], tmp_path / "view.html").read_text()
    data = json.loads(page.split("id=data>")[1].split("</script>")[0])
    run = data["runs"][0]
    assert run["meta_columns"] == ["category", "model_a", "model_b"]
    assert run["items"][0]["meta"]["category"] == "travel"
    assert run["items"][0]["conversation"][-1]["content"] == "I have a bad knee. Which one then?"
    assert "id=meta-filters" in page and "metaMatch" in page


def test_summary_json_keeps_slices(tmp_path: Path) -> None:
    run = judge(EXAMPLES / "reference.jsonl", "correctness_reference",
                backend=ScriptedBackend(constant({"5": 0.8, "1": 0.2})))  # fmt: skip
    summary = summarize(run, by=["category"])
    math_slice = next(s for s in summary.slices["category"] if s.value == "math")
    assert (math_slice.n_items, math_slice.n_groups) == (4, 2)
    assert math_slice.mean_score is not None and math_slice.mean_score[0] == pytest.approx(4.2)
    assert json.loads(summary.model_dump_json())["slices"]["category"][0]["value"] == "math"
