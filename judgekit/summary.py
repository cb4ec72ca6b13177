"""The run summary: what a user reads at the end of a run, and what CI gates on."""

from __future__ import annotations

from typing import Any

from judgekit.schema import StrictModel


class RunSummary(StrictModel):
    """Headline numbers of one judge run."""

    rubric: str
    rubric_hash: str
    mode: str
    judge_model: str
    n_items: int
    n_valid_items: int
    n_judgments: int
    n_invalid_judgments: int
    n_from_store: int
    mean_score: float | None
    mean_score_ci: tuple[float, float] | None
    label_rates: dict[str, tuple[float, float, float]]
    mean_label_mass: float
    prompt_tokens: int
    cached_tokens: int
    cache_hit_rate: float
    seconds: float
    items_per_second: float
    controls: dict[str, str]
    backend_stats: dict[str, Any] | None = None

    def format(self) -> str:
        """Plain-text block for the terminal."""
        lines = [
            f"rubric          {self.rubric} ({self.rubric_hash[:12]})",
            f"judge           {self.judge_model}",
            f"items           {self.n_items} ({self.n_valid_items} valid)",
            f"judgments       {self.n_judgments} ({self.n_invalid_judgments} invalid, "
            f"{self.n_from_store} from the store)",
        ]
        if self.mean_score is not None and self.mean_score_ci is not None:
            low, high = self.mean_score_ci
            lines.append(f"mean score      {self.mean_score:.3f}  95% CI [{low:.3f}, {high:.3f}]")
        for label, (rate, low, high) in self.label_rates.items():
            lines.append(f"rate {label:<10} {rate:.3f}  95% CI [{low:.3f}, {high:.3f}]")
        lines += [
            f"label mass      {self.mean_label_mass:.3f} (mean)",
            f"prefix cache    {self.cache_hit_rate:.1%} of {self.prompt_tokens} new prompt tokens",
            f"speed           {self.items_per_second:.2f} items/s ({self.seconds:.1f} s)",
            "controls        " + ", ".join(f"{k}={v}" for k, v in self.controls.items()),
        ]
        if self.backend_stats:
            shown = ", ".join(f"{k}={v}" for k, v in self.backend_stats.items() if v)
            lines.append(f"backend         {shown}")
        return "\n".join(lines)
