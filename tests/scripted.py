"""A scripted judge backend for pure-logic tests: label probabilities chosen per request key."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from judgekit.schema import JudgeIdentity, LabelLogprobs, LabelRequest

Script = Callable[[str, str, str], dict[str, float] | None]


class ScriptedBackend:
    """``script(item_id, variant, order)`` gives the label probabilities (None = a failure)."""

    def __init__(self, script: Script, fingerprint: str = "f" * 64) -> None:
        self.script, self.calls = script, 0
        self.identity = JudgeIdentity(
            backend="scripted", model="scripted", fingerprint=fingerprint, settings={"seed": 0}
        )

    def score(self, requests: Sequence[LabelRequest]) -> list[LabelLogprobs]:
        self.calls += len(requests)
        out = []
        for request in requests:
            probs = self.script(*request.key.split("|"))
            if probs is None:
                out.append(LabelLogprobs({}, 10, 0, error="scripted failure"))
            else:
                logprobs = {k: math.log(v) for k, v in probs.items() if v > 0}
                out.append(LabelLogprobs(logprobs, 10, 0))
        return out

    def close(self) -> None:
        pass
