"""pytest plugin: a session-scoped judge for a team's own test suite to gate on.

Registered through the ``pytest11`` entry point, so installing judgekit is enough::

    def test_candidate_quality(judge_backend):
        run = judgekit.judge("outputs.jsonl", "overall_quality@v1", backend=judge_backend)
        judgekit.assert_mean_at_least(run, 3.5)

``pytest --judge small`` uses ``[judge.small]`` of judgekit.toml; ``--judge-model``,
``--judge-dtype``, ``--judge-max-model-len``, ``--judge-tensor-parallel-size`` and
``--judge-gpu-memory-utilization`` set (or override) the in-process judge (default: the embedded
SmolLM2). ``JUDGEKIT_DTYPE=float32`` (or ``bfloat16``) forces the dtype where no option sets it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from judgekit.backends import Backend, JudgeSpec, create_backend, judge_spec
from judgekit.config import named_judge

_ENGINE_OPTIONS = {
    "model": str,
    "dtype": str,
    "max_model_len": int,
    "tensor_parallel_size": int,
    "gpu_memory_utilization": float,
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("judgekit")
    group.addoption("--judge", default=None, help="a judge named in judgekit.toml ([judge.NAME])")
    for name, kind in _ENGINE_OPTIONS.items():
        group.addoption(
            f"--judge-{name.replace('_', '-')}",
            type=kind,
            default=None,
            help=f"{name.replace('_', ' ')} of the judge_backend fixture's engine",
        )


def session_judge(config: pytest.Config) -> JudgeSpec:
    """The judge the session's options describe (one factory, as every command)."""
    given = {
        name: value
        for name in _ENGINE_OPTIONS
        if (value := config.getoption(f"--judge-{name.replace('_', '-')}")) is not None
    }
    name = config.getoption("--judge")
    if name is None:
        return judge_spec("vllm", **given)
    return named_judge(name).model_copy(update=given)


@pytest.fixture(scope="session")
def judge_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """One judge for the whole test session (starting an engine takes about a minute)."""
    backend = create_backend(session_judge(request.config))
    yield backend
    backend.close()
