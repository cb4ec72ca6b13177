"""A backend that serves precomputed verdicts: an API judge's outputs a team already paid for.

Each verdict becomes a label distribution, so replayed judges go through the same scoring, swap,
decision, calibration and cascade code as a live one: a rubric label is one-hot; "tie" under a
rubric without a tie label is an even split between A and B (the decision rule reads it as a tie,
never as a win). In the BA order the verdict is swapped (the replayed judge saw the original order;
"A" shown second is "B" in that prompt), so unswapping gives back the original verdict and the two
orders always agree. Verdicts made in both orders (``verdict_ab`` / ``verdict_ba``) are replayed
per order instead, so the run's swap rule combines them exactly as it combines a live judge's
(two orders that disagree make a tie). A missing verdict, or one that is not a label of the
rubric, is an error result (an invalid verdict, counted), never a default label.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from judgekit.backends.base import BackendBase
from judgekit.schema import JudgeIdentity, LabelLogprobs, LabelRequest

CHARS_PER_TOKEN = 4.0
TIE = "tie"
_SWAPPED = {"A": "B", "B": "A"}
_HALF = math.log(0.5)


class ReplayError(ValueError):
    """A verdicts file cannot be read (the message names the file, row and field)."""


def read_verdicts(
    path: Path | str, *, id_field: str, verdict_field: str, label_map: Mapping[str, str]
) -> dict[str, str | None]:
    """Verdicts of another judge by item id; values outside ``label_map`` stay as written.

    JSON (a list of objects) or JSONL. Unparseable verdicts are kept, to be counted invalid.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        rows = (
            json.loads(text)
            if path.suffix == ".json"
            else [json.loads(line) for line in text.splitlines() if line.strip()]
        )
    except OSError as err:
        raise ReplayError(f"{path}: cannot read ({err.strerror or err})") from err
    except json.JSONDecodeError as err:
        raise ReplayError(f"{path}: not valid JSON: {err}") from err
    verdicts: dict[str, str | None] = {}
    for n, row in enumerate(rows, start=1):
        for field in (id_field, verdict_field):
            if field not in row:
                raise ReplayError(f"{path}: row {n}: field {field!r} missing")
        raw = row[verdict_field]
        verdict = None if raw is None else str(raw).strip()
        verdicts[str(row[id_field])] = label_map.get(verdict, verdict) if verdict else None
    return verdicts


class ReplayBackend(BackendBase):
    """Verdicts by item id in, label log-probabilities out (``Backend`` protocol).

    ``verdicts_ba``: the verdicts of the BA presentation, by original letters (A = answer_a)
    unless ``ba_as_shown``; BA requests read them, AB requests ``verdicts``.
    ``num_prompt_tokens`` is an estimate, the rendered prompt's characters / ``CHARS_PER_TOKEN``
    (the replayed judge's own tokenizer is unknown), so cascades can report what escalating to
    that judge would cost in prompt tokens; the identity's settings say so.
    """

    def __init__(
        self,
        verdicts: Mapping[str, str | None],
        *,
        model: str,
        source: str = "in-memory",
        verdicts_ba: Mapping[str, str | None] | None = None,
        ba_as_shown: bool = False,
    ) -> None:
        self._verdicts = dict(verdicts)
        self._ba = dict(verdicts_ba) if verdicts_ba is not None else None
        self._ba_as_shown = ba_as_shown
        content = [sorted(self._verdicts.items())]
        if self._ba is not None:
            content += [sorted(self._ba.items()), ba_as_shown]
        digest = hashlib.sha256(json.dumps(content).encode()).hexdigest()
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

    def _one(self, request: LabelRequest) -> LabelLogprobs:
        tokens = round(sum(len(m.content) for m in request.messages) / CHARS_PER_TOKEN)
        source = self._ba if request.order == "BA" and self._ba is not None else self._verdicts
        per_order = source is self._ba
        verdict = source.get(request.item_id)
        if verdict is None:
            error = f"no replayed verdict for item {request.item_id!r} ({request.order or '-'})"
            return LabelLogprobs({}, tokens, 0, error=error)
        as_shown = per_order and self._ba_as_shown
        shown = (
            _SWAPPED.get(verdict, verdict) if request.order == "BA" and not as_shown else verdict
        )
        if shown in request.labels:
            return LabelLogprobs({shown: 0.0}, tokens, 0)
        if shown == TIE and {"A", "B"} <= set(request.labels):
            return LabelLogprobs({"A": _HALF, "B": _HALF}, tokens, 0)
        error = f"replayed verdict {verdict!r} is not a label of {list(request.labels)}"
        return LabelLogprobs({}, tokens, 0, error=error)
