"""`judgekit calibrate` end to end and the trust gate, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scripted import lend
from typer.testing import CliRunner

from judgekit import cli

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_reproduces_released_gpt35_agreement(
    shared_data: Path, gpt35_args: list[str], tmp_path: Path
) -> None:
    """The PandaLM authors' GPT-3.5 verdicts vs the human majority: kappa 0.47 (README)."""
    result = runner.invoke(
        cli.app,
        [
            "calibrate",
            "--rubric",
            "pairwise_preference@v1",
            "--set",
            "pandalm",
            *gpt35_args,
            "--model",
            "gpt-3.5-turbo",
            "--split",
            "all",
            "--data-dir",
            str(shared_data),
            "--out",
            str(tmp_path / "report"),
            "--cards-dir",
            str(tmp_path / "cards"),
            "--n-resamples",
            "300",
        ],
    )
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "report" / "card.json").read_text())
    assert card["n"] == 999 and card["n_invalid"] == 63  # "Tie" and free text: unparseable
    assert card["kappa"]["estimate"] == pytest.approx(0.4705, abs=5e-4)
    assert "NOT TRUSTED" in result.output
    html = (tmp_path / "report" / "report.html").read_text()
    assert "data:image/png;base64," in html and 'src="http' not in html


@pytest.mark.engine
def test_embedded_judge_calibration_and_trust_gate(
    engine, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lend(monkeypatch, engine)
    monkeypatch.chdir(tmp_path)
    cards, out = tmp_path / "cards", tmp_path / "report"
    sample = str(REPO / "examples" / "sample_pairwise.jsonl")
    gated = [
        "judge",
        "--rubric",
        "pairwise_preference@v1",
        "-i",
        sample,
        "-o",
        str(tmp_path / "j.jsonl"),
        "--require-calibrated",
    ]
    refused = runner.invoke(cli.app, gated)  # no card named: refused, whatever the cache holds
    assert refused.exit_code == 3
    assert "judgekit calibrate --rubric pairwise_preference@v1 --set SET" in refused.output
    calibrated = runner.invoke(
        cli.app,
        [
            "calibrate",
            "--rubric",
            "pairwise_preference@v1",
            "--set",
            "pandalm",
            "--limit",
            "12",
            "--data-dir",
            str(shared_data),
            "--out",
            str(out),
            "--cards-dir",
            str(cards),
            "--n-resamples",
            "200",
            "--min-kappa-ci-low",
            "-1",
            "--min-ceiling-ratio",
            "-10",
            "--min-n",
            "10",
        ],
    )
    assert calibrated.exit_code == 0, calibrated.output
    card = json.loads((out / "card.json").read_text())
    assert card["split"]["name"] == "heldout" and card["n"] == 12
    assert card["judge_model"] == "embedded:SmolLM2-135M-Instruct"
    # keyed by the settings that change numbers, not the operational ones
    assert {"dtype", "max_model_len", "vllm"} <= set(card["judge_settings"])
    assert "enforce_eager" not in card["judge_settings"]
    assert card["split"]["group_by"] == "template {instruction}\n\n{input}"
    assert card["verdict"]["trusted"], card["verdict"]
    assert card["position"] is not None
    assert {v["variant"] for v in card["per_variant"]} == {
        "direct",
        "instruction_following",
        "expert",
    }
    for name in ("report.md", "report.html", "confusion.png", "reliability.png"):
        assert (out / name).stat().st_size > 1000
    pinned = cards / f"{card['key']}.json"
    assert json.loads(pinned.read_text()) == card
    # the stored verdict was made under relaxed thresholds: the gate's defaults refuse it ...
    strict = runner.invoke(cli.app, [*gated, "--card", str(pinned)])
    assert strict.exit_code == 3 and "FAIL: n = 12 (need >= 50)" in strict.output
    # ... and the project's own thresholds, pinned with the card, accept it
    (tmp_path / "judgekit.toml").write_text(
        f'card = "cards/{pinned.name}"\n[trust]\nmin_kappa_ci_low = -1\n'
        "min_ceiling_ratio = -10\nmin_n = 10\n"
    )
    # a run with other prompts than the card's is not what the card measured
    other = runner.invoke(cli.app, [*gated, "--variant", "direct"])
    assert other.exit_code == 2 and "variants: card" in other.output
    allowed = runner.invoke(cli.app, gated)  # the card's own variants and controls
    assert allowed.exit_code == 0, allowed.output
    assert "calibrated: card" in allowed.output
    assert card["length_model"]["fitted_on"] == "dev"
    manifest = json.loads((tmp_path / "j.manifest.json").read_text())
    assert manifest["card"]["key"] == card["key"]
    assert manifest["card"]["path"] == str(pinned.resolve())
    items = [json.loads(x) for x in (tmp_path / "j.items.jsonl").read_text().splitlines()]
    length = "frozen (from calibration)" if card["applies"]["length_correction"] else "off"
    assert {i["controls"]["length"] for i in items} == {length}
    variants = {json.loads(x)["variant"] for x in (tmp_path / "j.jsonl").read_text().splitlines()}
    assert variants == set(card["applies"]["variants"])
