"""`certify-change` on scripted judges: configurations and changes, the rule, backends shared or
closed in turn, the certificate on the card, and the CLI's exit codes."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest
from scripted import ScriptedBackend
from typer.testing import CliRunner

from judgekit import cli
from judgekit.audit.certify import CertifyOptions, JudgeConfig, certify_change, decide_change
from judgekit.backends import VLLMJudge, factory
from judgekit.cards.certificate import CertificateRule, card_certificates, certificates_dir
from judgekit.cards.model import Interval
from judgekit.data.records import InputError
from judgekit.data.user_sets import load_user_set
from judgekit.rubrics import load_rubric

runner = CliRunner()
PAIRWISE = "pairwise_preference@v1"
N_ITEMS, PER_QUESTION = 240, 3


def _human(item: int) -> str:
    return "A" if zlib.crc32(f"h{item}".encode()) % 2 else "B"


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    """240 labelled pairs, 3 per question (a cluster of 3)."""
    path = tmp_path / "labels.jsonl"
    rows = [
        {
            "id": f"i{i}",
            "question": f"q{i // PER_QUESTION}",
            "answer_a": f"a{i}",
            "answer_b": f"b{i}",
            "label": _human(i),
        }
        for i in range(N_ITEMS)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _script(right: float, reverse: bool = False):
    """A judge right on the share ``right`` of items (by a hash), in either order; ``reverse``
    names the other answer."""

    def script(item_id: str, variant: str, order: str) -> dict[str, float]:
        i = int(item_id[1:])
        picked = _human(i) if zlib.crc32(f"j{i}".encode()) % 1000 < right * 1000 else None
        picked = picked or ("B" if _human(i) == "A" else "A")
        if reverse:
            picked = "B" if picked == "A" else "A"
        if order == "BA":
            picked = "B" if picked == "A" else "A"
        return {picked: 0.9, "B" if picked == "A" else "A": 0.1}

    return script


@pytest.fixture
def judges(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """vLLM specs built by model name: None (the reference), 'same', 'reversed'; every build
    and close is logged, so a test sees a backend shared or the first closed first."""
    log: dict[str, list] = {"events": []}
    scripts = {None: _script(0.8), "same": _script(0.8), "reversed": _script(0.8, True)}

    def build(spec: VLLMJudge) -> ScriptedBackend:
        backend = ScriptedBackend(scripts[spec.model], model=str(spec.model))
        log["events"].append(("open", spec.model))
        close = backend.close
        backend.close = lambda: (log["events"].append(("close", spec.model)), close())[1]  # type: ignore[method-assign]
        return backend

    monkeypatch.setitem(factory.BUILDERS, "vllm", build)
    return log


def _options(**update) -> CertifyOptions:
    return CertifyOptions(split="all", n_resamples=300, **update)


def _dataset(path: Path):
    return load_user_set(path, load_rubric(PAIRWISE), label_column="label")


def test_changes_reach_the_spec_the_controls_and_the_run_options() -> None:
    ref = JudgeConfig(judge=VLLMJudge(dtype="float32"), rubric="overall_quality@v1")
    new = ref.changed(
        ["dtype=bfloat16", "block_size=64", "batch_size=64", "swap=false", "variants=direct,strict"]
    )
    assert (new.judge.dtype, new.judge.block_size) == ("bfloat16", 64)
    assert new.batch_size == 64 and new.controls.swap is False
    assert new.variants == ["direct", "strict"] and new.rubric == "overall_quality@v1"
    assert ref.changed({"rubric": "overall_quality@v2"}).rubric == "overall_quality@v2"
    with pytest.raises(InputError, match="change dtpye: not a field of a vllm judge"):
        ref.changed(["dtpye=bfloat16"])
    with pytest.raises(InputError, match="batch_size"):
        ref.changed(["batch_size=0"])
    with pytest.raises(InputError, match="expected KEY=VALUE"):
        ref.changed(["bfloat16"])
    openai = ref.changed(["backend=openai", 'base_url=["http://h:8000/v1"]'])
    assert openai.judge.backend == "openai" and openai.judge.base_url == ("http://h:8000/v1",)


def _interval(low: float, high: float) -> Interval:
    return Interval(
        estimate=(low + high) / 2, low=low, high=high, level=0.9, method="t", n=100, n_resamples=0
    )


@pytest.mark.parametrize(
    ("non_inferior", "inferior", "flips", "verdict"),
    [
        (True, False, (0.0, 0.05), "SAFE"),
        (True, False, (0.05, 0.15), "INCONCLUSIVE"),  # flips may pass the bound
        (False, False, (0.0, 0.05), "INCONCLUSIVE"),  # agreement may have dropped by delta
        (False, True, (0.0, 0.05), "NOT SAFE"),  # inferiority shown
        (True, False, (0.2, 0.4), "NOT SAFE"),  # flips surely above the bound
    ],
)
def test_the_rule(non_inferior: bool, inferior: bool, flips: tuple, verdict: str) -> None:
    rule = CertificateRule(
        metric="kappa", delta=0.05, alpha=0.05, max_flip_rate=0.1, n_resamples=100, seed=0
    )
    assert decide_change(non_inferior, inferior, _interval(*flips), rule)[0] == verdict


def test_same_judge_is_safe_on_one_shared_backend(labelled: Path, judges: dict) -> None:
    ref = JudgeConfig(judge=VLLMJudge(), rubric=PAIRWISE, variants=["direct"])
    cert = certify_change(
        _dataset(labelled), ref, ref.changed(["batch_size=64"]), options=_options()
    )
    assert judges["events"] == [("open", None), ("close", None)]
    assert cert.verdict == "SAFE" and cert.flip_rate.estimate == 0.0
    assert cert.agreement_difference.estimate == 0.0 and cert.non_inferior
    assert cert.agreement_reference.estimate == pytest.approx(cert.agreement_changed.estimate)
    assert cert.n == N_ITEMS and cert.n_groups == N_ITEMS // PER_QUESTION
    assert cert.changes == ["batch_size: 1024 -> 64"]
    assert cert.reference.run_options["batch_size"] == 1024


def test_reversed_judge_is_not_safe_and_engines_close_in_turn(labelled: Path, judges) -> None:
    ref = JudgeConfig(judge=VLLMJudge(), rubric=PAIRWISE, variants=["direct"])
    cert = certify_change(
        _dataset(labelled), ref, ref.changed(["model=reversed"]), options=_options()
    )
    assert judges["events"] == [
        ("open", None),
        ("close", None),
        ("open", "reversed"),
        ("close", "reversed"),
    ]
    assert cert.verdict == "NOT SAFE" and cert.inferior and cert.flip_rate.estimate == 1.0
    # right on ~80% of items: kappa ~0.6; reversed ~-0.6
    assert cert.agreement_reference.estimate == pytest.approx(0.6, abs=0.1)
    assert cert.agreement_difference.estimate == pytest.approx(
        -2 * cert.agreement_reference.estimate, abs=0.01
    )
    assert cert.score_shift is not None and cert.score_shift.n == N_ITEMS
    assert cert.changed.judge.model == "reversed"


def test_cli_exit_codes_and_certificate_recorded_beside_the_card(
    labelled: Path, judges: dict, tmp_path: Path
) -> None:
    card = tmp_path / "cards" / "mycard.json"
    base = ["certify-change", "--rubric", PAIRWISE, "--set", str(labelled), "--split", "all"]
    base += ["--label-column", "label", "--variant", "direct", "--n-resamples", "300"]
    safe = runner.invoke(
        cli.app, [*base, "--change", "batch_size=64", "--out", str(tmp_path / "c.json")]
    )
    assert safe.exit_code == 0, safe.output
    assert (
        "SAFE:" in safe.output
        and json.loads((tmp_path / "c.json").read_text())["verdict"] == "SAFE"
    )
    unsafe = runner.invoke(cli.app, [*base, "--change", "model=reversed"])
    assert unsafe.exit_code == 1, unsafe.output
    assert "NOT SAFE" in unsafe.output
    bad = runner.invoke(cli.app, [*base, "--change", "dtpye=bfloat16"])
    assert bad.exit_code == 2 and "dtpye" in bad.output
    missing = runner.invoke(cli.app, [*base, "--card", str(card)])
    assert missing.exit_code == 2 and "cannot read" in missing.output
    assert not certificates_dir(card).exists() and card_certificates(card) == []


def test_certificate_recorded_beside_a_fitting_card_which_stays_unchanged(
    labelled: Path, judges: dict, tmp_path: Path
) -> None:
    from judgekit.calibrate.run import run_calibration
    from judgekit.cards import CalibrationOptions, CardError

    made = run_calibration(
        _dataset(labelled),
        PAIRWISE,
        backend=VLLMJudge(),
        options=CalibrationOptions(fit_dev=False, variants=["direct"], n_resamples=100),
        cards_dir=tmp_path / "cards",
        out_dir=tmp_path / "calibration",
    )
    before = made.card_path.read_bytes()
    ref = JudgeConfig(judge=VLLMJudge(), rubric=PAIRWISE, variants=["direct"])
    options = CertifyOptions(n_resamples=300)
    cert = certify_change(
        _dataset(labelled), ref, ref.changed(["batch_size=8"]), options=options, card=made.card_path
    )
    assert made.card_path.read_bytes() == before
    assert cert.card_sha256 is not None and cert.verdict == "SAFE"
    assert card_certificates(made.card_path) == [cert]
    with pytest.raises(CardError, match="variants"):  # the card certifies the direct variant only
        certify_change(
            _dataset(labelled),
            ref.changed({"variants": None}),
            ref,
            options=options,
            card=made.card_path,
        )
    assert len(card_certificates(made.card_path)) == 1


def test_pointwise_change_by_spearman(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ordinal labels: agreement is Spearman of the expected score with the human mean; a judge
    that says "3" to everything ranks nothing (Spearman 0), so the change is NOT SAFE."""
    path = tmp_path / "scores.jsonl"
    human = {f"p{i}": 1 + zlib.crc32(f"s{i}".encode()) % 5 for i in range(150)}
    path.write_text(
        "".join(
            json.dumps({"id": k, "question": f"q{i // 3}", "answer": k, "label": v}) + "\n"
            for i, (k, v) in enumerate(human.items())
        )
    )

    def graded(item_id: str, variant: str, order: str) -> dict[str, float]:
        return {str(h): (0.6 if h == human[item_id] else 0.1) for h in range(1, 6)}

    scripts = {None: graded, "flat": lambda *_: {"3": 0.9, "2": 0.05, "4": 0.05}}
    monkeypatch.setitem(factory.BUILDERS, "vllm", lambda spec: ScriptedBackend(scripts[spec.model]))
    rubric = "overall_quality@v1"
    dataset = load_user_set(path, load_rubric(rubric), label_column="label")
    ref = JudgeConfig(judge=VLLMJudge(), rubric=rubric, variants=["direct"])
    same = certify_change(dataset, ref, ref.changed(["batch_size=7"]), options=_options())
    assert same.rule.metric == "spearman" and same.verdict == "SAFE"
    assert same.agreement_reference.estimate > 0.9 and same.score_shift.estimate == 0.0
    flat = certify_change(dataset, ref, ref.changed(["model=flat"]), options=_options())
    assert flat.agreement_changed.estimate == 0.0 and flat.inferior
    assert flat.verdict == "NOT SAFE" and flat.score_shift is not None
