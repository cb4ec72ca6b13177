"""The run viewer's page model and page, and the label queue, on a scripted judge.

The scripted judge has known label probabilities per item, variant and order, so every figure the
viewer shows (flip, entropy, variant disagreement, priority) is checked against a hand value.
The real engine, a real browser and the labelling loop are in ``test_view_browser.py``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from scripted import ScriptedBackend
from typer.testing import CliRunner

import judgekit
from judgekit import cli
from judgekit.view.data import load_run, page_model, to_json
from judgekit.view.page import render_page
from judgekit.view.queue import label_queue

runner = CliRunner()
SCRIPT = "</script><script>alert('x')</script><!--"
# P(first-shown answer) per item and variant: "flip" prefers whatever is shown first.
P_FIRST = {
    "sure": {"direct": 0.9, "instruction_following": 0.9, "expert": 0.9},
    "flip": {"direct": 0.8, "instruction_following": 0.8, "expert": 0.8},
    "split": {"direct": 0.9, "instruction_following": 0.2, "expert": 0.2},
}


def _script(shift: float = 0.0):  # type: ignore[no-untyped-def]
    """P(A shown first) from P_FIRST (minus ``shift``); 'flip' prefers position over content."""

    def script(item: str, variant: str, order: str) -> dict[str, float]:
        p = P_FIRST[item][variant] - shift
        if order == "BA" and item != "flip":
            p = 1 - p  # the same answer wins whichever side it is on
        return {"A": p, "B": 1 - p}

    return script


@pytest.fixture
def scripted_run(tmp_path: Path) -> Path:
    items = tmp_path / "pairs.jsonl"
    rows = [
        {"id": "sure", "question": "q1", "answer_a": "good", "answer_b": "bad", "human_label": "A"},
        {"id": "flip", "question": "q2", "answer_a": SCRIPT, "answer_b": "x", "human_label": "B"},
        {"id": "split", "question": "q3", "answer_a": "a", "answer_b": "b", "human_label": "A"},
    ]
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    output = tmp_path / "run.jsonl"
    judgekit.judge(
        items, "pairwise_preference@v1", backend=ScriptedBackend(_script()), output=output
    )
    return output


def test_page_model_figures(scripted_run: Path) -> None:
    run = load_run(scripted_run)
    by_id = {e["id"]: e for e in run["items"]}
    sure, flip, split = by_id["sure"], by_id["flip"], by_id["split"]
    assert sure["flip"] is False and flip["flip"] is True
    assert flip["p_a_ab"] == pytest.approx(0.8) and flip["p_a_ba"] == pytest.approx(0.2)
    assert flip["order_gap"] == pytest.approx(0.6)
    # soft swap: geometric mean of 0.8 and 0.2 for both labels -> exactly 0.5, entropy 1
    assert flip["score"] == pytest.approx(0.5) and flip["entropy"] == pytest.approx(1.0)
    assert sure["entropy"] == pytest.approx(
        -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / math.log(2)
    )
    assert split["variant_labels"] == {"direct": "A", "instruction_following": "B", "expert": "B"}
    assert split["variant_disagreement"] == pytest.approx(1 / 3)
    assert sure["human"] == "A" and sure["disagrees"] is False and split["disagrees"] is True
    assert len(sure["prompts"]) == 6  # 3 variants x 2 orders
    ab, ba = sure["prompts"]["direct AB"], sure["prompts"]["direct BA"]
    assert "good" in ab[1]["content"] and ab[1]["content"].index("good") < ab[1]["content"].index(
        "bad"
    )
    assert ba[1]["content"].index("bad") < ba[1]["content"].index("good")
    assert ab[2] == {"role": "assistant", "content": "Answer:"}


def test_candidate_text_cannot_break_out_of_the_script(scripted_run: Path) -> None:
    page = render_page(page_model([load_run(scripted_run)]))
    assert page.count("</script>") == 2  # the data block's and the code's own: nothing else
    assert "<script>alert" not in page and "<!--" not in page
    data = re.search(r'<script type="application/json" id=data>(.*?)</script>', page, re.S)
    assert data is not None
    model = json.loads(data.group(1))
    assert model["runs"][0]["items"][1]["answers"]["A"] == SCRIPT  # the text itself survives
    assert to_json({"a": "</x>"}) == '{"a": "\\u003c/x>"}'


def test_view_cli_two_runs_and_change(
    scripted_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs side by side: signed changes (old code: |change|), each run's own answers, read
    from another directory (old code: the input path was relative to where the run was made)."""
    candidate = tmp_path / "candidate.csv"  # old code: a CSV run crashed the viewer
    judgekit.judge(
        scripted_run.with_name("pairs.jsonl"),
        "pairwise_preference@v1",
        backend=ScriptedBackend(_script(shift=0.1)),
        output=candidate,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = runner.invoke(
        cli.app, ["view", str(scripted_run), str(candidate), "-o", str(tmp_path / "v.html")]
    )
    assert result.exit_code == 0, result.output
    page = (tmp_path / "v.html").read_text()
    model = json.loads(re.search(r"id=data>(.*?)</script>", page, re.S).group(1))  # type: ignore[union-attr]
    assert len(model["runs"]) == 2
    changes = model["changes"]
    assert changes["sure"] == pytest.approx(-0.1) and changes["flip"] == 0.0
    second = {e["id"]: e for e in model["runs"][1]["items"]}
    assert second["flip"]["answers"]["A"] == SCRIPT
    assert "Win rates with 95% CIs (of all 3 items, invalid included)" in page and "<svg" in page


def test_label_queue_ranks_by_priority(scripted_run: Path, tmp_path: Path) -> None:
    rows = label_queue(load_run(scripted_run), n=2)
    assert [r["id"] for r in rows] == ["flip", "split"]
    flip = rows[0]
    # uncertainty 1 (P=0.5), order sensitivity 0.6, variants agree
    assert flip["priority"] == pytest.approx((1 + 0.6 + 0) / 3, abs=1e-4)
    assert flip["label"] == "" and flip["answer_a"] == SCRIPT and "score" not in flip
    out = tmp_path / "queue.csv"
    result = runner.invoke(
        cli.app, ["label-queue", str(scripted_run), "--n", "2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0] == (
        "id,question,context,answer_a,answer_b,uncertainty,variant_disagreement,"
        "order_sensitivity,priority,label"
    )
    # a person labels the first row; old code: the next label-queue run wiped it
    out.write_text("\n".join([lines[0], lines[1].rsplit(",", 1)[0] + ",B", *lines[2:]]) + "\n")
    again = runner.invoke(
        cli.app, ["label-queue", str(scripted_run), "--n", "2", "--out", str(out)]
    )
    assert again.exit_code == 0 and "kept the 2 rows" in again.output and "added 1" in again.output
    rows = out.read_text().splitlines()
    assert len(rows) == 4 and rows[1].endswith(",B") and rows[3].startswith("sure,")
