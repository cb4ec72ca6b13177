"""Which judge model a run loads: the embedded SmolLM2, a given one, or a random-weight dummy.

``--gpu-dummy`` writes a config-only Llama-3-8B-shaped model (vLLM ``load_format="dummy"``) with
the embedded tokenizer beside it, so nothing touches a hub; ``--cpu-dummy-tiny`` the same path
with a 2-layer, 256-wide model. ``layer_params`` gives the FLOPs per prompt token for MFU.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.speed.workloads import note

LLAMA3_8B = {
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "rope_theta": 500000.0,
}
TINY = {
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "rope_theta": 500000.0,
}
#: H100 SXM / H200 dense bf16 peak (no sparsity), FLOP/s.
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12}
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json",
    "generation_config.json",
)  # fmt: skip


@dataclass(frozen=True)
class ModelChoice:
    """The model a run loads: its directory (or hub id), load format, config and report tag."""

    model_dir: str
    load_format: str
    config: dict[str, Any] | None
    tag: str
    offline: bool
    label: str


def choose_model(
    model: str | None, gpu_dummy: bool, cpu_dummy_tiny: bool, work: Path
) -> ModelChoice:
    """``--model`` / ``--gpu-dummy`` / ``--cpu-dummy-tiny`` resolved (a dummy is written to
    ``work``)."""
    from judgekit.backends.embedded import embedded_model_dir

    if gpu_dummy or cpu_dummy_tiny:
        tag = "gpu-dummy-8b" if gpu_dummy else "cpu-dummy-tiny"
        tokenizer = Path(model) if model else embedded_model_dir()
        target = make_dummy_model(
            work / f"dummy-{tag}", LLAMA3_8B if gpu_dummy else TINY, tokenizer
        )
        return ModelChoice(str(target), "dummy", _config(target), tag, True, f"dummy {tag}")
    if model:
        return ModelChoice(model, "auto", _config(Path(model)), "smollm2", False, model)
    embedded = embedded_model_dir()
    label = "embedded SmolLM2-135M-Instruct"
    return ModelChoice(str(embedded), "auto", _config(embedded), "smollm2", True, label)


def _config(model_dir: Path) -> dict[str, Any] | None:
    path = model_dir / "config.json"
    return json.loads(path.read_text()) if path.is_file() else None


def make_dummy_model(target: Path, shape: dict[str, Any], tokenizer_dir: Path) -> Path:
    """A config-only Llama model dir (vLLM ``load_format="dummy"``) with a local tokenizer."""
    target.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copy2(tokenizer_dir / name, target / name)
    source = json.loads((tokenizer_dir / "config.json").read_text())
    vocab = int(source["vocab_size"])
    try:  # the tokenizer's own size, if larger (added tokens)
        from transformers import AutoTokenizer

        vocab = max(vocab, len(AutoTokenizer.from_pretrained(str(tokenizer_dir))))
    except (OSError, ValueError) as err:
        note(f"tokenizer size not read ({err}); vocab_size {vocab} from its config")
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "rms_norm_eps": 1e-5,
        "max_position_embeddings": 8192,
        "rope_parameters": {"rope_theta": shape["rope_theta"], "rope_type": "default"},
        "tie_word_embeddings": False,
        "dtype": "bfloat16",
        "torch_dtype": "bfloat16",
        "vocab_size": vocab,
        "bos_token_id": source.get("bos_token_id", 1),
        "eos_token_id": source.get("eos_token_id", 2),
        "pad_token_id": source.get("pad_token_id"),
        **shape,
    }
    (target / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return target


def layer_params(config: dict[str, Any]) -> int:
    """Parameters of the transformer layers (the matmuls every prompt token goes through).

    The embedding is a lookup and vLLM runs the LM head on the last position only, so both are
    left out of the per-token FLOPs; attention's quadratic term is left out too (2*N*tokens).
    """
    h, i = config["hidden_size"], config["intermediate_size"]
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    d = config.get("head_dim") or h // heads
    attn = h * heads * d * 2 + h * kv * d * 2
    mlp = 3 * h * i
    return config["num_hidden_layers"] * (attn + mlp + 2 * h)


def peak_flops(peak_tflops: float | None, gpu_name: str, cpu: bool) -> float | None:
    """``--peak-tflops``, else the known peak of the GPU ``nvidia-smi`` names (None on CPU)."""
    if peak_tflops:
        return peak_tflops * 1e12
    if cpu:
        return None
    return next((v for k, v in PEAK_FLOPS.items() if k in gpu_name), None)
