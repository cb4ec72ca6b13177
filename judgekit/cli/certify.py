"""``judgekit certify-change``: is a changed judge configuration safe to use instead of the
reference one? Exit 0 SAFE, 1 NOT SAFE, 5 INCONCLUSIVE (2: bad input), so CI can gate on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from judgekit.audit.certify import CertifyOptions, JudgeConfig, certify_change
from judgekit.backends import JudgeSpec
from judgekit.cards.model import SplitName
from judgekit.cli.app import EXIT_GATE, EXIT_INCONCLUSIVE, Columns, RubricsDir, app, pairs_option
from judgekit.cli.judge_options import judge_options
from judgekit.cli.quiet import quiet
from judgekit.config import named_judge
from judgekit.data.sets import CalibrationSet
from judgekit.data.user_sets import is_user_set, load_user_set
from judgekit.judging.store import ResultStore
from judgekit.rubrics import load_rubric

_O = CertifyOptions()
_EXIT = {"SAFE": 0, "NOT SAFE": EXIT_GATE, "INCONCLUSIVE": EXIT_INCONCLUSIVE}


@app.command("certify-change")
@judge_options
def certify_change_command(
    rubric: Annotated[str, typer.Option(help="Reference rubric NAME@vN.")],
    set_name: Annotated[
        str, typer.Option("--set", help="Registered set, or your own labelled file.")
    ],
    judge_spec: JudgeSpec,
    change: Annotated[
        list[str] | None,
        typer.Option(
            help="KEY=VALUE of the changed configuration: a judge option (dtype=bfloat16, "
            "block_size=64, model=DIR), rubric=NAME@vN, variants=a,b, batch_size=64, a control "
            "(swap=false, tie_band=0.1). Repeatable."
        ),
    ] = None,
    changed_judge: Annotated[
        str | None,
        typer.Option(help="Changed judge NAME from judgekit.toml; --change applies on top."),
    ] = None,
    reference_option: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE of the reference beyond the judge options (as --change)."),
    ] = None,
    variant: Annotated[
        list[str] | None, typer.Option(help="Reference prompt variant(s) (default: all).")
    ] = None,
    split: Annotated[SplitName, typer.Option(help="Items judged.")] = "heldout",
    heldout_fraction: Annotated[float, typer.Option(help="Share of groups held out.")] = 0.5,
    limit: Annotated[int | None, typer.Option(help="Only the first N items of the split.")] = None,
    metric: Annotated[str | None, typer.Option(help="Metric of a multi-metric set.")] = None,
    agreement: Annotated[
        str, typer.Option(help="auto (Spearman on an ordinal scale, else kappa), kappa, spearman.")
    ] = _O.agreement,
    delta: Annotated[float, typer.Option(help="Non-inferiority margin.")] = _O.delta,
    alpha: Annotated[
        float, typer.Option(help="Size of each test (intervals at 1 - alpha).")
    ] = _O.alpha,
    max_flip_rate: Annotated[
        float, typer.Option(help="Bound on the share of verdicts the change may move.")
    ] = _O.max_flip_rate,
    n_resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = _O.n_resamples,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the certificate (JSON) here.")] = None,
    card: Annotated[
        Path | None,
        typer.Option(help="The reference's card: checked, and the certificate recorded beside it."),
    ] = None,
    label_column: Annotated[
        str | None, typer.Option(help="Own file: column of the human label.")
    ] = None,
    column: Columns = None,
    data_dir: Annotated[Path | None, typer.Option(help="Local copies of the sets.")] = None,
    store: Annotated[Path | None, typer.Option(help="Result store (sqlite).")] = None,
    rubrics_dir: RubricsDir = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show engine logs.")] = False,
) -> None:
    """Judge a calibration split with a reference and a changed configuration; certify the
    change SAFE / NOT SAFE / INCONCLUSIVE (docs/certify.md states the rule)."""
    reference = JudgeConfig(judge=judge_spec, rubric=rubric, variants=variant)
    reference = reference.changed(reference_option or [])
    changed = reference
    if changed_judge is not None:
        changed = changed.model_copy(update={"judge": named_judge(changed_judge)})
    changed = changed.changed(change or [])
    paths = rubrics_dir or []
    dataset: str | CalibrationSet = set_name
    if is_user_set(set_name):
        dataset = load_user_set(
            set_name,
            load_rubric(reference.rubric, paths=paths),
            label_column=label_column,
            columns=pairs_option(column),
        )
    options = CertifyOptions(
        split=split,
        heldout_fraction=heldout_fraction,
        limit=limit,
        metric=metric,
        agreement=agreement,  # type: ignore[arg-type]
        delta=delta,
        alpha=alpha,
        max_flip_rate=max_flip_rate,
        n_resamples=n_resamples,
        seed=seed,
    )
    log = (out.parent if out is not None else Path.cwd()) / "certify-change.log"
    with quiet(log, verbose=verbose):
        cert = certify_change(
            dataset,
            reference,
            changed,
            options=options,
            data_dir=data_dir,
            rubric_paths=paths,
            card=card,
            store=ResultStore(store) if store is not None else None,
        )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(cert.model_dump_json(indent=2) + "\n")
    typer.echo(f"{cert.set_name} ({cert.split}): n={cert.n} in {cert.n_groups} groups")
    typer.echo("changes: " + ("; ".join(cert.changes) or "none"))
    level = f"{1 - alpha:.0%}"
    for name, value in (
        (f"{cert.rule.metric} reference", cert.agreement_reference),
        (f"{cert.rule.metric} changed", cert.agreement_changed),
        ("difference (changed - reference)", cert.agreement_difference),
        ("verdict kappa between the two", cert.verdict_kappa),
        ("flip rate", cert.flip_rate),
        ("score shift", cert.score_shift),
    ):
        typer.echo(f"  {name}: {value.format() if value is not None else 'n/a'} ({level})")
    typer.echo(f"{cert.verdict}:")
    for reason in cert.reasons:
        typer.echo(f"  {reason}")
    for note in cert.notes:
        typer.echo(f"  note: {note}")
    if out is not None:
        typer.echo(f"certificate {out}")
    if card is not None:
        typer.echo(f"recorded beside card {card}")
    raise typer.Exit(_EXIT[cert.verdict])
