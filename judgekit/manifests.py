"""Reading YAML manifests (rubrics, calibration sets) into pydantic models with located errors."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


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
