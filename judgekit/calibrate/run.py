"""One calibration end to end, in steps that each take and return typed values:

set -> ``prepare_set`` (consensus, split, limit) -> ``judge_records`` (the judge on the split and,
to fit on, the dev split; a file of another judge's verdicts is replayed through the same run)
-> ``fit_dev`` (frozen length model, learned ensemble) -> ``choose_controls`` (on dev only: which
combination, whether the length correction is applied) -> the final run (the verdicts a run with
the card makes) -> ``measure.card.calibrate`` (the card) -> saved card, run files, viewer, report.

Fitting on held-out is refused (``split.require_dev``), so the card's figures are out of sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from judgekit.backends import Backend, JudgeSpec, ReplayJudge
from judgekit.bias.length import LengthModel
from judgekit.calibrate.fit.ensemble import FittedEnsemble, fit_ensemble
from judgekit.calibrate.fit.ensemble_card import COMBINATIONS, LEARNED, VARIANT, ensemble_card
from judgekit.calibrate.fit.length import fit_length_model
from judgekit.calibrate.measure.annotators import consensus_records
from judgekit.calibrate.measure.card import CardSubject, calibrate
from judgekit.calibrate.measure.outputs import JudgeOutputs, outputs_from_run
from judgekit.calibrate.measure.slices import require_column, slice_agreement
from judgekit.calibrate.report.write import write_report
from judgekit.cards.model import (
    CalibrationCard,
    CalibrationOptions,
    CardControls,
    EnsembleCard,
    TrustThresholds,
)
from judgekit.cards.store import read_card, require_calibrated, save_card
from judgekit.config import choose_card
from judgekit.data.records import InputError
from judgekit.data.sets import CalibrationRecord, CalibrationSet, load_calibration_set
from judgekit.data.split import split_records
from judgekit.judging.aggregate import Corrections
from judgekit.judging.executor import ExecutorChoice
from judgekit.judging.results import JudgeRun, build_run
from judgekit.judging.run import judge
from judgekit.judging.store import ResultStore
from judgekit.judging.write import write_run
from judgekit.rubrics import Rubric, load_rubric
from judgekit.schema import JudgeIdentity
from judgekit.view import write_view


@dataclass(frozen=True)
class CalibrationResult:
    card: CalibrationCard
    card_path: Path
    report: dict[str, Path]
    run: JudgeRun


@dataclass(frozen=True)
class PreparedSet:
    """The set after consensus, the split's records (first ``limit``) and the dev records judged
    to fit on (empty when not fitting)."""

    dataset: CalibrationSet
    records: list[CalibrationRecord]
    dev: list[CalibrationRecord]
    notes: list[str] = field(default_factory=list)

    @property
    def judged(self) -> list[CalibrationRecord]:
        """Every record the judge sees, each once (split "dev"/"all" already holds dev)."""
        return list({r.id: r for r in [*self.records, *self.dev]}.values())


def prepare_set(
    dataset: str | CalibrationSet,
    rubric: Rubric,
    options: CalibrationOptions,
    *,
    data_dir: Path | str | None = None,
) -> PreparedSet:
    """Load the set, form each item's human label (``options.consensus``), take the split."""
    if not isinstance(dataset, CalibrationSet):
        dataset = load_calibration_set(dataset, data_dir=data_dir, metric=options.metric)
    relabelled, _, dropped = consensus_records(
        dataset.records,
        options.consensus,  # type: ignore[arg-type]
        min_reliability=options.min_annotator_reliability,
        label_type=dataset.manifest.label_type,
        names=dataset.annotator_names,
        seed=options.seed,
    )
    names = dataset.annotator_names
    if names is not None:
        names = tuple(n for n in names if n not in dropped)
    dataset = replace(dataset, records=tuple(relabelled), annotator_names=names)
    notes = []
    if dropped:
        notes.append(
            f"annotators dropped (reliability < {options.min_annotator_reliability} under "
            f"{options.consensus}): " + ", ".join(dropped)
        )
    if dataset.manifest.mode != rubric.manifest.mode:
        raise InputError(
            f"set {dataset.manifest.name!r} is {dataset.manifest.mode} but rubric {rubric.ref} is "
            f"{rubric.manifest.mode}"
        )

    def take(split: str) -> list[CalibrationRecord]:
        chosen = split_records(dataset.records, split, options.heldout_fraction)
        return chosen[: options.limit] if options.limit is not None else chosen

    dev = take("dev") if options.fit_dev else []
    return PreparedSet(dataset, take(options.split), dev, notes)


def judge_records(
    prepared: PreparedSet,
    rubric: Rubric,
    backend: Backend | JudgeSpec,
    options: CalibrationOptions,
    *,
    store: ResultStore | None = None,
    judge_name: str | None = None,
    executor: ExecutorChoice = "local",
) -> JudgeRun:
    """The judge on every record of the split (and dev), each item in its set's group;
    ``executor`` as in ``judging.judge`` (``"ray"``: on Ray actors)."""
    items = [r.item.model_copy(update={"group": r.group}) for r in prepared.judged]
    return judge(
        items,
        rubric,
        backend=backend,
        controls=options.controls,
        variants=options.variants,
        store=store,
        judge_name=judge_name,
        executor=executor,
    )


@dataclass(frozen=True)
class DevFits:
    """What was fitted on dev: the frozen length model and the learned ensemble (None: not
    fitted, the reason in ``notes``)."""

    length_model: LengthModel | None
    learned: FittedEnsemble | None
    notes: list[str]


def fit_dev(prepared: PreparedSet, outputs: JudgeOutputs, options: CalibrationOptions) -> DevFits:
    """Fit the length model and the learned ensemble on the dev records only."""
    notes: list[str] = []
    length_model = learned = None
    if not prepared.dev:
        return DevFits(None, None, ["nothing fitted on dev (dev split not judged)"])
    try:
        length_model = fit_length_model(
            prepared.dev, outputs, "dev", heldout_fraction=options.heldout_fraction
        )
    except ValueError as err:
        notes.append(f"length model: not fitted on dev ({err})")
    try:
        learned = fit_ensemble(
            prepared.dev,
            outputs,
            "dev",
            rng=np.random.default_rng(options.seed),
            heldout_fraction=options.heldout_fraction,
        )
    except ValueError as err:
        notes.append(f"learned ensemble: not fitted on dev ({err})")
    return DevFits(length_model, learned, notes)


def choose_controls(
    raw: JudgeRun, fits: DevFits, section: EnsembleCard | None
) -> tuple[CardControls, Corrections]:
    """What a run with the card applies, chosen on dev: the combination with the highest dev
    kappa (a single variant, mean, majority or the learned ensemble) and the length correction
    when its dev decision applies it (``length_decision``; never on top of the learned
    ensemble, which has its own length term)."""
    controls, variants = raw.controls, sorted({j.variant for j in raw.judgments})
    reasons = []
    learned = None
    if section is not None:
        chosen = section.chosen
        if chosen == LEARNED:
            controls = controls.model_copy(update={"ensemble": "learned"})
            learned = section.model
            variants = section.model.variants
        elif chosen in COMBINATIONS:
            controls = controls.model_copy(update={"ensemble": COMBINATIONS[chosen]})
        elif chosen.removeprefix(VARIANT) in variants:
            variants = [chosen.removeprefix(VARIANT)]
        reasons.append(f"combination: {chosen} ({section.reason})")
    model = fits.length_model
    decided = model is not None and model.decision is not None and model.decision.apply
    apply_length = decided and controls.ensemble != "learned"
    if model is not None:
        why = model.decision.reason if model.decision is not None else "no dev decision"
        if decided and not apply_length:
            why = "the learned ensemble chosen has its own length term"
        state = "applied" if apply_length else "not applied"
        reasons.append(f"length correction: {state} ({why})")
    corrections = Corrections(
        length_model=fits.length_model if apply_length else None, learned=learned
    )
    applies = CardControls(
        controls=controls, variants=variants, length_correction=apply_length, reasons=reasons
    )
    return applies, corrections


def _with_set_labels(backend: Backend | JudgeSpec, prepared: PreparedSet) -> Backend | JudgeSpec:
    """A replayed judge's label mapping defaults to the set's own."""
    if isinstance(backend, ReplayJudge) and not backend.label_map:
        mapping = prepared.dataset.manifest.labels or {}
        backend = backend.model_copy(update={"label_map": {k: str(v) for k, v in mapping.items()}})
    return backend


def run_calibration(
    dataset: str | CalibrationSet,
    rubric: str | Rubric,
    *,
    backend: Backend | JudgeSpec,
    options: CalibrationOptions | None = None,
    data_dir: Path | str | None = None,
    cards_dir: Path | str,
    out_dir: Path | str,
    judge_name: str | None = None,
    store: ResultStore | None = None,
    by: str | None = None,
    executor: ExecutorChoice = "local",
) -> CalibrationResult:
    """Calibrate a rubric + judge on a set; write the card (to ``cards_dir``), the final run
    (``out_dir/run.jsonl`` with its items file and manifest), its viewer and the report.

    ``dataset``: a registered set's name, or a set already loaded (``load_user_set``).
    ``backend``: a judge (``JudgeSpec`` or a started backend; ``ReplayJudge`` for another judge's
    verdicts, label mapping defaulting to the set's own). ``by``: also measure the card per
    slice of this meta column (``card.slices``). ``executor``: where the judge runs
    (``judging.judge``'s; ``"ray"`` or a ``RayExecutor``: on Ray actors).
    """
    options = options or CalibrationOptions()
    rubric = load_rubric(rubric)
    prepared = prepare_set(dataset, rubric, options, data_dir=data_dir)
    if by is not None:
        require_column(prepared.records, by)
    backend = _with_set_labels(backend, prepared)
    raw = judge_records(
        prepared, rubric, backend, options, store=store, judge_name=judge_name, executor=executor
    )
    raw_outputs = outputs_from_run(raw)
    fits = fit_dev(prepared, raw_outputs, options)
    section = None
    if fits.learned is not None:
        section = ensemble_card(
            prepared.judged,
            raw_outputs,
            fits.learned,
            split=options.split,
            label_type=_label_type(prepared),
            rng=np.random.default_rng(options.seed),
            heldout_fraction=options.heldout_fraction,
            n_resamples=options.n_resamples,
        )
    applies, corrections = choose_controls(raw, fits, section)
    final = build_run(
        rubric,
        raw.judge,
        applies.controls,
        raw.items or (),
        [j for j in raw.judgments if j.variant in applies.variants],
        corrections=corrections,
        seconds=raw.seconds,
        judge_name=judge_name,
    )
    uncorrected = None
    if corrections.length_model is not None:
        uncorrected = outputs_from_run(
            build_run(
                rubric,
                raw.judge,
                applies.controls,
                raw.items or (),
                final.judgments,
                corrections=replace(corrections, length_model=None),
            )
        )
    subject = CardSubject(
        rubric_ref=rubric.ref,
        rubric_hash=rubric.hash,
        judge=raw.judge,
        judge_name=judge_name,
        set_name=_set_name(prepared, options),
        set_sha256=prepared.dataset.sha256,
        group_by=prepared.dataset.manifest.split_group.describe(),
    )
    card = calibrate(
        prepared.records,
        outputs_from_run(final),
        subject=subject,
        options=options,
        rng=np.random.default_rng(options.seed),
        applies=applies,
        label_type=_label_type(prepared),
        uncorrected=uncorrected,
        length_model=fits.length_model,
        ensemble=section,
        notes=[*prepared.notes, *fits.notes, *_judged_note(prepared)],
    )
    if by is not None:
        slices = slice_agreement(
            prepared.records,
            outputs_from_run(final),
            by,
            subject=subject,
            options=options,
            applies=applies,
            label_type=_label_type(prepared),
        )
        card = card.model_copy(update={"slices": slices})
    return _write(card, final, prepared, Path(cards_dir), Path(out_dir))


def _label_type(prepared: PreparedSet) -> str:
    return prepared.dataset.manifest.label_type


def _set_name(prepared: PreparedSet, options: CalibrationOptions) -> str:
    name = prepared.dataset.manifest.name
    return name if options.metric is None else f"{name}:{options.metric}"


def _judged_note(prepared: PreparedSet) -> list[str]:
    if not prepared.dev:
        return []
    return [
        f"the judge also saw {len(prepared.dev)} dev items: the length model and the learned "
        "ensemble were fitted, and the card's controls chosen, on them (never on the split "
        "measured here)"
    ]


def _write(
    card: CalibrationCard, final: JudgeRun, prepared: PreparedSet, cards_dir: Path, out: Path
) -> CalibrationResult:
    """Card to the card store; the final run, its viewer (with the human labels) and the report."""
    card_path = save_card(card, cards_dir)
    write_run(final, out / "run.jsonl")
    viewer = write_view(
        [out / "run.jsonl"],
        out / "view.html",
        items=[r.item for r in prepared.dataset.records],
        human={r.id: r.consensus for r in prepared.dataset.records if r.consensus is not None},
        rubric=final.rubric,
    )
    report = write_report(
        card, out, records=prepared.records, outputs=outputs_from_run(final), viewer=viewer
    )
    return CalibrationResult(card, card_path, report, final)


def check_calibrated(
    rubric: str | Rubric,
    judge: JudgeIdentity,
    *,
    card: Path | str | None = None,
    thresholds: TrustThresholds | None = None,
) -> CalibrationCard:
    """The trust gate: ``card`` (else the card pinned in the working directory's project
    config) must fit this rubric + judge and pass ``thresholds`` (else the config's, else the
    defaults) now; else NotCalibratedError (CardError when the card cannot be read)."""
    choice = choose_card(card)
    named = read_card(choice.path) if choice.path is not None else None
    return require_calibrated(named, load_rubric(rubric), judge, thresholds or choice.thresholds)
