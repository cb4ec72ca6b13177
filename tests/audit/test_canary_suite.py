"""Canary suites as data: both built-in suites load and render; the fooling rule and its counts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scripted import lend

from judgekit.audit.canaries import (
    Attack,
    CanaryError,
    attack_result,
    builtin_suite,
    load_suite,
    render_attack,
)
from judgekit.rubrics import load_rubric

ATTACK = Attack(name="x", family="f", description="d", template="{{ wrong }}")


@pytest.mark.parametrize(
    ("mode", "rubric", "label_token"),
    [("pointwise", "overall_quality@v1", "5"), ("pairwise", "pairwise_preference@v1", "A B")],
)
def test_builtin_suites_load_and_render(mode: str, rubric: str, label_token: str) -> None:
    suite = load_suite(builtin_suite(mode))  # type: ignore[arg-type]
    assert suite.mode == mode and suite.version == 1 and len(suite.questions) == 12
    assert len(suite.attacks) == 13
    loaded = load_rubric(rubric)
    q = suite.questions[0]
    answers = {a.name: render_attack(a, q, loaded) for a in suite.attacks}
    assert answers["master_key_colon"] == ":" and answers["control_wrong"] == q.wrong
    assert answers["label_token"] == label_token
    assert answers["correct_then_wrong"].startswith(q.reference)
    assert (
        len(
            {answers["null_constant"]}
            | {render_attack(suite.attacks[1], other, loaded) for other in suite.questions}
        )
        == 1
    )  # the null model answers every question the same


def test_user_attacks_added_and_checked(tmp_path: Path) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text("attacks:\n  - {name: mine, family: user, description: d, template: hi}\n")
    suite = load_suite(builtin_suite("pointwise"), [extra])
    assert suite.attacks[-1].name == "mine"
    extra.write_text("attacks:\n  - {name: label_token, family: u, description: d, template: x}\n")
    with pytest.raises(CanaryError, match="repeat"):
        load_suite(builtin_suite("pointwise"), [extra])
    broken = Attack(name="b", family="f", description="d", template="{{ nope }}")
    with pytest.raises(CanaryError, match="nope"):
        render_attack(broken, suite.questions[0], load_rubric("overall_quality@v1"))


def test_fooling_rule_counts_ties_as_fooled_and_invalid_apart() -> None:
    attack = np.array([3.0, 2.0, 4.0, np.nan, 3.5])
    reference = np.array([3.0, 3.0, 3.0, 3.0, np.nan])
    r = attack_result(ATTACK, attack, reference)  # at or above: the tie at 3.0 counts
    assert (r.n, r.n_invalid, r.n_fooled) == (3, 2, 2)
    assert r.rate == pytest.approx(2 / 3) and r.margin == pytest.approx(0.0)
    assert r.ci_low == pytest.approx(0.2077, abs=1e-4) and r.ci_high == pytest.approx(
        0.9385, abs=1e-4
    )
    pairwise = attack_result(ATTACK, np.array([0.5, 0.2, 0.9, np.nan]), None)
    assert (pairwise.n, pairwise.n_fooled, pairwise.n_invalid) == (3, 2, 1)


def test_calibrate_writes_the_canary_table(shared_data: Path, tmp_path: Path, monkeypatch) -> None:
    """`judgekit calibrate --canaries` puts the judge's canary table beside its report."""
    from typer.testing import CliRunner

    from judgekit import cli
    from tests.audit.test_series_cli import nightly_backend

    lend(monkeypatch, nightly_backend(0.0, "x"))
    out = tmp_path / "report"
    result = CliRunner().invoke(
        cli.app,
        [
            "calibrate",
            "--rubric",
            "pairwise_preference@v1",
            "--set",
            "pandalm",
            "--data-dir",
            str(shared_data),
            "--limit",
            "6",
            "--no-fit-dev",
            "--out",
            str(out),
            "--cards-dir",
            str(tmp_path / "cards"),
            "--n-resamples",
            "50",
            "--canaries",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "canaries.json").read_text())
    assert report["suite"] == "builtin-pairwise" and len(report["attacks"]) == 13
    assert report["judge"]["model"] == "nightly" and (out / "card.json").is_file()
