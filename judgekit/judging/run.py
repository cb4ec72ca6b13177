"""Running a judge: the one place that knows the pipeline's order.

rubric -> prompts (ordered by shared prefix) -> backend -> label scores -> judgments (written
as they finish) -> per-item aggregation (swap, ensemble) -> summary. A backend that can stream
(``score_stream``) gets ``batch_size`` requests at once and hands results back as they finish, so
its scheduler never waits on a batch boundary while every ``write_every`` results are written,
fsynced and stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from judgekit.backends.base import Backend
from judgekit.bias.length import LengthModel
from judgekit.data.records import (
    InputError,
    JudgmentWriter,
    drop_torn_tail,
    items_path,
    manifest_path,
    read_items,
    read_judgments,
)
from judgekit.judging.aggregate import Controls
from judgekit.judging.plan import PlannedRequest, batches, plan_requests, request_key
from judgekit.judging.results import JudgeRun
from judgekit.judging.run_manifest import CardRef, build_manifest
from judgekit.judging.score import score_labels
from judgekit.judging.store import ResultStore, cache_key
from judgekit.rubrics import Rubric, load_rubric
from judgekit.schema import Item, JudgeIdentity, Judgment, LabelLogprobs

ProgressCallback = Callable[[int, int], None]
IfExists = Literal["error", "overwrite", "resume"]


def judge(
    items: Sequence[Item] | Path | str,
    rubric: str | Rubric,
    *,
    backend: Backend,
    variants: Sequence[str] | None = None,
    controls: Controls | None = None,
    output: Path | str | None = None,
    columns: dict[str, str] | None = None,
    batch_size: int = 1024,
    write_every: int = 64,
    min_mass: float | None = None,
    progress: ProgressCallback | None = None,
    rubric_paths: Sequence[Path | str] = (),
    store: ResultStore | None = None,
    length_model: LengthModel | None = None,
    if_exists: IfExists = "error",
    card: CardRef | None = None,
    on_batch: Callable[[Sequence[Judgment]], None] | None = None,
    source: Path | str | None = None,
) -> JudgeRun:
    """Judge items (or an input file) with a rubric on a backend.

    Judgments are written to ``output`` as they finish, ``write_every`` at a time (flushed and
    fsynced; a streaming backend is given ``batch_size`` requests at once), with a run manifest
    beside it. An existing ``output`` is refused unless ``if_exists`` says
    ``overwrite``, or ``resume``: then its rows are kept, checked to come from the same rubric and
    judge, and only the (item, variant, order) requests it lacks are judged.
    ``min_mass`` overrides the rubric's label-mass threshold below which a verdict is invalid.
    With a ``store``, prompts judged before (by any run with the same judge) are not judged again,
    and each written chunk is committed there, so a killed run resumes where it stopped.
    A ``length_model`` (fitted on a calibration dev split, frozen) adds length-corrected scores;
    per-item verdicts go to ``<stem>.items.jsonl``. ``card`` names the calibration card the
    caller used (its length model, its trust gate), recorded in the manifest. ``on_batch`` sees
    each chunk of judgments as it is written (the CLI's progress bar counts prefix-cache hits).
    ``source`` names the input file in the manifest when items are passed already read (the
    viewer reads it).
    """
    rubric = rubric if isinstance(rubric, Rubric) else load_rubric(rubric, paths=rubric_paths)
    controls = controls or Controls()
    source = str(items) if isinstance(items, str | Path) else source and str(source)
    if isinstance(items, str | Path):
        items = read_items(items, rubric.manifest.mode, columns)
    items = list(items)
    threshold = rubric.manifest.min_label_mass if min_mass is None else min_mass
    planned = plan_requests(rubric, items, variants=variants, swap=controls.swap)
    prepare = getattr(backend, "prepare", None)
    if prepare is not None:  # choices made from the requests become part of the identity
        prepare([p.request for p in planned])
    identity = backend.identity
    started = datetime.now(timezone.utc)
    judgments: list[Judgment] = []
    writer = None
    if output is not None:
        if if_exists == "resume" and Path(output).is_file():
            judgments = _resumed(output, rubric, identity, planned)
            done = {(j.item_id, j.variant, j.order) for j in judgments}
            planned = [p for p in planned if (p.item.id, p.variant, p.order) not in done]
        mode = {"error": "new", "overwrite": "overwrite", "resume": "append"}[if_exists]
        writer = JudgmentWriter(output, mode=mode)
    total = len(judgments) + len(planned)
    start = time.perf_counter()
    position = {p.request.key: n for n, p in enumerate(planned)}
    try:
        for chunk in _scored(backend, store, rubric, identity, planned, batch_size, write_every):
            new = [_judgment(rubric, identity, p, r, threshold, from_store=k) for p, r, k in chunk]
            judgments.extend(new)
            if writer is not None:
                writer.write(new)
            if on_batch is not None:
                on_batch(new)
            if progress is not None:
                progress(len(judgments), total)
    finally:
        if writer is not None:
            writer.close()
    # finish order is the engine's; the run's views keep the plan's order
    judgments.sort(key=lambda j: position.get(request_key(j.item_id, j.variant, j.order), -1))
    seconds = time.perf_counter() - start
    stats = getattr(backend, "stats", None)
    run = JudgeRun(
        rubric,
        identity,
        controls,
        items,
        judgments,
        seconds,
        length_model,
        stats.as_dict() if stats is not None else None,
    )
    if output is not None:
        with JudgmentWriter(items_path(output)) as items_writer:
            items_writer.write(run.item_verdicts())
        finished = datetime.now(timezone.utc)
        manifest = build_manifest(run, started, finished, source, str(output), card)
        manifest_path(output).write_text(manifest.model_dump_json(indent=2) + "\n")
    return run


def _resumed(
    output: Path | str, rubric: Rubric, identity: JudgeIdentity, planned: Sequence[PlannedRequest]
) -> list[Judgment]:
    """The rows an output already holds for this plan; refuse rows of another rubric or judge."""
    drop_torn_tail(output)
    rows = read_judgments(output)
    for j in rows:
        if j.rubric_hash != rubric.hash:
            raise InputError(
                f"{output}: cannot resume: its rows used rubric hash {j.rubric_hash[:12]}, "
                f"this run {rubric.ref} ({rubric.hash[:12]})"
            )
        if j.judge_fingerprint != identity.fingerprint or j.engine_settings != identity.settings:
            raise InputError(
                f"{output}: cannot resume: its rows came from another judge or engine settings "
                f"({j.judge_model}, {j.judge_fingerprint[:12]})"
            )
    wanted = {(p.item.id, p.variant, p.order) for p in planned}
    kept = {(j.item_id, j.variant, j.order): j for j in rows}
    return [j for key, j in kept.items() if key in wanted]


def _scored(
    backend: Backend,
    store: ResultStore | None,
    rubric: Rubric,
    identity: JudgeIdentity,
    planned: Sequence[PlannedRequest],
    batch_size: int,
    write_every: int,
) -> Iterator[list[tuple[PlannedRequest, LabelLogprobs, bool]]]:
    """(request, result, from the store) in chunks: stored ones first, then the backend's.

    Each chunk of fresh results is committed to the store before it is handed on, so a killed
    run resumes from what it had written.
    """
    stream = getattr(backend, "score_stream", None)
    for batch in batches(planned, batch_size):
        keys = (
            [cache_key(p.request, rubric.hash, identity) for p in batch]
            if store is not None
            else []
        )
        found = store.get_many(keys) if store is not None else {}
        if found:
            yield [(batch[i], found[key], True) for i, key in enumerate(keys) if key in found]
        missing = [i for i in range(len(batch)) if not keys or keys[i] not in found]
        if not missing:
            continue
        requests = [batch[i].request for i in missing]
        chunks = (
            stream(requests, write_every)
            if stream is not None
            else [list(enumerate(backend.score(requests)))]
        )
        for chunk in chunks:
            if store is not None:
                store.put_many((keys[missing[j]], result) for j, result in chunk)
            yield [(batch[missing[j]], result, False) for j, result in chunk]


def _judgment(
    rubric: Rubric,
    identity: JudgeIdentity,
    planned: PlannedRequest,
    result: LabelLogprobs,
    threshold: float,
    *,
    from_store: bool,
) -> Judgment:
    score = score_labels(
        result.logprobs,
        rubric.labels,
        rubric.values,
        min_mass=threshold,
        error=result.error,
        measured=identity.settings.get("label_logprobs") != "text",
    )
    return Judgment(
        item_id=planned.item.id,
        rubric=rubric.name,
        rubric_version=rubric.version,
        rubric_hash=rubric.hash,
        variant=planned.variant,
        order=planned.order,
        label_probs=score.probs,
        label_mass=score.mass,
        expected_score=score.expected,
        label=score.label,
        valid=score.valid,
        invalid_reason=score.invalid_reason,
        judge_model=identity.model,
        judge_fingerprint=identity.fingerprint,
        engine_settings=identity.settings,
        num_prompt_tokens=result.num_prompt_tokens,
        num_cached_tokens=result.num_cached_tokens,
        from_store=from_store,
    )
