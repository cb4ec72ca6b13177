"""Judging: plan prompts, run them on a backend, score label probabilities, aggregate per item."""

from judgekit.judging.aggregate import Controls
from judgekit.judging.results import JudgeRun
from judgekit.judging.run import judge
from judgekit.judging.summary import RunSummary, summarize

__all__ = ["Controls", "JudgeRun", "RunSummary", "judge", "summarize"]
