"""The OpenAI-compatible backend against real vLLM servers on 127.0.0.1 (embedded SmolLM2).

Two servers start once for this module (in parallel, killed at teardown): the first is compared
with the offline engine and sits behind the fault proxy; both serve the replica-routing test.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fault_proxy import Fault, FaultProxy

from judgekit import create_backend, judge, summarize
from judgekit.backends.local_server import LocalVLLMServer, scrape_metrics
from judgekit.backends.openai_server import OpenAIServer
from judgekit.data.records import read_items
from judgekit.judging.plan import plan_requests
from judgekit.rubrics import load_rubric
from judgekit.schema import Judgment, PointwiseItem

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[1]
POINTWISE = REPO / "examples" / "sample_pointwise.jsonl"
PAIRWISE = REPO / "examples" / "sample_pairwise.jsonl"
# the server batches differently from the engine: float32 results agree to float noise, bf16
# results (AVX-512 machines, JUDGEKIT_DTYPE=bfloat16) depend on the batch in the 2nd decimal
PROB_TOL = {"float32": 1e-3, "bfloat16": 2e-2}
#: 1 GiB of KV cache each: two servers and the engine share this machine's memory
SERVER_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def model_dir() -> Path:
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed")
    from judgekit.backends.embedded import embedded_model_dir

    return embedded_model_dir()


@pytest.fixture(scope="module")
def servers(
    model_dir: Path, engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    """Two vLLM OpenAI servers (eager, the engine's dtype) on free loopback ports: root URLs."""
    logs = tmp_path_factory.mktemp("vllm-servers")
    dtype = str(engine.identity.settings["dtype"])  # float32 on AVX2, bfloat16 on AVX-512
    with ExitStack() as stack:
        started = [
            stack.enter_context(
                LocalVLLMServer(
                    model_dir, served_model_name="smollm2", dtype=dtype, max_model_len=2048,
                    enforce_eager=True, env=SERVER_ENV, log=logs / f"server{i}.log",
                )
            )
            for i in range(2)
        ]  # fmt: skip
        for server in started:  # both load at once
            server.wait_healthy(timeout=300)
        yield [server.url for server in started]


def _by_key(judgments: list[Judgment]) -> dict[tuple[str, str, str | None], Judgment]:
    keyed = {(j.item_id, j.variant, j.order): j for j in judgments}
    assert len(keyed) == len(judgments), "a judgment was duplicated"
    return keyed


def _assert_agree(server: list[Judgment], engine: list[Judgment]) -> float:
    """Same keys, validity, prompt tokens and argmax; probabilities within the dtype's tolerance.

    The server reads the top 20 tokens unless it was given the tokenizer (exact label ids), so
    against the engine's exact probabilities its mass may only be lower by what fell outside.
    """
    ours, theirs = _by_key(server), _by_key(engine)
    assert ours.keys() == theirs.keys()
    tol = max(PROB_TOL[j.engine_settings["dtype"]] for j in engine)
    exact = all(j.engine_settings["label_logprobs"] == "exact" for j in server)
    worst = 0.0
    for key, s in ours.items():
        e = theirs[key]
        assert s.num_prompt_tokens == e.num_prompt_tokens, key
        if exact:
            assert s.label_mass == pytest.approx(e.label_mass, abs=tol), key
        else:
            assert s.label_mass <= e.label_mass + tol, key
        assert s.valid == e.valid, key
        if s.valid:
            top = sorted(e.label_probs.values(), reverse=True)
            if top[0] - top[1] > 2 * tol:  # a near-tie may flip within the dtype's noise
                assert s.label == e.label, key
            for label, p in s.label_probs.items():
                worst = max(worst, abs(p - e.label_probs[label]))
    assert worst <= tol
    return worst


def test_server_agrees_with_offline_engine(servers: list[str], engine, model_dir: Path) -> None:
    """Same prompts, same answer slots, same label distributions as the in-process engine."""
    point, pair = load_rubric("overall_quality@v1"), load_rubric("pairwise_preference@v1")
    points = read_items(POINTWISE, "pointwise")[:8]
    pairs = read_items(PAIRWISE, "pairwise")[:4]
    server = create_backend("openai", base_url=servers[0] + "/v1")
    by_tokenizer = create_backend("openai", base_url=servers[0] + "/v1", tokenizer=str(model_dir))
    try:
        reference = {}
        for rubric, items in ((point, points), (pair, pairs)):
            reference[rubric.ref] = judge(items, rubric, backend=engine).judgments
            ours = judge(items, rubric, backend=server).judgments
            worst = _assert_agree(ours, reference[rubric.ref])
            print(f"{rubric.ref}: max |p_server - p_engine| = {worst:.2e}")
            request = plan_requests(rubric, items[:1])[0].request
            assert server.answer_tail(request) == engine.answer_slot(request).tail
        ours = judge(pairs, pair, backend=by_tokenizer, variants=["direct"]).judgments
        worst = _assert_agree(ours, [j for j in reference[pair.ref] if j.variant == "direct"])
        print(f"tokenizer-resolved slot: max |p_server - p_engine| = {worst:.2e}")
        assert server.stats.errors == 0 and server.stats.faults == {}
        settings = server.identity.settings
        assert settings["replicas"] == 1 and settings["label_source"] == "logprobs"
        assert settings["label_logprobs"] == "top20"
        assert by_tokenizer.identity.settings["label_logprobs"] == "exact"
    finally:
        server.close()
        by_tokenizer.close()


def test_faults_are_retried_or_counted_invalid(servers: list[str]) -> None:
    """Each injected fault is retried (transient) or makes exactly one item invalid (malformed)."""
    rubric = load_rubric("overall_quality@v1")
    items = read_items(POINTWISE, "pointwise")
    faults = [
        "http_500", Fault("http_429", retry_after=1.0), "hang", "short_body",
        "truncate", "no_logprobs", "no_choices",
    ]  # fmt: skip
    timeout = 8.0
    with FaultProxy(servers[0], hang_seconds=timeout + 1) as proxy:
        proxy.script(x for fault in faults for x in (fault, None))
        backend = OpenAIServer(
            base_url=proxy.base_url, tail="cue_space", timeout=timeout, max_concurrency=2,
            max_retries=3, backoff_base=0.05,
        )  # fmt: skip
        try:
            run = judge(items, rubric, backend=backend, variants=["direct"])
            stats = backend.stats
        finally:
            backend.close()
        records = proxy.chat_records()
    print("fault stats:", stats.as_dict())
    judged = _by_key(run.judgments)
    assert {item_id for item_id, _, _ in judged} == {item.id for item in items}
    invalid = [j for j in run.judgments if not j.valid]
    assert len(invalid) == 3 and all("malformed response" in j.invalid_reason for j in invalid)
    assert summarize(run).n_invalid_judgments == 3
    # the client's counters match what the proxy did on the wire; on a loaded 2-core machine an
    # unfaulted reply can also come too late, which the proxy's clock shows
    wire = {"http_500": 1, "http_429": 1, "connection": 1, "malformed": 3}
    assert {kind: n for kind, n in stats.faults.items() if kind != "timeout"} == wire
    late = [r for r in records if r.fault is None and r.seconds is not None]
    clearly_late = sum(r.seconds > timeout + 0.5 for r in late)
    maybe_late = sum(r.seconds > timeout - 0.5 for r in late)
    assert 1 + clearly_late <= stats.faults["timeout"] <= 1 + maybe_late
    transient = stats.faults["http_500"] + stats.faults["http_429"] + stats.faults["timeout"] + 1
    assert stats.retries == transient and stats.errors == 3 and stats.requests == len(items)
    assert stats.attempts == len(records) == len(items) + transient
    # the retry after the 429 waited for Retry-After
    limited = next(r for r in records if r.fault == "http_429")
    retry = next(r for r in records if r.index > limited.index and r.body == limited.body)
    assert retry.arrived - limited.arrived >= 0.95


def test_retries_are_bounded_and_client_errors_not_retried(servers: list[str]) -> None:
    rubric = load_rubric("overall_quality@v1")
    short = PointwiseItem(id="short", question="What is 2 + 2?", answer="4")
    too_long = PointwiseItem(id="long", question="q", answer="word " * 3000)
    with FaultProxy(servers[0]) as proxy:
        backend = OpenAIServer(
            base_url=proxy.base_url, tail="cue_space", max_retries=2, backoff_base=0.01
        )
        try:
            proxy.script(["http_500"] * 3)
            [result] = backend.score([plan_requests(rubric, [short])[0].request])
            assert result.error and result.error.startswith("http_500 after 3 tries")
            assert backend.stats.retries == 2 and backend.stats.attempts == 3
            [result] = backend.score([plan_requests(rubric, [too_long])[0].request])
            assert result.error and result.error.startswith("HTTP 400")
            stats = backend.stats
        finally:
            backend.close()
    assert stats.attempts == 4 and stats.retries == 2 and stats.errors == 2
    assert stats.faults == {"http_500": 3, "http_400": 1}
    assert len(proxy.chat_records()) == 4


def test_text_fallback_without_prefill_is_marked_and_counted(servers: list[str]) -> None:
    """Hosted-API mode: no assistant prefill, no logprobs; the parsed label is counted as such."""
    rubric = load_rubric("overall_quality@v1")
    items = read_items(POINTWISE, "pointwise")[:4]
    with FaultProxy(servers[0]) as proxy:
        backend = OpenAIServer(base_url=proxy.base_url, prefill=False, label_source="text")
        try:
            run = judge(items, rubric, backend=backend, variants=["direct"])
            stats = backend.stats
        finally:
            backend.close()
    assert stats.fallbacks == len(items) and stats.errors == 0
    for j in run.judgments:
        assert j.engine_settings["label_source"] == "text"
        assert j.label_mass == 0.0  # a parsed label is one-hot; no probability was measured
        assert j.engine_settings["label_logprobs"] == "text"
    for record in proxy.chat_records():
        assert record.body["messages"][-1]["role"] == "user"
        assert "logprobs" not in record.body and "continue_final_message" not in record.body


def test_two_replicas_keep_each_prefix_on_one_server(servers: list[str]) -> None:
    """Requests spread over both servers; a prefix group never spans two; both caches hit."""
    rubric = load_rubric("overall_quality@v1")
    items = read_items(POINTWISE, "pointwise")
    before = [scrape_metrics(root) for root in servers]
    with FaultProxy(servers[0]) as first, FaultProxy(servers[1]) as second:
        proxies = (first, second)
        backend = create_backend("openai", base_url=[p.base_url for p in proxies])
        try:
            run = judge(items, rubric, backend=backend)
            stats = backend.stats
            prefix_of = {
                json.dumps([m.content for m in p.request.messages[:-1]]): p.request.prefix_key
                for p in plan_requests(rubric, items)
            }
            seen: dict[str, set[int]] = {}
            for replica, proxy in enumerate(proxies):
                for record in proxy.chat_records():
                    body = json.dumps([m["content"] for m in record.body["messages"][:-1]])
                    seen.setdefault(prefix_of[body], set()).add(replica)
            assert all(backend.replica_for(key) == next(iter(r)) for key, r in seen.items())
        finally:
            backend.close()
    after = [scrape_metrics(root) for root in servers]
    counts = [len(p.chat_records()) for p in proxies]
    print("requests per replica:", counts, "prefix groups:", len(seen))
    print("server metrics before/after:", before, after)
    assert len(run.judgments) == len(items) * 3 and stats.errors == 0
    assert set(seen) == set(prefix_of.values())
    assert all(len(replicas) == 1 for replicas in seen.values()), "a prefix went to two replicas"
    assert all(count > 0 for count in counts) and stats.per_replica == counts
    for then, now in zip(before, after, strict=True):
        assert now.queries > then.queries and now.hits > then.hits
    assert backend.identity.settings["replicas"] == 2
    assert not any("127.0.0.1" in str(v) for v in backend.identity.settings.values())
