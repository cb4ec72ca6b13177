"""The dev / held-out split: each group goes by sha256(salt, group key), stable as sets grow.

The key is the item's group (its question, article or prompt, named by the set manifest's
``split_group``), not its id: items that share an article or question land on the same side, so
nothing fitted on dev has seen held-out content. Anything fitted to human labels (thresholds,
length coefficients, calibrators) must be fitted on dev only: ``require_dev`` guards every fitting
step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

import numpy as np
from pydantic import Field

from judgekit.schema import StrictModel

DEFAULT_SALT = "judgekit-split-v1"


class HeldOutError(RuntimeError):
    """Something tried to fit on the held-out split, which would make its numbers optimistic."""


def heldout_mask(ids: Sequence[str], fraction: float = 0.5, salt: str = DEFAULT_SALT) -> np.ndarray:
    """True where a key is held out: sha256(salt, key) read as a uniform in [0, 1) is < fraction.

    Each key's side depends only on the key and the salt, never on order or on the other keys;
    pass group keys (``split_records``) so that items of one group share a side.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    mask = np.empty(len(ids), dtype=bool)
    for i, item_id in enumerate(ids):
        digest = hashlib.sha256(f"{salt}\0{item_id}".encode()).digest()
        mask[i] = int.from_bytes(digest[:8], "big") / 2**64 < fraction
    return mask


class Grouped(Protocol):
    @property
    def group(self) -> str: ...


G = TypeVar("G", bound=Grouped)


def split_records(
    records: Sequence[G], split: str, fraction: float = 0.5, salt: str = DEFAULT_SALT
) -> list[G]:
    """The records of ``split`` ("heldout", "dev" or "all"), in order; a group never straddles."""
    if split == "all":
        return list(records)
    if split not in ("heldout", "dev"):
        raise ValueError(f"unknown split {split!r}: expected 'heldout', 'dev' or 'all'")
    mask = heldout_mask([r.group for r in records], fraction, salt)
    return [r for r, held in zip(records, mask, strict=True) if held == (split == "heldout")]


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
