"""Calibration: judge outputs vs human labels -> agreement -> a card (``judgekit.cards``) and a
report. The card records the controls and decision rule it certifies; runs apply them.

``run.py`` (and ``criteria.py`` for multi-criterion rubrics) holds the steps; ``fit/`` the
corrections fitted on dev and frozen into the card; ``measure/`` everything measured against
human labels (the card itself: ``measure.card.calibrate``); ``report/`` the reviewer's files.
"""

from judgekit.calibrate.fit.length import fit_length_model
from judgekit.calibrate.measure.card import calibrate
from judgekit.calibrate.measure.outputs import JudgeOutputs, outputs_from_run, preference_for_a
from judgekit.calibrate.run import CalibrationResult, check_calibrated, run_calibration

__all__ = [
    "CalibrationResult",
    "JudgeOutputs",
    "calibrate",
    "check_calibrated",
    "fit_length_model",
    "outputs_from_run",
    "preference_for_a",
    "run_calibration",
]
