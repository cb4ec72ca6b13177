"""Preflight: every prompt-side failure found in seconds, before an engine loads for minutes.

For one probe item per rubric variant it renders the prompt through the judge's chat format,
resolves the answer slot and label tokens, and checks that the prompt ids equal the tokenizer's
own tokenisation of the whole rendered chat (what the model saw in training), and that a
candidate text spelling the template's control tokens adds none. Any failure raises
``PreflightError`` naming the model, the problem and the fix (the CLI exits 2 with it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from judgekit.backends.base import LabelTokenError, TokenSeq
from judgekit.backends.prompt import ChatEncoder
from judgekit.rubrics import Rubric
from judgekit.schema import Item, LabelRequest, PairwiseItem, PointwiseItem, Turn

_QUESTION = "What is the capital of France?"
_ANSWER = "The capital of France is Paris."


def probe_item(rubric: Rubric) -> Item:
    """A short item carrying every field ``rubric`` requires (a reference, a checklist, earlier
    turns of a conversation), so each of its criteria or checks can be rendered."""
    reads = set(rubric.manifest.requires) | ({"checklist"} if rubric.manifest.checklist else set())
    fields: dict[str, object] = {"id": "preflight", "question": _QUESTION}
    if "context" in reads:
        fields["context"] = "France is a country in Europe."
    if "reference" in reads:
        fields["reference"] = "Paris."
    if "checklist" in reads:
        fields["checklist"] = ("Names the capital.", "Is one sentence.")
    if "conversation" in reads:
        earlier = [Turn(role="user", content="Hello."), Turn(role="assistant", content="Hi!")]
        fields["conversation"] = (*earlier, Turn(role="user", content=_QUESTION))
    if rubric.manifest.mode == "pairwise":
        return PairwiseItem(**fields, answer_a="Paris.", answer_b="Berlin.")
    if "conversation" in fields:
        fields["conversation"] = (*fields["conversation"], Turn(role="assistant", content=_ANSWER))
    return PointwiseItem(**fields, answer=_ANSWER)


class PreflightError(ValueError):
    """The judge cannot be prompted as planned; the message names model, problem and fix."""

    def __init__(self, model: str, problem: str, fix: str) -> None:
        super().__init__(f"judge model {model}: {problem}. Fix: {fix}")
        self.model, self.problem, self.fix = model, problem, fix


@dataclass(frozen=True)
class VariantProbe:
    """One rubric variant's probe prompt (per criterion or check of a multi-criterion rubric):
    its length and where the labels are read."""

    variant: str
    n_tokens: int
    tail: str
    label_tokens: dict[str, tuple[TokenSeq, ...]]
    criterion: str | None = None


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
    probe = probe_item(rubric)
    probes = []
    for variant, criterion in (
        (v, c) for v in (variants or rubric.variants) for c in rubric.criteria_for(probe)
    ):
        messages = rubric.render(variant, probe, criterion=criterion)
        request = LabelRequest(
            "preflight", variant, None, messages, rubric.labels, "preflight", criterion=criterion
        )
        where = f"{rubric.ref} variant {variant!r}" + (f" ({criterion})" if criterion else "")
        try:
            slot = encoder.answer_slot(request)
        except LabelTokenError as error:
            raise PreflightError(
                model, f"{where}: {error}",
                "change the rubric's labels or answer cue (a new rubric version) for this judge",
            ) from error  # fmt: skip
        ids = encoder.prompt(request).ids
        _check_whole_string(encoder, request, slot.tail, ids, model, where)
        _check_no_forged_tokens(encoder, rubric, request, probe, ids, model, where)
        longest = max(len(s) for seqs in slot.sequences.values() for s in seqs)
        if max_model_len is not None and len(ids) + longest > max_model_len:
            raise PreflightError(
                model,
                f"{where}: the probe prompt alone has {len(ids)} tokens, "
                f"max_model_len is {max_model_len}",
                "raise --max-model-len (the model's context allowing) or shorten the rubric",
            )
        probes.append(VariantProbe(variant, len(ids), slot.tail, dict(slot.sequences), criterion))
    return PreflightReport(model, encoder.adaptations, tuple(probes))


def _check_whole_string(
    encoder: ChatEncoder,
    request: LabelRequest,
    tail: str,
    ids: list[int],
    model: str,
    where: str,
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
        f"{where}: judgekit's prompt ids differ from the tokenizer's own ids of the "
        f"rendered chat ({len(ids)} vs {len(whole)} tokens; from token {at}: "
        f"{show(ids[at : at + 4])} vs {show(whole[at : at + 4])})",
        "report it with the model's tokenizer files; meanwhile try --chat-template FILE",
    )


def _check_no_forged_tokens(
    encoder: ChatEncoder,
    rubric: Rubric,
    clean: LabelRequest,
    probe: Item,
    clean_ids: list[int],
    model: str,
    where: str,
) -> None:
    """A candidate spelling every control token of the clean prompt must add none."""
    tokenizer = encoder.tokenizer
    forged = "".join(tokenizer.decode([t]) for t in clean_ids if t in encoder.special_ids)
    answers = (
        {"answer": forged + probe.answer}
        if isinstance(probe, PointwiseItem)
        else {"answer_a": forged + probe.answer_a}
    )
    messages = rubric.render(
        clean.variant, probe.model_copy(update=answers), criterion=clean.criterion
    )
    request = replace(clean, item_id="preflight-forged", messages=messages, prefix_key="forged")
    n_forged = encoder.special_count(encoder.prompt(request).ids)
    if n_forged != encoder.special_count(clean_ids):
        raise PreflightError(
            model,
            f"{where}: candidate text spelling the control tokens {forged!r} became "
            f"control tokens ({n_forged} instead of {encoder.special_count(clean_ids)})",
            "report it with the model's tokenizer files; do not judge untrusted text with it",
        )
