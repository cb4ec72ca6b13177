"""Output files on a scripted judge: refuse, overwrite, resume from the file, fsync, diff."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import judgekit
from judgekit import cli
from judgekit.ci.diff import diff_runs
from judgekit.data import records
from judgekit.data.records import InputError, OutputExistsError, read_judgments
from judgekit.judging.aggregate import Controls
from judgekit.judging.plan import plan_requests
from judgekit.rubrics import load_rubric
from judgekit.schema import PointwiseItem
from tests.scripted import ScriptedBackend, lend

runner = CliRunner()
ITEMS = [PointwiseItem(id=str(i), question=f"q{i}", answer=f"answer {i}") for i in range(6)]


def _score(item: str, variant: str, order: str) -> dict[str, float]:
    """Item i leans towards label 1 + i % 5; the variants agree."""
    top = str(1 + int(item) % 5)
    return {label: (0.6 if label == top else 0.1) for label in "12345"}


def _better(item: str, variant: str, order: str) -> dict[str, float]:
    return {"5": 0.9, "4": 0.1} if int(item) % 2 else _score(item, variant, order)


class Killed(RuntimeError):
    pass


def dies_after(n: int) -> ScriptedBackend:
    """Scores ``n`` requests, then raises as a killed process would stop."""
    scored: list[str] = []

    def script(item: str, variant: str, order: str) -> dict[str, float]:
        if len(scored) == n:
            raise Killed
        scored.append(item)
        return _score(item, variant, order)

    return ScriptedBackend(script)


def _judge(output: Path, backend: ScriptedBackend, **options: object) -> judgekit.JudgeRun:
    return judgekit.judge(
        ITEMS, "overall_quality@v1", backend=backend, output=output, batch_size=4, **options
    )


def test_existing_output_is_refused_then_overwritten(tmp_path: Path) -> None:
    """Old code: the second run silently truncated the first run's file."""
    out = tmp_path / "out.jsonl"
    _judge(out, ScriptedBackend(_score))
    before = out.read_bytes()
    with pytest.raises(OutputExistsError, match=r"--overwrite.*--resume"):
        _judge(out, ScriptedBackend(_score))
    assert out.read_bytes() == before
    _judge(out, ScriptedBackend(_better), if_exists="overwrite")
    rows = read_judgments(out)
    assert len(rows) == 18 and rows[1].label_probs is not None  # replaced, not appended
    assert {j.label for j in rows if j.item_id == "1"} == {"5"}


def test_cli_refuses_existing_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = ScriptedBackend(_score)
    lend(monkeypatch, backend)
    source = tmp_path / "items.jsonl"
    source.write_text("".join(i.model_dump_json() + "\n" for i in ITEMS))
    out = tmp_path / "o.jsonl"
    out.write_text("precious\n")
    base = ["judge", "--rubric", "overall_quality@v1", "-i", str(source), "-o", str(out)]
    refused = runner.invoke(cli.app, base)
    assert refused.exit_code == 2 and "pass --overwrite or --resume" in refused.output
    assert out.read_text() == "precious\n" and backend.calls == 0
    assert runner.invoke(cli.app, [*base, "--overwrite"]).exit_code == 0
    assert len(out.read_text().splitlines()) == 18


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_resume_from_the_output_file_itself(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"out{suffix}"
    with pytest.raises(Killed):
        _judge(out, dies_after(8))  # two batches of 4
    first_part = out.read_bytes()
    assert len(read_judgments(out)) == 8
    if suffix == ".jsonl":
        out.write_bytes(first_part + b'{"item_id": "torn')  # a write cut off by the kill
    counting = ScriptedBackend(_score)
    run = _judge(out, counting, if_exists="resume")
    assert counting.calls == 18 - 8  # no store: what the file holds is not judged again
    assert out.read_bytes().startswith(first_part)  # its rows kept as they were
    rows = read_judgments(out)
    keys = [(j.item_id, j.variant) for j in rows]
    assert len(keys) == len(set(keys)) == 18
    assert len(run.judgments) == 18 and judgekit.summarize(run).n_valid_items == 6
    if suffix == ".csv":
        assert out.read_text().count("item_id,") == 1  # one header
    again = ScriptedBackend(_score)
    _judge(out, again, if_exists="resume")
    assert again.calls == 0


def test_resume_refuses_another_judge(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    _judge(out, ScriptedBackend(_score))
    with pytest.raises(InputError, match="cannot resume: its rows came from another judge"):
        _judge(out, ScriptedBackend(_score, fingerprint="e" * 64), if_exists="resume")


def test_every_batch_is_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = records.os.fsync
    monkeypatch.setattr(records.os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    _judge(tmp_path / "out.jsonl", ScriptedBackend(_score))
    assert len(synced) == 5 + 1  # 18 requests in batches of 4, then the items file


def test_diff_reads_jsonl_csv_and_parquet_alike(tmp_path: Path) -> None:
    base_jsonl, cand_csv = tmp_path / "base.jsonl", tmp_path / "cand.csv"
    _judge(base_jsonl, ScriptedBackend(_score))
    _judge(cand_csv, ScriptedBackend(_better))
    _judge(tmp_path / "cand.jsonl", ScriptedBackend(_better))
    parquet = tmp_path / "cand.parquet"
    pd.read_json(tmp_path / "cand.jsonl", lines=True).to_parquet(parquet)
    results = [
        diff_runs(base_jsonl, cand, rng=np.random.default_rng(0), n_resamples=200)
        for cand in (tmp_path / "cand.jsonl", cand_csv, parquet)
    ]
    assert results[1].mean_diff == results[0].mean_diff  # CSV round-trips exactly
    assert results[2].mean_diff == pytest.approx(results[0].mean_diff, abs=1e-12)
    assert results[0].n_common == 6 and results[0].candidate_better == 3
    original = read_judgments(tmp_path / "cand.jsonl")
    assert read_judgments(cand_csv) == original
    converted = read_judgments(parquet)
    assert [(j.item_id, j.variant, j.label, j.valid) for j in converted] == [
        (j.item_id, j.variant, j.label, j.valid) for j in original
    ]
    assert converted[0].engine_settings == original[0].engine_settings


def test_diff_refuses_runs_judged_differently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old code: compared runs of different judges and controls without a word."""
    base, cand, other = tmp_path / "base.jsonl", tmp_path / "cand.jsonl", tmp_path / "o.jsonl"
    _judge(base, ScriptedBackend(_score))
    _judge(cand, ScriptedBackend(_better, fingerprint="e" * 64))
    _judge(other, ScriptedBackend(_better), controls=Controls(ensemble="median"))
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="judge fingerprint"):
        diff_runs(base, cand, rng=rng)
    with pytest.raises(InputError, match="controls"):
        diff_runs(base, other, rng=rng)
    allowed = diff_runs(base, cand, rng=rng, n_resamples=200, allow_mismatch=True)
    assert len(allowed.mismatches) == 1 and "MISMATCH   judge fingerprint" in allowed.table()
    refused = runner.invoke(cli.app, ["diff", str(base), str(other)])
    assert refused.exit_code == 2 and "--allow-mismatch" in refused.output
    assert (
        runner.invoke(cli.app, ["diff", str(base), str(other), "--allow-mismatch"]).exit_code == 0
    )


def rows_at_each_chunk(output: Path, chunk: int, seen: list[int]) -> ScriptedBackend:
    """Streams ``chunk`` results at a time, noting how many rows ``output`` held as each chunk
    was scored (the script runs for a chunk's requests when the runner asks for the chunk)."""
    calls = []

    def script(item: str, variant: str, order: str) -> dict[str, float]:
        if len(calls) % chunk == 0:
            seen.append(len(output.read_text().splitlines()))
        calls.append(item)
        return _score(item, variant, order)

    return ScriptedBackend(script, streaming=True)


def test_streaming_backend_gets_the_whole_window_and_each_chunk_is_written_at_once(
    tmp_path: Path,
) -> None:
    """No barrier: 18 requests go out in one call; the file grows by each chunk before the next."""
    output = tmp_path / "out.jsonl"
    rows_seen: list[int] = []
    backend = rows_at_each_chunk(output, 4, rows_seen)
    run = judgekit.judge(ITEMS, "overall_quality@v1", backend=backend, output=output, write_every=4)
    assert backend.batches == [18]  # 6 items x 3 variants, all submitted at once
    assert rows_seen == [0, 4, 8, 12, 16]  # written (and fsynced) chunk by chunk
    assert len(read_judgments(output)) == 18 == len(run.judgments)
    # the run's in-memory judgments keep the plan's order whatever order results arrive in
    plan = plan_requests(load_rubric("overall_quality@v1"), ITEMS)
    assert [f"{j.item_id}|{j.variant}|-" for j in run.judgments] == [p.request.key for p in plan]
