"""The Ray executor on a local in-process cluster: same answers as a local run, prefix-aware
batches, every judgment exactly once through a raising batch, a killed actor and a killed driver.

One cluster for the module (``ray.init(num_cpus=2)``, no dashboard, nothing outside the machine).
The scripted judge runs inside the actors through the executor's ``builder`` (actors are other
processes: the driver's factory hooks do not reach them); the engine tests load the embedded
judge in two actors with small CPU KV caches.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import judgekit
from judgekit.backends import VLLMJudge
from judgekit.data.records import read_judgments
from judgekit.judging.plan import partition, plan_requests
from judgekit.judging.read import read_manifest
from judgekit.rubrics import load_rubric
from judgekit.schema import PairwiseItem, PointwiseItem, item_group
from tests.scripted import ScriptedBackend, lend

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'judgekit[ray]'")
from judgekit.judging.ray_executor import RayExecutor  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ITEMS = [
    PointwiseItem(id=str(i), question=f"q{i % 4}", answer=f"answer {i}", group=f"g{i % 4}")
    for i in range(12)
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A local two-CPU cluster; workers see this checkout (and tests/) on their path."""
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "VLLM_CPU_KVCACHE_SPACE")}
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), str(REPO / "tests"), saved["PYTHONPATH"] or ""]
    )
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = "1"  # GiB per engine: two actors and the session's
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _score(item: str, variant: str, order: str) -> dict[str, float]:
    top = str(1 + int(item) % 5)
    return {label: (0.6 if label == top else 0.1) for label in "12345"}


def _log(path: Path, line: str) -> None:
    with path.open("a") as f:
        f.write(line + "\n")


class Scripted:
    """Builds an actor's scripted judge; every scored request is logged to ``log`` (actors are
    other processes). ``fault``: on the first request of item ``at``, ``raise`` or ``exit`` (the
    actor process dies), once (a marker file remembers it across restarts)."""

    def __init__(self, log: Path, fault: str | None = None, at: str = "5") -> None:
        self.log, self.fault, self.at = log, fault, at

    def __call__(self, spec: object) -> ScriptedBackend:
        marker = self.log.with_suffix(".fault")

        def script(item: str, variant: str, order: str) -> dict[str, float]:
            if self.fault and item == self.at and not marker.exists():
                marker.touch()
                if self.fault == "exit":
                    os._exit(1)
                raise RuntimeError("a batch that fails once")
            _log(self.log, f"{item}|{variant}|{order}")
            return _score(item, variant, order)

        return ScriptedBackend(script, streaming=True)


def _rows(path: Path) -> list[dict]:
    return sorted(
        (j.model_dump(exclude={"from_store"}) for j in read_judgments(path)),
        key=lambda r: (r["item_id"], r["variant"], r["order"] or "", r["criterion"] or ""),
    )


def _ray_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, **options: object):
    log = tmp_path / f"{name}.log"
    builder = Scripted(log, **options)  # type: ignore[arg-type]
    lend(monkeypatch, builder(None))  # the driver's judge: identity and preflight only
    executor = RayExecutor(actors=2, batch_size=4, builder=builder)
    out = tmp_path / f"{name}.jsonl"
    run = judgekit.judge(
        ITEMS, "overall_quality@v1", backend=VLLMJudge(), output=out, executor=executor
    )
    return run, out, log


def test_prefix_partitions_keep_clusters_whole_in_plan_order() -> None:
    pairs = [
        PairwiseItem(id=str(i), question=f"q{i % 3}", answer_a="a", answer_b=f"b{i}")
        for i in range(9)
    ]
    planned = plan_requests(load_rubric("pairwise_preference"), pairs)
    parts = partition(planned, 5)
    assert sorted(n for part in parts for n in part) == list(range(len(planned)))
    owner = {}
    for b, part in enumerate(parts):
        assert part == sorted(part)  # the plan's (prompt-text) order inside a batch
        for n in part:
            assert owner.setdefault(item_group(planned[n].item), b) == b  # a cluster, one batch
    # 3 questions x 3 items x variants x 2 orders: each cluster is larger than 5, one batch each
    assert len(parts) == 3
    scattered = partition(planned, 5, "random")
    assert sorted(n for part in scattered for n in part) == list(range(len(planned)))
    assert len({len(part) for part in scattered[:-1]}) == 1


def test_ray_run_equals_local_run(
    cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "local.jsonl"
    judgekit.judge(
        ITEMS,
        "overall_quality@v1",
        backend=ScriptedBackend(_score),
        output=local,
    )
    run, out, log = _ray_run(tmp_path, monkeypatch, "ray")
    assert _rows(out) == _rows(local)
    assert (
        out.with_suffix(".items.jsonl").read_text() == local.with_suffix(".items.jsonl").read_text()
    )
    scored = log.read_text().splitlines()
    assert len(scored) == len(set(scored)) == len(run.judgments) == 36  # 12 items x 3 variants
    layout = read_manifest(out).executor
    assert layout["kind"] == "ray" and layout["actors"] == 2 and layout["batch_size"] == 4
    assert read_manifest(local).executor["kind"] == "local"
    assert read_manifest(out).judge == read_manifest(local).judge  # operational only


@pytest.mark.parametrize("fault", ["raise", "exit"])
def test_a_failed_batch_is_retried_and_every_judgment_comes_once(
    cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    run, out, log = _ray_run(tmp_path, monkeypatch, fault, fault=fault)
    assert log.with_suffix(".fault").exists()  # the fault happened
    keys = [(j.item_id, j.variant) for j in read_judgments(out)]
    assert len(keys) == len(set(keys)) == 36 == len(run.judgments)
    assert all(j.valid for j in run.judgments)


def test_resume_after_the_driver_died_judges_only_what_is_missing(
    cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "resume.log"
    builder = Scripted(log)
    lend(monkeypatch, builder(None))
    executor = RayExecutor(actors=2, batch_size=4, builder=builder)
    out = tmp_path / "resume.jsonl"
    seen: list[int] = []

    def die(batch: object) -> None:
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt  # the driver stops after writing two chunks

    options = {"backend": VLLMJudge(), "output": out, "executor": executor, "write_every": 3}
    with pytest.raises(KeyboardInterrupt):
        judgekit.judge(ITEMS, "overall_quality@v1", on_batch=die, **options)  # type: ignore[arg-type]
    kept = len(read_judgments(out))
    assert 0 < kept < 36
    log.write_text("")
    run = judgekit.judge(ITEMS, "overall_quality@v1", if_exists="resume", **options)  # type: ignore[arg-type]
    assert len(log.read_text().splitlines()) == 36 - kept  # only what was missing
    keys = [(j.item_id, j.variant) for j in read_judgments(out)]
    assert len(keys) == len(set(keys)) == 36 == len(run.judgments)


def _same_answers(ray_out: Path, local_out: Path) -> None:
    """Label probabilities within 1e-4 (float32), every other field equal; cached-token counts
    are operational (which engine saw a prefix first) and are left out."""
    operational = {"from_store", "num_cached_tokens", "label_probs", "label_mass", "expected_score"}
    ray_rows = {(j.item_id, j.variant, j.order): j for j in read_judgments(ray_out)}
    local_rows = {(j.item_id, j.variant, j.order): j for j in read_judgments(local_out)}
    assert ray_rows.keys() == local_rows.keys()
    for key, j in ray_rows.items():
        k = local_rows[key]
        assert j.model_dump(exclude=operational) == k.model_dump(exclude=operational)
        ours, theirs = j.label_probs or {}, k.label_probs or {}  # None: too little mass
        assert ours.keys() == theirs.keys()
        assert all(abs(ours[x] - theirs[x]) < 1e-4 for x in ours)
        assert abs(j.label_mass - k.label_mass) < 1e-4


@pytest.mark.parametrize(
    ("rubric", "sample"),
    [("pairwise_preference", "sample_pairwise"), ("overall_quality", "sample_pointwise")],
)
def test_cli_ray_run_on_two_engine_actors_equals_the_local_run(
    cluster: None, engine: object, tmp_path: Path, rubric: str, sample: str
) -> None:
    """``judgekit judge --ray`` with two actors of the embedded judge (float32) vs the session's
    engine in this process: same label probabilities (1e-4), same labels and verdicts."""
    from typer.testing import CliRunner

    from judgekit import cli

    source = REPO / "examples" / f"{sample}.jsonl"
    local_out = tmp_path / "local.jsonl"
    local = judgekit.judge(source, rubric, backend=engine, output=local_out)  # type: ignore[arg-type]
    out = tmp_path / "ray.jsonl"
    args = ["judge", "--rubric", rubric, "-i", str(source), "-o", str(out), "--dtype", "float32"]
    args += ["--ray", "local", "--ray-actors", "2"]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    _same_answers(out, local_out)
    assert judgekit.read_run(out).verdicts.labels == local.verdicts.labels
    layout = read_manifest(out).executor
    assert layout["kind"] == "ray" and layout["actors"] == 2


@pytest.mark.long
def test_cli_ray_run_on_1000_summeval_items_equals_the_local_run(
    cluster: None, engine: object, shared_data: Path, tmp_path: Path
) -> None:
    """At scale (``pytest -m long``, ~15 min on 2 CPUs): the first 1,000 SummEval summaries
    (63 articles, each article's prefix shared; the ``direct`` variant) judged by ``judgekit
    judge --ray`` on two actors equal the session engine's local run (float32)."""
    from typer.testing import CliRunner

    from judgekit import cli
    from judgekit.data.sets import load_calibration_set

    records = load_calibration_set("summeval", data_dir=shared_data, metric="relevance").records
    records = records[:1000]
    source = tmp_path / "summeval_1000.jsonl"
    source.write_text(
        "".join(r.item.model_dump_json(exclude_defaults=True) + "\n" for r in records)
    )
    rubric = "overall_quality@v1"
    local_out = tmp_path / "local.jsonl"
    local = judgekit.judge(
        source,
        rubric,
        backend=engine,  # type: ignore[arg-type]
        output=local_out,
        variants=["direct"],
    )
    out = tmp_path / "ray.jsonl"
    args = ["judge", "--rubric", rubric, "-i", str(source), "-o", str(out), "--dtype", "float32"]
    args += ["--variant", "direct", "--ray", "local", "--ray-actors", "2"]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert len(local.judgments) == 1000
    _same_answers(out, local_out)
    assert judgekit.read_run(out).verdicts.labels == local.verdicts.labels


def test_ray_options_are_checked_before_any_judge_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from judgekit import cli
    from tests.scripted import forbid_engines

    forbid_engines(monkeypatch)
    source = str(REPO / "examples" / "sample_pointwise.jsonl")
    args = ["judge", "--rubric", "overall_quality", "-i", source, "-o", str(tmp_path / "o.jsonl")]
    result = CliRunner().invoke(cli.app, [*args, "--ray-actors", "2"])
    assert result.exit_code == 2 and "needs --ray ADDRESS" in result.output
    with pytest.raises(ValueError, match="not a started backend"):
        judgekit.judge(ITEMS, "overall_quality@v1", backend=ScriptedBackend(_score), executor="ray")
