"""The result store on its own: keys, round trips, and several processes writing at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from judgekit.judging.store import ResultStore, cache_key
from judgekit.schema import JudgeIdentity, LabelLogprobs, LabelRequest, Message

JUDGE = JudgeIdentity(backend="vllm", model="m", fingerprint="f", settings={"dtype": "float32"})


def _request(text: str) -> LabelRequest:
    messages = (Message("user", text), Message("assistant", "Score:"))
    return LabelRequest(
        item_id=text, variant="v", order=None, messages=messages, labels=("1", "2"), prefix_key="p"
    )


def test_key_covers_prompt_rubric_and_judge() -> None:
    base = cache_key(_request("a"), "h1", JUDGE)
    assert base == cache_key(_request("a"), "h1", JUDGE)
    assert base != cache_key(_request("b"), "h1", JUDGE)
    assert base != cache_key(_request("a"), "h2", JUDGE)
    other = JUDGE.model_copy(update={"settings": {"dtype": "bfloat16"}})
    assert base != cache_key(_request("a"), "h1", other)


def test_round_trip_skips_errors(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "s.sqlite")
    good = LabelLogprobs({"1": -0.5, "2": -1.5}, 120, 64)
    bad = LabelLogprobs({}, 10, 0, "prompt too long")
    assert store.put_many([("k1", good), ("k2", bad)]) == 1
    assert store.put_many([("k1", good)]) == 0
    assert store.get_many(["k1", "k2", "k3"]) == {"k1": good}
    assert len(store) == 1


def _writer(path: str, start: int) -> None:
    store = ResultStore(path)
    for batch in range(50):
        keys = [f"k{start + batch * 10 + i}" for i in range(10)]
        store.put_many((k, LabelLogprobs({"1": -0.1}, 1, 0)) for k in keys)
    store.close()


@pytest.mark.slow  # two spawned processes, each importing judgekit: ~6 s of CPU
def test_two_concurrent_writers(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    ResultStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(path, start)) for start in (0, 250)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    assert len(ResultStore(path)) == 750  # keys 0..749: 250..499 written by both
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
