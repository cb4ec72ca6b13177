"""Scale-out on Ray Data: a run's requests on a pool of Ray actors, each holding one judge engine.

The run plans, reads the store, writes and aggregates as it does locally (``judging.run``); this
executor only runs the requests the store lacks. They are cut into batches by prefix family
(``plan.partition``: an item's variants, orders and criteria, and every item of its group,
go to one batch, so one engine computes each shared prefix once), one dataset row per batch, and
``Dataset.map_batches`` sends each row to an actor of a fixed pool (``ActorPoolStrategy``). An
actor builds its engine through the one backend factory, checks that it is the judge the run
recorded, and hands label log-probabilities back as its engine finishes them; the driver streams
them (``iter_rows``) into the run's writers and store.

Faults are Ray's job: an actor that dies is restarted (``max_restarts=-1``) and its batch retried,
and a batch that raises is retried (``retry_exceptions``) up to ``retries`` times. A retried
batch may hand back results it had already sent; the driver keeps the first of each and checks at
the end that every request came back exactly once. Ray is imported here only, and only when a run
uses this executor, so judgekit works without it (``pip install 'judgekit[ray]'``).
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from pydantic import Field

from judgekit.backends import Backend, JudgeSpec, create_backend
from judgekit.judging.plan import Partitioning, PlannedRequest, partition
from judgekit.judging.score import LabelScore, Scorer
from judgekit.schema import JudgeIdentity, LabelLogprobs, StrictModel

INSTALL_HINT = "pip install 'judgekit[ray]'"


class RayExecutor(StrictModel):
    """Where and how wide: the cluster, the actor pool, and the batches it is fed."""

    address: str | None = Field(
        default=None,
        description="None: $RAY_ADDRESS, else a running local cluster, else a new one; 'local': "
        "a new in-process cluster; 'auto', 'HOST:PORT' or 'ray://HOST:10001': that cluster. A "
        "cluster this process is already connected to (ray.init before the run) is used as is.",
    )
    actors: int = Field(default=1, ge=1, description="Actors, each holding one judge engine.")
    gpus_per_actor: float = Field(
        default=0, ge=0, description="GPUs per actor (a vLLM judge's tensor_parallel_size)."
    )
    cpus_per_actor: float = Field(default=1, gt=0, description="CPUs reserved per actor.")
    batch_size: int = Field(
        default=256, ge=1, description="Requests per batch (whole prefix families, about this)."
    )
    retries: int = Field(default=3, ge=0, description="Retries of a batch that fails.")
    partitioning: Partitioning = Field(
        default="prefix", description="'random' only to measure what prefix partitioning saves."
    )
    builder: Callable[[Any], Backend] | None = Field(
        default=None,
        description="Builds an actor's backend from the spec; None = backends.create_backend "
        "(tests put a scripted judge here: actors do not see the driver's factory hooks).",
    )

    def layout(self) -> dict[str, Any]:
        """The manifest's record of this executor (operational: not part of the identity)."""
        return {
            "kind": "ray",
            "address": self.address,
            "actors": self.actors,
            "gpus_per_actor": self.gpus_per_actor,
            "cpus_per_actor": self.cpus_per_actor,
            "batch_size": self.batch_size,
            "partitioning": self.partitioning,
            "ray": ray_module().__version__,
        }

    def stream(
        self,
        backend: Backend,
        spec: JudgeSpec | None,
        windows: Iterable[Sequence[PlannedRequest]],
        chunk: int,
        scorer: Scorer,
    ) -> Iterator[list[tuple[int, LabelLogprobs, LabelScore]]]:
        """Results as actors finish them, each request's once, by position across ``windows``
        (all of them read first: the partition spans the whole run)."""
        if spec is None:
            raise ValueError(
                "the Ray executor builds a judge in each actor: pass the judge spec "
                "(backend=VLLMJudge(...)), not a started backend"
            )
        _check_gpus(spec, self.gpus_per_actor)
        planned = [p for window in windows for p in window]
        ray = ray_module()
        started = _connect(ray, self.address)
        try:
            parts = partition(planned, self.batch_size, self.partitioning)
            actor = {"spec": spec, "identity": backend.identity, "scorer": scorer, "chunk": chunk}
            dataset = self._dataset(ray, parts, planned, actor)
            seen: list[set[int]] = [set() for _ in parts]
            for row in dataset.iter_rows():
                b = int(row["batch"])
                fresh = [r for r in pickle.loads(row["results"]) if r[0] not in seen[b]]
                seen[b].update(r[0] for r in fresh)
                if fresh:
                    yield [_unpack(parts[b], r) for r in fresh]
            lost = sum(len(part) - len(got) for part, got in zip(parts, seen, strict=True))
            if lost:
                raise RuntimeError(f"the Ray run returned no result for {lost} requests")
        finally:
            if started:
                ray.shutdown()

    def _dataset(
        self,
        ray: Any,
        parts: list[list[int]],
        planned: Sequence[PlannedRequest],
        actor: dict[str, Any],
    ) -> Any:
        """One row per batch, mapped by a fixed pool of judge actors, results as they finish."""
        rows = [
            {"batch": b, "requests": pickle.dumps([planned[n].request for n in part])}
            for b, part in enumerate(parts)
        ]
        dataset = ray.data.from_items(rows, override_num_blocks=max(len(rows), 1))
        context = dataset.context
        context.actor_task_retry_on_errors = self.retries > 0
        context.enable_progress_bars = False
        context.execution_options.preserve_order = False
        with warnings.catch_warnings():
            # Ray 2.60 takes max_task_retries only as a deprecated ``ray_remote_args``; without it
            # Ray Data retries a raising batch forever (its default is -1 with restarts on).
            warnings.simplefilter("ignore", DeprecationWarning)
            return self._map(dataset, actor)

    def _map(self, dataset: Any, actor: dict[str, Any]) -> Any:
        return dataset.map_batches(
            JudgeActor,
            fn_constructor_kwargs=actor | {"builder": self.builder},
            batch_size=1,
            compute=ray_module().data.ActorPoolStrategy(size=self.actors),
            num_cpus=self.cpus_per_actor,
            num_gpus=self.gpus_per_actor or None,
            max_task_retries=self.retries,
        )


class JudgeActor:
    """One engine per actor, built once; each call judges one batch and scores its label
    log-probabilities here, streaming (position, result, score) back."""

    def __init__(
        self,
        spec: JudgeSpec,
        identity: JudgeIdentity,
        scorer: Scorer,
        builder: Callable[[Any], Backend] | None,
        chunk: int,
    ) -> None:
        self.backend = (builder or create_backend)(spec)
        if self.backend.identity != identity:
            raise RuntimeError(
                f"an actor's judge ({self.backend.identity}) is not the run's ({identity}): "
                "install the same judgekit, model and engine on every node"
            )
        self.chunk, self.scorer = chunk, scorer

    def __call__(self, batch: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        for b, blob in zip(batch["batch"], batch["requests"], strict=True):
            requests = pickle.loads(blob)
            for results in self.backend.score_stream(requests, self.chunk):
                scored = [_pack(k, r, self.scorer(r.logprobs, r.error)) for k, r in results]
                yield {
                    "batch": np.array([b]),
                    "results": np.array([pickle.dumps(scored)], dtype=object),
                }


def _pack(k: int, r: LabelLogprobs, s: LabelScore) -> tuple[Any, ...]:
    """Plain tuples cross the object store: unpickling slotted dataclasses costs the driver
    several times more per result."""
    fields = (r.logprobs, r.num_prompt_tokens, r.num_cached_tokens, r.error)
    return (k, *fields, s.probs, s.mass, s.expected, s.label, s.invalid_reason)


def _unpack(part: list[int], row: tuple[Any, ...]) -> tuple[int, LabelLogprobs, LabelScore]:
    return part[row[0]], LabelLogprobs(*row[1:5]), LabelScore(*row[5:10])


def ray_module() -> Any:
    """The ray package with Ray Data, or an ImportError naming the extra to install."""
    try:
        import ray
        import ray.data
    except ImportError as err:
        raise ImportError(f"the Ray executor needs Ray Data: {INSTALL_HINT}") from err
    return ray


def _connect(ray: Any, address: str | None) -> bool:
    """Join or start a cluster unless this process already is in one; True if started here."""
    if ray.is_initialized():
        return False
    new = address == "local" or (address is None and not os.environ.get("RAY_ADDRESS"))
    options: dict[str, Any] = {"include_dashboard": False} if new else {}
    ray.init(address=address, log_to_driver=False, **options)
    return True


def _check_gpus(spec: JudgeSpec, gpus: float) -> None:
    """A vLLM judge split over GPUs needs that many per actor (tensor parallel inside it)."""
    parallel = getattr(spec, "tensor_parallel_size", 1)
    if parallel > 1 and gpus < parallel:
        raise ValueError(
            f"the judge's tensor_parallel_size is {parallel}: give each actor that many GPUs "
            f"(--ray-gpus-per-actor {parallel})"
        )
