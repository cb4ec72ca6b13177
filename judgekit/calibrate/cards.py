"""Where cards live and which one a run may use: save, find, and the trust gate."""

from __future__ import annotations

import os
from pathlib import Path

from judgekit.calibrate.card import CalibrationCard
from judgekit.files import cache_dir

CARDS_DIR_ENV = "JUDGEKIT_CARDS_DIR"


class NotCalibratedError(RuntimeError):
    """No trusted held-out calibration card for this rubric version and judge."""


def default_cards_dir() -> Path:
    """``$JUDGEKIT_CARDS_DIR``, else ``<judgekit cache dir>/cards``."""
    if env := os.environ.get(CARDS_DIR_ENV):
        return Path(env)
    return cache_dir() / "cards"


def save_card(card: CalibrationCard, cards_dir: Path | str) -> Path:
    """Write the card as ``<key>.json`` (atomically); a newer card for the same key replaces it."""
    directory = Path(cards_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{card.key}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(card.model_dump_json(indent=2) + "\n")
    tmp.replace(path)
    return path


def cards_for(rubric_hash: str, judge_fingerprint: str, cards_dir: Path) -> list[CalibrationCard]:
    """Held-out cards of this rubric and judge, newest first."""
    if not cards_dir.is_dir():
        return []
    cards = []
    for path in sorted(cards_dir.glob("*.json")):
        try:
            card = CalibrationCard.model_validate_json(path.read_text())
        except ValueError as err:
            raise ValueError(f"{path}: not a valid calibration card: {err}") from err
        if (
            card.rubric_hash == rubric_hash
            and card.judge_fingerprint == judge_fingerprint
            and card.split.name == "heldout"
        ):
            cards.append(card)
    return sorted(cards, key=lambda c: c.created, reverse=True)


def find_card(
    rubric_hash: str, judge_fingerprint: str, cards_dir: Path | str
) -> CalibrationCard | None:
    """The newest trusted held-out card for this rubric version and judge, on any set."""
    cards = cards_for(rubric_hash, judge_fingerprint, Path(cards_dir))
    return next((c for c in cards if c.verdict.trusted), None)


def calibrate_command(rubric_ref: str, judge_model: str) -> str:
    """The CLI command that produces a held-out card for this rubric and judge."""
    model = "" if judge_model.startswith("embedded:") else f" --model {judge_model}"
    return f"judgekit calibrate --rubric {rubric_ref}{model} --set SET --split heldout --out DIR"


def require_calibrated(
    rubric_hash: str,
    rubric_ref: str,
    judge_fingerprint: str,
    judge_model: str,
    cards_dir: Path | str | None = None,
) -> CalibrationCard:
    """The trusted held-out card for this rubric and judge, else ``NotCalibratedError``.

    The error names the ``judgekit calibrate`` command that makes a card.
    """
    directory = Path(cards_dir) if cards_dir is not None else default_cards_dir()
    cards = cards_for(rubric_hash, judge_fingerprint, directory)
    trusted = next((c for c in cards if c.verdict.trusted), None)
    if trusted is not None:
        return trusted
    found = (
        f"{len(cards)} held-out card(s) exist but none is trusted (newest, set "
        f"{cards[0].set_name!r}: "
        + "; ".join(r for r in cards[0].verdict.reasons if r.startswith("FAIL"))
        + ")"
        if cards
        else "no held-out calibration card exists"
    )
    raise NotCalibratedError(
        f"judge {judge_model} (fingerprint {judge_fingerprint[:12]}) is not calibrated for rubric "
        f"{rubric_ref} (hash {rubric_hash[:12]}) in {directory}: {found}. Make a card with:\n"
        f"  {calibrate_command(rubric_ref, judge_model)}\n"
        "(SET: a human-labelled calibration set for this rubric's mode)"
    )
