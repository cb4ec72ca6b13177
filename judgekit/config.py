"""The project config: named judges, the pinned calibration card and trust thresholds.

``judgekit.toml`` (top level) or, when there is none, ``pyproject.toml`` (``[tool.judgekit]``)::

    card = "cards/pairwise_smol.json"     # relative to the config file
    [trust]                               # pyproject: [tool.judgekit.trust]
    min_kappa_ci_low = 0.5
    [judge.small]                         # --judge small
    backend = "vllm"
    model = "/models/Qwen2.5-7B-Instruct"
    [judge.big]
    backend = "openai"
    base_url = ["http://judge-1:8000/v1", "http://judge-2:8000/v1"]

Only the working directory is read (no parent search, no user-wide file): what a run uses is
what the project checked in, so the same checkout gives the same gates on any machine.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from judgekit.backends.spec import JudgeSpec
from judgekit.cards.model import TrustThresholds
from judgekit.schema import StrictModel

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_FILE = "judgekit.toml"


class ConfigError(ValueError):
    """The project config file is unreadable or has unknown or invalid fields."""


class ProjectConfig(StrictModel):
    card: str | None = None
    trust: TrustThresholds = TrustThresholds()
    judge: dict[str, JudgeSpec] = Field(default_factory=dict)


@dataclass(frozen=True)
class CardChoice:
    """The card a run uses (None: no card, so no correction or calibrator applies) and the
    trust gate's thresholds, with where each came from."""

    path: Path | None
    source: str
    thresholds: TrustThresholds


def read_project_config(directory: Path) -> tuple[ProjectConfig, Path | None]:
    """The config in ``directory`` and its file (None when the project has none)."""
    own, pyproject = directory / CONFIG_FILE, directory / "pyproject.toml"
    if own.is_file():
        return _parse(own, lambda raw: raw), own
    if pyproject.is_file():
        table = _parse(pyproject, lambda raw: raw.get("tool", {}).get("judgekit"))
        if table.model_fields_set:
            return table, pyproject
    return ProjectConfig(), None


def _parse(path: Path, select: Any) -> ProjectConfig:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: cannot read as TOML: {err}") from err
    try:
        return ProjectConfig.model_validate(select(raw) or {})
    except ValidationError as err:
        problems = "; ".join(
            f"field {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"{path}: {problems}") from err


def choose_card(card: Path | str | None, directory: Path | None = None) -> CardChoice:
    """``card`` if given (``--card``), else the card pinned in the project config, else none.

    Thresholds come from the project config's ``trust`` table, else the defaults.
    """
    config, file = read_project_config(directory or Path.cwd())
    if card is not None:
        return CardChoice(Path(card), "--card", config.trust)
    if config.card is not None and file is not None:
        return CardChoice(file.parent / config.card, str(file), config.trust)
    return CardChoice(None, "none named", config.trust)


def named_judge(name: str, directory: Path | None = None) -> JudgeSpec:
    """The judge ``[judge.NAME]`` of the project config (a ConfigError names the ones there are).

    A relative local model, tokenizer or verdicts path is relative to the config file.
    """
    config, file = read_project_config(directory or Path.cwd())
    if name not in config.judge:
        where = str(file) if file is not None else f"no {CONFIG_FILE} in {directory or Path.cwd()}"
        known = ", ".join(sorted(config.judge)) or "none"
        raise ConfigError(f"judge {name!r} is not defined ({where}; judges there: {known})")
    spec = config.judge[name]
    assert file is not None
    paths = {
        key: str(file.parent / value)
        for key in ("model", "tokenizer", "verdicts")
        if isinstance(value := getattr(spec, key, None), str)
        and not Path(value).is_absolute()
        and (file.parent / value).exists()
    }
    return spec.model_copy(update=paths) if paths else spec
