"""Judge backends. Each optional dependency is imported only inside its own backend module."""

from judgekit.backends.base import (
    Backend,
    BackendBase,
    Capabilities,
    CapabilityError,
    LabelTokenError,
)
from judgekit.backends.factory import create_backend, open_backend
from judgekit.backends.spec import JudgeSpec, OpenAIJudge, ReplayJudge, VLLMJudge, judge_spec

__all__ = [
    "Backend",
    "BackendBase",
    "Capabilities",
    "CapabilityError",
    "JudgeSpec",
    "LabelTokenError",
    "OpenAIJudge",
    "ReplayJudge",
    "VLLMJudge",
    "create_backend",
    "judge_spec",
    "open_backend",
]
