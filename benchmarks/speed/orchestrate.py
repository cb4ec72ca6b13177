"""Every system, one after the other, each in its own process; then the ratios and the files.

``run_all`` writes ``results/<name>.partial.json`` after each system, and whatever happens
(a failed system, a timeout, Ctrl-C) ``finish`` writes ``results/<name>.json`` and ``.md``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.speed import report as report_md
from benchmarks.speed.machine import BUSY_SHARE, BusyMeter, loadavg, machine
from benchmarks.speed.spec import REPO, RESULTS, BenchSpec
from benchmarks.speed.workloads import note, workload_meta
from judgekit.backends.local_server import stop_process_group

ENTRY = REPO / "benchmarks" / "throughput.py"


def run_system(system: str, spec: BenchSpec, work: Path, timeout: float) -> dict[str, Any]:
    """One system's worker process; its result, or what it wrote before it failed and why."""
    out, pid_file = work / f"{system}.json", work / f"{system}.server.pid"
    spec_path = work / f"{system}.spec.json"
    spec_path.write_text(spec.model_dump_json())
    command = [sys.executable, str(ENTRY), "--_worker", system, "--_spec", str(spec_path),
               "--_out", str(out), "--_server-pid", str(pid_file)]  # fmt: skip
    note(f"--- {system}: starting (load average {loadavg()})")
    t = time.perf_counter()
    proc = subprocess.Popen(command, start_new_session=True)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        rc = None
    finally:
        if proc.poll() is None:
            stop_process_group(proc.pid, proc)
        if pid_file.is_file():  # the worker's server: never leave it running
            stop_process_group(int(pid_file.read_text()))
    elapsed = time.perf_counter() - t
    if rc == 0 and out.is_file():
        return {**json.loads(out.read_text()), "process_wall_s": elapsed}
    why = "timed out" if rc is None else f"exit code {rc}"
    note(f"{system} failed ({why})")
    result = json.loads(out.read_text()) if out.is_file() else {"system": system, "workloads": {}}
    return {**result, "error": why, "process_wall_s": elapsed}


def new_report(name: str, spec: BenchSpec, busy: BusyMeter) -> dict[str, Any]:
    return {
        "name": name,
        "started": datetime.now(timezone.utc).isoformat(),
        "load_average_start": busy.start_load,
        "machine": machine(),
        "spec": spec.model_dump(mode="json"),
        "workloads": workload_meta(spec),
        "systems": {},
    }


def run_all(name: str, spec: BenchSpec, timeout: float, results: Path = RESULTS) -> dict[str, Any]:
    """Every system of ``spec``; the report, finished and written to ``results`` (also on a
    failure or Ctrl-C)."""
    busy = BusyMeter()
    if busy.start_load[0] > 0.25 * len(
        os.sched_getaffinity(0)
    ):  # a warning; the report is marked busy by CPU use
        note(f"WARNING: the machine is busy (load average {busy.start_load}); ratios will be noisy")
    report = new_report(name, spec, busy)
    results.mkdir(parents=True, exist_ok=True)
    work = Path(spec.out_dir)
    try:
        for system in spec.systems:
            report["systems"][system] = run_system(system, spec, work, timeout)
            if system == "judgekit":
                report["limit"] = report["systems"][system].get("limit")
            (results / f"{name}.partial.json").write_text(json.dumps(report, indent=2) + "\n")
    finally:
        finish(report, spec, busy, results)
        shutil.rmtree(work, ignore_errors=True)
    return report


def add_ratios(report: dict[str, Any], spec: BenchSpec) -> None:
    """Each row against judgekit default, the limit row and (with a peak) the GPU's FLOP/s."""
    lim = (report.get("limit") or {}).get("tokens_per_s")
    for res in report["systems"].values():
        for workload, row in res.get("workloads", {}).items():
            base = report["systems"].get("judgekit", {}).get("workloads", {}).get(workload)
            if base:
                row["items_per_s_vs_default"] = row["items_per_s"] / base["items_per_s"]
                row["unique_tokens_per_s_vs_default"] = (
                    row["unique_tokens_per_s"] / base["unique_tokens_per_s"]
                    if base["unique_tokens_per_s"]
                    else None
                )
            if lim:
                row["unique_tokens_pct_of_limit"] = 100 * row["unique_tokens_per_s"] / lim
            if spec.peak_flops and spec.layer_params:
                row["mfu_unique"] = (
                    2 * spec.layer_params * row["unique_tokens_per_s"] / spec.peak_flops
                )


def finish(report: dict[str, Any], spec: BenchSpec, busy: BusyMeter, results: Path) -> None:
    """Close the report (load, busy share, ratios), keep the profiles, write .json and .md."""
    report["load_average_end"] = loadavg()
    trees = sum(r.get("tree_cpu_s", 0.0) for r in report["systems"].values())
    share = report["other_processes_cpu_share"] = busy.share(trees)
    report["busy"] = share > BUSY_SHARE
    report["finished"] = datetime.now(timezone.utc).isoformat()
    add_ratios(report, spec)
    markdown = report_md.render(report)
    name = report["name"]
    for res in report["systems"].values():  # profile files live in the temp dir
        for row in res.get("workloads", {}).values():
            if "profile" in row:
                keep = results / f"{name}-{Path(row['profile']['file']).name}"
                shutil.copy2(row["profile"]["file"], keep)
                row["profile"]["file"] = _shown(keep)
    (results / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (results / f"{name}.partial.json").unlink(missing_ok=True)
    (results / f"{name}.md").write_text(markdown)
    print(markdown)
    note(f"wrote {results / name}.json and .md")


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)
