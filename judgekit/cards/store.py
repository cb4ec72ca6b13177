"""Where cards live, the one card check every consumer calls, and the trust gate.

A run uses exactly the card its user names (``--card PATH`` or the project config, see
``judgekit.config``), never one found in a cache: two machines with different caches give the
same numbers and gate results. ``load_card`` reads a card and checks that it fits the run (rubric
hash, judge fingerprint, the judge settings that change verdicts, the controls and decision rule,
the prompt variants): judge, cascade, abstention and drift all call it, and a mismatch is a
``CardError`` naming every field. The gate re-decides trust from the card's figures under the
gate's own thresholds.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from judgekit.cards.model import CalibrationCard, TrustThresholds, verdict_settings
from judgekit.cards.trust import card_verdict
from judgekit.files import cache_dir
from judgekit.rubrics import Rubric, load_rubric
from judgekit.schema import Controls, JudgeIdentity, StrictModel

CARDS_DIR_ENV = "JUDGEKIT_CARDS_DIR"


class CardRef(StrictModel):
    """The calibration card a run used (its controls, frozen corrections and trust gate)."""

    path: str
    key: str
    sha256: str = Field(description="Of the card file's bytes as read for this run.")


class CardError(ValueError):
    """A named card cannot be read, or was made for another rubric, judge or judge settings."""


class NotCalibratedError(RuntimeError):
    """No trusted held-out calibration card for this rubric version and judge."""


@dataclass(frozen=True)
class NamedCard:
    """A card as read for a run: its content and the reference the run manifest records."""

    card: CalibrationCard
    ref: CardRef


def default_cards_dir() -> Path:
    """``$JUDGEKIT_CARDS_DIR``, else ``<judgekit cache dir>/cards``: where calibration saves."""
    if env := os.environ.get(CARDS_DIR_ENV):
        return Path(env)
    return cache_dir() / "cards"


def save_card(card: CalibrationCard, cards_dir: Path | str) -> Path:
    """Write the card as ``<key>.json`` (atomically): the newest card for a key replaces the
    older one whatever its verdict, so a path pinned to it always reads the latest result."""
    directory = Path(cards_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{card.key}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(card.model_dump_json(indent=2) + "\n")
    tmp.replace(path)
    return path


def read_card(path: Path | str) -> NamedCard:
    """The card at ``path`` with its reference (path, key, sha256 of the bytes read)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CardError(f"card {path}: cannot read ({err.strerror or err})") from err
    try:
        card = CalibrationCard.model_validate_json(data)
    except ValueError as err:
        raise CardError(
            f"card {path}: not a valid calibration card of this judgekit version (re-run "
            f"`judgekit calibrate` to make one): {err}"
        ) from err
    digest = hashlib.sha256(data).hexdigest()
    return NamedCard(card, CardRef(path=str(path.resolve()), key=card.key, sha256=digest))


def card_mismatches(
    card: CalibrationCard,
    rubric: Rubric,
    judge: JudgeIdentity,
    controls: Controls | None = None,
    variants: Sequence[str] | None = None,
) -> list[str]:
    """Why ``card`` does not describe this rubric + judge (+ controls and variants, when the run
    sets its own rather than taking the card's); empty when it does."""
    problems = []
    if card.split.name != "heldout":
        problems.append(f"split is {card.split.name!r}, not 'heldout'")
    if card.rubric_hash != rubric.hash:
        problems.append(
            f"rubric hash {card.rubric_hash[:12]} ({card.rubric_ref}) != this run's "
            f"{rubric.hash[:12]} ({rubric.ref})"
        )
    if judge.fingerprint.startswith("hub:"):
        problems.append(
            f"judge {judge.model} is fingerprinted by its hub name only ({judge.fingerprint}), "
            "not by its weights; pass the local snapshot folder as the model"
        )
    elif card.judge_fingerprint != judge.fingerprint:
        problems.append(
            f"judge fingerprint {card.judge_fingerprint[:12]} ({card.judge_model}) != this "
            f"run's {judge.fingerprint[:12]} ({judge.model})"
        )
    ours = verdict_settings(judge.settings)
    for name in sorted(set(card.judge_settings) | set(ours)):
        theirs, mine = card.judge_settings.get(name), ours.get(name)
        if (name in ours) != (name in card.judge_settings) or theirs != mine:
            problems.append(f"judge setting {name}: card {theirs!r} != this run's {mine!r}")
    if controls is not None:
        certified = card.applies.controls.model_dump()
        for name, mine in controls.model_dump().items():
            if certified[name] != mine:
                problems.append(f"control {name}: card {certified[name]!r} != this run's {mine!r}")
    if variants is not None and sorted(variants) != sorted(card.applies.variants):
        problems.append(f"variants: card {card.applies.variants} != this run's {list(variants)}")
    return problems


def check_card(
    named: NamedCard,
    rubric: Rubric,
    judge: JudgeIdentity,
    controls: Controls | None = None,
    variants: Sequence[str] | None = None,
) -> None:
    """Refuse (``CardError``) a card made for another rubric, judge, settings or controls."""
    if problems := card_mismatches(named.card, rubric, judge, controls, variants):
        raise CardError(
            f"card {named.ref.path} does not fit this run:\n  - "
            + "\n  - ".join(problems)
            + f"\nMake a card for it with:\n  {calibrate_command(rubric.ref, judge.model)}"
        )


def load_card(
    path: Path | str,
    rubric: str | Rubric,
    judge: JudgeIdentity,
    *,
    controls: Controls | None = None,
    variants: Sequence[str] | None = None,
) -> NamedCard:
    """The one card check: read the card at ``path`` and refuse it unless it fits this run.

    ``controls`` / ``variants`` None: the run takes the card's own (``card.applies``).
    """
    named = read_card(path)
    check_card(named, load_rubric(rubric), judge, controls, variants)
    return named


def calibrate_command(rubric_ref: str, judge_model: str) -> str:
    """The CLI command that produces a held-out card for this rubric and judge."""
    model = "" if judge_model.startswith("embedded:") else f" --model {judge_model}"
    return f"judgekit calibrate --rubric {rubric_ref}{model} --set SET --split heldout --out DIR"


def require_calibrated(
    named: NamedCard | None,
    rubric: Rubric,
    judge: JudgeIdentity,
    thresholds: TrustThresholds | None = None,
) -> CalibrationCard:
    """The named card if it fits this run and passes ``thresholds`` now, else
    ``NotCalibratedError`` naming the ``judgekit calibrate`` command that makes a card.

    Trust is re-decided from the card's figures (``card_verdict``), not read from the verdict
    stored at calibration time, so the gate's thresholds are the ones that count.
    """
    thresholds = thresholds or TrustThresholds()
    make = (
        f"Make a card with:\n  {calibrate_command(rubric.ref, judge.model)}\n"
        "(SET: a human-labelled calibration set for this rubric's mode), then name it with "
        '--card PATH or pin it in judgekit.toml (card = "PATH")'
    )
    if named is None:
        raise NotCalibratedError(
            f"judge {judge.model} is not calibrated for rubric {rubric.ref}: no calibration "
            f"card named for this run. {make}"
        )
    try:
        check_card(named, rubric, judge)
    except CardError as err:
        raise NotCalibratedError(str(err)) from err
    verdict = card_verdict(named.card, thresholds)
    if not verdict.trusted:
        failed = "; ".join(r for r in verdict.reasons if r.startswith("FAIL"))
        raise NotCalibratedError(
            f"judge {judge.model} is not trusted for rubric {rubric.ref} by card "
            f"{named.ref.path} (set {named.card.set_name!r}, {named.card.created}): {failed}. "
            f"{make}"
        )
    return named.card
