"""From label log-probabilities to a verdict: renormalise, measure label mass, expected score.

One function for every backend, so an engine and a server give the same verdict for the same
logits. A verdict with too little mass on valid labels is *invalid*: kept, counted and reported,
never replaced by a default label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LabelScore:
    """The judge's verdict on one request.

    ``probs`` (renormalised over the label set, summing to 1) is None when the verdict is invalid;
    ``mass`` is the probability the judge put on valid labels before renormalising.
    """

    probs: dict[str, float] | None
    mass: float
    expected: float | None
    label: str | None
    invalid_reason: str | None

    @property
    def valid(self) -> bool:
        return self.probs is not None


def score_labels(
    logprobs: Mapping[str, float],
    labels: Sequence[str],
    values: Sequence[float],
    *,
    min_label_mass: float,
    error: str | None = None,
    measured: bool = True,
) -> LabelScore:
    """Verdict from the label log-probabilities of one forward pass.

    Labels missing from ``logprobs`` (outside the backend's top-k) count as zero probability.
    The expected score is ``sum(p * value)`` (G-Eval style); for pairwise rubrics the values
    encode the preference for answer A, so it is P(A preferred). An exact tie for the most
    probable label gives no label (the verdict stays valid: ``probs`` and ``expected`` are set),
    because picking the first listed label would turn every tie into a win for it.

    ``measured=False`` (a label parsed from generated text, ``label_logprobs="text"``): no
    probability was measured, so a parsed label is a one-hot verdict with mass 0.0 (not 1.0, which
    would read as certainty) and the mass threshold does not apply; no label is invalid.
    """
    raw = [math.exp(logprobs[label]) if label in logprobs else 0.0 for label in labels]
    mass = math.fsum(raw)
    if error is not None:
        return LabelScore(None, mass, None, None, error)
    if not measured:
        return _parsed(logprobs, labels, values)
    if mass < min_label_mass:
        return LabelScore(
            None, mass, None, None, f"label mass {mass:.3g} below threshold {min_label_mass:g}"
        )
    probs = {label: p / mass for label, p in zip(labels, raw, strict=True)}
    expected = math.fsum(probs[label] * v for label, v in zip(labels, values, strict=True))
    top = max(probs.values())
    best = [label for label in labels if probs[label] == top]
    return LabelScore(probs, min(mass, 1.0), expected, best[0] if len(best) == 1 else None, None)


def _parsed(
    logprobs: Mapping[str, float], labels: Sequence[str], values: Sequence[float]
) -> LabelScore:
    """A verdict read from text: the label it spells, probability unknown (mass 0.0)."""
    spelled = [label for label in labels if label in logprobs]
    if len(spelled) != 1:
        return LabelScore(None, 0.0, None, None, "no label parsed from the generated text")
    label = spelled[0]
    probs = {other: float(other == label) for other in labels}
    return LabelScore(probs, 0.0, values[labels.index(label)], label, None)


@dataclass(frozen=True)
class Scorer:
    """``score_labels`` with a run's label set, threshold and kind of measurement bound: what an
    executor applies where the results are produced (a Ray actor scores its own batch)."""

    labels: tuple[str, ...]
    values: tuple[float, ...]
    min_label_mass: float
    measured: bool = True

    def __call__(self, logprobs: Mapping[str, float], error: str | None = None) -> LabelScore:
        return score_labels(
            logprobs,
            self.labels,
            self.values,
            min_label_mass=self.min_label_mass,
            error=error,
            measured=self.measured,
        )
