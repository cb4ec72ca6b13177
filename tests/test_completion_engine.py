"""The base Gemma-3-270M (no chat template) judges the sample files end to end on the CPU engine
through the completion form, float32, after preflight (issue 21).

The engine runs in a child process: the session's SmolLM2 engine may already live in this one,
and one process holds one engine. Only machinery is asserted (counts, exact probabilities, the
recorded adaptations), never the weak model's preferences.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import offline_tokenizers as tk
import pytest

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, sys
from judgekit import judge
from judgekit.backends.embedded import gemma3_base_dir
from judgekit.backends.preflight import preflight
from judgekit.backends.vllm_engine import VLLMEngine, chat_encoder
from judgekit.rubrics import load_rubric

if __name__ == "__main__":
    model = str(gemma3_base_dir())
    runs = {"overall_quality@v1": "examples/sample_pointwise.jsonl",
            "pairwise_preference@v2": "examples/sample_pairwise.jsonl"}
    encoder = chat_encoder(model)
    reports = {ref: preflight(encoder, load_rubric(ref), model=model, max_model_len=2048)
               for ref in runs}
    engine = VLLMEngine(model=model, dtype="float32", max_model_len=2048)
    out = {"adaptations": encoder.adaptations,
           "probe_tokens": {ref: [p.n_tokens for p in r.probes] for ref, r in reports.items()}}
    for ref, path in runs.items():
        run = judge(path, ref, backend=engine)
        out[ref] = [j.model_dump(mode="json") for j in run.judgments]
    engine.close()
    print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def result() -> dict:
    tk.gemma3()  # skips without the package; converts the model once (cached)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=900
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line is not None, done.stderr[-3000:]
    return json.loads(line.removeprefix("RESULT "))


def test_base_gemma_judges_the_samples_through_the_completion_form(result: dict) -> None:
    completion = "completion (the model has no chat template)"
    assert result["adaptations"] == {"chat_template": completion, "system_role": "native"}
    pointwise, pairwise = result["overall_quality@v1"], result["pairwise_preference@v2"]
    assert len(pointwise) == 16 * 3 and len(pairwise) == 8 * 3 * 2
    for j in pointwise + pairwise:
        settings = j["engine_settings"]
        assert settings["chat_template"] == completion and settings["system_role"] == "native"
        assert settings["device"] == "cpu" and settings["dtype"] == "float32"
        assert settings["tokenizer_mode"] == "hf" and settings["label_logprobs"] == "exact"
        assert 0.0 < j["label_mass"] <= 1.0
        if j["valid"]:
            assert all(p > 0 for p in j["label_probs"].values())
            assert sum(j["label_probs"].values()) == pytest.approx(1.0, abs=1e-9)
        else:
            assert j["invalid_reason"]
    print({ref: tokens for ref, tokens in result["probe_tokens"].items()})
    for rows in (pointwise, pairwise):
        print(sorted(round(j["label_mass"], 3) for j in rows))
