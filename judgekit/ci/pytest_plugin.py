"""pytest plugin: a session-scoped judge for a team's own test suite to gate on.

Registered through the ``pytest11`` entry point, so installing judgekit is enough::

    def test_candidate_quality(judge_backend):
        run = judgekit.judge("outputs.jsonl", "overall_quality@v1", backend=judge_backend)
        judgekit.assert_mean_at_least(run, 3.5)

``pytest --judge-model /models/Qwen2.5-7B-Instruct`` picks the judge (default: embedded SmolLM2).
``JUDGEKIT_DTYPE=float32`` (or ``bfloat16``) forces the engine's dtype for the whole session, so a
suite can be run both ways on one machine (default: bf16 where the CPU has it natively).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from judgekit.backends import Backend, create_backend


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("judgekit")
    group.addoption(
        "--judge-model",
        default=None,
        help="judge model for the judge_backend fixture (local dir or hub id; default: embedded)",
    )
    group.addoption(
        "--judge-max-model-len", type=int, default=4096, help="judge engine context length"
    )


@pytest.fixture(scope="session")
def judge_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """One judge engine for the whole test session (starting one takes about a minute)."""
    backend = create_backend(
        "vllm",
        model=request.config.getoption("--judge-model"),
        max_model_len=request.config.getoption("--judge-max-model-len"),
    )
    yield backend
    backend.close()
