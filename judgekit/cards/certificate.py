"""A change certificate: whether a changed judge configuration may replace a reference one.

Made by ``judgekit.audit.certify.certify_change``; kept here, below the runs and beside the
cards, so a card's reader can list the certificates recorded next to it
(``record_certificate`` / ``card_certificates``) without the card file ever changing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from judgekit.cards.model import Interval
from judgekit.cards.store import CardError
from judgekit.schema import Controls, JudgeIdentity, StrictModel

CertificateVerdict = Literal["SAFE", "NOT SAFE", "INCONCLUSIVE"]
#: Folder beside a card (``<card stem>.certificates/``) holding the certificates recorded on it.
CERTIFICATES_SUFFIX = ".certificates"


class ConfigurationRecord(StrictModel):
    """One side of the comparison: who judged (identity as the runs recorded it) and how."""

    judge: JudgeIdentity
    spec: dict[str, Any] = Field(description="The judge spec as given (JudgeSpec fields).")
    rubric_ref: str
    rubric_hash: str
    variants: list[str]
    controls: Controls
    run_options: dict[str, Any] = Field(
        description="Options of judging.judge beyond the spec (batch size, label mass ...)."
    )
    n_invalid: int


class CertificateRule(StrictModel):
    """The decision rule with its parameters (docs/certify.md states it)."""

    metric: Literal["kappa", "spearman"]
    delta: float = Field(description="Non-inferiority margin on the agreement metric.")
    alpha: float = Field(description="Size of each test; intervals at level 1 - alpha.")
    max_flip_rate: float = Field(description="Bound on the share of verdicts the change moves.")
    n_resamples: int
    seed: int


class ChangeCertificate(StrictModel):
    """Figures and verdict of one certified change (all intervals at level 1 - alpha, their
    ends one-sided bounds at alpha / 2; clusters resampled or summed as ``group_by`` says)."""

    created: str
    reference: ConfigurationRecord
    changed: ConfigurationRecord
    changes: list[str] = Field(description="What differs, as KEY: reference -> changed.")
    set_name: str
    set_sha256: str
    split: str
    heldout_fraction: float
    items_sha256: str = Field(description="Of the judged items (ids and content, in order).")
    n: int
    n_groups: int
    group_by: str
    rule: CertificateRule
    agreement_reference: Interval | None
    agreement_changed: Interval | None
    agreement_difference: Interval = Field(description="changed - reference, paired bootstrap.")
    verdict_kappa: Interval | None = Field(description="Kappa between the two judges' verdicts.")
    flip_rate: Interval = Field(description="Share of items whose verdict differs.")
    score_shift: Interval | None = Field(
        description="Mean paired shift of the expected score (pairwise: of P(A)), changed - ref."
    )
    non_inferior: bool
    inferior: bool
    verdict: CertificateVerdict
    reasons: list[str]
    card: str | None = Field(default=None, description="The card recorded on (path).")
    card_sha256: str | None = None
    notes: list[str] = Field(default_factory=list)

    @property
    def key(self) -> str:
        """Content address of the two configurations, the items and the rule."""
        parts = [
            self.reference.model_dump_json(),
            self.changed.model_dump_json(),
            self.items_sha256,
            self.rule.model_dump_json(),
        ]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def certificates_dir(card: Path | str) -> Path:
    """Where certificates recorded on ``card`` live: ``<card stem>.certificates/`` beside it."""
    path = Path(card)
    return path.with_name(path.stem + CERTIFICATES_SUFFIX)


def record_certificate(certificate: ChangeCertificate, card: Path | str) -> Path:
    """Write the certificate beside the card (the card's own file is never touched)."""
    folder = certificates_dir(card)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{certificate.key}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(certificate.model_dump_json(indent=2) + "\n")
    tmp.replace(path)
    return path


def card_certificates(card: Path | str) -> list[ChangeCertificate]:
    """The certificates recorded on ``card``, oldest first (a CardError names a bad file)."""
    found = []
    for path in sorted(certificates_dir(card).glob("*.json")):
        try:
            found.append(ChangeCertificate.model_validate_json(path.read_bytes()))
        except ValueError as err:
            raise CardError(f"certificate {path}: not a valid change certificate: {err}") from err
    return sorted(found, key=lambda c: c.created)
