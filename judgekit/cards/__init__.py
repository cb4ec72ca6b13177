"""Calibration cards: the model, its key, the one card check (``load_card``) and the trust gate.

A card is made by ``judgekit.calibrate`` and applied by runs (``judgekit.judge(..., card=...)``),
cascades, abstention and drift: this package sits below both, so the run and the calibration read
the same card model and the same check.
"""

from judgekit.cards.certificate import (
    ChangeCertificate,
    card_certificates,
    record_certificate,
)
from judgekit.cards.model import (
    CalibrationCard,
    CalibrationOptions,
    CardControls,
    Interval,
    TrustThresholds,
    Verdict,
    card_key,
    verdict_settings,
)
from judgekit.cards.store import (
    CARDS_DIR_ENV,
    CardError,
    CardRef,
    NamedCard,
    NotCalibratedError,
    calibrate_command,
    card_mismatches,
    check_card,
    default_cards_dir,
    load_card,
    read_card,
    require_calibrated,
    save_card,
)
from judgekit.cards.trust import card_verdict, decide_trust

__all__ = [
    "CARDS_DIR_ENV",
    "CalibrationCard",
    "CalibrationOptions",
    "CardControls",
    "CardError",
    "CardRef",
    "ChangeCertificate",
    "Interval",
    "NamedCard",
    "NotCalibratedError",
    "TrustThresholds",
    "Verdict",
    "calibrate_command",
    "card_certificates",
    "card_key",
    "card_mismatches",
    "card_verdict",
    "check_card",
    "decide_trust",
    "default_cards_dir",
    "load_card",
    "read_card",
    "record_certificate",
    "require_calibrated",
    "save_card",
    "verdict_settings",
]
