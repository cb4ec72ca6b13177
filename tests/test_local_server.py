"""The local server launcher without vLLM: a stand-in "python" that serves /health and /metrics.

The real server path is covered by test_openai_server.py (minutes); these run in about a second.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from judgekit.backends.local_server import (
    ServerMetrics,
    ServerStartError,
    local_vllm_server,
    scrape_metrics,
    stop_process_group,
)

METRICS = """\
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="judge"} 640.0
vllm:prefix_cache_queries_total{engine="1",model_name="judge"} 360.0
vllm:prefix_cache_hits_total{engine="0",model_name="judge"} 512.0
vllm:prefix_cache_hits_created{engine="0",model_name="judge"} 1.7e9
vllm:prompt_tokens_total{model_name="judge"} 1000.0
vllm:generation_tokens_total{model_name="judge"} 8.0
"""
FAKE_SERVER = f"""
import sys, http.server
port = int(sys.argv[sys.argv.index("--port") + 1])
assert sys.argv[sys.argv.index("--host") + 1] == "127.0.0.1"
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = {METRICS!r}.encode() if self.path == "/metrics" else b""
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def _fake_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    """Make the launcher's ``sys.executable -m vllm...`` run ``code`` (argv kept) instead."""
    script = tmp_path / "fake.py"
    script.write_text(code)
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(wrapper))


def test_metrics_are_summed_over_label_sets() -> None:
    metrics = ServerMetrics.parse(METRICS)
    assert metrics == ServerMetrics(queries=1000, hits=512, prompt_tokens=1000, generation_tokens=8)
    assert metrics - ServerMetrics(queries=1000, hits=12) == ServerMetrics(0, 500, 1000, 8)


def test_server_is_healthy_then_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_python(tmp_path, monkeypatch, FAKE_SERVER)
    with local_vllm_server("model", timeout=60, log=tmp_path / "server.log") as base_url:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        assert scrape_metrics(base_url) == ServerMetrics.parse(METRICS)
    with pytest.raises(OSError):
        scrape_metrics(base_url)


def test_a_dying_server_raises_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_python(tmp_path, monkeypatch, "import sys\nprint('no such model')\nsys.exit(3)\n")
    with (
        pytest.raises(ServerStartError, match=r"exited \(3\)[^\n]*\n[\s\S]*no such model"),
        local_vllm_server("model", timeout=60, log=tmp_path / "server.log"),
    ):
        pass


def test_stop_kills_children_that_outlive_the_leader() -> None:
    leader = subprocess.Popen(
        ["sh", "-c", "sleep 300 >/dev/null & echo $!"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    orphan = int(leader.communicate(timeout=10)[0])
    stop_process_group(leader.pid, leader)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _running(orphan):
        time.sleep(0.1)
    assert not _running(orphan)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
