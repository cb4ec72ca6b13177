"""One calibration end to end: set -> judge verdicts (run here, or from a file) -> card -> report.

The judge sees the split being calibrated (held-out by default) and, to fit the length model,
the dev split; fitting on held-out is refused (``datasets.require_dev``), so the card's headline
numbers and its after-correction length slope are out of sample.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from judgekit.backends.base import Backend
from judgekit.calibrate.annotators import ConsensusMethod, consensus_records
from judgekit.calibrate.cards import read_card, require_calibrated, save_card
from judgekit.calibrate.ensemble_fit import FittedEnsemble, fit_ensemble
from judgekit.calibrate.length_card import fit_length_model
from judgekit.calibrate.measure import (
    CalibrationCard,
    JudgeOutputs,
    LengthModel,
    SplitName,
    TrustThresholds,
    calibrate,
)
from judgekit.calibrate.outputs import outputs_from_run, outputs_from_verdicts
from judgekit.calibrate.project import choose_card
from judgekit.calibrate.report import write_report
from judgekit.data.records import InputError
from judgekit.data.sets import CalibrationRecord, CalibrationSet, load_calibration_set
from judgekit.data.split import split_records
from judgekit.files import sha256_file
from judgekit.judging.run import judge
from judgekit.rubrics import Rubric
from judgekit.schema import JudgeIdentity
from judgekit.view import write_view


@dataclass(frozen=True)
class CalibrationResult:
    card: CalibrationCard
    card_path: Path
    report: dict[str, Path]


def read_verdicts(
    path: Path | str, *, id_field: str, verdict_field: str, label_map: Mapping[str, str]
) -> dict[str, str | None]:
    """Verdicts of another judge by item id; values outside ``label_map`` stay as written.

    JSON (a list of objects) or JSONL. Unparseable verdicts are kept, to be counted invalid.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        rows = (
            json.loads(text)
            if path.suffix == ".json"
            else [json.loads(line) for line in text.splitlines() if line.strip()]
        )
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON: {err}") from err
    verdicts: dict[str, str | None] = {}
    for n, row in enumerate(rows):
        for field in (id_field, verdict_field):
            if field not in row:
                raise InputError(f"{path}: row {n}: field {field!r} missing")
        raw = row[verdict_field]
        verdict = None if raw is None else str(raw).strip()
        verdicts[str(row[id_field])] = label_map.get(verdict, verdict) if verdict else None
    return verdicts


def _split_records(
    dataset: CalibrationSet, split: SplitName, fraction: float, limit: int | None
) -> list[CalibrationRecord]:
    """The split's records (held-out or dev by group hash), the first ``limit`` if given."""
    records = split_records(dataset.records, split, fraction)
    return records[:limit] if limit is not None else records


def run_calibration(
    set_name: str | CalibrationSet,
    rubric: Rubric,
    *,
    backend: Backend | None = None,
    verdicts_file: Path | str | None = None,
    id_field: str = "id",
    verdict_field: str = "verdict",
    label_map: Mapping[str, str] | None = None,
    judge_name: str | None = None,
    data_dir: Path | str | None = None,
    metric: str | None = None,
    split: SplitName = "heldout",
    heldout_fraction: float = 0.5,
    limit: int | None = None,
    seed: int = 0,
    n_resamples: int = 2000,
    thresholds: TrustThresholds | None = None,
    fit_length: bool = True,
    consensus: ConsensusMethod = "majority",
    min_annotator_reliability: float | None = None,
    fit_learned_ensemble: bool = True,
    cards_dir: Path | str,
    out_dir: Path | str,
) -> CalibrationResult:
    """Calibrate a rubric + judge on a set; write the card (to ``cards_dir``) and the report.

    ``set_name`` is a registered set's name, or a set already loaded (``load_user_set``).
    Either ``backend`` (judgekit runs the judge on the split's items) or ``verdicts_file`` (any
    judge's precomputed verdicts; ``label_map`` defaults to the set's own label mapping).
    With a backend and ``fit_length``, the dev split's items (at most ``limit``) are judged in
    the same run and the length model is fitted on them, stored in the card and applied frozen
    to the calibrated split. ``consensus`` replaces the set's plurality with an annotator
    model's posterior label, fitted on the whole set's human labels (``calibrate.annotators``);
    annotators below ``min_annotator_reliability`` are dropped first. With
    ``fit_learned_ensemble`` the learned ensemble is fitted on the same dev items and the card
    compares it with each variant, mean and majority.
    """
    dataset = (
        set_name
        if isinstance(set_name, CalibrationSet)  # a user's own file (data.user_sets)
        else load_calibration_set(set_name, data_dir=data_dir, metric=metric)
    )
    notes: list[str] = []
    relabelled, _, dropped = consensus_records(
        dataset.records,
        consensus,
        min_reliability=min_annotator_reliability,
        label_type=dataset.manifest.label_type,
        names=dataset.manifest.annotators.fields,
        seed=seed,
    )
    dataset = replace(dataset, records=tuple(relabelled))
    if dropped:
        notes.append(
            f"annotators dropped (reliability < {min_annotator_reliability} under {consensus}): "
            + ", ".join(dropped)
        )
    if dataset.manifest.mode != rubric.manifest.mode:
        raise InputError(
            f"set {dataset.manifest.name!r} is {dataset.manifest.mode} but rubric {rubric.ref} is "
            f"{rubric.manifest.mode}"
        )
    records = _split_records(dataset, split, heldout_fraction, limit)
    outputs: JudgeOutputs
    length_model: LengthModel | None = None
    learned: FittedEnsemble | None = None
    dev: list[CalibrationRecord] = []
    if verdicts_file is not None:
        mapping = label_map if label_map is not None else dataset.manifest.labels or {}
        verdicts = read_verdicts(
            verdicts_file, id_field=id_field, verdict_field=verdict_field, label_map=mapping
        )
        ids = [r.id for r in records]
        outputs = outputs_from_verdicts(
            ids, [verdicts.get(i) for i in ids], rubric.labels, source=str(verdicts_file)
        )
        model, fingerprint, settings = (
            judge_name or Path(verdicts_file).stem,
            "file:" + sha256_file(verdicts_file)[:16],
            {},
        )
    elif backend is not None:
        fit_dev = fit_length or fit_learned_ensemble
        dev = _split_records(dataset, "dev", heldout_fraction, limit) if fit_dev else []
        judged = {r.id: r for r in [*records, *dev]}  # split "dev"/"all" already holds dev
        out_dir = Path(out_dir)
        run = judge(
            [r.item for r in judged.values()], rubric, backend=backend, output=out_dir / "run.jsonl"
        )
        outputs = outputs_from_run(run)
        model, fingerprint, settings = run.judge.model, run.judge.fingerprint, run.judge.settings
        if fit_length:
            try:
                length_model = fit_length_model(
                    dev, outputs, "dev", heldout_fraction=heldout_fraction
                )
            except ValueError as err:
                notes.append(f"length model: not fitted on dev ({err})")
        if fit_learned_ensemble:
            try:
                learned = fit_ensemble(
                    dev,
                    outputs,
                    "dev",
                    rng=np.random.default_rng(seed),
                    heldout_fraction=heldout_fraction,
                )
            except ValueError as err:
                notes.append(f"learned ensemble: not fitted on dev ({err})")
    else:
        raise ValueError("give a backend to run the judge, or a verdicts file")
    card = calibrate(
        records,
        outputs,
        rubric_ref=rubric.ref,
        rubric_hash=rubric.hash,
        judge_model=model,
        judge_fingerprint=fingerprint,
        judge_settings=settings,
        set_name=dataset.manifest.name if metric is None else f"{dataset.manifest.name}:{metric}",
        set_sha256=dataset.sha256,
        split=split,
        heldout_fraction=heldout_fraction,
        group_by=dataset.manifest.split_group.describe(),
        rng=np.random.default_rng(seed),
        n_resamples=n_resamples,
        thresholds=thresholds,
        length_model=length_model,
        ensemble=learned,
        dev_records=dev,
    )
    card = card.model_copy(update={"consensus": consensus, "notes": [*card.notes, *notes]})
    card_path = save_card(card, cards_dir)
    viewer = None
    if backend is not None:  # every verdict of the run, with the human labels, in the viewer
        viewer = write_view(
            [Path(out_dir) / "run.jsonl"],
            Path(out_dir) / "view.html",
            items=[r.item for r in dataset.records],
            human={r.id: r.consensus for r in dataset.records if r.consensus is not None},
        )
    report = write_report(card, Path(out_dir), records=records, outputs=outputs, viewer=viewer)
    return CalibrationResult(card, card_path, report)


def check_calibrated(
    rubric: Rubric,
    judge: JudgeIdentity,
    card: Path | str | None = None,
    thresholds: TrustThresholds | None = None,
) -> CalibrationCard:
    """The trust gate: ``card`` (else the card pinned in the working directory's project
    config) must fit this rubric + judge and pass ``thresholds`` (else the config's, else the
    defaults) now; else NotCalibratedError (CardError when the card cannot be read)."""
    choice = choose_card(card)
    named = read_card(choice.path) if choice.path is not None else None
    return require_calibrated(named, rubric, judge, thresholds or choice.thresholds)
