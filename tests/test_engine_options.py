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


@pytest.mark.slow
def test_auto_dtype_is_the_dtype_vllm_would_load() -> None:
    """Old code: "auto" stayed "auto" in every row when the model's config.json did not name a
    dtype (the embedded model's does not), and a float32 model was recorded as float16 where
    vLLM runs bfloat16 (Ampere+). Now vLLM's own ModelConfig decides, before any engine loads."""
    from judgekit.backends.vllm_engine import _auto_dtype, _model_path

    assert _auto_dtype(_model_path(None), 4096) == "bfloat16"  # from the weights' metadata
    assert _auto_dtype("/nonexistent/model", 4096) == "auto"  # the engine load will say why
