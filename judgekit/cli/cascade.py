"""``judgekit cascade``: small -> big judges, each deciding what its card certifies.

One stage with ``--target-agreement`` is a single judge that marks items decided or abstained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from judgekit.backends import JudgeSpec, VLLMJudge, judge_spec, open_backend
from judgekit.calibrate.measure.cascade import card_policy, certify_stages, policy_card
from judgekit.cards import CardError, NamedCard, load_card
from judgekit.cli.app import Columns, RubricsDir, app, pairs_option
from judgekit.cli.quiet import log_path, quiet
from judgekit.config import named_judge
from judgekit.data.records import OutputExistsError, read_items
from judgekit.judging.cascade import Stage, cascade
from judgekit.judging.store import ResultStore
from judgekit.rubrics import Rubric, load_rubric


def parse_stage(spec: str, label_map: dict[str, str]) -> tuple[str, JudgeSpec, Path | None]:
    """``JUDGE[=CARD.json]``; JUDGE is ``vllm`` (embedded model), ``vllm:MODEL``,
    ``judge:NAME`` (judgekit.toml) or ``replay:FILE.json[:ID_FIELD:VERDICT_FIELD]``."""
    judge_part, _, card = spec.partition("=")
    kind, _, rest = judge_part.partition(":")
    if kind == "vllm":
        return rest or "embedded", VLLMJudge(model=rest or None), Path(card) if card else None
    if kind == "judge" and rest:
        return rest, named_judge(rest), Path(card) if card else None
    if kind == "replay" and rest:
        path, *fields = rest.split(":")
        if len(fields) not in (0, 2):
            raise typer.BadParameter(
                f"replay:FILE[:ID:VERDICT], got {spec!r}", param_hint="--stage"
            )
        id_field, verdict_field = fields if fields else ("id", "verdict")
        replay = judge_spec(
            "replay",
            verdicts=path,
            id_field=id_field,
            verdict_field=verdict_field,
            label_map=label_map,
            model=Path(path).stem,
        )
        return Path(path).stem, replay, Path(card) if card else None
    raise typer.BadParameter(
        f"stage {spec!r}: expected vllm[:MODEL], judge:NAME or replay:FILE", param_hint="--stage"
    )


@app.command("cascade")
def cascade_command(
    rubric: Annotated[str, typer.Option(help="Rubric NAME or NAME@vN.")],
    input: Annotated[Path, typer.Option("--input", "-i", help="Items: JSONL, CSV or Parquet.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Per-item rows (JSONL).")],
    stage: Annotated[
        list[str],
        typer.Option(
            help="JUDGE[=CARD.json], smallest first: vllm, vllm:MODEL, judge:NAME, "
            "replay:FILE[:ID_FIELD:VERDICT_FIELD]. A stage with a card judges with the card's "
            "controls and keeps what its certified threshold allows; without a card it keeps "
            "every valid verdict."
        ),
    ],
    target_agreement: Annotated[
        float | None,
        typer.Option(help="Keep items where agreement with humans is certified >= this."),
    ] = None,
    alpha: Annotated[float, typer.Option(help="Guarantee holds with probability 1-alpha.")] = 0.1,
    label_map: Annotated[
        list[str] | None, typer.Option(help="Replay verdict VALUE=LABEL, e.g. 1=A.")
    ] = None,
    column: Columns = None,
    store: Annotated[Path | None, typer.Option(help="Result store (sqlite).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --output.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show engine logs instead of <stem>.log.")
    ] = False,
    rubrics_dir: RubricsDir = None,
) -> None:
    """Run judges in order; each keeps what its card certifies, the rest goes to the next.

    The last stage also abstains when its card cannot certify an item: those need a human.
    Writes OUTPUT (one row per item with the deciding judge) and OUTPUT.stages.json. Every
    stage's card is checked against its judge before anything is judged (exit 2 on a mismatch
    or, with --target-agreement, a missing card on any stage but the last, which decides what
    reaches it); one engine is loaded at a time.
    """
    if output.exists() and not overwrite:
        raise OutputExistsError(f"{output} exists: pass --overwrite to replace it")
    chosen = load_rubric(rubric, paths=rubrics_dir or [])
    items = read_items(input, chosen.manifest.mode, columns=pairs_option(column))
    parsed = [parse_stage(spec, pairs_option(label_map, "--label-map")) for spec in stage]
    with quiet(log_path(output), verbose=verbose, fresh=True):
        named = [
            _stage_card(n, len(parsed), stage, chosen, target_agreement)
            for n, stage in enumerate(parsed, start=1)
        ]
        cards = [c.card for c in named if c is not None]
        # each stage is certified on the dev items that reach it (earlier stages abstained)
        choices = iter(certify_stages(cards, target_agreement, alpha)) if target_agreement else None
        stages = [
            Stage(name, spec)
            if card is None
            else Stage(
                name,
                spec,
                policy_card(card),
                card_policy(
                    card.card, target_agreement, alpha, choice=next(choices) if choices else None
                ),
            )
            for (name, spec, _), card in zip(parsed, named, strict=True)
        ]
        result = cascade(
            items,
            chosen,
            stages,
            store=ResultStore(store) if store is not None else None,
            output=output,
            overwrite=overwrite,
        )
    typer.echo(result.format())
    typer.echo(f"rows written to {output}")


def _stage_card(
    n: int,
    total: int,
    stage: tuple[str, JudgeSpec, Path | None],
    rubric: Rubric,
    target: float | None,
) -> NamedCard | None:
    """The stage's card, checked against its judge before anything is judged."""
    name, spec, card_path = stage
    if card_path is None:
        if target is not None and n < total:
            raise CardError(
                f"stage {name}: --target-agreement needs a calibration card "
                "(--stage JUDGE=CARD.json) to certify what it keeps; only the last "
                "stage may decide what reaches it without one"
            )
        return None
    identified = open_backend(spec)  # no engine yet: its identity is enough to check
    try:
        return load_card(card_path, rubric, identified.identity)
    finally:
        identified.close()
