"""A card certifies what runs (issue 19, items 1 and 2), on replayed PandaLM-7B verdicts.

PandaLM-7B answers "tie" (0) for some pairs; under the A/B rubric a replayed tie is an even
split, which the decision rule reads as a tie: the card must count it as one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from judgekit import cli
from judgekit.cards import read_card
from judgekit.data.sets import load_calibration_set
from judgekit.data.split import split_records
from judgekit.stats import cohen_kappa

runner = CliRunner()
RUBRIC = "pairwise_preference@v1"
MAP = ["--label-map", "0=tie", "--label-map", "1=A", "--label-map", "2=B"]


def _replay(shared_data: Path, name: str = "pandalm-7b", field: str = "pandalm_result") -> list:
    path = shared_data / "pandalm" / "judge_outputs" / f"{name}-testset-v1.json"
    return ["--verdicts", str(path), "--id-field", "idx", "--verdict-field", field, *MAP]


@pytest.fixture(scope="module")
def calibrated(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("card")
    result = runner.invoke(
        cli.app,
        [
            "calibrate", "--rubric", RUBRIC, "--set", "pandalm",
            "--data-dir", str(shared_data), "--out", str(out / "report"),
            "--cards-dir", str(out / "cards"), "--n-resamples", "200", "--fit-dev",
            *_replay(shared_data),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_card_kappa_is_the_kappa_of_the_runs_own_items_file(
    calibrated: Path, shared_data: Path
) -> None:
    """Old code: the card took the plain argmax (a tie went to A) while the run applied the tie
    band: the card certified another rule than the run's."""
    card = json.loads((calibrated / "report" / "card.json").read_text())
    assert card["confusion"]["columns"] == ["A", "B", "tie", "invalid"]
    assert card["applies"]["controls"]["tie_band"] == 0.05
    items = {
        r["item_id"]: r
        for r in map(
            json.loads, (calibrated / "report" / "run.items.jsonl").read_text().split("\n")[:-1]
        )
    }
    held = split_records(load_calibration_set("pandalm", data_dir=shared_data).records, "heldout")
    categories = ["A", "B", "tie", "invalid"]
    human = [categories.index(str(r.consensus)) for r in held]
    judged = [
        categories.index(items[r.id]["label"] if items[r.id]["valid"] else "invalid") for r in held
    ]
    kappa = cohen_kappa(np.array(human), np.array(judged), labels=np.arange(len(categories)))
    assert card["kappa"]["estimate"] == pytest.approx(kappa, abs=1e-12)
    ties = sum(items[r.id]["label"] == "tie" for r in held)
    assert ties > 0 and sum(row[2] for row in card["confusion"]["counts"]) == ties
    # agreement on decided items (a tie the A/B labels do not offer is undecided) + coverage
    assert card["coverage"] == pytest.approx(1 - ties / len(held))


def test_judge_with_the_card_applies_what_it_certifies(calibrated: Path, shared_data: Path) -> None:
    """Old code: `judge --card` applied the plain mean of the variants although the card chose
    its learned ensemble."""
    card_path = next((calibrated / "cards").glob("*.json"))
    card = read_card(card_path).card
    held = split_records(load_calibration_set("pandalm", data_dir=shared_data).records, "heldout")
    source = calibrated / "items.jsonl"
    source.write_text("".join(r.item.model_dump_json() + "\n" for r in held[:30]))
    out = calibrated / "judged.jsonl"
    result = runner.invoke(
        cli.app,
        ["judge", "--rubric", RUBRIC, "-i", str(source), "-o", str(out), "--card",
         str(card_path), *_replay(shared_data)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads(out.with_name("judged.manifest.json").read_text())
    assert manifest["controls"] == card.applies.controls.model_dump()
    assert manifest["variants"] == sorted(card.applies.variants)
    if card.applies.controls.ensemble == "learned":
        assert manifest["corrections"]["learned"]["columns"] == card.ensemble.model.columns
    assert "NOT TRUSTED" in result.output  # the card fails the trust gate: said, not hidden
    # the run's verdicts are the card's: the same items, judged the same way, same labels
    report = {
        r["item_id"]: r["label"]
        for r in map(
            json.loads, (calibrated / "report" / "run.items.jsonl").read_text().split("\n")[:-1]
        )
    }
    judged = [json.loads(x) for x in out.with_name("judged.items.jsonl").read_text().splitlines()]
    assert [j["label"] for j in judged] == [report[j["item_id"]] for j in judged]


def test_cascade_refuses_a_card_of_another_judge_or_none(
    calibrated: Path, shared_data: Path, tmp_path: Path
) -> None:
    """Old code: a card of another judge decided 60/60 items, and --target-agreement without a
    card decided everything silently; an existing output was replaced."""
    card_path = next((calibrated / "cards").glob("*.json"))
    held = split_records(load_calibration_set("pandalm", data_dir=shared_data).records, "heldout")
    source = tmp_path / "items.jsonl"
    source.write_text("".join(r.item.model_dump_json() + "\n" for r in held[:20]))
    outputs = shared_data / "pandalm" / "judge_outputs"
    other = f"replay:{outputs / 'gpt-3.5-turbo-testset-v1.json'}:idx:gpt_result={card_path}"
    base = ["cascade", "--rubric", RUBRIC, "-i", str(source), *MAP]
    out = tmp_path / "out.jsonl"
    mismatch = runner.invoke(cli.app, [*base, "-o", str(out), "--stage", other])
    assert mismatch.exit_code == 2 and "judge fingerprint" in mismatch.output
    bare = f"replay:{outputs / 'gpt-3.5-turbo-testset-v1.json'}:idx:gpt_result"
    no_card = runner.invoke(
        cli.app,
        [*base, "-o", str(out), "--stage", bare, "--stage", bare, "--target-agreement", "0.9"],
    )
    assert no_card.exit_code == 2 and "needs a calibration card" in no_card.output
    assert not out.exists()
    out.write_text("precious\n")
    refused = runner.invoke(cli.app, [*base, "-o", str(out), "--stage", bare])
    assert refused.exit_code == 2 and out.read_text() == "precious\n"
