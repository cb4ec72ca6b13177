"""A backend that serves precomputed verdicts: an API judge's outputs a team already paid for.

Each verdict becomes a one-hot label distribution, so replayed judges go through the same
scoring, swap, calibration and cascade code as a live one. In the BA order the verdict is
swapped (the replayed judge saw the original order; "A" shown second is "B" in that prompt), so
unswapping gives back the original verdict and the two orders always agree. A missing verdict, or
one that is not a label of the rubric, is an error result (an invalid verdict, counted), never a
default label.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from judgekit.schema import JudgeIdentity, LabelLogprobs, LabelRequest

CHARS_PER_TOKEN = 4.0
_SWAPPED = {"A": "B", "B": "A"}


class ReplayBackend:
    """Verdicts by item id in, one-hot label log-probabilities out (``Backend`` protocol).

    ``num_prompt_tokens`` is an estimate, the rendered prompt's characters / ``CHARS_PER_TOKEN``
    (the replayed judge's own tokenizer is unknown), so cascades can report what escalating to
    that judge would cost in prompt tokens; the identity's settings say so.
    """

    def __init__(
        self, verdicts: Mapping[str, str | None], *, model: str, source: str = "in-memory"
    ) -> None:
        self._verdicts = dict(verdicts)
        digest = hashlib.sha256(json.dumps(sorted(self._verdicts.items())).encode()).hexdigest()
        self._identity = JudgeIdentity(
            backend="replay",
            model=model,
            fingerprint="replay:" + digest[:16],
            settings={"source": source, "prompt_tokens": f"estimated: chars/{CHARS_PER_TOKEN:g}"},
        )

    @property
    def identity(self) -> JudgeIdentity:
        return self._identity

    def score(self, requests: Sequence[LabelRequest]) -> list[LabelLogprobs]:
        return [self._one(request) for request in requests]

    def close(self) -> None:
        """Nothing to release."""

    def _one(self, request: LabelRequest) -> LabelLogprobs:
        item_id, _variant, order = request.key.rsplit("|", 2)
        tokens = round(sum(len(m.content) for m in request.messages) / CHARS_PER_TOKEN)
        verdict = self._verdicts.get(item_id)
        if verdict is None:
            return LabelLogprobs({}, tokens, 0, error=f"no replayed verdict for item {item_id!r}")
        shown = _SWAPPED.get(verdict, verdict) if order == "BA" else verdict
        if shown not in request.labels:
            return LabelLogprobs(
                {},
                tokens,
                0,
                error=f"replayed verdict {verdict!r} is not a label of {list(request.labels)}",
            )
        return LabelLogprobs({shown: 0.0}, tokens, 0)
