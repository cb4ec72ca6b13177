"""`judgekit drift --runs`: score series of run files, change point, plot (scripted judge)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest
from scripted import Script, ScriptedBackend, lend
from typer.testing import CliRunner

import judgekit
from judgekit import cli
from judgekit.schema import PointwiseItem

runner = CliRunner()


def nightly(offset: float) -> Script:
    """Splits mass between the lowest and the highest label per request (from a hash of its
    item, variant and order) plus a nightly ``offset``: scores move when the offset does."""

    def script(item: str, variant: str, order: str) -> dict[str, float]:
        spread = (zlib.crc32(f"{item}|{variant}|{order}".encode()) % 1000) / 1000 * 0.6
        p = min(0.95, max(0.05, spread + offset))
        return {"1": 1 - p, "5": p, "A": 1 - p, "B": p}  # the request's labels are kept

    return script


def nightly_backend(offset: float, dtype: str) -> ScriptedBackend:
    return ScriptedBackend(nightly(offset), "f", model="nightly", settings={"dtype": dtype})


def decided(item: str, variant: str, order: str) -> dict[str, float]:
    """Prefers one answer of each pair at 56:44 (which one from a hash of the item), whichever
    order it is shown in: every verdict is decided (outside the 0.05 tie band)."""
    p_a = 0.56 if zlib.crc32(item.encode()) % 2 else 0.44
    p_first = p_a if order == "AB" else 1 - p_a
    return {"A": p_first, "B": 1 - p_first}


def first_shown(item: str, variant: str, order: str) -> dict[str, float]:
    """Picks whichever answer is shown first at 90:10: a pure position bias."""
    return {"A": 0.9, "B": 0.1}


def test_series_flags_the_night_the_judge_changed(tmp_path: Path) -> None:
    items = [
        PointwiseItem(id=str(i), question=f"question {i}", answer=f"answer {i}") for i in range(30)
    ]
    paths = []
    for night in range(6):
        changed = night >= 4
        backend = nightly_backend(0.35 if changed else 0.05, "bfloat16" if changed else "float32")
        path = tmp_path / f"night{night}.jsonl"
        judgekit.judge(items, "overall_quality@v1", backend=backend, output=path)
        paths.append(path)
    # as a shell expands nightly/*.jsonl: the runs' sidecars come along and are skipped
    sidecars = sorted(tmp_path.glob("night*.*.json*"))
    assert sidecars
    args = ["drift", "--out", str(tmp_path / "out"), "--alpha", "0.05", *map(str, paths)]
    args += list(map(str, sidecars))
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 1, result.output
    report = json.loads((tmp_path / "out" / "series.json").read_text())
    assert report["change_point"]["index"] == 4 and report["change_point"]["p_adjusted"] < 1e-6
    assert report["points"][4]["identity_changes"] == ["dtype: 'float32' -> 'bfloat16'"]
    assert all(p["identity_changes"] == [] for i, p in enumerate(report["points"]) if i != 4)
    assert (tmp_path / "out" / "series.png").read_bytes()[:4] == b"\x89PNG"
    # the first four nights alone: no change point, exit 0
    stable = ["drift", "--alpha", "0.05", *map(str, paths[:4])]
    assert runner.invoke(cli.app, stable).exit_code == 0


def test_drift_cli_pin_then_check(shared_data: Path, tmp_path: Path, monkeypatch) -> None:
    """--pin samples and judges anchors of a set; a re-check with the same judge passes (exit 0),
    a shifted judge of another dtype alarms (exit 1) and the dtype is named."""
    backend = ScriptedBackend(decided, "f", model="nightly", settings={"dtype": "float32"})
    lend(monkeypatch, backend)
    anchors = tmp_path / "anchors.json"
    pin = [
        "drift",
        "--pin",
        "--anchors",
        str(anchors),
        "--rubric",
        "pairwise_preference@v1",
        "--set",
        "pandalm",
        "--data-dir",
        str(shared_data),
        "--n",
        "12",
        "--key",
        "card-1",
    ]
    assert runner.invoke(cli.app, pin).exit_code == 0
    pinned = anchors.read_bytes()
    # old code: a second --pin replaced the anchors (the baseline drift is measured against)
    again = runner.invoke(cli.app, pin)
    assert again.exit_code == 2 and "exists: pass --overwrite" in again.output
    assert anchors.read_bytes() == pinned
    stored = json.loads(anchors.read_text())
    assert stored["key"] == "card-1" and len(stored["anchors"]) == 12
    check = ["drift", "--anchors", str(anchors), "--out", str(tmp_path / "out")]
    same = runner.invoke(cli.app, check)
    assert same.exit_code == 0 and "no alarm" in same.output, same.output
    backend.script = first_shown
    backend.identity = backend.identity.model_copy(update={"settings": {"dtype": "bfloat16"}})
    moved = runner.invoke(cli.app, check)
    assert moved.exit_code == 1 and "dtype: 'float32' -> 'bfloat16'" in moved.output, moved.output
    report = json.loads((tmp_path / "out" / "drift.json").read_text())
    # the new judge only prefers the first-shown answer: the order swap cancels that to exactly
    # 50:50, so every decided label becomes a tie while each item moves by 0.06 one way or the
    # other (the mean moves by at most 0.06 x |sum of the signs| / 12)
    sides = [zlib.crc32(a["item"]["id"].encode()) % 2 for a in stored["anchors"]]
    expected_mean = 0.06 * (sides.count(0) - sides.count(1)) / 12
    assert report["n_shifted"] == 12 and report["mean_shift"] == pytest.approx(expected_mean)
    assert report["n_flipped"] == 12 and report["reasons"] == ["flipped labels 12/12 > 0.05"]
