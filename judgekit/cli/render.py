"""``judgekit render``: print the exact prompts the judge will see, without starting an engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from judgekit.backends.prompt import render_requests
from judgekit.backends.vllm_engine import chat_encoder
from judgekit.cli.app import RubricsDir, app, pairs_option
from judgekit.data.records import read_items
from judgekit.judging.plan import plan_requests
from judgekit.rubrics import load_rubric


@app.command()
def render(
    rubric: Annotated[str, typer.Option(help="Rubric NAME or NAME@vN.")],
    input: Annotated[Path, typer.Option("--input", "-i", help="Items: JSONL, CSV or Parquet.")],
    n: Annotated[int, typer.Option("-n", help="Items to render (all their requests).")] = 3,
    model: Annotated[
        str | None, typer.Option(help="Judge model dir or hub id (default: embedded SmolLM2).")
    ] = None,
    variant: Annotated[
        list[str] | None, typer.Option(help="Prompt variant(s) (default: all).")
    ] = None,
    column: Annotated[
        list[str] | None, typer.Option(help="Map FIELD=COLUMN, e.g. question=prompt.")
    ] = None,
    ids: Annotated[bool, typer.Option(help="Also print the token ids.")] = True,
    rubrics_dir: RubricsDir = None,
) -> None:
    """Print each prompt's text (special tokens as ⟦…⟧), token ids, counts and shared prefix."""
    chosen = load_rubric(rubric, paths=rubrics_dir or [])
    items = read_items(input, chosen.manifest.mode, columns=pairs_option(column))[:n]
    requests = [
        p.request for item in items for p in plan_requests(chosen, [item], variants=variant)
    ]
    for prompt in render_requests(chat_encoder(model), requests):
        labels = ", ".join(
            f"{label}={'|'.join(str(list(s)) for s in seqs)}"
            for label, seqs in prompt.slot.sequences.items()
        )
        typer.echo(
            f"=== {prompt.key}: {len(prompt.ids)} tokens, {prompt.n_special} special, "
            f"shared prefix {prompt.shared_prefix} with the previous prompt of its group"
        )
        typer.echo(prompt.marked_text)
        if ids:
            typer.echo(f"--- ids: {prompt.ids}")
        typer.echo(f"--- label tokens after {prompt.slot.tail!r}: {labels}\n")
