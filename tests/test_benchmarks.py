"""The benchmark scripts on the current API, on tiny inputs and without an engine.

Each benchmark module is imported and its command line, workload builders, measurements that
need no engine and report renderers run here, so a change to judgekit's API breaks CI rather than
the next benchmark run. Speed is never asserted: only what the numbers are made of.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest
from scripted import ScriptedBackend, constant
from test_architecture import MAX_FUNCTION_LINES, MAX_LINES

import judgekit
from benchmarks import bias_controls, cascade, compare_cards, throughput
from benchmarks.speed import orchestrate, report, rows, workloads
from benchmarks.speed.machine import BusyMeter, machine
from benchmarks.speed.models import layer_params
from benchmarks.speed.spec import SYSTEMS, BenchSpec
from benchmarks.speed.systems import RUNNERS, generate_parse, generative_scoring, host
from benchmarks.speed.worker import Result
from judgekit.backends.base import AnswerSlot
from judgekit.backends.prompt import PromptTokens
from judgekit.backends.vllm_engine import chat_encoder
from judgekit.judging.plan import plan_requests
from judgekit.rubrics import load_rubric
from judgekit.schema import LabelRequest, Message, PointwiseItem

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def _spec(tmp_path: Path, *argv: str) -> tuple[str, BenchSpec]:
    parser = throughput.build_parser()
    args = parser.parse_args(list(argv))
    return throughput.build_spec(args, throughput.check_args(parser, args), tmp_path)


def test_throughput_command_line() -> None:
    parser = throughput.build_parser()
    args = parser.parse_args(["--systems", "host,judgekit", "--workloads", "pairwise"])
    assert throughput.check_args(parser, args) == ["judgekit", "host"]  # the baseline first
    for bad in (["--systems", "nope"], ["--workloads", "x"], ["--gpu-dummy", "--cpu-dummy-tiny"]):
        with pytest.raises(SystemExit):
            throughput.check_args(parser, parser.parse_args(bad))
    assert set(RUNNERS) == set(SYSTEMS)


def test_spec_from_the_command_line(tmp_path: Path) -> None:
    name, spec = _spec(tmp_path, "--quick", "--variants", "all", "--rubric-version", "1")
    assert (spec.items, spec.pairs, spec.rationale_tokens, spec.host_pairs) == (64, 32, 32, 500)
    assert spec.rubrics == {"pointwise": "overall_quality@v1", "pairwise": "pairwise_preference@v1"}
    assert spec.variants == list(load_rubric("overall_quality@v1").variants)
    assert name.endswith("-smollm2-64x32") and spec.model is None and spec.load_format == "auto"
    assert BenchSpec.model_validate_json(spec.model_dump_json()) == spec  # as a worker reads it
    judge = spec.judge(enable_prefix_caching=False)
    assert isinstance(judge, judgekit.VLLMJudge) and not judge.enable_prefix_caching
    # SmolLM2-135M: the layers plus the (tied) embedding are its 134.5M parameters
    config = json.loads((Path(spec.model_dir) / "config.json").read_text())
    embedding = config["vocab_size"] * config["hidden_size"]
    assert spec.layer_params is not None
    assert abs(spec.layer_params + embedding - 134.5e6) < 0.5e6


def test_cpu_dummy_tiny_model(tmp_path: Path) -> None:
    name, spec = _spec(tmp_path, "--cpu-dummy-tiny", "--items", "16", "--pairs", "8")
    config = json.loads((Path(spec.model_dir) / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"]) == (256, 2)
    assert (Path(spec.model_dir) / "tokenizer.json").is_file() and config["vocab_size"] >= 49152
    assert spec.load_format == "dummy" and spec.offline and spec.model == spec.model_dir
    # 2 x (q, o: 256x256; k, v: 256x128; gate, up, down: 256x512; 2 norms)
    assert (
        spec.layer_params == layer_params(config) == 2 * (2 * 65536 + 2 * 32768 + 3 * 131072 + 512)
    )
    assert name.endswith("-cpu-dummy-tiny-16x8")


def test_workloads_come_from_the_set_loaders(shared_data: Path, monkeypatch) -> None:
    monkeypatch.setattr(workloads, "DATA", shared_data)
    workloads._dataset.cache_clear()
    items, source = workloads.pointwise_items(20)
    assert source.startswith("SummEval") and [i.id for i in items[:2]] == ["A0-S0", "A0-S1"]
    assert len({i.context for i in items[:16]}) == 1 and items[16].context != items[0].context
    pairs, source = workloads.pairwise_items(1001)
    assert source.startswith("PandaLM") and len(pairs) == 1001
    assert [p.id for p in pairs[998:]] == ["998", "r1-0", "r1-1"]  # repeated with fresh ids
    empty = [p for p in pairs[:999] if workloads.EMPTY in (p.answer_a, p.answer_b)]
    assert len(empty) == 54  # the set's pairs with an empty response, judged as "(empty)"
    assert len(workloads.long_text(3000).split()) == 3000
    workloads._dataset.cache_clear()


def test_workloads_fall_back_to_synthetic_text(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(workloads, "DATA", tmp_path)
    workloads._dataset.cache_clear()
    try:
        _, spec = _spec(tmp_path, "--items", "20", "--pairs", "3", "--host-items", "8")
        built = {w.name: w for w in workloads.workloads(spec)}
        assert [len(built["pointwise"].items), len(built["pairwise"].items)] == [20, 3]
        assert built["pointwise"].source.startswith("SYNTHETIC")
        contexts = [i.context for i in built["pointwise"].items]
        assert len(set(contexts[:16])) == 1 and contexts[16] != contexts[0]  # 16 per article
        host_sizes = [len(w.items) for w in workloads.workloads(spec, host=True)]
        assert host_sizes == [8, 4]
        assert workloads.workload_meta(spec)["pairwise"]["source"].startswith("SYNTHETIC")
    finally:
        workloads._dataset.cache_clear()


def test_generate_then_parse_reads_the_last_cue() -> None:
    labels = ("1", "2", "3", "4", "5")
    assert generate_parse.parse_verdict("Good.\nScore: 2 ... Score: **4**", "Score:", labels) == "4"
    assert generate_parse.parse_verdict("fine [RESULT] 3", "Score:", labels) == "3"
    assert generate_parse.parse_verdict(" 5. ", "Score:", labels) == "5"
    assert generate_parse.parse_verdict("Score: 7", "Score:", labels) is None
    request = LabelRequest(
        item_id="i",
        variant="direct",
        order=None,
        messages=(Message("system", "s"), Message("user", "u"), Message("assistant", "Score:")),
        labels=labels,
        prefix_key="p",
    )
    asked = generate_parse.generation_request(request, "Score:", labels)
    assert asked.key == request.key and asked.messages[2] == request.messages[2]
    assert (
        asked.messages[1].content.startswith("u\n\nFirst write")
        and "1, 2, 3" in asked.messages[1].content
    )


def test_generative_scoring_groups_by_prefix() -> None:
    def request(item: str, prefix: str) -> LabelRequest:
        return LabelRequest(item, "direct", "AB", (Message("user", item),), ("A", "B"), prefix)

    requests = [request("a", "p"), request("b", "p"), request("c", "q")]
    prompts = [PromptTokens(ids) for ids in ([1, 2, 3, 4], [1, 2, 3, 5, 6], [9, 9])]
    slot = AnswerSlot("", {"A": ((7,),), "B": ((8,),)})
    calls = generative_scoring.calls(requests, prompts, [slot] * 3)
    assert len(calls) == 4  # two prefix groups x two label tokens (first label rotated)
    members, first, body = calls[0]
    assert (members, first, body["query"], body["items"]) == ([0, 1], 7, [1, 2, 3], [[4], [5, 6]])
    assert [c[2]["label_token_ids"] for c in calls[:2]] == [[7, 8], [8, 7]]
    assert calls[2][2]["query"] == [9] and calls[2][2]["items"] == [[9]]  # one token kept


def test_rows_and_the_instant_backend(tmp_path: Path) -> None:
    items = [PointwiseItem(id=str(i), question=f"q{i}", answer="a" * (i + 1)) for i in range(3)]
    rubric = load_rubric("overall_quality@v2")
    run = judgekit.judge(items, rubric, backend=ScriptedBackend(constant({"5": 1.0})))
    row = rows.judge_row(run, 2.0)
    assert (row["items"], row["requests"], row["items_per_s"]) == (3, 9, 1.5)
    assert (row["prompt_tokens"], row["unique_tokens_per_s"], row["failures"]) == (90, 45.0, 0)
    median = rows.median_row([{"wall_s": 3.0}, {"wall_s": 1.0, "profile": 1}, {"wall_s": 2.0}])
    assert (
        median["wall_s"] == 2.0 and median["walls_s"] == [3.0, 1.0, 2.0] and "profile" not in median
    )
    encoder = chat_encoder()
    run = judgekit.judge(items, rubric, backend=host.InstantBackend(encoder), variants=["direct"])
    uniform = pytest.approx(dict.fromkeys(rubric.labels, 0.2))
    assert all(j.valid and j.label_probs == uniform for j in run.judgments)
    planned = plan_requests(rubric, items, variants=["direct"])
    lengths = {p.item.id: len(encoder.prompt(p.request).ids) for p in planned}
    assert {j.item_id: j.num_prompt_tokens for j in run.judgments} == lengths


def _report(tmp_path: Path) -> tuple[dict, BenchSpec]:
    """A finished run's report with judgekit at 2 items/s, the raw engine at 4 and a host row."""
    _, spec = _spec(tmp_path, "--systems", "judgekit,raw_engine,host", "--workloads", "pointwise")
    base = rows.row(8, 8, 4.0, 800, 600, 8) | {"failures": 1}
    raw = rows.row(8, 8, 2.0, 800, 600, 8) | {"failures": 0}
    host_row = rows.row(8, 24, 0.008, 2400, 0, 24) | {"failures": 0}
    host_row |= {"judgments_per_s": 3000.0, "mean_prompt_tokens": 100.0}
    out = {
        "name": "tiny",
        "started": "2026-12-06T00:00:00+00:00",
        "load_average_start": [0.1, 0.1, 0.1],
        "machine": {},
        "spec": spec.model_dump(mode="json"),
        "workloads": workloads.workload_meta(spec),
        "limit": {"tokens_per_s": 100.0, "prompt_tokens": 2000},
        "systems": {
            "judgekit": {"workloads": {"pointwise": base}, "peak_rss_mb": 1000.0},
            "raw_engine": {"workloads": {"pointwise": raw}, "peak_rss_mb": 1500.0},
            "host": {"workloads": {"pointwise": host_row}, "peak_rss_mb": 10.0},
        },
    }
    return out, spec


def test_report_tables_and_targets(tmp_path: Path) -> None:
    data, spec = _report(tmp_path)
    busy = BusyMeter()
    orchestrate.finish(data, spec, busy, tmp_path)
    written = json.loads((tmp_path / "tiny.json").read_text())
    raw = written["systems"]["raw_engine"]["workloads"]["pointwise"]
    assert raw["items_per_s_vs_default"] == 2.0 and raw["unique_tokens_pct_of_limit"] == 100.0
    text = (tmp_path / "tiny.md").read_text()
    assert text == report.render(written)
    assert (
        "| judgekit default (prefix cache, 1-token labels) | 2.00 | 1.00x | 50 | 50% | 75% |"
        in text
    )
    assert "| 4.00 | 2.00x | 100 | 100% | 75% | 1,500 | 1.50x | 2.0 | 0/8 |" in text
    assert "| judgekit / raw engine | 0.50x | >= 0.90x | NO |" in text
    assert "| unique prompt tok/s / one-prompt prefill | 0.50x | >= 0.70x | NO |" in text
    assert "(24 judgments of 100 tokens) | 3,000 | >= 3,000 | yes |" in text
    assert "host side only" not in text  # judgments/s on one core: in the targets only


def test_committed_results_render_as_committed() -> None:
    """``--render`` of a results file gives the .md the run wrote (the format is stable)."""
    for stem in ("cpu-smollm2-v2-96x48", "cpu-smollm2-v2-parse-32"):
        data = json.loads((RESULTS / f"{stem}.json").read_text())
        assert report.render(data) == (RESULTS / f"{stem}.md").read_text()


def test_worker_result_is_written_after_each_workload(tmp_path: Path) -> None:
    result = Result("server", tmp_path / "out.json", tmp_path / "server.pid")
    result.add("pointwise", rows.row(2, 2, 1.0, 10, 0, 2))
    saved = json.loads((tmp_path / "out.json").read_text())
    assert saved["workloads"]["pointwise"]["items_per_s"] == 2.0 and not saved["complete"]
    assert saved["peak_rss_mb"] > 10 and saved["peak_rss_what"].endswith("+ server")
    assert machine()["cpus_available"] >= 1


def _position_script(item: str, variant: str, order: str) -> dict[str, float]:
    """Picks whichever answer is shown first, more or less surely by item (a pure position bias)."""
    p = 0.6 + 0.3 * (int(item) % 3) / 2
    return {"A": p, "B": 1 - p}


def test_bias_controls_tables(shared_data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(bias_controls, "DATA", shared_data)
    args = bias_controls.build_parser().parse_args(["--resamples", "20", "--out", str(tmp_path)])
    backend = ScriptedBackend(_position_script)
    card, meta = bias_controls.measure(backend, "pandalm", bias_controls.RUBRIC, None, 30, args)
    assert meta["per_split"] == 30 and meta["n_heldout"] == card.n and meta["pairwise"]
    table = bias_controls.table_rows(card, bias_controls._human_a_rate(30))
    figures = {(control, figure): (before, after) for control, figure, before, after in table}
    flip = figures[("position swap", "flip rate (argmax changes with order)")][0]
    assert flip.startswith("1.000 [")  # every item's argmax follows the order
    text = bias_controls.markdown("PandaLM", table, meta)
    assert text.count("\n| ") == 1 + len(table) and "30 dev + 30 held-out items" in text


@pytest.fixture(scope="module")
def cascade_run(shared_data: Path, tmp_path_factory) -> tuple[dict, Path]:
    """The cascade benchmark with released verdicts as both judges (PandaLM-7B small, GPT-3.5
    big) on 30 dev + 30 held-out PandaLM items: everything but the engine."""
    out = tmp_path_factory.mktemp("cascade")
    args = cascade.build_parser().parse_args(["--n", "30", "--resamples", "20", "--out", str(out)])
    args.set_n = {}
    small = cascade.replay("pandalm-7b", f"{cascade.OUTPUTS}/pandalm-7b-testset-v1.json",
                           "pandalm_result")  # fmt: skip
    return cascade.measure("pandalm", small, "pandalm-7b", args, None, one_prompt=True), out


def test_cascade_tables(cascade_run: tuple[dict, Path]) -> None:
    m, out = cascade_run
    assert m["n_heldout"] == 30 and m["small_card"].ensemble is not None
    table = cascade._rows(m)
    assert [r["judge"] for r in table][:2] == [
        "small alone (pandalm-7b)",
        "big alone (gpt-3.5-turbo)",
    ]
    for row, target in zip(table[2:], cascade.TARGETS, strict=True):
        stages = m["cascades"][target]["result"].stages
        kept = stages[0].n_decided
        assert row["judge"] == f"cascade, target {target:g}"
        assert (
            row["big tokens/item (est.)"]
            == f"{(30 - kept) / 30 * m['big_alone']['tokens_per_item']:.0f}"
        )
        assert stages[1].n_items == 30 - kept
    text = cascade.write_results([m], out)
    assert text.count("| cascade, target") == 3
    assert json.loads((out / "cascade.json").read_text())[0]["set"] == "pandalm"
    assert (out / "cascade.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_cards_reads_the_calibration_runs(
    cascade_run: tuple[dict, Path], shared_data: Path, capsys
) -> None:
    """Each folder's kappa is its card's headline kappa: the same verdicts, the same humans."""
    _, out = cascade_run
    a, b = out / "cascade_pandalm_pandalm-7b", out / "cascade_pandalm_gpt-3.5-turbo"
    argv = [str(a), str(b), "--set", "pandalm", "--limit", "30", "--data-dir", str(shared_data)]
    assert compare_cards.main(argv) == 0
    printed = capsys.readouterr().out
    assert "items compared: 30" in printed
    for folder in (a, b):
        card = json.loads((folder / "card.json").read_text())
        assert f"kappa {folder}: {card['kappa']['estimate']:.3f}" in printed
    verdicts = compare_cards.verdicts(a)
    assert len(verdicts) == 60 and set(verdicts.values()) <= {"A", "B", "tie", "invalid"}  # + dev
    assert not math.isnan(float(printed.split("difference (b - a): ")[1].split()[0]))


def test_scripts_parse_their_defaults() -> None:
    assert bias_controls.build_parser().parse_args([]).n == 80
    args = cascade.build_parser().parse_args(["--set-n", "llmbar_natural=20"])
    assert args.set_n == ["llmbar_natural=20"] and args.sets == "pandalm,llmbar_natural"
    with pytest.raises(SystemExit):
        compare_cards.build_parser().parse_args([])  # the two folders and --set are required
    defaults = throughput.build_parser().parse_args([])
    assert (defaults.items, defaults.variants, defaults.timeout) == (None, "direct", 3600)


def test_benchmark_modules_and_functions_stay_short() -> None:
    """judgekit's limits (tests/test_architecture.py) hold for the benchmarks too."""
    long = []
    for path in (REPO / "benchmarks").rglob("*.py"):
        text = path.read_text()
        if text.count("\n") > MAX_LINES:
            long.append(f"{path.name} ({text.count(chr(10))} lines)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                docstring = ast.get_docstring(node) and len(node.body) > 1
                body = node.body[1:] if docstring else node.body
                if (node.end_lineno or node.lineno) - body[0].lineno + 1 > MAX_FUNCTION_LINES:
                    long.append(f"{path.name}:{node.name}")
    assert long == []
