"""`judgekit drift --runs`: score series of run files, change point, plot (scripted judge)."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

from typer.testing import CliRunner

import judgekit
from judgekit import cli
from judgekit.schema import JudgeIdentity, LabelLogprobs, PointwiseItem

runner = CliRunner()


class NightlyBackend:
    """Puts mass on "4" vs "2" per item (from the prompt's hash) plus a nightly offset: a
    scripted judge whose scores move when ``offset`` does."""

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
            out.append(LabelLogprobs({"4": math.log(p), "2": math.log(1 - p)}, 10, 0))
        return out

    def close(self) -> None:
        pass


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
    args = ["drift", "--out", str(tmp_path / "out"), "--alpha", "0.05"]
    for path in paths:
        args += ["--runs", str(path)]
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 1, result.output
    report = json.loads((tmp_path / "out" / "series.json").read_text())
    assert report["change_point"]["index"] == 4 and report["change_point"]["p_adjusted"] < 1e-6
    assert report["points"][4]["identity_changes"] == ["dtype: 'float32' -> 'bfloat16'"]
    assert all(p["identity_changes"] == [] for i, p in enumerate(report["points"]) if i != 4)
    assert (tmp_path / "out" / "series.png").read_bytes()[:4] == b"\x89PNG"
    # the first four nights alone: no change point, exit 0
    stable = ["drift", "--alpha", "0.05"] + [a for p in paths[:4] for a in ("--runs", str(p))]
    assert runner.invoke(cli.app, stable).exit_code == 0
