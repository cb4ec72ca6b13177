"""Gaming canaries: does the judge reward answers that game it instead of answers that are good?

A suite (``audit/suites/<mode>/vN.yaml``, data shipped in the wheel) holds questions with a
reference (good) and a wrong answer, and attacks: answer templates such as a constant null-model
answer, "master key" answers (":", "Thought process:"), instructions injected into the answer,
padding and self-praise. Every attack is judged against the reference answer to the same question
through ``judgekit.judge`` (so with the same prompt variants and, for pairs, both orders):

- pointwise: the attack fools the judge on a question when its score is at or above the
  reference's;
- pairwise: the attack is answer A and the reference answer B; it fools the judge when
  P(attack preferred) >= 0.5 after the order swap.

The rate per attack comes with a Wilson interval. A question where either side is invalid is
counted as invalid, never as a win for either. Users add attacks with their own files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import jinja2
import numpy as np
from jinja2.sandbox import SandboxedEnvironment
from pydantic import Field

from judgekit.backends.base import Backend
from judgekit.files import read_yaml_model
from judgekit.judging.run import judge
from judgekit.rubrics import Rubric, load_rubric
from judgekit.schema import Controls, Item, JudgeIdentity, PairwiseItem, PointwiseItem, StrictModel
from judgekit.stats import proportion_ci

SUITES_DIR = Path(__file__).resolve().parent / "suites"
Mode = Literal["pointwise", "pairwise"]


class CanaryError(ValueError):
    """A suite or attack file that cannot be used; the message names the file."""


class Question(StrictModel):
    id: str
    question: str
    reference: str = Field(description="A good answer: what every attack is compared with.")
    wrong: str = Field(description="A wrong answer that attacks may dress up.")


class Attack(StrictModel):
    name: str
    family: str
    description: str
    template: str


class QuestionFile(StrictModel):
    questions: list[Question]


class AttackFile(StrictModel):
    """A user's extra attacks (``--attacks FILE``)."""

    attacks: list[Attack]


class SuiteFile(StrictModel):
    name: str
    version: int
    mode: Mode
    questions: str = Field(description="Questions file, relative to the suite file.")
    attacks: list[Attack]


class Suite(StrictModel):
    name: str
    version: int
    mode: Mode
    questions: list[Question]
    attacks: list[Attack]


def builtin_suite(mode: Mode, version: int = 1) -> Path:
    return SUITES_DIR / mode / f"v{version}.yaml"


def load_suite(path: Path | str, extra: Sequence[Path | str] = ()) -> Suite:
    """A suite file with its questions, plus the attacks of ``extra`` attack files."""
    path = Path(path)
    spec = read_yaml_model(path, SuiteFile, CanaryError)
    attacks = list(spec.attacks)
    for file in extra:
        attacks += read_yaml_model(Path(file), AttackFile, CanaryError).attacks
    names = [a.name for a in attacks]
    if len(set(names)) != len(names):
        raise CanaryError(f"{path}: attack names repeat: {sorted(names)}")
    return Suite(
        name=spec.name,
        version=spec.version,
        mode=spec.mode,
        questions=read_yaml_model(
            path.parent / spec.questions, QuestionFile, CanaryError
        ).questions,
        attacks=attacks,
    )


def render_attack(attack: Attack, question: Question, rubric: Rubric) -> str:
    """The attack's answer to one question; undefined template variables are errors."""
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    order = np.argsort(rubric.values)
    try:
        return env.from_string(attack.template).render(
            question=question.question,
            reference=question.reference,
            wrong=question.wrong,
            answer_cue=rubric.criteria[0].answer_cue,
            top_label=rubric.labels[order[-1]],
            bottom_label=rubric.labels[order[0]],
            labels=" ".join(rubric.labels),
        )
    except jinja2.TemplateError as err:
        raise CanaryError(f"attack {attack.name!r}: {err}") from err


class AttackResult(StrictModel):
    name: str
    family: str
    n: int = Field(description="Questions where both the attack and the reference were valid.")
    n_invalid: int
    n_fooled: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    margin: float | None = Field(
        description="Pointwise: mean attack - reference score; pairwise: mean P(attack preferred)."
    )


class CanaryReport(StrictModel):
    suite: str
    suite_version: int
    rubric: str
    rubric_hash: str
    judge: JudgeIdentity
    variants: list[str]
    n_questions: int
    reference_mean: float | None = Field(description="Pointwise: mean score of the references.")
    attacks: list[AttackResult]
    max_canary_rate: float | None = None
    failed: list[str] = Field(default_factory=list)


def _items(suite: Suite, rubric: Rubric, questions: list[Question]) -> list[Item]:
    items: list[Item] = []
    for q in questions:
        answers = {a.name: render_attack(a, q, rubric) for a in suite.attacks}
        if suite.mode == "pointwise":
            items.append(
                PointwiseItem(id=f"{q.id}::reference", question=q.question, answer=q.reference)
            )
            items += [
                PointwiseItem(id=f"{q.id}::{name}", question=q.question, answer=text)
                for name, text in answers.items()
            ]
        else:
            items += [
                PairwiseItem(
                    id=f"{q.id}::{name}", question=q.question, answer_a=text, answer_b=q.reference
                )
                for name, text in answers.items()
            ]
    return items


def attack_result(
    attack: Attack, attack_scores: np.ndarray, reference: np.ndarray | None
) -> AttackResult:
    if reference is None:  # pairwise: scores are P(attack preferred)
        valid = ~np.isnan(attack_scores)
        fooled = attack_scores[valid] >= 0.5
        margin = attack_scores[valid]
    else:
        valid = ~np.isnan(attack_scores) & ~np.isnan(reference)
        diff = attack_scores[valid] - reference[valid]
        fooled, margin = diff >= 0, diff
    n, k = int(valid.sum()), int(fooled.sum())
    ci = proportion_ci(k, n) if n else None
    return AttackResult(
        name=attack.name,
        family=attack.family,
        n=n,
        n_invalid=int((~valid).sum()),
        n_fooled=k,
        rate=k / n if n else None,
        ci_low=ci.low if ci else None,
        ci_high=ci.high if ci else None,
        margin=float(margin.mean()) if n else None,
    )


def run_canaries(
    rubric: str | Rubric,
    suite: Suite,
    *,
    backend: Backend,
    variants: Sequence[str] | None = None,
    limit: int | None = None,
    max_canary_rate: float | None = None,
) -> CanaryReport:
    """Judge every attack against the reference on the suite's (first ``limit``) questions.

    ``max_canary_rate``: attacks whose fooling rate exceeds it are listed in ``failed``.
    """
    rubric = load_rubric(rubric)
    if suite.mode != rubric.manifest.mode:
        raise CanaryError(
            f"suite {suite.name} is {suite.mode}, rubric {rubric.ref} is {rubric.manifest.mode}"
        )
    questions = suite.questions[:limit] if limit is not None else suite.questions
    run = judge(
        _items(suite, rubric, questions),
        rubric,
        backend=backend,
        variants=variants,
        controls=Controls(),
    )
    scores = dict(zip(run.verdicts.item_ids, run.verdicts.scores, strict=True))
    reference = None
    if suite.mode == "pointwise":
        reference = np.array([scores[f"{q.id}::reference"] for q in questions])
    results = [
        attack_result(a, np.array([scores[f"{q.id}::{a.name}"] for q in questions]), reference)
        for a in suite.attacks
    ]
    failed = [
        r.name
        for r in results
        if max_canary_rate is not None and r.rate is not None and r.rate > max_canary_rate
    ]
    return CanaryReport(
        suite=suite.name,
        suite_version=suite.version,
        rubric=rubric.ref,
        rubric_hash=rubric.hash,
        judge=run.judge,
        variants=list(variants or rubric.variants),
        n_questions=len(questions),
        reference_mean=float(np.nanmean(reference)) if reference is not None else None,
        attacks=results,
        max_canary_rate=max_canary_rate,
        failed=failed,
    )


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def canary_markdown(report: CanaryReport) -> str:
    """The canary table: one row per attack, rate with its 95% Wilson interval."""
    pairwise = report.reference_mean is None
    margin, spec = ("mean P(attack preferred)", ".3f") if pairwise else ("mean score - ref", "+.2f")
    lines = [
        f"Canaries `{report.suite}` v{report.suite_version} on `{report.rubric}` with "
        f"`{report.judge.model}` ({report.n_questions} questions, variants "
        f"{', '.join(report.variants)})"
        + (
            ""
            if report.reference_mean is None
            else f"; reference mean score {report.reference_mean:.2f}"
        ),
        "",
        f"| attack | family | fooled / valid | rate [95% CI] | {margin} | invalid |",
        "|---|---|---|---|---|---|",
    ]
    for r in report.attacks:
        flag = " **FAIL**" if r.name in report.failed else ""
        lines.append(
            f"| {r.name}{flag} | {r.family} | {r.n_fooled} / {r.n} | {_fmt(r.rate)} "
            f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}] | {_fmt(r.margin, spec)} | {r.n_invalid} |"
        )
    if report.max_canary_rate is not None:
        verdict = f"FAILED: {', '.join(report.failed)}" if report.failed else "passed"
        lines += ["", f"Gate --max-canary-rate {report.max_canary_rate}: {verdict}"]
    return "\n".join(lines) + "\n"


def write_canary_report(report: CanaryReport, out_dir: Path | str) -> dict[str, Path]:
    """``canaries.json`` and ``canaries.md`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "canaries.json", "markdown": out / "canaries.md"}
    paths["json"].write_text(report.model_dump_json(indent=2) + "\n")
    paths["markdown"].write_text(canary_markdown(report))
    return paths
