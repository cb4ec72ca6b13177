"""One module per system; ``RUNNERS`` maps each system name to the function that measures it.

``judgekit``, ``judgekit_ensemble`` and ``judgekit_nocache`` are ``judgekit.judge`` on the
in-process engine (``judgekit_engine``); ``raw_engine`` and ``generate_parse`` share that engine
set-up and measure their own way; ``server`` and ``generative_scoring`` share a vLLM server;
``host`` needs no engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from benchmarks.speed.systems import host, judgekit_engine, server

if TYPE_CHECKING:
    from benchmarks.speed.spec import BenchSpec
    from benchmarks.speed.worker import Result

RUNNERS: dict[str, Callable[[str, BenchSpec, Result], None]] = {
    "judgekit": judgekit_engine.run,
    "raw_engine": judgekit_engine.run,
    "judgekit_ensemble": judgekit_engine.run,
    "judgekit_nocache": judgekit_engine.run,
    "generate_parse": judgekit_engine.run,
    "host": host.run,
    "server": server.run,
    "generative_scoring": server.run,
}
