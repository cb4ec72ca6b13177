"""Old module paths (judgekit 0.1) as aliases of their new homes, each import warning once.

Removed in judgekit 0.3; see CHANGELOG.md for where each module went.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

MOVED = {
    "judgekit.aggregate": "judgekit.judging.aggregate",
    "judgekit.calibration": "judgekit.calibrate",
    "judgekit.calibration_run": "judgekit.calibrate.run",
    "judgekit.datasets": "judgekit.data.sets",
    "judgekit.diff": "judgekit.ci.diff",
    "judgekit.gates": "judgekit.ci.gates",
    "judgekit.manifest": "judgekit.judging.run_manifest",
    "judgekit.manifests": "judgekit.files",
    "judgekit.prompts": "judgekit.judging.plan",
    "judgekit.pytest_plugin": "judgekit.ci.pytest_plugin",
    "judgekit.records": "judgekit.data.records",
    "judgekit.report": "judgekit.calibrate.report",
    "judgekit.rubric": "judgekit.rubrics",
    "judgekit.runner": "judgekit.judging",
    "judgekit.scoring": "judgekit.judging.score",
    "judgekit.store": "judgekit.judging.store",
    "judgekit.summary": "judgekit.judging.summary",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module name and hands back the new module object under it."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> object:
        if name not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} moved to {new}; the old path goes away in judgekit 0.3",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """The module is already executed under its new name."""


def install() -> None:
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
