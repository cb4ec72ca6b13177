"""The Markdown report of a results file: how it was run, how quiet the machine was, one table
per workload and the issue-14 targets, each a ratio within the run.

Everything is read from the results JSON as written (``--render`` re-draws an old file), so
these functions take plain dicts, not the typed spec.
"""

from __future__ import annotations

import math
from typing import Any

from benchmarks.speed.machine import BUSY_SHARE
from benchmarks.speed.spec import LABELS, SYSTEMS

Report = dict[str, Any]
Target = tuple[str, float | None, str, bool | None]


def render(report: Report) -> str:
    """The whole report: header, then each workload's table and targets."""
    spec = report["spec"]
    settings = (report["systems"].get("judgekit") or {}).get("engine_settings", {})
    header = (
        f"## {report['name']}\n\nJudge: {spec['model_label']} ({spec['device']}, dtype "
        f"{settings.get('dtype', spec['dtype'])}, KV block {settings.get('block_size', '?')}). "
        f"Load average at start {report['load_average_start']}, at end "
        f"{report['load_average_end']}. Generate-then-parse: up to {spec['rationale_tokens']} "
        f"tokens. Server: {spec['concurrency']} concurrent requests. Started "
        f"{report['started'][:16].replace('T', ' ')} UTC.\n\n{_quiet(report)}"
    )
    if spec.get("peak_flops"):
        header += (f"\nMFU = 2 x {spec['layer_params']:.3g} layer params x unique "
                   f"tokens/s / {spec['peak_flops'] / 1e12:.0f} TFLOP/s.\n")  # fmt: skip
    return header + "\n" + build_table(report)


def _quiet(report: Report) -> str:
    """How much of the CPUs other processes took (not measured before issue 14's runs)."""
    share = report.get("other_processes_cpu_share")
    if share is None:
        return "Other processes' CPU use was not measured in this run.\n"
    return f"Other processes used {100 * share:.0f}% of the CPUs during the run" + (
        ": **BUSY machine, ratios are unreliable**.\n" if share > BUSY_SHARE else " (quiet).\n"
    )


def build_table(report: Report) -> str:
    lines = []
    for workload in report["spec"]["workloads"]:
        lines += workload_table(report, workload)
        lines.append("")
        lines += targets(report, workload)
    return "\n".join(lines)


def _rows_of(report: Report, workload: str) -> dict[str, dict[str, Any] | None]:
    return {
        system: (report["systems"].get(system) or {}).get("workloads", {}).get(workload)
        for system in SYSTEMS
    }


def workload_table(report: Report, workload: str) -> list[str]:
    """One row per system (host excluded: judgments/s on one core, in the targets), then the
    limit row."""
    spec, meta = report["spec"], report["workloads"][workload]
    limit = report.get("limit") or {}
    limit_tps = limit.get("tokens_per_s")
    mfu_peak, params = spec.get("peak_flops"), spec.get("layer_params")
    base = _rows_of(report, workload)["judgekit"]
    base_mem = (report["systems"].get("judgekit") or {}).get("peak_rss_mb")
    head = ["system", "items/s", "x default", "unique prompt tok/s", "% of limit",
            "cache hit", "peak RSS (MiB)", "x mem", "wall (s)", "failures"]  # fmt: skip
    if mfu_peak:
        head.insert(5, "MFU (unique)")
    lines = [
        f"### {workload}: {meta['items']} {meta['unit']} ({meta['source']})\n",
        f"{meta['requests_note']}\n",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for system in spec["systems"]:
        if system == "host":
            continue
        res = report["systems"].get(system) or {}
        row = res.get("workloads", {}).get(workload)
        if row is None:
            lines.append(f"| {LABELS[system]} | failed: {res.get('error', 'no result')} |")
            continue
        pct = 100 * row["unique_tokens_per_s"] / limit_tps if limit_tps else math.nan
        cells = [
            LABELS[system],
            f"{row['items_per_s']:.2f}",
            f"{row['items_per_s'] / base['items_per_s'] if base else math.nan:.2f}x",
            f"{row['unique_tokens_per_s']:,.0f}",
            f"{pct:.0f}%",
            f"{100 * row['cache_hit_rate']:.0f}%",
            f"{res['peak_rss_mb']:,.0f}",
            f"{res['peak_rss_mb'] / base_mem if base_mem else math.nan:.2f}x",
            f"{row['wall_s']:.1f}",
            f"{row['failures']}/{row['requests']}",
        ]
        if mfu_peak:
            cells.insert(5, f"{100 * 2 * params * row['unique_tokens_per_s'] / mfu_peak:.1f}%")
        lines.append("| " + " | ".join(cells) + " |")
    if limit_tps:
        cells = ["limit: prefill of one uncached prompt", "", "", f"{limit_tps:,.0f}", "100%",
                 "0%", "", "", "", f"({limit['prompt_tokens']} tokens)"]  # fmt: skip
        if mfu_peak:
            cells.insert(5, f"{100 * 2 * params * limit_tps / mfu_peak:.1f}%")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def target_checks(report: Report, workload: str) -> list[Target]:
    """(target, measured, goal, met) for each issue-14 target that this run measured."""
    rows = _rows_of(report, workload)
    base, limit = rows["judgekit"], (report.get("limit") or {}).get("tokens_per_s")

    def speed(system: str) -> float | None:
        row = rows[system]
        return base["items_per_s"] / row["items_per_s"] if base and row else None

    raw, ens = speed("raw_engine"), speed("judgekit_ensemble")
    checks: list[Target] = [
        ("judgekit / raw engine", raw, ">= 0.90x", raw is not None and raw >= 0.9)
    ]
    if ens is not None and len(report["spec"]["variants"]) == 1:
        checks.append(("ensemble of all variants: time / one variant", ens, "<= 1.60x", ens <= 1.6))
    cache, parse = speed("judgekit_nocache"), speed("generate_parse")
    pointwise = workload == "pointwise"  # these two targets are set on SummEval
    checks.append(("prefix caching on / off", cache, ">= 4x" if pointwise else "(no target)",
                   cache is not None and cache >= 4 if pointwise else None))  # fmt: skip
    checks.append(("judgekit / generate-then-parse", parse,
                   ">= 10x" if pointwise else "(no target)",
                   parse is not None and parse >= 10 if pointwise else None))  # fmt: skip
    share = base["unique_tokens_per_s"] / limit if base and limit else None
    checks.append(("unique prompt tok/s / one-prompt prefill", share, ">= 0.70x",
                   share is not None and share >= 0.7))  # fmt: skip
    if host := rows["host"]:
        what = f"{host['requests']:,} judgments of {host['mean_prompt_tokens']:.0f} tokens"
        checks.append((f"host side, judgments/s on one core ({what})", host["judgments_per_s"],
                       ">= 3,000", host["judgments_per_s"] >= 3000))  # fmt: skip
    scoring = speed("generative_scoring")
    checks.append(("judgekit / vLLM /generative_scoring", scoring, "(no target)", None))
    return checks


def targets(report: Report, workload: str) -> list[str]:
    """The targets table (nothing when the run measured none of them)."""
    out = ["| target | measured | goal | met |", "|---|---|---|---|"]
    for name, value, goal, met in target_checks(report, workload):
        if value is None:
            continue
        shown = f"{value:,.0f}" if value >= 100 else f"{value:.2f}x"
        verdict = "" if met is None else "yes" if met else "NO"
        out.append(f"| {name} | {shown} | {goal} | {verdict} |")
    return [*out, ""] if len(out) > 2 else []
