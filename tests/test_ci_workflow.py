"""judgekit inside CI, on the real engine: store hits, SIGKILL and resume, gates, diff, plugin."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from scripted import Lent, lend
from typer.testing import CliRunner

import judgekit
from judgekit import cli
from judgekit.ci import gates
from judgekit.ci.diff import diff_runs
from judgekit.ci.gates import GateFailure
from judgekit.data.records import manifest_path, read_judgments
from judgekit.judging.run_manifest import RunManifest
from judgekit.judging.store import ResultStore
from judgekit.judging.summary import summarize
from judgekit.schema import PointwiseItem, item_group

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _answers(pandalm_rows: list[dict], side: str, n: int) -> list[PointwiseItem]:
    """The first n PandaLM rows whose prompt for that response is unique (the set repeats some)."""
    seen, items = set(), []
    for row in pandalm_rows:
        item = PointwiseItem(
            id=str(row["idx"]),
            question=row["instruction"],
            context=row["input"],
            answer=str(row[f"response{side}"]),
        )
        if (key := (item.question, item.context, item.answer)) not in seen:
            seen.add(key)
            items.append(item)
    return items[:n]


def _write_jsonl(path: Path, items: list[PointwiseItem]) -> Path:
    path.write_text("".join(item.model_dump_json() + "\n" for item in items))
    return path


def test_rerun_judges_nothing_new(judge_backend, pandalm_rows, tmp_path: Path) -> None:
    """The pytest plugin's session judge, used as a team's test would use it."""
    items = _answers(pandalm_rows, "1", 8)
    store = ResultStore(tmp_path / "store.sqlite")
    counting = Lent(judge_backend)
    first = judgekit.judge(items, "overall_quality@v1", backend=counting, store=store)
    assert counting.requests == 24 and summarize(first).n_from_store == 0
    second = judgekit.judge(
        items, "overall_quality@v1", backend=counting, store=store, output=tmp_path / "o.jsonl"
    )
    assert counting.requests == 24 and summarize(second).n_from_store == 24
    np.testing.assert_array_equal(first.verdicts.scores, second.verdicts.scores)
    changed = [*items[:7], items[7].model_copy(update={"answer": "changed answer"})]
    judgekit.judge(changed, "overall_quality@v1", backend=counting, store=store)
    assert counting.requests == 24 + 3  # only the changed item, in its 3 variants
    manifest = RunManifest.model_validate_json(manifest_path(tmp_path / "o.jsonl").read_text())
    assert manifest.n_from_store == 24 and manifest.rubric_hash == first.rubric.hash
    assert "torch" in manifest.packages and manifest.judge == first.judge


def test_sigkill_mid_run_then_resume(engine, pandalm_rows, tmp_path: Path) -> None:
    items = _answers(pandalm_rows, "2", 20)
    source = _write_jsonl(tmp_path / "items.jsonl", items)
    out, store_path = tmp_path / "out.jsonl", tmp_path / "store.sqlite"
    # this checkout's CLI: the venv's console script may run another checkout's editable install
    command = [
        sys.executable,
        "-c",
        "from judgekit.cli import main; main()",
        "judge",
        "--rubric",
        "overall_quality@v1",
        "--input",
        str(source),
        "--output",
        str(out),
        "--store",
        str(store_path),
        "--variant",
        "direct",
        "--batch-size",
        "2",
        "--dtype",
        "float32",  # the session engine's: the store's keys include the dtype
    ]
    child = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and child.poll() is None:
        if out.exists() and len(out.read_text().splitlines()) >= 6:
            break
        time.sleep(0.2)
    assert child.poll() is None, "the child finished before it could be killed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    done_before = len(ResultStore(store_path))
    assert 6 <= done_before < 20
    counting = Lent(engine)
    run = judgekit.judge(
        source,
        "overall_quality@v1",
        backend=counting,
        variants=["direct"],
        store=ResultStore(store_path),
        output=out,
        if_exists="overwrite",  # the store resumes; the output is rewritten whole
    )
    assert counting.requests == 20 - done_before  # nothing judged twice
    assert summarize(run).n_from_store == done_before
    rows = read_judgments(out)
    assert sorted(j.item_id for j in rows) == sorted(i.id for i in items)  # each exactly once
    assert len(ResultStore(store_path)) == 20


def test_gates_exit_codes(engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lend(monkeypatch, engine)
    sample = str(Path(__file__).resolve().parents[1] / "examples" / "sample_pointwise.jsonl")
    base = ["judge", "--rubric", "overall_quality@v1", "--input", sample, "--variant", "direct"]
    passed = runner.invoke(cli.app, [*base, "-o", str(tmp_path / "a.jsonl"), "--fail-under", "1"])
    assert passed.exit_code == 0, passed.output
    failed = runner.invoke(
        cli.app,
        [*base, "-o", str(tmp_path / "b.jsonl"), "--fail-under", "4.9", "--max-invalid-rate", "0"],
    )
    assert failed.exit_code == 1
    assert "mean score" in failed.output and "is below 4.9" in failed.output
    # the worst-items table starts with this run's lowest-scoring item (whichever it is: a weak
    # judge's preferences are not asserted)
    items = [json.loads(x) for x in (tmp_path / "b.items.jsonl").read_text().splitlines()]
    worst = min(items, key=lambda i: i["score"])["item_id"]
    table = failed.output.split("item ", 1)[1].splitlines()
    assert table[1].split()[0] == worst[:24]
    run = judgekit.judge(sample, "overall_quality@v1", backend=engine, variants=["direct"])
    with pytest.raises(GateFailure, match=r"is below 4\.9"):
        gates.assert_mean_at_least(run, 4.9)
    gates.assert_mean_at_least(run, 1.0)
    gates.assert_invalid_rate_at_most(run, 0.0)


def test_diff_of_two_real_runs(engine, pandalm_pairs, tmp_path: Path) -> None:
    baseline, candidate = tmp_path / "base.jsonl", tmp_path / "cand.jsonl"
    runs = [
        judgekit.judge(
            [
                PointwiseItem(id=p.id, question=p.question, context=p.context, answer=answer)
                for p in pandalm_pairs[:12]
                for answer in [p.answer_a if side == "1" else p.answer_b]
            ],
            "overall_quality@v1",
            backend=engine,
            output=path,
        )
        for side, path in (("1", baseline), ("2", candidate))
    ]
    result = diff_runs(baseline, candidate, rng=np.random.default_rng(0), n_resamples=500)
    a, b = (judgekit.items_frame(r).set_index("item_id")["score"] for r in runs)
    assert result.n_common == 12 and result.n_invalid_pairs == 0
    assert result.mean_diff == pytest.approx(float((b - a).mean()), abs=1e-12)
    assert result.mean_diff_ci[0] <= result.mean_diff <= result.mean_diff_ci[1]
    diff = (b - a).to_numpy()
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    assert (result.candidate_better, result.baseline_better) == (wins, losses)
    assert result.unchanged == 12 - wins - losses
    # pairs that share an instruction are one cluster: the tests flip and count whole clusters
    group = {p.id: item_group(p.model_copy(update={"group": None})) for p in pandalm_pairs[:12]}
    codes = np.unique([group[i] for i in a.index], return_inverse=True)[1]
    sums = np.bincount(codes, weights=diff)
    up, down = int((sums > 0).sum()), int((sums < 0).sum())
    assert result.p_sign == pytest.approx(stats.binomtest(up, up + down, 0.5).pvalue)
    # every one of the 2^G cluster sign flips: the exact p-value the random flips estimate
    flips = np.array(list(itertools.product((-1.0, 1.0), repeat=sums.size)))
    exact = float(
        np.mean(np.abs((flips[:, codes] * diff).mean(axis=1)) >= abs(diff.mean()) - 1e-12)
    )
    assert result.p_permutation == pytest.approx(exact, abs=0.02)  # MC error < 0.005
    # the regressions: the (at most 10) items the candidate scored lowest, worst first
    worse = (b - a)[(b - a) < 0].sort_values(kind="stable")[:10]
    assert [(c.item_id, c.diff) for c in result.regressions] == [
        (i, pytest.approx(d, abs=1e-12)) for i, d in worse.items()
    ]
    out = runner.invoke(
        cli.app,
        [
            "diff",
            str(baseline),
            str(candidate),
            "--json",
            str(tmp_path / "d.json"),
            "--markdown",
            str(tmp_path / "d.md"),
        ],
    )
    assert out.exit_code == 0, out.output
    assert json.loads((tmp_path / "d.json").read_text())["mean_diff"] == pytest.approx(
        result.mean_diff
    )
    assert "| difference |" in (tmp_path / "d.md").read_text()
