"""One system, every workload, in its own process: engines never overlap in memory and each
system's peak RSS is its own. ``orchestrate.run_system`` starts it and reads ``out`` back."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from benchmarks.speed.machine import PeakRss
from benchmarks.speed.spec import BenchSpec
from benchmarks.speed.workloads import note

SERVER_SYSTEMS = ("server", "generative_scoring")


class Result:
    """A system's measurements, written to ``out`` after each workload so that a timeout keeps
    what was measured. ``server_pid_file``: where a worker that starts a server writes its pid,
    so the orchestrator can kill that server's process group if the worker dies."""

    def __init__(self, system: str, out: Path, server_pid_file: Path) -> None:
        self.system, self.out, self.server_pid_file = system, out, server_pid_file
        self.data: dict[str, Any] = {"system": system, "workloads": {}}
        self.mem = PeakRss()

    def add(self, workload: str, row: dict[str, Any]) -> None:
        self.data["workloads"][workload] = row
        speed = f"{row['items_per_s']:.2f} items/s, wall {row['wall_s']:.1f} s"
        if "judgments_per_s" in row:
            speed = f"{row['judgments_per_s']:.0f} judgments/s on one core"
        note(f"{self.system}/{workload}: {speed}")
        self.save()

    def save(self, final: bool = False) -> None:
        self.mem.sample()
        self.data["peak_rss_mb"] = self.mem.peak_mb
        self.data["peak_rss_what"] = "worker process tree" + (
            " + server" if self.system in SERVER_SYSTEMS else ""
        )
        self.data["tree_cpu_s"] = self.mem.cpu_s
        self.data["complete"] = final
        self.out.write_text(json.dumps(self.data, indent=2))


def worker(system: str, spec: BenchSpec, out: Path, server_pid_file: Path) -> None:
    """Measure ``system`` on every workload of ``spec``; the result is written to ``out``."""
    from benchmarks.speed.systems import RUNNERS

    if spec.offline:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = Result(system, out, server_pid_file)
    with result.mem:
        RUNNERS[system](system, spec, result)
    result.save(final=True)
