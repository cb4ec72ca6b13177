"""`certify-change` on the real engine (embedded SmolLM2, float32), 40 held-out LLMBar pairs.

The embedded judge has no measurable agreement with LLMBar's experts (docs/cascade.md), so these
tests assert nothing about its preferences: a change that leaves the engine's numbers alone must
be SAFE, and one that drops verdicts by construction (a label-mass threshold no verdict of this
judge reaches) NOT SAFE.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scripted import lend
from typer.testing import CliRunner

from judgekit import cli

pytestmark = pytest.mark.engine
runner = CliRunner()


def _certify(shared_data: Path, tmp_path: Path, *change: str) -> tuple[int, dict, str]:
    out = tmp_path / "certificate.json"
    result = runner.invoke(
        cli.app,
        [
            "certify-change",
            "--rubric",
            "pairwise_preference@v1",
            "--set",
            "llmbar_natural",
            "--data-dir",
            str(shared_data),
            "--limit",
            "40",
            "--variant",
            "direct",
            "--n-resamples",
            "500",
            "--out",
            str(out),
            *[arg for c in change for arg in ("--change", c)],
        ],
    )
    assert out.is_file(), result.output
    return result.exit_code, json.loads(out.read_text()), result.output


def test_batch_size_is_safe(engine, shared_data: Path, tmp_path: Path, monkeypatch) -> None:
    lend(monkeypatch, engine)
    code, cert, output = _certify(shared_data, tmp_path, "batch_size=64")
    assert code == 0, output
    assert cert["verdict"] == "SAFE" and cert["n"] == 40
    assert cert["flip_rate"]["estimate"] == 0.0
    assert cert["agreement_difference"]["estimate"] == pytest.approx(0.0, abs=1e-12)
    assert cert["score_shift"]["estimate"] == pytest.approx(0.0, abs=1e-4)
    ref, new = cert["reference"], cert["changed"]
    assert ref["judge"]["fingerprint"] == new["judge"]["fingerprint"]
    assert (ref["run_options"]["batch_size"], new["run_options"]["batch_size"]) == (1024, 64)


def test_dropped_verdicts_are_not_safe(
    engine, shared_data: Path, tmp_path: Path, monkeypatch
) -> None:
    lend(monkeypatch, engine)
    code, cert, output = _certify(shared_data, tmp_path, "min_label_mass=0.999")
    assert code == 1, output
    assert cert["verdict"] == "NOT SAFE" and "NOT SAFE" in output
    assert cert["changed"]["n_invalid"] >= 36 and cert["reference"]["n_invalid"] <= 4
    assert cert["flip_rate"]["low"] > cert["rule"]["max_flip_rate"]
