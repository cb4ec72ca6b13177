"""judgekit: LLM-as-a-judge with versioned rubrics, label probabilities and bias controls.

The package imports without vLLM; the engine is loaded only when a backend is created.
"""

from judgekit._version import __version__
from judgekit.aggregate import Controls
from judgekit.backends import Backend, create_backend
from judgekit.calibration_run import check_calibrated, run_calibration
from judgekit.records import read_items
from judgekit.rubric import Rubric, RubricError, list_rubrics, load_rubric
from judgekit.runner import JudgeRun, judge
from judgekit.schema import Judgment, PairwiseItem, PointwiseItem
from judgekit.summary import RunSummary

__all__ = [
    "Backend",
    "Controls",
    "JudgeRun",
    "Judgment",
    "PairwiseItem",
    "PointwiseItem",
    "Rubric",
    "RubricError",
    "RunSummary",
    "__version__",
    "check_calibrated",
    "create_backend",
    "judge",
    "list_rubrics",
    "load_rubric",
    "read_items",
    "run_calibration",
]
