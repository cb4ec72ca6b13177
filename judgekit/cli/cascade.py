"""``judgekit cascade``: small -> big judges, each deciding what its card certifies.

One stage with ``--target-agreement`` is a single judge that marks items decided or abstained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from judgekit.backends import create_backend
from judgekit.backends.base import Backend
from judgekit.backends.replay import ReplayBackend
from judgekit.calibrate.card import CalibrationCard
from judgekit.calibrate.cascade_policy import NoEnsembleError, card_policy, card_variants
from judgekit.calibrate.run import read_verdicts
from judgekit.cli.app import RubricsDir, app, columns_option
from judgekit.data.records import InputError, read_items
from judgekit.judging.cascade import Stage, cascade
from judgekit.judging.store import ResultStore
from judgekit.rubrics import RubricError, load_rubric


def parse_stage(spec: str, label_map: dict[str, str]) -> tuple[str, Backend, Path | None]:
    """``JUDGE[=CARD.json]``; JUDGE is ``vllm`` (embedded model), ``vllm:MODEL`` or
    ``replay:FILE.json[:ID_FIELD:VERDICT_FIELD]`` (defaults ``id``, ``verdict``)."""
    judge_spec, _, card = spec.partition("=")
    kind, _, rest = judge_spec.partition(":")
    if kind == "vllm":
        backend = create_backend("vllm", model=rest or None)
        name = rest or "embedded"
    elif kind == "replay" and rest:
        path, *fields = rest.split(":")
        if len(fields) not in (0, 2):
            raise typer.BadParameter(f"replay:FILE[:ID:VERDICT], got {spec!r}")
        id_field, verdict_field = fields if fields else ("id", "verdict")
        verdicts = read_verdicts(
            path, id_field=id_field, verdict_field=verdict_field, label_map=label_map
        )
        name = Path(path).stem
        backend = ReplayBackend(verdicts, model=name, source=path)
    else:
        raise typer.BadParameter(f"stage {spec!r}: expected vllm[:MODEL] or replay:FILE")
    return name, backend, Path(card) if card else None


@app.command("cascade")
def cascade_command(
    rubric: Annotated[str, typer.Option(help="Rubric NAME or NAME@vN.")],
    input: Annotated[Path, typer.Option("--input", "-i", help="Items: JSONL, CSV or Parquet.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Per-item rows (JSONL).")],
    stage: Annotated[
        list[str],
        typer.Option(
            help="JUDGE[=CARD.json], smallest first: vllm, vllm:MODEL, "
            "replay:FILE[:ID_FIELD:VERDICT_FIELD]. A card's learned ensemble and certified "
            "threshold decide what the stage keeps; without a card it keeps every valid verdict."
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
    column: Annotated[
        list[str] | None, typer.Option(help="Map FIELD=COLUMN, e.g. question=prompt.")
    ] = None,
    store: Annotated[Path | None, typer.Option(help="Result store (sqlite).")] = None,
    rubrics_dir: RubricsDir = None,
) -> None:
    """Run judges in order; each keeps what its card certifies, the rest goes to the next.

    The last stage also abstains when its card cannot certify an item: those need a human.
    Writes OUTPUT (one row per item with the deciding judge) and OUTPUT.stages.json.
    """
    try:
        chosen = load_rubric(rubric, paths=rubrics_dir or [])
        items = read_items(input, chosen.manifest.mode, columns_option(column))
    except (InputError, RubricError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    mapping = columns_option(label_map)
    stages = []
    for spec in stage:
        name, backend, card_path = parse_stage(spec, mapping)
        if card_path is None:
            stages.append(Stage(name, backend))
            continue
        card = CalibrationCard.model_validate_json(card_path.read_text())
        try:
            policy = card_policy(card, target_agreement, alpha)
            stages.append(Stage(name, backend, policy, card_variants(card)))
        except NoEnsembleError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from error
    result = cascade(
        items,
        chosen,
        stages,
        store=ResultStore(store) if store is not None else None,
        output=output,
    )
    for s in stages:
        s.backend.close()
    typer.echo(result.format())
    typer.echo(f"rows written to {output}")
