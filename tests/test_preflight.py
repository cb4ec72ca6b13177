"""Preflight: a judge whose prompts cannot be built fails before any engine loads, naming the model,
the problem and the fix; one that can is checked variant by variant (no engine needed).

The families that judge correctly (ids equal the whole-string tokenisation) are in
test_chat_templates.py: Mistral's alternating template and Gemma's no-system template (system
folded), the trimming Llama-3 / Mistral v0.3 templates, SentencePiece tokenizers and the base
Gemma-3 (completion form).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import offline_tokenizers as tk
import pytest

from judgekit.backends.preflight import PreflightError, preflight
from judgekit.rubrics import load_rubric
from judgekit.schema import Message

REPO = Path(__file__).resolve().parents[1]

#: Renders only the last message: the system and user texts are dropped, folded or not.
LAST_ONLY = "{{ messages[-1]['content'] }}"
#: Cannot continue an assistant message at all.
NO_ASSISTANT = (
    "{% for m in messages %}{% if m['role'] == 'assistant' %}"
    "{{ raise_exception('Only user and system roles are supported!') }}{% endif %}"
    "{{ m['content'] }}{% endfor %}"
)
#: Repeats the first message's text after the conversation.
TWICE = "{% for m in messages %}{{ m['content'] }}{% endfor %}{{ messages[0]['content'] }}"


def _encoder(template: str | None, tmp_path: Path):
    tk.smollm2()  # skips without the embedded model
    from judgekit.backends.vllm_engine import chat_encoder

    path = None
    if template is not None:
        path = tmp_path / "template.jinja"
        path.write_text(template)
    return chat_encoder(None, chat_template=str(path) if path else None)


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        (LAST_ONLY, "renders the contents of the messages ['system', 'user', 'assistant'] as [2]"),
        (NO_ASSISTANT, "TemplateError: Only user and system roles are supported!"),
        (TWICE, "as [0, 1, 0] (dropped or moved)"),
    ],
)
def test_a_template_that_cannot_render_the_rubric_fails_with_model_problem_and_fix(
    tmp_path: Path, template: str, problem: str
) -> None:
    with pytest.raises(PreflightError) as caught:
        _encoder(template, tmp_path)
    message = str(caught.value)
    assert message.startswith("judge model embedded:SmolLM2-135M-Instruct: the chat template (")
    assert "file template.jinja (sha256 " in message and problem in message
    assert "folded:" in message and message.endswith(
        "Fix: pass --chat-template FILE with a template that can"
    )


def test_preflight_fails_fast_without_loading_vllm(tmp_path: Path) -> None:
    """The whole check runs on the tokenizer: vllm is never imported."""
    tk.smollm2()
    template = tmp_path / "bad.jinja"
    template.write_text(LAST_ONLY)
    code = (
        "import sys\n"
        "from judgekit.backends.vllm_engine import chat_encoder\n"
        "from judgekit.backends.preflight import PreflightError\n"
        f"try:\n    chat_encoder(None, chat_template={str(template)!r})\n"
        "except PreflightError as e:\n    print('refused', 'vllm' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert out.stdout.strip() == "refused False", out.stderr


def test_prompt_longer_than_the_context_fails(tmp_path: Path) -> None:
    encoder = _encoder(None, tmp_path)
    rubric = load_rubric("overall_quality@v1")
    report = preflight(encoder, rubric, ["direct"], model="m", max_model_len=4096)
    assert [(p.variant, p.tail) for p in report.probes] == [("direct", "Score: ")]
    with pytest.raises(PreflightError, match=r"probe prompt alone has 177 tokens, max_model_len"):
        preflight(encoder, rubric, ["direct"], model="m", max_model_len=100)


def test_mistral_format_folders(tmp_path: Path) -> None:
    """tekken.json alone: converted by transformers, template from mistral_common, recorded.
    A SentencePiece ``tokenizer.model.v3`` alone has no Hugging Face tokenizer: refused."""
    from judgekit.backends.vllm_engine import chat_encoder

    folder = tmp_path / "nemo"
    folder.mkdir()
    shutil.copy(tk._mistral_file("tekken_240911.json"), folder / "tekken.json")
    encoder = chat_encoder(str(folder))
    assert encoder.adaptations == {
        "chat_template": "mistral_common (tekken.json)",
        "system_role": "native",
    }
    assert preflight(encoder, load_rubric("pairwise_preference@v2"), model=str(folder)).probes
    chat = [Message("system", "s"), Message("user", "u"), Message("assistant", "Answer:")]
    ids = encoder.encode_chat(chat, "Answer:").ids
    assert encoder.tokenizer.convert_ids_to_tokens(ids[:2]) == ["<s>", "[INST]"]  # BOS mapped
    v3 = tmp_path / "v3"
    v3.mkdir()
    shutil.copy(
        tk._mistral_file("mistral_instruct_tokenizer_240323.model.v3"), v3 / "tokenizer.model.v3"
    )
    with pytest.raises(PreflightError, match="Hugging Face tokenizer cannot be loaded"):
        chat_encoder(str(v3))


@pytest.mark.parametrize(
    ("rubric", "criteria"),
    [
        ("summary_quality@v1", ["coherence", "consistency", "fluency", "relevance"]),
        ("instruction_checklist@v1", ["check1", "check2"]),
        ("correctness_reference@v1", [None]),
        ("conversation_quality@v1", [None]),
        ("conversation_preference@v1", [None]),
    ],
)
def test_every_criterion_and_field_a_rubric_reads_is_probed(
    tmp_path: Path, rubric: str, criteria: list[str | None]
) -> None:
    """Multi-criterion and checklist rubrics are probed per criterion (check); rubrics reading a
    reference or a conversation get a probe item that has one."""
    report = preflight(_encoder(None, tmp_path), load_rubric(rubric), ["direct"], model="m")
    assert [p.criterion for p in report.probes] == criteria
