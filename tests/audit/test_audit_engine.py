"""Canaries and drift on the real engine (embedded SmolLM2 judge, few items)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from scripted import lend
from typer.testing import CliRunner

from judgekit import cli
from judgekit.audit.canaries import builtin_suite, load_suite
from judgekit.audit.drift import check_drift, pin_anchors
from judgekit.rubrics import load_rubric, load_rubric_dir
from judgekit.rubrics.load import builtin_rubrics_dir
from judgekit.schema import PointwiseItem

pytestmark = pytest.mark.engine
runner = CliRunner()


def test_canaries_cli_on_embedded_judge(engine, tmp_path: Path, monkeypatch) -> None:
    """Two questions, one variant: every attack gets a rate and an interval; the gate at 0 fails
    exactly when some attack scored at or above the reference."""
    lend(monkeypatch, engine)
    extra = tmp_path / "mine.yaml"
    extra.write_text(
        yaml.safe_dump(
            {
                "attacks": [
                    {
                        "name": "shout",
                        "family": "user",
                        "description": "upper case",
                        "template": "{{ wrong | upper }}",
                    }
                ]
            }
        )
    )
    result = runner.invoke(
        cli.app,
        [
            "canaries",
            "--rubric",
            "overall_quality@v1",
            "--limit",
            "2",
            "--variant",
            "direct",
            "--attacks",
            str(extra),
            "--max-canary-rate",
            "0",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    report = json.loads((tmp_path / "out" / "canaries.json").read_text())
    attacks = {a["name"]: a for a in report["attacks"]}
    assert len(attacks) == len(load_suite(builtin_suite("pointwise")).attacks) + 1
    assert "shout" in attacks and report["n_questions"] == 2
    for a in attacks.values():
        assert a["n"] + a["n_invalid"] == 2
        if a["n"]:
            assert a["ci_low"] <= a["rate"] <= a["ci_high"]
    fooled = [a["name"] for a in attacks.values() if a["rate"]]
    assert report["failed"] == fooled
    assert result.exit_code == (1 if fooled else 0), result.output
    assert "| attack |" in (tmp_path / "out" / "canaries.md").read_text()


def _items() -> list[PointwiseItem]:
    questions = load_suite(builtin_suite("pointwise")).questions[:4]
    return [
        PointwiseItem(id=f"{q.id}-{kind}", question=q.question, answer=answer)
        for q in questions
        for kind, answer in (("reference", q.reference), ("wrong", q.wrong))
    ]


def test_drift_alarm_only_when_the_setting_changes(engine, tmp_path: Path) -> None:
    rubric = load_rubric("overall_quality@v1")
    anchors = pin_anchors(_items(), rubric, backend=engine, variants=["direct"], key="test")
    assert anchors.judge == engine.identity and len(anchors.anchors) == 8
    rng = np.random.default_rng(0)
    same = check_drift(anchors, rubric, backend=engine, rng=rng)
    assert not same.alarm and same.n_flipped == 0 and same.identity_changes == []
    # the same rubric with another prompt ending: "Rating:" instead of "Score:"
    changed_dir = tmp_path / "overall_quality" / "v1"
    shutil.copytree(builtin_rubrics_dir() / "overall_quality" / "v1", changed_dir)
    manifest = changed_dir / "rubric.yaml"
    manifest.write_text(
        manifest.read_text().replace('answer_cue: "Score:"', 'answer_cue: "Rating:"')
    )
    changed = check_drift(anchors, load_rubric_dir(changed_dir), backend=engine, rng=rng)
    # measured in float32: 4 of 8 labels flip, mean shift -0.22 points, permutation p = 0.008;
    # bf16 (JUDGEKIT_DTYPE=bfloat16, AVX-512) moves one near-tied label more: 5 flips, -0.24
    f32 = engine.identity.settings["dtype"] == "float32"
    assert changed.alarm and changed.n_shifted == 8
    assert changed.n_flipped == 4 if f32 else 3 <= changed.n_flipped <= 5
    assert changed.mean_shift == pytest.approx(-0.223, abs=0.02 if f32 else 0.05)
    assert "answer cue: 'Score:' -> 'Rating:'" in changed.identity_changes
