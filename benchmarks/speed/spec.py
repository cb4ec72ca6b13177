"""What one throughput run measures, as a typed value: the command line resolved once.

The orchestrator builds it, every worker process reads it back from JSON, and the results file
stores it under ``spec`` (``report`` reads that field back as plain JSON, so older results files
still render).
"""

from __future__ import annotations

from pathlib import Path

from judgekit.backends import VLLMJudge
from judgekit.schema import StrictModel

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
SYSTEMS = (
    "judgekit", "raw_engine", "judgekit_ensemble", "host", "judgekit_nocache", "generate_parse",
    "server", "generative_scoring",
)  # fmt: skip
LABELS = {
    "judgekit": "judgekit default (prefix cache, 1-token labels)",
    "raw_engine": "ceiling: raw vllm.LLM.generate on judgekit's token ids, all at once",
    "judgekit_ensemble": "judgekit, ensemble of all rubric variants",
    "host": "host side only: instant backend, one core, all variants (no engine)",
    "judgekit_nocache": "judgekit, prefix caching off",
    "generate_parse": "generate-then-parse (rationale + regex)",
    "server": "OpenAI server path (vLLM server + judgekit client)",
    "generative_scoring": "vLLM server /generative_scoring (one call per label token)",
}
#: Rubric per workload; ``--rubric-version 2`` measures the variants-share-their-prefix layout.
RUBRICS = {"pointwise": "overall_quality@v{}", "pairwise": "pairwise_preference@v{}"}
WORKLOADS = ("pointwise", "pairwise")


class BenchSpec(StrictModel):
    """Every setting a worker needs; the field names are the results file's ``spec`` keys."""

    systems: list[str]
    workloads: list[str]
    items: int
    pairs: int
    variants: list[str]
    rubrics: dict[str, str]
    rationale_tokens: int
    host_items: int
    repeat: int
    host_pairs: int
    batch_size: int
    server_batch_size: int
    concurrency: int
    limit_tokens: int
    max_model_len: int
    gpu_memory_utilization: float
    block_size: int | None
    model: str | None
    model_dir: str
    load_format: str
    engine_dtype: str
    dtype: str
    device: str
    offline: bool
    profile: bool
    out_dir: str
    peak_flops: float | None
    layer_params: int | None
    model_label: str

    def judge(self, **changes: object) -> VLLMJudge:
        """The engine systems' judge, with ``changes`` applied."""
        fields = {
            "model": self.model,
            "max_model_len": self.max_model_len,
            "dtype": self.engine_dtype,
            "load_format": self.load_format,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "block_size": self.block_size,
        }
        return VLLMJudge(**{**fields, **changes})
