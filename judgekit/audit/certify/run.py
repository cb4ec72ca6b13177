"""Certify a change: judge the same calibration records with a reference configuration and a
changed one, compare both with the humans and with each other, and write the certificate.

The records come from the calibration loaders (a registered set or a user's labelled file, the
set's split), the verdicts from ``judging.judge``, the figures from ``measure``. Where both
configurations run on the same judge spec (only the rubric, variants, controls or run options
change) one backend serves both; otherwise each run starts its own and closes it before the
next starts, so two engines never hold memory at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import Field

from judgekit.audit.certify.config import JudgeConfig, describe_changes
from judgekit.audit.certify.measure import default_metric, measure, pair_runs
from judgekit.backends import Backend, open_backend
from judgekit.calibrate.run import PreparedSet, prepare_set
from judgekit.cards.certificate import (
    CertificateRule,
    ChangeCertificate,
    ConfigurationRecord,
    record_certificate,
)
from judgekit.cards.model import CalibrationOptions, SplitName
from judgekit.cards.store import NamedCard, check_card, read_card
from judgekit.data.records import InputError
from judgekit.data.sets import CalibrationSet
from judgekit.judging.results import JudgeRun
from judgekit.judging.run import judge
from judgekit.judging.store import ResultStore
from judgekit.rubrics import Rubric, load_rubric
from judgekit.schema import StrictModel


class CertifyOptions(StrictModel):
    """Which records are judged and the rule's parameters (docs/certify.md)."""

    split: SplitName = "heldout"
    heldout_fraction: float = Field(default=0.5, gt=0, lt=1)
    limit: int | None = Field(default=None, ge=2, description="First N records of the split.")
    metric: str | None = Field(default=None, description="Metric of a multi-metric set.")
    consensus: str = "majority"
    agreement: Literal["auto", "kappa", "spearman"] = Field(
        default="auto", description="auto: Spearman on an ordinal scale, else kappa."
    )
    delta: float = Field(default=0.05, ge=0, description="Non-inferiority margin.")
    alpha: float = Field(default=0.05, gt=0, lt=0.5, description="Size of each test.")
    max_flip_rate: float = Field(default=0.10, ge=0, le=1)
    n_resamples: int = Field(default=2000, ge=100)
    seed: int = 0


def certify_change(
    dataset: str | CalibrationSet,
    reference: JudgeConfig,
    changed: JudgeConfig,
    *,
    options: CertifyOptions | None = None,
    data_dir: Path | str | None = None,
    rubric_paths: Sequence[Path | str] = (),
    card: Path | str | None = None,
    store: ResultStore | None = None,
) -> ChangeCertificate:
    """Judge the set's split with both configurations and certify the change (SAFE, NOT SAFE,
    INCONCLUSIVE). ``card``: the reference configuration's card; it must fit the reference run
    (``cards.check_card``, checked before the changed configuration is judged), and the
    certificate is recorded beside it (``cards.certificate.card_certificates`` lists them)."""
    options = options or CertifyOptions()
    named = read_card(card) if card is not None else None  # unreadable: fail before judging
    rubrics = [load_rubric(c.rubric, paths=rubric_paths) for c in (reference, changed)]
    if rubrics[0].manifest.mode != rubrics[1].manifest.mode:
        raise InputError(
            f"rubric {rubrics[1].ref} is {rubrics[1].manifest.mode}, the reference's "
            f"{rubrics[0].ref} is {rubrics[0].manifest.mode}: a change keeps the mode"
        )
    prepared = prepare_set(
        dataset,
        rubrics[0],
        CalibrationOptions(
            split=options.split,
            heldout_fraction=options.heldout_fraction,
            limit=options.limit,
            metric=options.metric,
            consensus=options.consensus,
            fit_dev=False,
            seed=options.seed,
        ),
        data_dir=data_dir,
    )
    ref_run, new_run = _judge_both(prepared, (reference, changed), rubrics, named, store)
    certificate = _certificate(prepared, (reference, changed), (ref_run, new_run), options, named)
    if card is not None:
        record_certificate(certificate, card)
    return certificate


def _judge_both(
    prepared: PreparedSet,
    configs: tuple[JudgeConfig, JudgeConfig],
    rubrics: Sequence[Rubric],
    named: NamedCard | None,
    store: ResultStore | None,
) -> tuple[JudgeRun, JudgeRun]:
    """Both runs, sharing one backend when the judge spec is the same."""
    items = [r.item.model_copy(update={"group": r.group}) for r in prepared.records]
    shared: Backend | None = None
    if configs[0].judge == configs[1].judge:
        shared = open_backend(configs[0].judge)
    try:
        runs = []
        for config, rubric in zip(configs, rubrics, strict=True):
            run = judge(
                items,
                rubric,
                backend=shared or config.judge,
                variants=config.variants,
                controls=config.controls,
                store=store,
                **config.run_options(),
            )
            if named is not None and not runs:
                check_card(named, rubric, run.judge, config.controls, _variants(run))
            runs.append(run)
    finally:
        if shared is not None:
            shared.close()
    return runs[0], runs[1]


def _variants(run: JudgeRun) -> list[str]:
    return sorted({j.variant for j in run.judgments})


def _record(config: JudgeConfig, run: JudgeRun, n_invalid: int) -> ConfigurationRecord:
    return ConfigurationRecord(
        judge=run.judge,
        spec=config.judge.model_dump(mode="json"),
        rubric_ref=run.rubric.ref,
        rubric_hash=run.rubric.hash,
        variants=_variants(run),
        controls=run.controls,
        run_options=config.run_options(),
        n_invalid=n_invalid,
    )


def _certificate(
    prepared: PreparedSet,
    configs: tuple[JudgeConfig, JudgeConfig],
    runs: tuple[JudgeRun, JudgeRun],
    options: CertifyOptions,
    named: NamedCard | None,
) -> ChangeCertificate:
    label_type = prepared.dataset.manifest.label_type
    rule = CertificateRule(
        metric=default_metric(label_type) if options.agreement == "auto" else options.agreement,
        delta=options.delta,
        alpha=options.alpha,
        max_flip_rate=options.max_flip_rate,
        n_resamples=options.n_resamples,
        seed=options.seed,
    )
    paired = pair_runs(
        prepared.records,
        *runs,
        split=options.split,
        heldout_fraction=options.heldout_fraction,
        label_type=label_type,
    )
    figures = measure(paired, rule)
    digest = hashlib.sha256()
    for record in prepared.records:
        digest.update(record.item.model_dump_json().encode() + b"\n")
    name = prepared.dataset.manifest.name
    notes = [*prepared.notes, *figures.notes]
    if named is not None:
        notes.append("the card's frozen corrections are not applied to either configuration")
    return ChangeCertificate(
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        reference=_record(configs[0], runs[0], paired.reference.n_invalid),
        changed=_record(configs[1], runs[1], paired.changed.n_invalid),
        changes=describe_changes(*configs),
        set_name=name if options.metric is None else f"{name}:{options.metric}",
        set_sha256=prepared.dataset.sha256,
        split=options.split,
        heldout_fraction=options.heldout_fraction,
        items_sha256=digest.hexdigest(),
        n=len(paired.human_labels),
        n_groups=len(set(paired.groups.tolist())),
        group_by=prepared.dataset.manifest.split_group.describe(),
        rule=rule,
        agreement_reference=figures.agreement_reference,
        agreement_changed=figures.agreement_changed,
        agreement_difference=figures.agreement_difference,
        verdict_kappa=figures.verdict_kappa,
        flip_rate=figures.flip_rate,
        score_shift=figures.score_shift,
        non_inferior=figures.non_inferior,
        inferior=figures.inferior,
        verdict=figures.verdict,
        reasons=figures.reasons,
        card=named.ref.path if named is not None else None,
        card_sha256=named.ref.sha256 if named is not None else None,
        notes=notes,
    )
