"""The dev / held-out split: each item goes by sha256(salt, key), stable as sets grow.

Anything fitted to human labels (thresholds, length coefficients, calibrators) must be fitted on
dev only: ``require_dev`` guards every fitting step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np
from pydantic import Field

from judgekit.schema import StrictModel

DEFAULT_SALT = "judgekit-split-v1"


class HeldOutError(RuntimeError):
    """Something tried to fit on the held-out split, which would make its numbers optimistic."""


def heldout_mask(ids: Sequence[str], fraction: float = 0.5, salt: str = DEFAULT_SALT) -> np.ndarray:
    """True where an id is held out: sha256(salt, id) read as a uniform in [0, 1) is < fraction.

    Each id's side depends only on the id and the salt, never on order or on the other ids.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    mask = np.empty(len(ids), dtype=bool)
    for i, item_id in enumerate(ids):
        digest = hashlib.sha256(f"{salt}\0{item_id}".encode()).digest()
        mask[i] = int.from_bytes(digest[:8], "big") / 2**64 < fraction
    return mask


class Split(StrictModel):
    """The record of a split: enough to reproduce it (fraction, salt) and to check its size."""

    fraction: float = Field(ge=0, le=1)
    salt: str
    n_dev: int = Field(ge=0)
    n_heldout: int = Field(ge=0)

    @classmethod
    def of(cls, ids: Iterable[str], fraction: float = 0.5, salt: str = DEFAULT_SALT) -> Split:
        mask = heldout_mask(list(ids), fraction, salt)
        n_heldout = int(mask.sum())
        return cls(fraction=fraction, salt=salt, n_dev=len(mask) - n_heldout, n_heldout=n_heldout)

    def mask(self, ids: Sequence[str]) -> np.ndarray:
        """Held-out mask of ``ids`` under this split's fraction and salt."""
        return heldout_mask(ids, self.fraction, self.salt)


def require_dev(split_name: str) -> None:
    """Guard for every fitting step: raises unless it is about to fit on the dev split."""
    if split_name == "heldout":
        raise HeldOutError(
            "refusing to fit on the held-out split: thresholds, length coefficients and rubric "
            "choices must be fitted on 'dev' only, or held-out numbers are no longer unbiased"
        )
    if split_name != "dev":
        raise ValueError(f"unknown split {split_name!r}: expected 'dev' or 'heldout'")
