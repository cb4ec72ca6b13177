"""Running a judge: the one place that knows the pipeline's order.

rubric -> prompts (grouped by shared prefix) -> backend batches -> label scores -> judgments
(written as each batch finishes) -> per-item aggregation (swap, ensemble) -> summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from judgekit.backends.base import Backend
from judgekit.bias.length import LengthModel
from judgekit.data.records import JudgmentWriter, items_path, manifest_path, read_items
from judgekit.judging.aggregate import Controls
from judgekit.judging.plan import PlannedRequest, batches, plan_requests
from judgekit.judging.results import JudgeRun
from judgekit.judging.run_manifest import build_manifest
from judgekit.judging.score import score_labels
from judgekit.judging.store import ResultStore, cache_key
from judgekit.rubrics import Rubric, load_rubric
from judgekit.schema import Item, JudgeIdentity, Judgment, LabelLogprobs

ProgressCallback = Callable[[int, int], None]


def judge(
    items: Sequence[Item] | Path | str,
    rubric: str | Rubric,
    *,
    backend: Backend,
    variants: Sequence[str] | None = None,
    controls: Controls | None = None,
    output: Path | str | None = None,
    columns: dict[str, str] | None = None,
    batch_size: int = 64,
    min_mass: float | None = None,
    progress: ProgressCallback | None = None,
    rubric_paths: Sequence[Path | str] = (),
    store: ResultStore | None = None,
    length_model: LengthModel | None = None,
    on_batch: Callable[[Sequence[Judgment]], None] | None = None,
    source: Path | str | None = None,
) -> JudgeRun:
    """Judge items (or an input file) with a rubric on a backend.

    Judgments are written to ``output`` batch by batch as they finish, with a run manifest beside
    it. ``min_mass`` overrides the rubric's label-mass threshold below which a verdict is invalid.
    With a ``store``, prompts judged before (by any run with the same judge) are not judged again,
    and each finished batch is committed there, so a killed run resumes where it stopped.
    A ``length_model`` (fitted on a calibration dev split, frozen) adds length-corrected scores;
    per-item verdicts go to ``<output>.items.jsonl``. ``on_batch`` sees each batch's judgments
    as they finish (the CLI's progress bar counts prefix-cache hits from them). ``source`` names
    the input file in the manifest when items are passed already read (the viewer reads it).
    """
    rubric = rubric if isinstance(rubric, Rubric) else load_rubric(rubric, paths=rubric_paths)
    controls = controls or Controls()
    source = str(items) if isinstance(items, str | Path) else source and str(source)
    if isinstance(items, str | Path):
        items = read_items(items, rubric.manifest.mode, columns)
    items = list(items)
    threshold = rubric.manifest.min_label_mass if min_mass is None else min_mass
    planned = plan_requests(rubric, items, variants=variants, swap=controls.swap)
    identity = backend.identity
    started = datetime.now(timezone.utc)
    judgments: list[Judgment] = []
    writer = JudgmentWriter(output) if output is not None else None
    start = time.perf_counter()
    try:
        for batch in batches(planned, batch_size):
            results, stored = _score(backend, store, rubric, identity, batch)
            new = [
                _judgment(rubric, identity, p, r, threshold, from_store=k)
                for p, r, k in zip(batch, results, stored, strict=True)
            ]
            judgments.extend(new)
            if writer is not None:
                writer.write(new)
            if on_batch is not None:
                on_batch(new)
            if progress is not None:
                progress(len(judgments), len(planned))
    finally:
        if writer is not None:
            writer.close()
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
        manifest = build_manifest(run, started, datetime.now(timezone.utc), source, str(output))
        manifest_path(output).write_text(manifest.model_dump_json(indent=2) + "\n")
    return run


def _score(
    backend: Backend,
    store: ResultStore | None,
    rubric: Rubric,
    identity: JudgeIdentity,
    batch: Sequence[PlannedRequest],
) -> tuple[list[LabelLogprobs], list[bool]]:
    """Results for a batch: stored ones where present, the rest from the backend (then stored)."""
    if store is None:
        return backend.score([p.request for p in batch]), [False] * len(batch)
    keys = [cache_key(p.request, rubric.hash, identity) for p in batch]
    found = store.get_many(keys)
    missing = [i for i, key in enumerate(keys) if key not in found]
    fresh = backend.score([batch[i].request for i in missing]) if missing else []
    store.put_many((keys[i], result) for i, result in zip(missing, fresh, strict=True))
    results = dict(zip(missing, fresh, strict=True))
    return (
        [found[key] if key in found else results[i] for i, key in enumerate(keys)],
        [key in found for key in keys],
    )


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
        result.logprobs, rubric.labels, rubric.values, min_mass=threshold, error=result.error
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
