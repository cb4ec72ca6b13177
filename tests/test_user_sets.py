"""`judgekit calibrate --set OWN_FILE`: a team's labelled file as a calibration set."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from judgekit import cli
from judgekit.data.set_manifest import DatasetError
from judgekit.data.sets import load_calibration_set
from judgekit.data.user_sets import load_user_set
from judgekit.files import sha256_file
from judgekit.rubrics import load_rubric

runner = CliRunner()
PAIRWISE = load_rubric("pairwise_preference@v1")
POINTWISE = load_rubric("overall_quality@v1")
PANDALM_LABELS = {0: "tie", 1: "A", 2: "B"}


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_pairwise_csv_labels_mapped_and_hashed(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "Team Labels.csv",
        [
            {"id": "x", "prompt": "q1", "answer_a": "a", "answer_b": "b", "label": "a"},
            {"id": "y", "prompt": "q2", "answer_a": "c", "answer_b": "d", "label": "B"},
            {"id": "z", "prompt": "q3", "answer_a": "e", "answer_b": "f", "label": ""},
        ],
    )
    dataset = load_user_set(path, PAIRWISE, label_column="label", columns={"question": "prompt"})
    assert [r.consensus for r in dataset.records] == ["A", "B", None]
    assert dataset.records[1].item.question == "q2" and dataset.records[0].human == ()
    assert dataset.sha256 == sha256_file(path) and dataset.manifest.name == "team_labels"
    assert dataset.manifest.source is None


def test_errors_name_file_row_and_field(tmp_path: Path) -> None:
    rows = [{"id": "x", "question": "q", "answer_a": "a", "answer_b": "b", "label": "A"}]
    bad = _write_csv(tmp_path / "bad.csv", [*rows, {**rows[0], "id": "y", "label": "maybe"}])
    with pytest.raises(DatasetError, match=r"bad\.csv: row 2: field annotators: label 'maybe'"):
        load_user_set(bad, PAIRWISE, label_column="label")
    with pytest.raises(DatasetError, match=r"bad\.csv: field 'question': column 'prompt' not"):
        load_user_set(bad, PAIRWISE, label_column="label", columns={"question": "prompt"})
    with pytest.raises(DatasetError, match=r"bad\.csv: labels: column 'human' not found"):
        load_user_set(bad, PAIRWISE, label_column="human")
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({**rows[0], "answer_b": None}) + "\n")
    with pytest.raises(DatasetError, match=r"empty\.jsonl: row 1: field fields\.answer_b"):
        load_user_set(empty, PAIRWISE, label_column="label")


def test_pointwise_jsonl_scores_and_votes(tmp_path: Path) -> None:
    path = tmp_path / "scores.jsonl"
    votes = [("q1", 4), ("q1", 5), ("q2", 2), ("q2", 2), ("q2", 3)]
    path.write_text(
        "".join(
            json.dumps({"item": i, "question": i, "answer": f"ans {i}", "score": s}) + "\n"
            for i, s in votes
        )
    )
    dataset = load_user_set(path, POINTWISE, label_column="score", group_column="item")
    assert [r.id for r in dataset.records] == ["q1", "q2"]
    assert dataset.records[0].human == (4.0, 5.0) and dataset.records[0].consensus == 4.5
    assert dataset.records[1].consensus == pytest.approx(7 / 3)
    out_of_range = tmp_path / "range.jsonl"
    out_of_range.write_text(json.dumps({"question": "q", "answer": "a", "score": 9}) + "\n")
    with pytest.raises(DatasetError, match=r"range\.jsonl: row 1: field annotators: score 9 "):
        load_user_set(out_of_range, POINTWISE, label_column="score")


def _pandalm_csv(shared_data: Path, path: Path) -> Path:
    """The PandaLM test set as a team would keep it: a CSV, per-annotator and majority columns."""
    registered = load_calibration_set("pandalm", data_dir=shared_data)
    rows = json.loads((shared_data / "pandalm" / "testset-v1.json").read_text())
    return _write_csv(
        path,
        [
            {
                "idx": row["idx"],
                "instruction": row["instruction"],
                "input": row["input"],
                "response1": str(row["response1"]),
                "response2": str(row["response2"]),
                **{f"ann{k}": PANDALM_LABELS[row[f"annotator{k}"]] for k in (1, 2, 3)},
                "majority": record.consensus or "",
            }
            for row, record in zip(rows, registered.records, strict=True)
        ],
    )


def test_own_file_reproduces_registered_set_card(
    shared_data: Path, gpt35_args: list[str], tmp_path: Path
) -> None:
    """The same labels as a user CSV give the registered set's kappa and human ceiling."""
    path = _pandalm_csv(shared_data, tmp_path / "pandalm_own.csv")
    result = runner.invoke(
        cli.app,
        [
            "calibrate",
            "--rubric",
            "pairwise_preference@v1",
            "--set",
            str(path),
            "--label-column",
            "majority",
            "--annotator-columns",
            "ann1,ann2,ann3",
            *("--column", "id=idx", "--column", "question=instruction"),
            *("--column", "context=input", "--column", "answer_a=response1"),
            *("--column", "answer_b=response2"),
            *gpt35_args,
            *("--label-map", "1=A", "--label-map", "2=B"),
            *("--split", "all", "--n-resamples", "300"),
            *("--out", str(tmp_path / "report"), "--cards-dir", str(tmp_path / "cards")),
        ],
    )
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "report" / "card.json").read_text())
    assert card["set_name"] == "pandalm_own" and card["set_sha256"] == sha256_file(path)
    assert card["n"] == 999 and card["n_invalid"] == 63
    assert card["kappa"]["estimate"] == pytest.approx(0.4705, abs=5e-4)  # as the registered set
    assert card["human_ceiling"]["mean_pairwise_annotator"] == pytest.approx(0.864, abs=1e-3)
    assert (tmp_path / "report" / "report.html").is_file()


def test_one_cluster_gives_the_estimate_and_no_interval(
    shared_data: Path, gpt35_args: list[str], tmp_path: Path
) -> None:
    """Every item in one group: the kappa is estimated, its interval is the whole range, the
    card is not trusted, and nothing ends in a traceback (a bootstrap needs two groups)."""
    path = _pandalm_csv(shared_data, tmp_path / "one.csv")
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    _write_csv(path, [{**row, "batch": "all"} for row in rows])
    result = runner.invoke(
        cli.app,
        [
            "calibrate", "--rubric", "pairwise_preference@v1", "--set", str(path),
            "--label-column", "majority", "--column", "group=batch",
            *("--column", "id=idx", "--column", "question=instruction"),
            *("--column", "context=input", "--column", "answer_a=response1"),
            *("--column", "answer_b=response2"), *gpt35_args,
            *("--label-map", "1=A", "--label-map", "2=B"),
            *("--split", "all", "--n-resamples", "50"),
            *("--out", str(tmp_path / "report"), "--cards-dir", str(tmp_path / "cards")),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "report" / "card.json").read_text())
    kappa = card["kappa"]
    assert kappa["estimate"] == pytest.approx(0.4705, abs=5e-4)
    assert (kappa["low"], kappa["high"], kappa["n_groups"]) == (-1.0, 1.0, 1)
    assert kappa["method"] == "one group: no interval"
    assert not card["verdict"]["trusted"]


def test_named_votes_reproduce_registered_set_card(
    shared_data: Path, gpt35_args: list[str], tmp_path: Path
) -> None:
    """PandaLM as one row per vote, rows shuffled: with --annotator-column the votes are placed by
    annotator, so the card (kappa, human ceiling over the same three annotators) is the
    registered set's; the annotators' names come from the column."""
    rows = json.loads((shared_data / "pandalm" / "testset-v1.json").read_text())
    votes = [
        {
            "idx": row["idx"],
            "instruction": row["instruction"],
            "input": row["input"],
            "response1": str(row["response1"]),
            "response2": str(row["response2"]),
            "who": f"ann{k}",
            "label": PANDALM_LABELS[row[f"annotator{k}"]],
        }
        for row in rows
        for k in (1, 2, 3)
    ]
    order = np.random.default_rng(0).permutation(len(votes))
    path = _write_csv(tmp_path / "pandalm_votes.csv", [votes[i] for i in order])
    mapping = ["question=instruction", "context=input", "answer_a=response1", "answer_b=response2"]
    loaded = load_user_set(
        path,
        PAIRWISE,
        label_column="label",
        group_column="idx",
        annotator_column="who",
        columns=dict(m.split("=") for m in mapping),
    )
    assert loaded.annotator_names == ("ann1", "ann2", "ann3")
    registered = {
        r.id: r.human for r in load_calibration_set("pandalm", data_dir=shared_data).records
    }
    assert {r.id: r.human for r in loaded.records} == registered
    result = runner.invoke(
        cli.app,
        [
            *("calibrate", "--rubric", "pairwise_preference@v1", "--set", str(path)),
            *("--label-column", "label", "--group-column", "idx", "--annotator-column", "who"),
            *(x for m in mapping for x in ("--column", m)),
            *gpt35_args,
            *("--label-map", "1=A", "--label-map", "2=B"),
            *("--split", "all", "--n-resamples", "300"),
            *("--out", str(tmp_path / "report"), "--cards-dir", str(tmp_path / "cards")),
        ],
    )
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "report" / "card.json").read_text())
    assert card["n"] == 999 and card["kappa"]["estimate"] == pytest.approx(0.4705, abs=5e-4)
    assert card["human_ceiling"]["mean_pairwise_annotator"] == pytest.approx(0.864, abs=1e-3)


def test_annotator_column_errors(tmp_path: Path) -> None:
    row = {"item": "x", "question": "q", "answer_a": "a", "answer_b": "b", "label": "A"}
    path = _write_csv(tmp_path / "votes.csv", [{**row, "who": "p1"}, {**row, "who": ""}])
    with pytest.raises(DatasetError, match=r"votes\.csv: --annotator-column .* --group-column"):
        load_user_set(path, PAIRWISE, label_column="label", annotator_column="who")
    with pytest.raises(DatasetError, match=r"votes\.csv: labels: column 'rater' not found"):
        load_user_set(
            path, PAIRWISE, label_column="label", group_column="item", annotator_column="rater"
        )
    with pytest.raises(DatasetError, match=r"votes\.csv: row 2: field annotators\.annotator: no "):
        load_user_set(
            path, PAIRWISE, label_column="label", group_column="item", annotator_column="who"
        )
