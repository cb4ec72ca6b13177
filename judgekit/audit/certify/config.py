"""A judge configuration as one value, and a change as ``KEY=VALUE`` edits of it.

A configuration is everything that can move a verdict: the judge (a ``JudgeSpec``), the rubric
version, the prompt variants, the controls (swap, ensemble, decision rule) and the options of
``judging.judge`` (batch size, label-mass threshold). A change names any of their fields, so a
field a judge spec gains later (a reasoning switch, a speculative-decoding config) is a change
the day it exists: keys are looked up in the models, never listed here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import Field, ValidationError

from judgekit.backends.spec import JudgeSpec, OpenAIJudge, ReplayJudge, VLLMJudge, judge_spec
from judgekit.data.records import InputError
from judgekit.schema import Controls, StrictModel

#: The fields of a configuration that are not the judge's own (``judge=`` replaces the spec).
RUN_FIELDS = ("rubric", "variants", "batch_size", "min_label_mass")


class JudgeConfig(StrictModel):
    """One configuration of a judge: the spec, the rubric and how ``judging.judge`` runs it."""

    judge: JudgeSpec = Field(default_factory=VLLMJudge)
    rubric: str = Field(description="Rubric NAME@vN (or NAME: its latest version).")
    variants: list[str] | None = Field(default=None, description="None: every variant.")
    controls: Controls = Field(default_factory=Controls)
    batch_size: int = Field(default=1024, ge=1)
    min_label_mass: float | None = Field(default=None, ge=0, le=1)

    def run_options(self) -> dict[str, Any]:
        """The keyword arguments of ``judging.judge`` this configuration sets."""
        return {"batch_size": self.batch_size, "min_label_mass": self.min_label_mass}

    def changed(self, changes: Mapping[str, Any] | Iterable[str]) -> JudgeConfig:
        """This configuration with ``changes`` applied: a mapping, or ``KEY=VALUE`` strings.

        KEY is a configuration field (``rubric``, ``variants`` as a comma list, ``batch_size``,
        ``min_label_mass``), a control (``swap``, ``ensemble``, ``tie_band`` ...) or a field of
        the judge spec (``dtype``, ``block_size``, ``model`` ...; ``backend`` starts a new spec
        of that kind from the other given fields). VALUE is read as JSON when it parses (numbers,
        booleans, null, objects), else as text. An unknown key or invalid value is an
        ``InputError`` naming it.
        """
        pairs = dict(_pairs(changes)) if not isinstance(changes, Mapping) else dict(changes)
        run = {k: pairs.pop(k) for k in RUN_FIELDS if k in pairs}
        if isinstance(run.get("variants"), str):
            run["variants"] = [v for v in run["variants"].split(",") if v]
        control = {k: pairs.pop(k) for k in list(pairs) if k in Controls.model_fields}
        spec = self.judge
        if pairs:
            fields = spec.model_dump(exclude={"backend"})
            backend = pairs.pop("backend", spec.backend)
            if backend != spec.backend:
                fields = {}
            known = set(fields) | set(_spec_fields(backend))
            unknown = sorted(set(pairs) - known)
            if unknown:
                raise InputError(
                    f"change {', '.join(unknown)}: not a field of a {backend} judge, a control or "
                    f"a configuration field (known: {', '.join(sorted(known | set(RUN_FIELDS)))}, "
                    f"{', '.join(Controls.model_fields)})"
                )
            spec = _validated(lambda: judge_spec(backend, **(fields | pairs)), "judge")
        controls = _validated(
            lambda: Controls.model_validate(self.controls.model_dump() | control), "controls"
        )
        update = {"judge": spec, "controls": controls, **run}
        return _validated(
            lambda: JudgeConfig.model_validate(self.model_dump() | update), "configuration"
        )


def _spec_fields(backend: str) -> list[str]:
    kinds = {"vllm": VLLMJudge, "openai": OpenAIJudge, "replay": ReplayJudge}
    if backend not in kinds:
        raise InputError(f"change backend={backend!r}: not one of {', '.join(kinds)}")
    return [name for name in kinds[backend].model_fields if name != "backend"]


def _validated(build: Any, what: str) -> Any:
    try:
        return build()
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or what}: {e['msg']}" for e in err.errors()
        )
        raise InputError(f"change: invalid {what} ({problems})") from err


def _pairs(changes: Iterable[str]) -> Iterable[tuple[str, Any]]:
    for change in changes:
        key, sep, value = change.partition("=")
        if not sep or not key.strip():
            raise InputError(f"change {change!r}: expected KEY=VALUE, e.g. dtype=bfloat16")
        yield key.strip(), _value(value)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def describe_changes(reference: JudgeConfig, changed: JudgeConfig) -> list[str]:
    """Every field that differs, as ``KEY: reference -> changed`` (spec fields by their name)."""
    ref, new = _flat(reference), _flat(changed)
    return [
        f"{key}: {ref.get(key)!r} -> {new.get(key)!r}"
        for key in sorted(set(ref) | set(new))
        if ref.get(key) != new.get(key)
    ]


def _flat(config: JudgeConfig) -> dict[str, Any]:
    dumped = config.model_dump(mode="json")
    return {**dumped.pop("judge"), **dumped.pop("controls"), **dumped}
