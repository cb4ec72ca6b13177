"""Start and stop a vLLM OpenAI-compatible server on 127.0.0.1 (tests, benchmarks, users)::

    with local_vllm_server(model_dir) as base_url:
        backend = create_backend("openai", base_url=base_url)

The API server spawns engine processes of its own, so stopping only its first process would leave
the model's memory held: the server gets a process group of its own and the whole group is killed
on exit, whatever happened. On the CPU build it gets the in-process engine's thread and KV-cache
settings and its dtype and eager defaults, so both paths judge alike. vLLM is run as a module (the
CPU build's ``vllm`` script fails), never imported: ``vllm_engine`` stays its only importer.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from judgekit.backends.engine_settings import cpu_dtype, cpu_env_defaults
from judgekit.backends.vllm_engine import is_cpu_build

HOST = "127.0.0.1"
#: Prometheus counter -> ServerMetrics field.
COUNTERS = {
    "vllm:prefix_cache_queries_total": "queries",
    "vllm:prefix_cache_hits_total": "hits",
    "vllm:prompt_tokens_total": "prompt_tokens",
    "vllm:generation_tokens_total": "generation_tokens",
}


class ServerStartError(RuntimeError):
    """The server exited or was not healthy in time; the message ends with its log's tail."""


def free_port() -> int:
    """A TCP port free on the loopback interface now (the server binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class LocalVLLMServer:
    """One server, started on construction and stopped (its whole group) by ``stop`` or exit.

    Starting and waiting are apart so that several servers can load at once. ``dtype="auto"`` and
    ``enforce_eager=None`` resolve as in ``VLLMEngine``; ``env`` overrides the CPU defaults.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        served_model_name: str | None = None,
        dtype: str = "auto",
        max_model_len: int = 4096,
        max_logprobs: int = 20,
        enforce_eager: bool | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        log: Path | str | None = None,
    ) -> None:
        cpu = is_cpu_build()
        port = free_port()
        self.url = f"http://{HOST}:{port}"
        self.base_url = self.url + "/v1"
        command = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(model), "--host", HOST, "--port", str(port),
            "--dtype", cpu_dtype() if cpu and dtype == "auto" else dtype,
            "--max-model-len", str(max_model_len), "--max-logprobs", str(max_logprobs),
            "--enable-prompt-tokens-details",
        ]  # fmt: skip
        if served_model_name:
            command += ["--served-model-name", served_model_name]
        if cpu if enforce_eager is None else enforce_eager:
            command.append("--enforce-eager")
        defaults = cpu_env_defaults(in_process=False) if cpu else {}
        full_env = {**defaults, **os.environ, **(env or {})}
        self.log = Path(log or tempfile.mkstemp(prefix="vllm-server-", suffix=".log")[1])
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [*command, *extra_args],
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_healthy(self, timeout: float = 600.0) -> None:
        """Block until ``/health`` answers; ServerStartError if the server dies or times out."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise self._error(f"exited ({self.process.returncode})")
            try:
                _get(self.url + "/health", timeout=2)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise self._error(f"not healthy in {timeout:.0f} s") from None
                time.sleep(1)

    def _error(self, why: str, tail_chars: int = 3000) -> ServerStartError:
        try:
            tail = self.log.read_text(errors="replace")[-tail_chars:]
        except OSError:
            tail = "(log unreadable)"
        return ServerStartError(f"vLLM server {why}; {self.log} ends:\n{tail}")

    def stop(self) -> None:
        stop_process_group(self.process.pid, self.process)

    def __enter__(self) -> LocalVLLMServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def local_vllm_server(
    model: str | Path, *, timeout: float = 600.0, **options: Any
) -> Iterator[str]:
    """A healthy server's OpenAI base URL (``http://127.0.0.1:PORT/v1``); ``options``: see above."""
    with LocalVLLMServer(model, **options) as server:
        server.wait_healthy(timeout)
        yield server.base_url


def stop_process_group(pgid: int, proc: subprocess.Popen | None = None) -> None:
    """SIGTERM a process group, SIGKILL what is left of it after 30 s; no error if it is gone.

    ``proc``, the group's leader when it is our child, is reaped last: until then it lingers as a
    zombie, which ``killpg`` still finds but ``_group_alive`` does not count.
    """
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.5)
        os.killpg(pgid, signal.SIGKILL)
    if proc is not None:
        proc.wait(timeout=30)


def _group_alive(pgid: int) -> bool:
    """Any non-zombie process left in the group (a zombie leader still answers killpg)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state != "Z":
            return True
    return False


@dataclass(frozen=True)
class ServerMetrics:
    """vLLM's cumulative counters (summed over label sets); subtract two to measure a run."""

    queries: float = 0.0  # prefix-cache queries, tokens
    hits: float = 0.0  # prefix-cache hits, tokens
    prompt_tokens: float = 0.0
    generation_tokens: float = 0.0

    @classmethod
    def parse(cls, text: str) -> ServerMetrics:
        """From Prometheus text (``GET /metrics``)."""
        totals = dict.fromkeys(COUNTERS.values(), 0.0)
        for line in text.splitlines():
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name in COUNTERS:
                totals[COUNTERS[name]] += float(line.rsplit(" ", 1)[1])
        return cls(**totals)

    def __sub__(self, other: ServerMetrics) -> ServerMetrics:
        return ServerMetrics(*(a - b for a, b in zip(astuple(self), astuple(other), strict=True)))


def scrape_metrics(url: str) -> ServerMetrics:
    """The counters of the server at ``url`` (its root or its ``/v1`` base URL)."""
    return ServerMetrics.parse(_get(urljoin(url, "/metrics")))


def _get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()
