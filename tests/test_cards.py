"""Which calibration card a run uses, and the trust gate (issue 11, items 6 and 7).

A scripted pairwise judge stands in for the engine (the engine-backed proof is in
test_calibrate_cli.py): it puts P(A) = 0.7, P(B) = 0.2, P(tie) = 0.1 on every request, so the
only thing that can change its item scores is a frozen length model from a card.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import card_for
from scripted import ScriptedBackend, constant
from test_calibration import _synthetic_pairwise
from typer.testing import CliRunner

from judgekit import cli
from judgekit.backends import factory
from judgekit.bias import PairwiseLengthModel
from judgekit.bias.length import stored_length_model
from judgekit.calibrate.run import check_calibrated
from judgekit.cards import (
    CalibrationCard,
    CardControls,
    NotCalibratedError,
    TrustThresholds,
    card_verdict,
    read_card,
    require_calibrated,
    save_card,
)
from judgekit.data.records import items_path, manifest_path
from judgekit.rubrics import load_rubric
from judgekit.schema import Controls

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "sample_pairwise.jsonl"
RUBRIC = load_rubric("pairwise_preference@v1")
runner = CliRunner()
FAIL_UNDER = "0.51"  # every item scores 0.5 uncorrected (the soft swap cancels the A bias)
SETTINGS = {"dtype": "float32", "max_model_len": 4096}


def _scripted(**settings: object) -> ScriptedBackend:
    """A judge that always says A 0.7 / B 0.2 / tie 0.1."""
    return ScriptedBackend(
        constant({"A": 0.7, "B": 0.2, "tie": 0.1}),
        "0123456789ab",
        model="scripted-judge",
        settings={**SETTINGS, **settings},
    )


def _card(
    judge: ScriptedBackend, accuracy: float = 0.95, rubric_hash: str = RUBRIC.hash, **kw
) -> CalibrationCard:
    """A held-out card for this rubric + judge whose controls apply a frozen length model that
    favours A when A is longer (so the correction moves every sample item's score)."""
    records, outputs = _synthetic_pairwise(300, accuracy, seed=1)
    model = PairwiseLengthModel(
        intercept=0.0, slope=1.5, slope_se=0.1, slope_ci_low=1.3, slope_ci_high=1.7,
        scale=20.0, n=150, n_invalid=0,
    )  # fmt: skip
    applies = CardControls(
        controls=Controls(), variants=list(RUBRIC.variants), length_correction=True
    )
    card = card_for(
        records,
        outputs,
        split="heldout",
        rubric_ref=RUBRIC.ref,
        rubric_hash=rubric_hash,
        fingerprint=judge.identity.fingerprint,
        settings=judge.identity.settings,
        applies=applies,
        **kw,
    )
    return card.model_copy(update={"length_model": stored_length_model(model)})


def _judge(tmp: Path, name: str, *extra: str) -> tuple[int, str, list[dict], dict]:
    out = tmp / f"{name}.jsonl"
    args = ["judge", "--rubric", RUBRIC.ref, "-i", str(SAMPLE), "-o", str(out)]
    result = runner.invoke(cli.app, [*args, "--fail-under", FAIL_UNDER, *extra])
    if not out.exists():
        return result.exit_code, result.output, [], {}
    items = [json.loads(line) for line in items_path(out).read_text().splitlines()]
    return result.exit_code, result.output, items, json.loads(manifest_path(out).read_text())


def _machine(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGEKIT_CACHE_DIR", str(root / "cache"))
    monkeypatch.setenv("JUDGEKIT_CARDS_DIR", str(root / "cache" / "cards"))


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ScriptedBackend:
    judge = _scripted()
    monkeypatch.setitem(factory.BUILDERS, "vllm", lambda spec: judge)
    monkeypatch.chdir(tmp_path)  # no project config unless a test writes one
    return judge


# --------------------------------------------------------------------------- item 6


def test_two_machines_with_different_caches_give_the_same_gates(
    scripted: ScriptedBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Machine 1 has a trusted card with a length model in its cache, machine 2 none: without a
    named card both give the same scores and gate results; with the same named card, too."""
    trusted = _card(scripted)
    assert card_verdict(trusted, TrustThresholds()).trusted
    save_card(trusted, tmp_path / "m1" / "cache" / "cards")
    runs = {}
    for machine in ("m1", "m2"):
        _machine(tmp_path / machine, monkeypatch)
        runs[machine] = _judge(tmp_path, machine)
        gated = _judge(tmp_path, f"{machine}-gated", "--require-calibrated")
        assert gated[0] == 3 and "no calibration card named" in gated[1]
    (code1, _, items1, manifest1), (code2, _, items2, manifest2) = runs["m1"], runs["m2"]
    assert code1 == code2 == 1  # mean 0.5 < 0.51 on both machines
    assert [i["score"] for i in items1] == [i["score"] for i in items2] == [0.5] * 8
    assert {i["controls"]["length"] for i in items1 + items2} == {"off"}
    assert manifest1["card"] is None and manifest2["card"] is None

    # the same card named on both machines: identical corrected scores and the same gate
    path = tmp_path / "project" / "card.json"
    path.parent.mkdir()
    path.write_text(trusted.model_dump_json(indent=2))
    named = {}
    for machine in ("m1", "m2"):
        _machine(tmp_path / machine, monkeypatch)
        named[machine] = _judge(tmp_path, f"{machine}-card", "--card", str(path))
    (code1, out1, items1, manifest1), (code2, _, items2, manifest2) = named["m1"], named["m2"]
    assert code1 == code2 == 0, out1  # the corrected mean passes --fail-under on both
    corrected = [i["score"] for i in items1]
    assert corrected == [i["score"] for i in items2]
    assert {i["score_uncorrected"] for i in items1} == {0.5}
    assert np.mean(corrected) == pytest.approx(0.521, abs=5e-4)
    expected = read_card(path).ref.model_dump()
    assert manifest1["card"] == manifest2["card"] == expected
    assert expected["key"] == trusted.key and len(expected["sha256"]) == 64


def test_card_pinned_in_the_project_config(
    scripted: ScriptedBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = _card(scripted)
    path = save_card(card, tmp_path / "cards")
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.judgekit]\ncard = "cards/' + path.name + '"\n'
    )
    code, output, items, manifest = _judge(tmp_path, "pinned", "--require-calibrated")
    assert code == 0, output
    assert manifest["card"]["path"] == str(path.resolve())
    assert {i["controls"]["length"] for i in items} == {"frozen (from calibration)"}
    # judgekit.toml wins over pyproject.toml
    (tmp_path / "judgekit.toml").write_text("")
    assert _judge(tmp_path, "unpinned", "--require-calibrated")[0] == 3
    # a control other than the card's is refused, naming it, before anything is judged
    code, output, items, _ = _judge(tmp_path, "other", "--card", str(path), "--tie-band", "0.1")
    assert code == 2 and "control tie_band: card 0.05 != this run's 0.1" in output
    assert items == []
    (tmp_path / "judgekit.toml").write_text("kard = 'typo'\n")
    code, output, *_ = _judge(tmp_path, "typo")
    assert code == 2 and "judgekit.toml: field kard" in output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rubric_hash": "9" * 64}, "rubric hash 999999999999"),
        ({"judge_fingerprint": "ffffffffffff"}, "judge fingerprint ffffffffffff"),
        ({"judge_settings": {"dtype": "bfloat16", "max_model_len": 4096}}, "judge setting dtype"),
    ],
)
def test_card_for_another_rubric_judge_or_setting_is_refused(
    scripted: ScriptedBackend, tmp_path: Path, change: dict, message: str
) -> None:
    path = tmp_path / "card.json"
    path.write_text(_card(scripted).model_copy(update=change).model_dump_json())
    code, output, *_ = _judge(tmp_path, "refused", "--card", str(path))
    assert code == 2 and "does not fit this run" in output and message in output
    assert _judge(tmp_path, "gated", "--card", str(path), "--require-calibrated")[0] == 3


# --------------------------------------------------------------------------- item 7


def test_gate_uses_its_own_thresholds_not_the_stored_verdict(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    """A card 'trusted' under relaxed calibration thresholds fails a gate with the defaults."""
    relaxed = TrustThresholds(min_kappa_ci_low=-1.0, min_ceiling_ratio=-10.0)
    card = _card(scripted, accuracy=0.5, thresholds=relaxed)
    assert card.verdict.trusted
    path = save_card(card, tmp_path / "cards")
    code, output, *_ = _judge(tmp_path, "strict", "--card", str(path), "--require-calibrated")
    assert code == 3 and "FAIL: kappa" in output
    (tmp_path / "judgekit.toml").write_text(
        "[trust]\nmin_kappa_ci_low = -1.0\nmin_ceiling_ratio = -10.0\n"
    )
    code, output, *_ = _judge(tmp_path, "relaxed", "--card", str(path), "--require-calibrated")
    assert code == 0, output


def test_newest_card_for_a_key_decides(scripted: ScriptedBackend, tmp_path: Path) -> None:
    judge = scripted.identity
    passing = _card(scripted)
    path = save_card(passing, tmp_path)
    assert require_calibrated(read_card(path), RUBRIC, judge) == passing
    failing = _card(scripted, accuracy=0.5)
    assert failing.key == passing.key and save_card(failing, tmp_path) == path
    with pytest.raises(NotCalibratedError, match=r"not trusted.*FAIL: kappa"):
        require_calibrated(read_card(path), RUBRIC, judge)


def test_missing_ceiling_with_several_annotators_fails_the_gate(scripted: ScriptedBackend) -> None:
    card = _card(scripted)
    assert card.n_annotators == 3 and card.human_ceiling is not None
    broken = card.model_copy(update={"human_ceiling": None})
    verdict = card_verdict(broken, TrustThresholds())
    assert not verdict.trusted
    assert any(r.startswith("FAIL: judge/human-ceiling ratio: missing") for r in verdict.reasons)


def test_hub_named_judge_is_refused_by_the_gate(tmp_path: Path) -> None:
    hub = _scripted()
    hub.identity = hub.identity.model_copy(
        update={"model": "org/judge", "fingerprint": "hub:org/judge"}
    )
    path = save_card(_card(hub), tmp_path)
    with pytest.raises(NotCalibratedError, match="fingerprinted by its hub name only"):
        require_calibrated(read_card(path), RUBRIC, hub.identity)


def test_check_calibrated_reads_the_project_card_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    judge = _scripted()
    _machine(tmp_path, monkeypatch)
    save_card(_card(judge), tmp_path / "cache" / "cards")  # in the cache: never looked at
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotCalibratedError, match="no calibration card named"):
        check_calibrated(RUBRIC, judge.identity)
    path = save_card(_card(judge), tmp_path / "cards")
    (tmp_path / "judgekit.toml").write_text(f'card = "cards/{path.name}"\n')
    assert check_calibrated(RUBRIC, judge.identity).key == path.stem
