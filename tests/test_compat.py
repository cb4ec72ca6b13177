"""judgekit 0.1 import paths still work for one minor version, each with a DeprecationWarning."""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest

import judgekit
from judgekit._compat import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_path_imports_the_new_module_with_a_warning(old: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match="moved to"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED[old])


def test_old_names_resolve_to_the_same_objects() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from judgekit.calibration import CalibrationCard, require_calibrated
        from judgekit.runner import JudgeRun, judge
    from judgekit.calibrate import CalibrationCard as card
    from judgekit.calibrate import require_calibrated as gate

    assert (CalibrationCard, require_calibrated) == (card, gate)
    assert (JudgeRun, judge) == (judgekit.JudgeRun, judgekit.judge)


def test_public_api_is_listed() -> None:
    for name in judgekit.__all__:
        assert hasattr(judgekit, name), name
