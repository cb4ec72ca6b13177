"""A real HTTP proxy on 127.0.0.1 that forwards to one upstream server and injects scripted faults.

Tests put it in front of a vLLM OpenAI server to see what the client does with the faults real
networks and servers produce. Each completion request (chat or text) takes the next fault from
the script (arrival order; None or an empty script = forward untouched); everything else is
forwarded as is.
Every request is logged with its body, so tests can see which prompt went where and when.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import urlsplit

FaultKind = Literal[
    "http_500",  # 500 with a JSON error body, upstream not called
    "http_429",  # 429 with Retry-After (seconds), upstream not called
    "hang",  # read the request, answer nothing for ``hang_seconds``, then drop the connection
    "truncate",  # upstream's 200 body cut in half, Content-Length matching the cut body
    "short_body",  # upstream's 200 body cut in half, Content-Length of the full body
    "no_logprobs",  # upstream's 200 body with ``logprobs`` removed from every choice
    "no_choices",  # upstream's 200 body with an empty ``choices`` list
]

#: Requests that can take a fault: chat and text completions.
COMPLETION_PATHS = ("/v1/chat/completions", "/v1/completions")
# hop-by-hop or recomputed: never copied between the two connections
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    retry_after: float = 1.0


@dataclass
class Record:
    """One request as the proxy saw it."""

    index: int
    arrived: float
    method: str
    path: str
    body: Any
    fault: FaultKind | None
    status: int | None = None
    replied: float | None = None

    @property
    def seconds(self) -> float | None:
        """Time from arrival to the reply being ready to send; None for a hang (no reply)."""
        return None if self.replied is None else self.replied - self.arrived


@dataclass
class FaultProxy:
    """``with FaultProxy("http://127.0.0.1:8000") as proxy:``, then clients use ``base_url``."""

    upstream: str
    hang_seconds: float = 5.0
    log: list[Record] = field(default_factory=list)

    def __post_init__(self) -> None:
        parts = urlsplit(self.upstream)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._script: deque[Fault | None] = deque()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def script(self, faults: Iterable[Fault | FaultKind | None]) -> None:
        """Append faults for the next completion requests, in arrival order."""
        with self._lock:
            self._script.extend(Fault(f) if isinstance(f, str) else f for f in faults)

    def completion_records(self) -> list[Record]:
        """Chat and text completion requests, in arrival order."""
        with self._lock:
            return [r for r in self.log if r.path in COMPLETION_PATHS]

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _admit(self, method: str, path: str, body: bytes) -> tuple[Record, Fault | None]:
        """Log the request and take its fault from the script."""
        scored = path in COMPLETION_PATHS
        parsed = json.loads(body) if body and scored else None
        with self._lock:
            fault = self._script.popleft() if scored and self._script else None
            kind = fault.kind if fault else None
            record = Record(len(self.log), time.monotonic(), method, path, parsed, kind)
            self.log.append(record)
        return record, fault

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(*self._target, timeout=120)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()


class _Server(ThreadingHTTPServer):
    """Threads that die with the test; a client that gave up (timeout) is not an error here."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024  # the client opens up to max_concurrency connections at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the proxy's own log is ``proxy.log``."""

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            record, fault = proxy._admit(self.command, self.path, body)
            if fault is not None and fault.kind == "hang":
                time.sleep(proxy.hang_seconds)
                self.close_connection = True
                return
            if fault is not None and fault.kind in ("http_500", "http_429"):
                status = int(fault.kind[-3:])
                extra = {"Retry-After": f"{fault.retry_after:g}"} if status == 429 else {}
                error = {"error": {"message": f"injected {status}", "type": "fault_proxy"}}
                self._reply(record, status, json.dumps(error).encode(), extra)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
            status, upstream_headers, payload = proxy._forward(
                self.command, self.path, headers, body
            )
            passed = {
                k: v
                for k, v in upstream_headers
                if k.lower() not in _HOP_HEADERS and k.lower() != "content-type"
            }
            if fault is None or status != 200:
                self._reply(record, status, payload, passed)
            elif fault.kind == "truncate":
                self._reply(record, status, payload[: len(payload) // 2], passed)
            elif fault.kind == "short_body":
                self._reply(record, status, payload[: len(payload) // 2], passed, len(payload))
            else:
                data = json.loads(payload)
                if fault.kind == "no_logprobs":
                    for choice in data["choices"]:
                        choice.pop("logprobs", None)
                else:
                    data["choices"] = []
                self._reply(record, status, json.dumps(data).encode(), passed)

        def _reply(
            self,
            record: Record,
            status: int,
            payload: bytes,
            headers: dict[str, str],
            length: int | None = None,
        ) -> None:
            record.status = status
            # stamped before writing: a client that gave up meanwhile makes the write fail, and
            # the record must still show how late the reply was
            record.replied = time.monotonic()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload) if length is None else length))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
            self.close_connection = True

    return Handler
