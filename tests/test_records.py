from pathlib import Path

import pandas as pd
import pytest

from judgekit.data.records import InputError, read_items


def test_reads_jsonl_csv_parquet_alike(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": ["a", "b"], "prompt": ["q1", "q2"], "answer": ["x", "{{ y }}"]})
    frame.to_json(tmp_path / "i.jsonl", orient="records", lines=True)
    frame.to_csv(tmp_path / "i.csv", index=False)
    frame.to_parquet(tmp_path / "i.parquet")
    loaded = [
        read_items(tmp_path / f"i.{ext}", "pointwise", columns={"question": "prompt"})
        for ext in ("jsonl", "csv", "parquet")
    ]
    assert loaded[0] == loaded[1] == loaded[2]
    assert loaded[0][1].answer == "{{ y }}" and loaded[0][1].context == ""


def test_missing_column_and_duplicate_ids(tmp_path: Path) -> None:
    path = tmp_path / "i.jsonl"
    path.write_text('{"id": 1, "question": "q", "answer_a": "x"}\n')
    with pytest.raises(InputError, match="field 'answer_b': column 'answer_b' not found"):
        read_items(path, "pairwise")
    path.write_text(
        '{"id": 1, "question": "q", "answer": "x"}\n{"id": 1, "question": "q", "answer": "y"}\n'
    )
    with pytest.raises(InputError, match=r"row 2: field 'id': '1' repeats row 1"):
        read_items(path, "pointwise")


def test_ids_default_to_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "i.csv"
    path.write_text("question,answer\nq,a\nq,b\n")
    # rows are counted as people count lines: the first data row is row 1
    assert [item.id for item in read_items(path, "pointwise")] == ["1", "2"]


def test_ids_are_kept_exactly_as_written(tmp_path: Path) -> None:
    """Old code: a JSONL id column with a missing value became floats, "1" read back as "1.0"."""
    path = tmp_path / "i.jsonl"
    path.write_text(
        '{"id": 1, "question": "q", "answer": "a"}\n{"id": "007", "question": "q", "answer": "b"}\n'
        '{"question": "q", "answer": ""}\n'
    )
    assert [item.id for item in read_items(path, "pointwise")] == ["1", "007", "3"]
    assert read_items(path, "pointwise")[2].answer == ""  # an empty answer is an answer


def test_header_only_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "i.csv"
    path.write_text("id,question,answer\n")
    with pytest.raises(InputError, match="no items"):
        read_items(path, "pointwise")
