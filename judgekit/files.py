"""Files: where judgekit caches, how it identifies files by content, how it reads YAML manifests."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def cache_dir() -> Path:
    """``$JUDGEKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/judgekit``, else ``~/.cache/judgekit``."""
    if env := os.environ.get("JUDGEKIT_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "judgekit"


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (model files are large)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_yaml_model(path: Path, model: type[M], error: type[Exception]) -> M:
    """Parse ``path`` and validate it as ``model``; ``error`` names the file and each bad field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise error(f"{path}: no such file") from err
    except yaml.YAMLError as err:
        raise error(f"{path}: invalid YAML: {err}") from err
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(
            f"field {'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
            for e in err.errors()
        )
        raise error(f"{path}: {problems}") from err
