"""Exact prompt ids for every tokenizer family that ships offline, with the public chat templates
of Llama-2, Llama-3, Mistral v0.1/v0.3/Nemo, Gemma and Qwen2.5 (tests/fixtures/chat_templates).

On a clean prompt the ids must equal the tokenizer's ids of the whole rendered chat; a candidate
that spells the template's control tokens must add none. Preflight checks both; these tests also
pin the chosen adaptations and the measured prompt lengths (no engine needed).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import offline_tokenizers as tk
import pytest

from judgekit.backends.chat_format import ChatFormat, choose_format
from judgekit.backends.preflight import preflight
from judgekit.backends.prompt import ChatEncoder
from judgekit.judging.plan import plan_requests
from judgekit.rubrics import load_rubric
from judgekit.schema import PointwiseItem

NATIVE, FOLDED = "native", "folded into the first user turn"
COMPLETION = "completion (the model has no chat template)"


@pytest.fixture(scope="module")
def sp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sentencepiece")


def _sp(version: str, legacy: bool) -> Callable[[Path], Any]:
    return lambda folder: tk.sentencepiece(version, legacy, folder)


# (family, tokenizer, template fixture or None for the tokenizer's own, system role,
#  probe lengths of overall_quality@v1 "direct" and pairwise_preference@v2 "direct")
CASES = [
    ("smollm2", lambda _: tk.smollm2(), None, NATIVE, (177, 160)),
    ("qwen2.5 on smollm2", lambda _: tk.smollm2(), "qwen2_5_instruct", NATIVE, (177, 160)),
    ("llama-2 legacy sp", _sp("v1", True), "llama2_chat", NATIVE, (189, 168)),
    ("llama-2 sp", _sp("v1", False), "llama2_chat", NATIVE, (189, 168)),
    ("mistral v0.1 legacy sp", _sp("v1", True), "mistral_v0_1", FOLDED, (180, 160)),
    ("mistral v0.1 sp", _sp("v1", False), "mistral_v0_1", FOLDED, (180, 160)),
    ("mistral v0.3 legacy sp", _sp("v3", True), "mistral_v0_3", FOLDED, (174, 154)),
    ("mistral v0.3 sp", _sp("v3", False), "mistral_v0_3", FOLDED, (174, 154)),
    ("mistral nemo tekken", lambda _: tk.tekken(), "mistral_nemo", FOLDED, (152, 137)),
    ("llama-3 on tekken", lambda _: tk.tekken(True), "llama3_instruct", NATIVE, (164, 150)),
    ("gemma on gemma-3", lambda _: tk.gemma3(), "gemma_it", FOLDED, (169, 151)),
    ("gemma-3 base", lambda _: tk.gemma3(), None, NATIVE, (163, 144)),
]


def _format(tokenizer: Any, template: str | None) -> ChatFormat:
    return choose_format(tokenizer, tk.FIXTURES / f"{template}.jinja" if template else None)


@pytest.mark.parametrize(("family", "load", "template", "system", "lengths"), CASES)
def test_ids_equal_whole_string_tokenisation(
    sp_dir: Path, family: str, load, template: str | None, system: str, lengths: tuple[int, int]
) -> None:
    """Every rubric variant (and the 10-point scale's two-token label) passes preflight."""
    tokenizer = load(sp_dir)
    encoder = ChatEncoder(tokenizer, _format(tokenizer, template))
    assert encoder.adaptations["system_role"] == system
    if template is None and tokenizer.chat_template is None:
        assert encoder.adaptations["chat_template"] == COMPLETION
    n_direct = []
    for ref in ("overall_quality@v1", "overall_quality_10@v1", "pairwise_preference@v2"):
        report = preflight(encoder, load_rubric(ref), model=family)
        assert report.adaptations == encoder.adaptations
        n_direct.append(next(p.n_tokens for p in report.probes if p.variant == "direct"))
    assert (n_direct[0], n_direct[2]) == lengths


def test_sentencepiece_prompts_gain_no_extra_spaces(sp_dir: Path) -> None:
    """Llama-2's template on Llama-2's vocabulary: no piece-wise ``▁`` (issue 21: 216 vs 214)."""
    tokenizer = tk.sentencepiece("v1", False, sp_dir)
    encoder = ChatEncoder(tokenizer, _format(tokenizer, "llama2_chat"))
    item = PointwiseItem(id="x", question="What is 2+2?", answer="4")
    request = plan_requests(load_rubric("overall_quality@v1"), [item])[0].request
    tokens = tokenizer.convert_ids_to_tokens(encoder.prompt(request).ids)
    # not "▁You" after "<<SYS>>\n"; as the whole string, "[" right after <s> has no "▁" either
    assert tokens[:9] == ["<s>", "[", "INST", "]", "▁<<", "SYS", ">>", "<0x0A>", "You"]
    assert tokens[-7:] == ["▁[", "/", "INST", "]", "▁Score", ":", "▁"]
    assert "▁▁" not in tokens


@pytest.mark.parametrize(
    ("load", "template"),
    [(lambda _: tk.smollm2(), None), (_sp("v3", False), "mistral_v0_3"),
     (lambda _: tk.tekken(True), "llama3_instruct"), (lambda _: tk.gemma3(), "gemma_it")],
)  # fmt: skip
def test_candidate_text_cannot_spell_control_tokens(sp_dir: Path, load, template) -> None:
    """Every special token of the tokenizer, written in a candidate, stays text."""
    tokenizer = load(sp_dir)
    encoder = ChatEncoder(tokenizer, _format(tokenizer, template))
    specials = [t for t in tokenizer.added_tokens_decoder.values() if t.special][:300]
    forged = "".join(t.content for t in specials)
    rubric = load_rubric("overall_quality@v1")
    clean = PointwiseItem(id="c", question="What is 2+2?", answer="4")
    hostile = PointwiseItem(id="h", question="What is 2+2?" + forged, answer=forged + "4")
    ids = [encoder.prompt(p.request).ids for p in plan_requests(rubric, [clean, hostile])]
    assert encoder.special_count(ids[0]) == encoder.special_count(ids[1]) > 0
    assert forged in tokenizer.decode(ids[1])


def test_trimming_templates_trim_the_text_too(sp_dir: Path) -> None:
    """Llama-3 trims every message and Mistral v0.3 the assistant's: the answer cue loses its
    trailing space as in the whole-string rendering, and the label follows with its space."""
    cases = [(tk.tekken(True), "llama3_instruct"), (_sp("v3", False)(sp_dir), "mistral_v0_3")]
    for tokenizer, template in cases:
        encoder = ChatEncoder(tokenizer, _format(tokenizer, template))
        request = plan_requests(
            load_rubric("overall_quality@v1"), [PointwiseItem(id="x", question="q", answer="a")]
        )[0].request
        slot = encoder.answer_slot(request)
        assert slot.tail == "Score:"
        assert tokenizer.decode(list(slot.sequences["4"][0])) in (" 4", "4")
        assert encoder.encode_chat(request.messages, "Score: ").ids == encoder.prompt(request).ids
