"""A run's results window by window: what the result store holds, then what the executor
judges, each chunk of fresh results committed to the store before it is handed on."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import closing
from itertools import chain

from judgekit.backends import Backend, JudgeSpec
from judgekit.judging.executor import Executor
from judgekit.judging.plan import PlannedRequest, batches
from judgekit.judging.score import LabelScore, Scorer
from judgekit.judging.store import ResultStore, cache_key
from judgekit.rubrics import Rubric
from judgekit.schema import JudgeIdentity, LabelLogprobs

#: A run's results in the order they are handed on: (request, result, its score, from the store).
ScoredChunk = list[tuple[PlannedRequest, LabelLogprobs, LabelScore, bool]]


def scored_chunks(
    executor: Executor,
    backend: Backend,
    spec: JudgeSpec | None,
    store: ResultStore | None,
    rubric: Rubric,
    identity: JudgeIdentity,
    planned: Sequence[PlannedRequest],
    batch_size: int,
    write_every: int,
    scorer: Scorer,
) -> Iterator[ScoredChunk]:
    """(request, result, its score, from the store) in chunks: each window's stored ones
    (scored here), then the executor's (scored where they were produced), window by window.

    The windows the store cannot serve go to ``executor.stream`` as one lazy sequence, so a
    local backend prepares the next window (the look-ups here, its tokenisation) while it scores
    this one. A window's stored results are handed on before the first chunk of fresh results
    that starts in that window. Each chunk of fresh results is committed to the store before it
    is handed on, so a killed run resumes from what it had written. A run the store serves
    entirely never calls the backend (a lazily opened engine never loads).
    """
    sent: list[tuple[PlannedRequest, str]] = []  # by the executor's running index
    stored: list[tuple[int, list[ScoredChunk]]] = []  # (first index of the next window, hits)

    def windows() -> Iterator[list[PlannedRequest]]:
        hits: list[ScoredChunk] = []
        for batch in batches(planned, batch_size):
            keys = [
                cache_key(p.request, rubric.hash, identity) if store is not None else ""
                for p in batch
            ]
            found = store.get_many(keys) if store is not None else {}
            if found:
                hits.append(
                    [
                        (batch[i], found[k], scorer(found[k].logprobs, found[k].error), True)
                        for i, k in enumerate(keys)
                        if k in found
                    ]
                )
            missing = [i for i, key in enumerate(keys) if key not in found]
            if missing:
                stored.append((len(sent), hits))
                hits = []
                sent.extend((batch[i], keys[i]) for i in missing)
                yield [batch[i] for i in missing]
        stored.append((len(planned), hits))

    def due(index: int) -> Iterator[ScoredChunk]:
        while stored and stored[0][0] <= index:
            yield from stored.pop(0)[1]

    queue = windows()
    first = next(queue, None)  # in this thread: a store-served run starts no backend
    if first is not None:
        results = executor.stream(backend, spec, chain([first], queue), write_every, scorer)
        with closing(results) as chunks:
            for chunk in chunks:
                if not chunk:
                    continue
                yield from due(min(i for i, _, _ in chunk))
                if store is not None:
                    store.put_many((sent[i][1], result) for i, result, _ in chunk)
                yield [(sent[i][0], result, score, False) for i, result, score in chunk]
    yield from due(len(planned))
