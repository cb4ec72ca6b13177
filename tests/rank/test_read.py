"""Reading verdicts already made: presets, field and label options, errors that say where."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from judgekit.data.records import InputError
from judgekit.rank import read_battles, read_scores


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_generic_battles_with_labels_weights_and_invalid(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "v.jsonl",
        [
            {"qid": 1, "a": "x", "b": "y", "v": "A>>B", "w": 3},
            {"qid": 1, "a": "y", "b": "z", "v": 0.25},
            {"qid": 2, "a": "x", "b": "z", "v": None},
            {"qid": 2, "a": "z", "b": "x", "v": "tie"},
        ],
    )
    battles = read_battles(
        [path],
        fields={"question": "qid", "model_a": "a", "model_b": "b", "verdict": "v", "weight": "w"},
        labels={"A>>B": 1.0},
    )
    np.testing.assert_array_equal(battles.outcome, [1.0, 0.25, np.nan, 0.5])
    np.testing.assert_array_equal(battles.weight, [3.0, 1.0, 1.0, 1.0])
    assert battles.models == ("x", "y", "z") and battles.questions == ("1", "2")
    assert battles.per_model_counts().loc["x", "n_invalid"] == 1


def test_unknown_label_and_missing_column_name_the_file_row_and_field(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "v.jsonl",
        [
            {"question": "q", "model_a": "x", "model_b": "y", "verdict": "A"},
            {"question": "q", "model_a": "x", "model_b": "y", "verdict": "A>>>B"},
        ],
    )
    with pytest.raises(InputError, match=r"v\.jsonl: row 2: field 'verdict': 'A>>>B'.*--label"):
        read_battles([path])
    with pytest.raises(InputError, match=r"field 'verdict': column 'winner' not found"):
        read_battles([path], fields={"verdict": "winner"})


def test_self_battles_fail_unless_skipped(tmp_path: Path) -> None:
    rows = [
        {"question": "q", "model_a": "x", "model_b": "x", "verdict": 0.5},
        {"question": "q", "model_a": "x", "model_b": "y", "verdict": 1},
    ]
    path = _jsonl(tmp_path / "v.jsonl", rows)
    with pytest.raises(InputError, match="row 1: model 'x' against itself"):
        read_battles([path])
    assert len(read_battles([path], skip_self=True)) == 1


def test_alpaca_eval_preset_over_a_glob_of_model_folders(tmp_path: Path) -> None:
    for model, prefs in (("m1", [1.0, 2.0, 0, 1.75]), ("m2", [1.5, 1.25, None, 2.0])):
        folder = tmp_path / "results" / model / "annotator"
        folder.mkdir(parents=True)
        rows = [
            {
                "instruction": f"i{k}",
                "generator_1": "base",
                "generator_2": model,
                "preference": p,
                "output_1": "b" * 10,
                "output_2": "m" * (5 + k),
            }
            for k, p in enumerate(prefs)
        ]
        (folder / "annotations.json").write_text(json.dumps(rows))
    battles = read_battles(
        [str(tmp_path / "results" / "*" / "annotator" / "*.json")], preset="alpaca_eval"
    )
    np.testing.assert_array_equal(battles.outcome, [0, 1, 0.5, 0.75, 0.5, 0.25, np.nan, 1])
    np.testing.assert_array_equal(battles.lengths[:4], [[5, 10], [6, 10], [7, 10], [8, 10]])
    assert battles.models == ("base", "m1", "m2")


def test_alpaca_preference_outside_its_scale_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(
        json.dumps(
            [{"instruction": "i", "generator_1": "b", "generator_2": "m", "preference": 2.5}]
        )
    )
    with pytest.raises(InputError, match=r"row 1: field 'verdict'.*outside \[1, 2\]"):
        read_battles([path], preset="alpaca_eval")


def test_pointwise_scores(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("q,m,s,c\n1,x,4,easy\n1,y,,easy\n2,x,2,hard\n")
    question, model, score, category = read_scores(
        [path], fields={"question": "q", "model": "m", "score": "s", "category": "c"}
    )
    assert question == ["1", "1", "2"] and model == ["x", "y", "x"]
    np.testing.assert_array_equal(score, [4.0, np.nan, 2.0])
    assert category == ["easy", "easy", "hard"]


def test_folders_and_missing_paths(tmp_path: Path) -> None:
    _jsonl(tmp_path / "a.jsonl", [{"question": 1, "model_a": "x", "model_b": "y", "verdict": 1}])
    _jsonl(tmp_path / "b.jsonl", [{"question": 2, "model_a": "y", "model_b": "x", "verdict": 0}])
    assert len(read_battles([tmp_path])) == 2
    with pytest.raises(InputError, match="no such file"):
        read_battles([tmp_path / "nope.jsonl"])
