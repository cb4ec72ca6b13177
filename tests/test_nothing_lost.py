"""Nothing a run or a person made is lost (issue 19, items 5, 6, 10), on a scripted judge.

Each test names the old behaviour it guards against.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scripted import ScriptedBackend, forbid_engines, lend
from typer.testing import CliRunner

import judgekit
from judgekit import cli
from judgekit.data.records import items_path, manifest_path, read_judgments
from judgekit.schema import PointwiseItem

runner = CliRunner()
ITEMS = [PointwiseItem(id=str(i), question=f"q{i}", answer=f"answer {i}") for i in range(6)]
RUBRIC = "overall_quality@v1"


def _score(item: str, variant: str, order: str) -> dict[str, float]:
    top = str(1 + int(item) % 5)
    return {label: (0.6 if label == top else 0.1) for label in "12345"}


class Killed(RuntimeError):
    pass


class DiesAfter(ScriptedBackend):
    """Scores ``batches`` calls, then raises as a killed process would stop."""

    def __init__(self, batches: int) -> None:
        super().__init__(_score)
        self.left = batches

    def score(self, requests):  # type: ignore[no-untyped-def]
        if self.left == 0:
            raise Killed
        self.left -= 1
        return super().score(requests)


def test_overwrite_killed_early_leaves_the_old_run_whole(tmp_path: Path) -> None:
    """Old code: --overwrite truncated the output first, so a run killed early left an empty
    output beside the old sidecars."""
    out = tmp_path / "run.jsonl"
    judgekit.judge(ITEMS, RUBRIC, backend=ScriptedBackend(_score), output=out, batch_size=4)
    before = {p: p.read_bytes() for p in (out, items_path(out), manifest_path(out))}
    with pytest.raises(Killed):
        judgekit.judge(
            ITEMS,
            RUBRIC,
            backend=DiesAfter(1),
            output=out,
            if_exists="overwrite",
            batch_size=4,
        )
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in before)


def test_resume_judges_again_what_failed_with_an_error(tmp_path: Path) -> None:
    """Old code: a request that failed with an engine or HTTP error counted as done on
    --resume and was never retried (the store retried it)."""
    out = tmp_path / "run.jsonl"

    def flaky(item: str, variant: str, order: str) -> dict[str, float] | None:
        return None if item == "2" and variant == "direct" else _score(item, variant, order)

    judgekit.judge(ITEMS, RUBRIC, backend=ScriptedBackend(flaky), output=out)
    failed = [j for j in read_judgments(out) if j.error]
    assert [(j.item_id, j.variant) for j in failed] == [("2", "direct")]
    again = ScriptedBackend(_score)
    run = judgekit.judge(ITEMS, RUBRIC, backend=again, output=out, if_exists="resume")
    assert again.calls == 1  # only the failed request
    rows = read_judgments(out)
    assert len(rows) == len(ITEMS) * 3 and not any(j.error for j in rows)  # one row per request
    assert all(run.verdicts.n_valid_variants == 3)


def test_bad_variant_and_win_label_stop_before_any_judge_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old code: a typo in --variant or --win-label failed only after judging."""
    forbid_engines(monkeypatch)
    source = tmp_path / "items.jsonl"
    source.write_text("".join(i.model_dump_json() + "\n" for i in ITEMS))
    base = ["judge", "--rubric", RUBRIC, "-i", str(source)]
    typo = runner.invoke(cli.app, [*base, "-o", str(tmp_path / "a.jsonl"), "--variant", "drect"])
    assert typo.exit_code == 2 and "has no variant 'drect'" in typo.output
    pairwise = ["judge", "--rubric", "pairwise_preference@v1", "-i", str(source)]
    label = runner.invoke(
        cli.app, [*pairwise, "-o", str(tmp_path / "b.jsonl"), "--min-win-rate", "0.5"]
    )
    assert label.exit_code == 2  # pointwise items for a pairwise rubric: named, before judging
    win = runner.invoke(cli.app, [*base, "-o", str(tmp_path / "c.jsonl"), "--min-win-rate", "0.5"])
    assert win.exit_code == 2 and "needs a pairwise rubric" in win.output
    assert not list(tmp_path.glob("*.jsonl.*")) and sorted(p.name for p in tmp_path.iterdir()) == [
        "items.jsonl"
    ]


def test_header_only_input_is_refused_before_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old code: a header-only CSV started the engine, then crashed and left an empty output."""
    forbid_engines(monkeypatch)
    source = tmp_path / "items.csv"
    source.write_text("id,question,answer\n")
    out = tmp_path / "o.jsonl"
    result = runner.invoke(
        cli.app, ["judge", "--rubric", RUBRIC, "-i", str(source), "-o", str(out)]
    )
    assert result.exit_code == 2 and "no items" in result.output and not out.exists()


def test_a_crash_is_not_a_failed_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Old code: an internal error exited 1, like a failed gate."""
    lend(monkeypatch, DiesAfter(0))
    source = tmp_path / "items.jsonl"
    source.write_text("".join(i.model_dump_json() + "\n" for i in ITEMS))
    result = runner.invoke(
        cli.app, ["judge", "--rubric", RUBRIC, "-i", str(source), "-o", str(tmp_path / "o.jsonl")]
    )
    assert result.exit_code == 4 and "internal error (Killed)" in result.output


def test_a_store_served_run_starts_no_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old code: a fully cached --store re-run still loaded the engine (12 s) and printed an
    items/s figure for 0 s of judging."""
    source = tmp_path / "items.jsonl"
    source.write_text("".join(i.model_dump_json() + "\n" for i in ITEMS))
    store = tmp_path / "store.sqlite"
    lend(monkeypatch, ScriptedBackend(_score))
    base = ["judge", "--rubric", RUBRIC, "-i", str(source), "--store", str(store)]
    assert runner.invoke(cli.app, [*base, "-o", str(tmp_path / "a.jsonl")]).exit_code == 0
    started: list[str] = []
    from judgekit.backends import factory

    monkeypatch.setitem(factory.BUILDERS, "vllm", factory._vllm)  # the real, lazy engine
    monkeypatch.setattr(factory, "LazyBackend", _recording(started))
    again = runner.invoke(cli.app, [*base, "-o", str(tmp_path / "b.jsonl")])
    assert again.exit_code == 0, again.output
    assert started == [] and "every judgment from the store" in again.output
    rows = [json.loads(x) for x in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert len(rows) == len(ITEMS) * 3 and all(r["from_store"] for r in rows)


def _recording(started: list[str]):  # type: ignore[no-untyped-def]
    """A stand-in for the lazy engine with the scripted judge's identity: records a start."""

    class Recording(ScriptedBackend):
        def __init__(self, spec) -> None:  # type: ignore[no-untyped-def]
            super().__init__(_score)

        def score_stream(self, requests, chunk):  # type: ignore[no-untyped-def]
            started.append("engine")
            return super().score_stream(requests, chunk)

    return Recording
