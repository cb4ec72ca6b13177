"""Shared fixtures: the public data sets in ../shared/data and one real vLLM engine per session."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from judgekit.backends import Backend, VLLMJudge, create_backend
from judgekit.schema import PairwiseItem, PointwiseItem

REPO = Path(__file__).resolve().parents[1]
# $JUDGEKIT_DATA_DIR (the loaders' own data-dir variable) for checkouts that are not beside shared/
SHARED_DATA = Path(os.environ.get("JUDGEKIT_DATA_DIR") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or a skip saying why the data-backed test cannot run."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public data sets not found at {SHARED_DATA} (see ../shared/README.md)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def pandalm_rows(shared_data: Path) -> list[dict]:
    return json.loads((shared_data / "pandalm" / "testset-v1.json").read_text())


@pytest.fixture(scope="session")
def pandalm_pairs(pandalm_rows: list[dict]) -> list[PairwiseItem]:
    """The first 20 PandaLM pairs as pairwise items."""
    return [
        PairwiseItem(
            id=str(row["idx"]),
            question=row["instruction"],
            context=row["input"],
            answer_a=row["response1"],
            answer_b=row["response2"],
        )
        for row in pandalm_rows[:20]
    ]


@pytest.fixture(scope="session")
def pandalm_answers(pandalm_pairs: list[PairwiseItem]) -> list[PointwiseItem]:
    """Both responses of the first 10 PandaLM pairs as pointwise items (questions repeat)."""
    return [
        PointwiseItem(
            id=f"{pair.id}-{side}", question=pair.question, context=pair.context, answer=answer
        )
        for pair in pandalm_pairs[:10]
        for side, answer in (("1", pair.answer_a), ("2", pair.answer_b))
    ]


@pytest.fixture(scope="session")
def judge_backend() -> Iterator[Backend]:
    """The real vLLM engine on the embedded SmolLM2 judge, one per session, in float32.

    float32 is chosen here, in the tests, not by CI: on CPUs with native bf16 the engine would
    otherwise pick bfloat16, whose results depend on batch shape, and the tests that compare two
    paths (engine vs server, stream vs batch, a re-run) would compare noise.
    """
    backend = create_backend(VLLMJudge(dtype="float32"))
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def engine(judge_backend: Backend) -> Backend:
    """The session's engine (see ``judge_backend``)."""
    return judge_backend


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that uses the session engine is an engine test (``-m "not engine"`` skips it).

    ``slow`` tests (pure, but seconds of CPU each) run in the full suite (no ``-m``) and when the
    ``-m`` expression names ``slow``; the fast run ``-m "not engine"`` leaves them out. ``long``
    tests (many minutes of engine time: runs at scale) run only when the expression names
    ``long`` (``pytest -m long``): CI's 30 minutes cannot hold them.
    """
    for item in items:
        if {"engine", "judge_backend"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.engine)
    expression = config.getoption("markexpr") or ""
    if "long" not in expression:
        long = [item for item in items if item.get_closest_marker("long") is not None]
        if long:
            config.hook.pytest_deselected(items=long)
            items[:] = [item for item in items if item.get_closest_marker("long") is None]
    if expression and "slow" not in expression:
        slow = [item for item in items if item.get_closest_marker("slow") is not None]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [item for item in items if item.get_closest_marker("slow") is None]


@pytest.fixture(scope="session")
def gpt35_args(shared_data: Path) -> list[str]:
    """``judgekit calibrate`` options for the PandaLM authors' released GPT-3.5 verdicts."""
    verdicts = shared_data / "pandalm" / "judge_outputs" / "gpt-3.5-turbo-testset-v1.json"
    return ["--verdicts", str(verdicts), "--id-field", "idx", "--verdict-field", "gpt_result"]
