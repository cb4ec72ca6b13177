"""Engine options that must be settable without code: the dtype for a whole test suite."""

from __future__ import annotations

import pytest

from judgekit.backends.spec import DTYPE_ENV
from judgekit.backends.spec import VLLMJudge as EngineOptions


def test_dtype_is_forced_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DTYPE_ENV, raising=False)
    assert EngineOptions().dtype == "auto"
    monkeypatch.setenv(DTYPE_ENV, "bfloat16")
    assert DTYPE_ENV == "JUDGEKIT_DTYPE" and EngineOptions().dtype == "bfloat16"
    assert EngineOptions(dtype="float32").dtype == "float32"  # an explicit option still wins
