"""Calibration: judge outputs vs human labels -> agreement -> a card, a trust gate, a report."""

from judgekit.bias.length import LengthModel
from judgekit.calibrate.card import CalibrationCard, Interval, TrustThresholds, Verdict, card_key
from judgekit.calibrate.cards import (
    CARDS_DIR_ENV,
    NotCalibratedError,
    calibrate_command,
    default_cards_dir,
    find_card,
    require_calibrated,
    save_card,
)
from judgekit.calibrate.length_card import fit_length_model, load_length_model
from judgekit.calibrate.measure import calibrate
from judgekit.calibrate.outputs import (
    JudgeOutputs,
    outputs_from_run,
    outputs_from_verdicts,
    preference_for_a,
)
from judgekit.calibrate.run import check_calibrated, run_calibration
from judgekit.calibrate.trust import decide_trust

__all__ = [
    "CARDS_DIR_ENV",
    "CalibrationCard",
    "Interval",
    "JudgeOutputs",
    "LengthModel",
    "NotCalibratedError",
    "TrustThresholds",
    "Verdict",
    "calibrate",
    "calibrate_command",
    "card_key",
    "check_calibrated",
    "decide_trust",
    "default_cards_dir",
    "find_card",
    "fit_length_model",
    "load_length_model",
    "outputs_from_run",
    "outputs_from_verdicts",
    "preference_for_a",
    "require_calibrated",
    "run_calibration",
    "save_card",
]
