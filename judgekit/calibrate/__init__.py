"""Calibration: judge outputs vs human labels -> agreement -> a card, a trust gate, a report."""

from judgekit.bias.length import LengthModel
from judgekit.calibrate.card import CalibrationCard, Interval, TrustThresholds, Verdict, card_key
from judgekit.calibrate.cards import (
    CARDS_DIR_ENV,
    CardError,
    NamedCard,
    NotCalibratedError,
    calibrate_command,
    check_card,
    default_cards_dir,
    read_card,
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
from judgekit.calibrate.project import CardChoice, ConfigError, choose_card
from judgekit.calibrate.run import check_calibrated, run_calibration
from judgekit.calibrate.trust import card_verdict, decide_trust

__all__ = [
    "CARDS_DIR_ENV",
    "CalibrationCard",
    "CardChoice",
    "CardError",
    "ConfigError",
    "Interval",
    "JudgeOutputs",
    "LengthModel",
    "NamedCard",
    "NotCalibratedError",
    "TrustThresholds",
    "Verdict",
    "calibrate",
    "calibrate_command",
    "card_key",
    "card_verdict",
    "check_calibrated",
    "check_card",
    "choose_card",
    "decide_trust",
    "default_cards_dir",
    "fit_length_model",
    "load_length_model",
    "outputs_from_run",
    "outputs_from_verdicts",
    "preference_for_a",
    "read_card",
    "require_calibrated",
    "run_calibration",
    "save_card",
]
