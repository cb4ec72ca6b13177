"""judgekit: LLM-as-a-judge with versioned rubrics, label probabilities and bias controls.

The package imports without vLLM; the engine is loaded only when a backend is started.
"""

from judgekit._version import __version__
from judgekit.audit.certify import CertifyOptions, JudgeConfig, certify_change
from judgekit.backends import (
    Backend,
    BackendBase,
    Capabilities,
    CapabilityError,
    JudgeSpec,
    OpenAIJudge,
    ReplayJudge,
    VLLMJudge,
    create_backend,
    judge_spec,
)
from judgekit.calibrate import CalibrationResult, check_calibrated, run_calibration
from judgekit.cards import (
    CalibrationCard,
    CalibrationOptions,
    CardError,
    NotCalibratedError,
    TrustThresholds,
    load_card,
    read_card,
)
from judgekit.ci.diff import RunDiff, diff_runs
from judgekit.ci.gates import (
    GateFailure,
    assert_invalid_judgment_rate_at_most,
    assert_invalid_rate_at_most,
    assert_mean_at_least,
    assert_win_rate_at_least,
)
from judgekit.config import named_judge
from judgekit.data.records import InputError, read_items
from judgekit.judging import (
    JudgeRun,
    RunSummary,
    item_verdicts,
    items_frame,
    judge,
    judgments_frame,
    read_run,
    summarize,
)
from judgekit.judging.cascade import CascadeResult, Stage, cascade
from judgekit.judging.store import ResultStore
from judgekit.judging.write import write_run
from judgekit.rubrics import Rubric, RubricError, list_rubrics, load_rubric
from judgekit.schema import Controls, Judgment, PairwiseItem, PointwiseItem, Reasoning

__all__ = [
    "Backend",
    "BackendBase",
    "CalibrationCard",
    "CalibrationOptions",
    "CalibrationResult",
    "Capabilities",
    "CapabilityError",
    "CardError",
    "CascadeResult",
    "CertifyOptions",
    "Controls",
    "GateFailure",
    "InputError",
    "JudgeConfig",
    "JudgeRun",
    "JudgeSpec",
    "Judgment",
    "NotCalibratedError",
    "OpenAIJudge",
    "PairwiseItem",
    "PointwiseItem",
    "Reasoning",
    "ReplayJudge",
    "ResultStore",
    "Rubric",
    "RubricError",
    "RunDiff",
    "RunSummary",
    "Stage",
    "TrustThresholds",
    "VLLMJudge",
    "__version__",
    "assert_invalid_judgment_rate_at_most",
    "assert_invalid_rate_at_most",
    "assert_mean_at_least",
    "assert_win_rate_at_least",
    "cascade",
    "certify_change",
    "check_calibrated",
    "create_backend",
    "diff_runs",
    "item_verdicts",
    "items_frame",
    "judge",
    "judge_spec",
    "judgments_frame",
    "list_rubrics",
    "load_card",
    "load_rubric",
    "named_judge",
    "read_card",
    "read_items",
    "read_run",
    "run_calibration",
    "summarize",
    "write_run",
]
