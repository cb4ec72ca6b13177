"""Judging: plan prompts, run them on a backend, score label probabilities, aggregate per item."""

from judgekit.judging.aggregate import Corrections, Verdicts
from judgekit.judging.read import read_run
from judgekit.judging.results import JudgeRun, build_run
from judgekit.judging.run import judge
from judgekit.judging.summary import RunSummary, summarize
from judgekit.judging.views import item_verdicts, items_frame, judgments_frame

__all__ = [
    "Corrections",
    "JudgeRun",
    "RunSummary",
    "Verdicts",
    "build_run",
    "item_verdicts",
    "items_frame",
    "judge",
    "judgments_frame",
    "read_run",
    "summarize",
]
