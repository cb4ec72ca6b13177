"""judgekit: LLM-as-a-judge with versioned rubrics, label probabilities and bias controls.

The package imports without vLLM; the engine is loaded only when a backend is created.
"""

from judgekit import _compat
from judgekit._version import __version__
from judgekit.backends import Backend, create_backend
from judgekit.calibrate import check_calibrated, run_calibration
from judgekit.ci.gates import (
    GateFailure,
    assert_invalid_judgment_rate_at_most,
    assert_invalid_rate_at_most,
    assert_mean_at_least,
    assert_win_rate_at_least,
)
from judgekit.data.records import read_items
from judgekit.judging import Controls, JudgeRun, RunSummary, judge, summarize
from judgekit.rubrics import Rubric, RubricError, list_rubrics, load_rubric
from judgekit.schema import Judgment, PairwiseItem, PointwiseItem

_compat.install()

__all__ = [
    "Backend",
    "Controls",
    "GateFailure",
    "JudgeRun",
    "Judgment",
    "PairwiseItem",
    "PointwiseItem",
    "Rubric",
    "RubricError",
    "RunSummary",
    "__version__",
    "assert_invalid_judgment_rate_at_most",
    "assert_invalid_rate_at_most",
    "assert_mean_at_least",
    "assert_win_rate_at_least",
    "check_calibrated",
    "create_backend",
    "judge",
    "list_rubrics",
    "load_rubric",
    "read_items",
    "run_calibration",
    "summarize",
]
