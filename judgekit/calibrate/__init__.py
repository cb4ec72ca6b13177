"""Calibration: judge outputs vs human labels -> agreement -> a card (``judgekit.cards``) and a
report. The card records the controls and decision rule it certifies; runs apply them."""

from judgekit.calibrate.length_card import fit_length_model
from judgekit.calibrate.measure import calibrate
from judgekit.calibrate.outputs import JudgeOutputs, outputs_from_run, preference_for_a
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
