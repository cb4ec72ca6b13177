"""`judgekit drift --runs`: score series of run files, change point, plot (scripted judge)."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

from scripted import lend
from typer.testing import CliRunner

import judgekit
from judgekit import cli
from judgekit.backends import BackendBase
from judgekit.schema import JudgeIdentity, LabelLogprobs, PointwiseItem

runner = CliRunner()


class NightlyBackend(BackendBase):
    """Splits mass between the first and last label per prompt (from its hash) plus a nightly
    offset: a scripted judge whose scores move when ``offset`` does."""

    def __init__(self, offset: float, dtype: str) -> None:
        self.offset = offset
        self.identity = JudgeIdentity(
            backend="scripted", model="nightly", fingerprint="f", settings={"dtype": dtype}
        )

    def score(self, requests):  # type: ignore[no-untyped-def]
        out = []
        for r in requests:
            text = "".join(m.content for m in r.messages)
            p = min(0.95, max(0.05, (zlib.crc32(text.encode()) % 1000) / 1000 * 0.6 + self.offset))
            first, last = r.labels[0], r.labels[-1]
            out.append(LabelLogprobs({first: math.log(1 - p), last: math.log(p)}, 10, 0))
        return out


def test_series_flags_the_night_the_judge_changed(tmp_path: Path) -> None:
    items = [
        PointwiseItem(id=str(i), question=f"question {i}", answer=f"answer {i}") for i in range(30)
    ]
    paths = []
    for night in range(6):
        changed = night >= 4
        backend = NightlyBackend(0.35 if changed else 0.05, "bfloat16" if changed else "float32")
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
    backend = NightlyBackend(0.05, "float32")
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
    backend.offset, backend.identity = (
        0.4,
        backend.identity.model_copy(update={"settings": {"dtype": "bfloat16"}}),
    )
    moved = runner.invoke(cli.app, check)
    assert moved.exit_code == 1 and "dtype: 'float32' -> 'bfloat16'" in moved.output
    report = json.loads((tmp_path / "out" / "drift.json").read_text())
    # the shift moves mass to the last label in both orders: a position bias, which the order
    # swap cancels on average, but every item moves and two labels flip
    assert report["n_shifted"] == 12 and abs(report["mean_shift"]) < 0.05
    flipped = report["n_flipped"]  # which anchors flip depends on the sampled items
    assert flipped >= 1 and report["reasons"] == [f"flipped labels {flipped}/12 > 0.05"]
