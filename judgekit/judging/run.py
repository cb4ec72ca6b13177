"""Running a judge: the one place that knows the pipeline's order.

rubric -> prompts (ordered by shared prefix) -> the store -> an executor (this process's
backend, or Ray actors: ``judging.executor``) -> label scores -> judgments (written as they
finish) -> per-item verdicts (swap, ensemble, a card's frozen corrections, the decision rule) ->
summary. Locally the backend gets the run's windows of ``batch_size`` requests in one call
(``score_windows``): the next window is prepared while it scores this one and, if it streams,
results come back as they finish, so its scheduler never waits on a window boundary while every
``write_every`` results are written, fsynced and stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from judgekit.backends import Backend, JudgeSpec, open_backend
from judgekit.backends.base import CapabilityError
from judgekit.backends.reasoning import reasoning_plan
from judgekit.bias.length import load_length_model
from judgekit.cards.store import CardError, NamedCard, check_card, read_card
from judgekit.data.items import check_items, same_meta_columns
from judgekit.data.records import (
    InputError,
    RunFiles,
    drop_torn_tail,
    read_items,
    read_judgments,
)
from judgekit.files import sha256_file
from judgekit.judging.aggregate import Corrections
from judgekit.judging.executor import Executor, ExecutorChoice, choose_executor, spec_of
from judgekit.judging.plan import PlannedRequest, plan_requests
from judgekit.judging.results import JudgeRun, build_run
from judgekit.judging.run_manifest import build_manifest
from judgekit.judging.score import LabelScore, Scorer
from judgekit.judging.store import ResultStore
from judgekit.judging.views import item_verdicts
from judgekit.judging.windows import scored_chunks
from judgekit.rubrics import Rubric, load_rubric
from judgekit.schema import (
    Controls,
    InputRef,
    Item,
    JudgeIdentity,
    Judgment,
    LabelLogprobs,
    Reasoning,
    ReasoningPlan,
    request_key,
)

ProgressCallback = Callable[[int, int], None]
IfExists = Literal["error", "overwrite", "resume"]


@dataclass(frozen=True)
class CardUse:
    """What a named card makes a run do: its controls, variants and frozen corrections."""

    named: NamedCard
    controls: Controls
    variants: list[str]
    corrections: Corrections


def card_use(
    card: NamedCard | Path | str,
    *,
    controls: Controls | None,
    variants: Sequence[str] | None,
) -> CardUse:
    """Read a card (parse errors now, before any engine) and the controls a run with it applies.

    Explicit ``controls`` / ``variants`` must equal the card's (checked with the judge identity
    in ``check_card``); left None, the card's own are used.
    """
    named = card if isinstance(card, NamedCard) else read_card(card)
    applies = named.card.applies
    chosen = controls or applies.controls
    corrections = Corrections(
        length_model=load_length_model(named.card.length_model)
        if applies.length_correction
        else None,
        learned=named.card.ensemble.model
        if chosen.ensemble == "learned" and named.card.ensemble is not None
        else None,
    )
    return CardUse(named, chosen, list(variants or applies.variants), corrections)


def judge(
    items: Sequence[Item] | Path | str,
    rubric: str | Rubric,
    *,
    backend: Backend | JudgeSpec,
    variants: Sequence[str] | None = None,
    controls: Controls | None = None,
    card: NamedCard | Path | str | None = None,
    output: Path | str | None = None,
    if_exists: IfExists = "error",
    columns: dict[str, str] | None = None,
    store: ResultStore | None = None,
    batch_size: int = 1024,
    write_every: int = 64,
    min_label_mass: float | None = None,
    rubric_paths: Sequence[Path | str] = (),
    judge_name: str | None = None,
    source: Path | str | None = None,
    progress: ProgressCallback | None = None,
    on_batch: Callable[[Sequence[Judgment]], None] | None = None,
    reasoning: Reasoning | bool | None = None,
    executor: ExecutorChoice = "local",
) -> JudgeRun:
    """Judge items (or an input file) with a rubric on a backend (or a judge spec).

    ``backend``: a started backend, or a ``JudgeSpec`` that is started here only if the result
    store does not already hold every judgment, and closed at the end. ``card``: a calibration
    card whose controls, variants and frozen corrections this run applies (``card.applies``);
    it must fit the rubric and judge (``cards.check_card``; ``CardError`` otherwise), and
    explicit ``controls`` / ``variants`` must equal the card's. Without a card, ``controls``
    defaults to ``Controls()`` and nothing certifies the numbers.

    Judgments are written to ``output`` as they finish, ``write_every`` at a time (flushed and
    fsynced), with ``<stem>.items.jsonl`` and ``<stem>.manifest.json`` beside it. An existing
    ``output`` is refused unless ``if_exists`` says ``overwrite`` (the old files are replaced
    together when the run ends) or ``resume`` (its rows are kept, checked to come from the same
    rubric and judge, and only the requests it lacks or that failed with an error are judged).
    Items the rubric cannot judge (a field it requires missing, one it does not read present)
    are refused (``InputError``) before any backend starts.
    ``min_label_mass`` overrides the rubric's threshold below which a verdict is invalid. With a
    ``store``, prompts judged before with the same judge are not judged again, and each written
    chunk is committed there, so a killed run resumes where it stopped. ``source`` names the
    input file in the manifest when items are passed already read. ``reasoning`` (True or a
    ``Reasoning``): the judge writes a rationale before each label read (``backends.reasoning``;
    the rubric's ``reasoning`` block gives the instruction and default budget), stored in each
    row; it is part of the run's judge identity (``run_identity``). A judge that cannot generate
    text is refused (``CapabilityError``) before anything is judged.

    ``executor``: ``"local"`` (this process's backend, ``batch_size`` requests at a time),
    ``"ray"`` (a ``judging.ray_executor.RayExecutor`` on the current or a new local Ray cluster;
    pass one to choose the address and actor layout) or any ``judging.executor.Executor``.
    The answers, files and store entries are the same whichever runs the requests.
    """
    rubric = load_rubric(rubric, paths=rubric_paths)
    if isinstance(items, str | Path):
        source = items
        items = read_items(items, rubric.manifest.mode, columns=columns)
    items = same_meta_columns(items)
    check_items(items, rubric, str(source) if source is not None else None)
    use = card_use(card, controls=controls, variants=variants) if card is not None else None
    chosen = use.controls if use else controls or Controls()
    if chosen.ensemble == "learned" and (use is None or use.corrections.learned is None):
        raise CardError("ensemble 'learned' needs a card with a learned ensemble (--card)")
    planned = plan_requests(
        rubric, items, variants=use.variants if use else variants, swap=chosen.swap
    )
    plan = reasoning_plan(rubric, reasoning)
    owned = not isinstance(backend, Backend)
    engine = open_backend(backend) if owned else backend
    runner = choose_executor(executor, batch_size, plan)
    try:
        engine.preflight(rubric, use.variants if use else variants)  # before an engine loads
        engine.prepare([p.request for p in planned])  # choices made here enter the identity
        identity = run_identity(engine, plan)
        if use is not None:
            check_card(use.named, rubric, identity, controls, variants)
        run = _execute(
            engine,
            runner,
            spec_of(backend),
            rubric,
            identity,
            items,
            planned,
            chosen,
            use,
            output=output,
            if_exists=if_exists,
            store=store,
            batch_size=batch_size,
            write_every=write_every,
            scorer=Scorer(
                rubric.labels,
                rubric.values,
                rubric.manifest.min_label_mass if min_label_mass is None else min_label_mass,
                measured=identity.settings.get("label_logprobs") != "text",
            ),
            judge_name=judge_name,
            source=_input_ref(source, columns) if source is not None else None,
            progress=progress,
            on_batch=on_batch,
        )
    finally:
        if owned:
            engine.close()
    return run


def run_identity(backend: Backend, plan: ReasoningPlan | None) -> JudgeIdentity:
    """The judge identity a run records: the backend's, plus reasoning mode's settings (so the
    one card check, the result store and ``--resume`` tell a reasoning run from a direct one).
    A backend that cannot reason is refused here, before anything is judged."""
    identity = backend.identity
    if plan is None:
        return identity
    if not backend.capabilities.reasoning:
        raise CapabilityError(
            f"the {identity.backend} judge {identity.model} has no reasoning mode (it needs a "
            "backend that generates a rationale and reads the labels after its token ids: the "
            "in-process vllm engine): drop --reasoning, or judge on the vllm backend"
        )
    return identity.model_copy(update={"settings": {**identity.settings, **plan.settings()}})


def _input_ref(source: Path | str, columns: dict[str, str] | None) -> InputRef:
    path = Path(source).resolve()
    digest = sha256_file(path) if path.is_file() else ""
    return InputRef(path=str(path), sha256=digest, columns=dict(columns or {}))


def _execute(
    backend: Backend,
    executor: Executor,
    spec: JudgeSpec | None,
    rubric: Rubric,
    identity: JudgeIdentity,
    items: list[Item],
    planned: list[PlannedRequest],
    controls: Controls,
    use: CardUse | None,
    *,
    output: Path | str | None,
    if_exists: IfExists,
    store: ResultStore | None,
    batch_size: int,
    write_every: int,
    scorer: Scorer,
    judge_name: str | None,
    source: InputRef | None,
    progress: ProgressCallback | None,
    on_batch: Callable[[Sequence[Judgment]], None] | None,
) -> JudgeRun:
    """Score what is not done yet, write as it comes, aggregate once, write the sidecars."""
    started = datetime.now(timezone.utc)
    judgments: list[Judgment] = []
    files = None
    if output is not None:
        resuming = if_exists == "resume" and Path(output).is_file()
        mode = {"error": "new", "overwrite": "overwrite", "resume": "append"}[if_exists]
        files = RunFiles(output, "append" if resuming else ("new" if mode == "append" else mode))
        if resuming:
            judgments = _resumed(output, rubric, identity, planned)
            done = {(j.item_id, j.variant, j.order, j.criterion) for j in judgments}
            planned = [
                p for p in planned if (p.item.id, p.variant, p.order, p.criterion) not in done
            ]
    total = len(judgments) + len(planned)
    start = time.perf_counter()
    order = {p.request.key: n for n, p in enumerate(planned)}
    try:
        writer = files.writer() if files is not None else None
        try:
            scored = scored_chunks(
                executor,
                backend,
                spec,
                store,
                rubric,
                identity,
                planned,
                batch_size,
                write_every,
                scorer,
            )
            for chunk in scored:
                new = [_judgment(rubric, identity, *row) for row in chunk]
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
    except BaseException:
        if files is not None and files.mode == "overwrite":
            files.discard()
        raise
    # finish order is the engine's; the run's views keep the plan's order
    judgments.sort(
        key=lambda j: order.get(request_key(j.item_id, j.variant, j.order, j.criterion), -1)
    )
    run = build_run(
        rubric,
        identity,
        controls,
        items,
        judgments,
        corrections=use.corrections if use else Corrections(),
        card=use.named.ref if use else None,
        seconds=time.perf_counter() - start,
        backend_stats=backend.stats(),
        judge_name=judge_name,
        source=source,
    )
    if files is not None:
        manifest = build_manifest(
            run,
            started,
            datetime.now(timezone.utc),
            str(Path(output).resolve()),
            executor=executor.layout(),
        )
        files.commit(
            item_verdicts(run), manifest, rows=judgments if files.mode == "append" else None
        )
    return run


def _resumed(
    output: Path | str, rubric: Rubric, identity: JudgeIdentity, planned: Sequence[PlannedRequest]
) -> list[Judgment]:
    """The rows an output already holds for this plan, without those that failed with an error
    (judged again); refuse rows of another rubric or judge."""
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
    wanted = {(p.item.id, p.variant, p.order, p.criterion) for p in planned}
    kept = {(j.item_id, j.variant, j.order, j.criterion): j for j in rows}  # later replaces
    return [j for key, j in kept.items() if key in wanted and not j.error]


def _judgment(
    rubric: Rubric,
    identity: JudgeIdentity,
    planned: PlannedRequest,
    result: LabelLogprobs,
    score: LabelScore,
    from_store: bool,
) -> Judgment:
    return Judgment(
        item_id=planned.item.id,
        rubric=rubric.name,
        rubric_version=rubric.version,
        rubric_hash=rubric.hash,
        variant=planned.variant,
        order=planned.order,
        criterion=planned.criterion,
        label_probs=score.probs,
        label_mass=score.mass,
        expected_score=score.expected,
        label=score.label,
        valid=score.valid,
        invalid_reason=score.invalid_reason,
        error=result.error is not None,
        judge_model=identity.model,
        judge_fingerprint=identity.fingerprint,
        engine_settings=identity.settings,
        num_prompt_tokens=result.num_prompt_tokens,
        num_cached_tokens=result.num_cached_tokens,
        from_store=from_store,
        rationale=result.rationale,
        meta=planned.item.meta,
    )
