"""Preflight: every prompt-side failure found in seconds, before an engine loads for minutes.

For one probe item per rubric variant it renders the prompt through the judge's chat format,
resolves the answer slot and label tokens, and checks that the prompt ids equal the tokenizer's
own tokenisation of the whole rendered chat (what the model saw in training), and that a
candidate text spelling the template's control tokens adds none. Any failure raises
``PreflightError`` naming the model, the problem and the fix (the CLI exits 2 with it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from judgekit.backends.base import LabelTokenError, TokenSeq
from judgekit.backends.prompt import ChatEncoder
from judgekit.rubrics import Rubric
from judgekit.schema import Item, LabelRequest, PairwiseItem, PointwiseItem

_QUESTION = "What is the capital of France?"
_PROBES: dict[str, Item] = {
    "pointwise": PointwiseItem(
        id="preflight", question=_QUESTION, answer="The capital of France is Paris."
    ),
    "pairwise": PairwiseItem(
        id="preflight", question=_QUESTION, answer_a="Paris.", answer_b="Berlin."
    ),
}


class PreflightError(ValueError):
    """The judge cannot be prompted as planned; the message names model, problem and fix."""

    def __init__(self, model: str, problem: str, fix: str) -> None:
        super().__init__(f"judge model {model}: {problem}. Fix: {fix}")
        self.model, self.problem, self.fix = model, problem, fix


@dataclass(frozen=True)
class VariantProbe:
    """One rubric variant's probe prompt: its length and where the labels are read."""

    variant: str
    n_tokens: int
    tail: str
    label_tokens: dict[str, tuple[TokenSeq, ...]]


@dataclass(frozen=True)
class PreflightReport:
    """What preflight checked; ``adaptations`` go into the judge identity."""

    model: str
    adaptations: dict[str, str]
    probes: tuple[VariantProbe, ...]


def preflight(
    encoder: ChatEncoder,
    rubric: Rubric,
    variants: Sequence[str] | None = None,
    *,
    model: str,
    max_model_len: int | None = None,
) -> PreflightReport:
    """Check ``rubric``'s prompts (``variants``, default all) on ``encoder``; raise on any problem.

    ``model`` names the judge in the error. ``max_model_len``: a probe prompt plus its longest
    label must fit (real items are longer still).
    """
    probe = _PROBES[rubric.manifest.mode]
    probes = []
    for variant in variants or rubric.variants:
        messages = rubric.render(variant, probe)
        request = LabelRequest("preflight", variant, None, messages, rubric.labels, "preflight")
        try:
            slot = encoder.answer_slot(request)
        except LabelTokenError as error:
            raise PreflightError(
                model, f"{rubric.ref} variant {variant!r}: {error}",
                "change the rubric's labels or answer cue (a new rubric version) for this judge",
            ) from error  # fmt: skip
        ids = encoder.prompt(request).ids
        _check_whole_string(encoder, request, slot.tail, ids, model, variant)
        _check_no_forged_tokens(encoder, rubric, variant, probe, ids, model)
        longest = max(len(s) for seqs in slot.sequences.values() for s in seqs)
        if max_model_len is not None and len(ids) + longest > max_model_len:
            raise PreflightError(
                model,
                f"{rubric.ref} variant {variant!r}: the probe prompt alone has {len(ids)} tokens, "
                f"max_model_len is {max_model_len}",
                "raise --max-model-len (the model's context allowing) or shorten the rubric",
            )
        probes.append(VariantProbe(variant, len(ids), slot.tail, dict(slot.sequences)))
    return PreflightReport(model, encoder.adaptations, tuple(probes))


def _check_whole_string(
    encoder: ChatEncoder,
    request: LabelRequest,
    tail: str,
    ids: list[int],
    model: str,
    variant: str,
) -> None:
    """The prompt ids must be the tokenizer's ids of the whole rendered chat."""
    tokenizer = encoder.tokenizer
    chat = [{"role": m.role, "content": m.content} for m in encoder.chat(request.messages, tail)]
    text = encoder.format.render(tokenizer, chat, generation=False)
    whole = tokenizer(text, add_special_tokens=False)["input_ids"]
    if ids == whole:
        return
    at = next((k for k, (a, b) in enumerate(zip(ids, whole, strict=False)) if a != b), None)
    at = min(len(ids), len(whole)) if at is None else at
    show = tokenizer.convert_ids_to_tokens
    raise PreflightError(
        model,
        f"variant {variant!r}: judgekit's prompt ids differ from the tokenizer's own ids of the "
        f"rendered chat ({len(ids)} vs {len(whole)} tokens; from token {at}: "
        f"{show(ids[at : at + 4])} vs {show(whole[at : at + 4])})",
        "report it with the model's tokenizer files; meanwhile try --chat-template FILE",
    )


def _check_no_forged_tokens(
    encoder: ChatEncoder,
    rubric: Rubric,
    variant: str,
    probe: Item,
    clean_ids: list[int],
    model: str,
) -> None:
    """A candidate spelling every control token of the clean prompt must add none."""
    tokenizer = encoder.tokenizer
    forged = "".join(tokenizer.decode([t]) for t in clean_ids if t in encoder.special_ids)
    answers = (
        {"answer": forged + probe.answer}
        if isinstance(probe, PointwiseItem)
        else {"answer_a": forged + probe.answer_a}
    )
    messages = rubric.render(variant, probe.model_copy(update=answers))
    request = LabelRequest("preflight-forged", variant, None, messages, rubric.labels, "forged")
    n_forged = encoder.special_count(encoder.prompt(request).ids)
    if n_forged != encoder.special_count(clean_ids):
        raise PreflightError(
            model,
            f"variant {variant!r}: candidate text spelling the control tokens {forged!r} became "
            f"control tokens ({n_forged} instead of {encoder.special_count(clean_ids)})",
            "report it with the model's tokenizer files; do not judge untrusted text with it",
        )
