"""Style features of a battle, as Arena-Hard-Auto (v2) defines them for its style control.

Per answer: its length and three markdown counts (headers, list items, bold spans), counted
after the contents of fenced code blocks are removed. Per battle (A minus B):
length (L_a - L_b) / (L_a + L_b); for each markdown element its density c / (L + 1) and the
feature (dens_a - dens_b) / (dens_a + dens_b + 1). Each feature is then standardised over the
battles (mean 0, sample sd 1), so a coefficient reads "per standard deviation of the feature".

The regular expressions are Arena-Hard's (``utils/add_markdown_info.py``), including how it
strips code: the text between each pair of fences is deleted wherever it occurs. Arena-Hard
measures length in tiktoken tokens; judgekit takes the length function as an argument
(characters by default, as AlpacaEval's length control does) and records which one was used.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["STYLE_FEATURES", "markdown_counts", "style_features", "style_matrix"]

STYLE_FEATURES = ("length", "headers", "lists", "bold")
_CODE = re.compile("```([^`]*)```")
_HEADERS = [re.compile(rf"^#{{{k}}}\s", re.MULTILINE) for k in range(1, 7)]
_LISTS = [re.compile(r"^\s*\d+\.\s", re.MULTILINE), re.compile(r"^\s*[-*+]\s", re.MULTILINE)]
_BOLD = [re.compile(r"\*\*[^*\n]+\*\*"), re.compile(r"__[^_\n]+__")]


def _strip_code(text: str) -> str:
    for block in _CODE.findall(text):
        text = text.replace(block, "")
    return text


def markdown_counts(text: str) -> tuple[int, int, int]:
    """(headers, list items, bold spans) outside code blocks."""
    text = _strip_code(text)
    return (
        sum(len(p.findall(text)) for p in _HEADERS),
        sum(len(p.findall(text)) for p in _LISTS),
        sum(len(p.findall(text)) for p in _BOLD),
    )


def style_matrix(
    lengths_a: np.ndarray, counts_a: np.ndarray, lengths_b: np.ndarray, counts_b: np.ndarray
) -> np.ndarray:
    """Unstandardised (N, 4) features from lengths (N,) and markdown counts (N, 3) per side."""
    la, lb = np.asarray(lengths_a, float), np.asarray(lengths_b, float)
    ca, cb = np.asarray(counts_a, float), np.asarray(counts_b, float)
    total = la + lb
    if np.any(total <= 0):
        raise ValueError(f"row {int(np.argmax(total <= 0))}: both answers are empty")
    dens_a, dens_b = ca / (la[:, None] + 1), cb / (lb[:, None] + 1)
    return np.column_stack([(la - lb) / total, (dens_a - dens_b) / (dens_a + dens_b + 1)])


def style_features(
    answers_a: Sequence[str],
    answers_b: Sequence[str],
    *,
    length: Callable[[str], int] = len,
    features: Sequence[str] = STYLE_FEATURES,
) -> np.ndarray:
    """Standardised (N, len(features)) style differences A minus B, columns in ``features`` order.

    A feature that is constant over the battles (e.g. no answer uses bold) cannot be estimated
    and raises; leave it out of ``features``.
    """
    unknown = set(features) - set(STYLE_FEATURES)
    if unknown or not features:
        raise ValueError(f"features must be a non-empty subset of {STYLE_FEATURES}: {features}")
    if len(answers_a) != len(answers_b):
        raise ValueError(f"{len(answers_a)} answers A but {len(answers_b)} answers B")
    cache: dict[str, tuple[int, tuple[int, int, int]]] = {}

    def describe(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        for text in texts:
            if text not in cache:
                cache[text] = (length(text), markdown_counts(text))
        return (
            np.array([cache[t][0] for t in texts], float),
            np.array([cache[t][1] for t in texts], float).reshape(-1, 3),
        )

    raw = style_matrix(*describe(answers_a), *describe(answers_b))
    raw = raw[:, [STYLE_FEATURES.index(f) for f in features]]
    sd = raw.std(axis=0, ddof=1) if raw.shape[0] > 1 else np.zeros(raw.shape[1])
    flat = [f for f, s in zip(features, sd, strict=True) if not s > 0]
    if flat:
        raise ValueError(f"style feature(s) {flat} are constant over the battles; leave them out")
    return (raw - raw.mean(axis=0)) / sd
