"""The viewer in a real browser and the labelling loop, on a real run of the embedded judge.

Headless Chromium is Debian's ``chromium`` package driven by Playwright (never a downloaded
browser); ``.ci/run`` installs it where it can. Without it the browser test skips, saying so.
The screenshot is a CI artefact: ``$JUDGEKIT_ARTIFACTS`` (default ``results/``)/viewer.png.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from scripted import lend
from typer.testing import CliRunner

import judgekit
from judgekit import cli
from judgekit.data.records import items_path
from judgekit.files import sha256_file
from judgekit.view import write_view

pytestmark = pytest.mark.engine
REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("JUDGEKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCRIPT = "<script>document.title='pwned'</script></script>"
# Which answer is right, for the sample pairs (a human's labels, filled in by the test).
HUMAN = {"fr": "A", "boil": "B", "sum": "A", "py": "B", "haiku": "A", "email": "B", "photo": "A"}
runner = CliRunner()


@pytest.fixture(scope="module")
def sample_run(engine: judgekit.Backend, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample pairs plus one whose answer is markup, with a human label column, judged."""
    folder = tmp_path_factory.mktemp("view")
    rows = [json.loads(line) for line in (REPO / "examples" / "sample_pairwise.jsonl").open()]
    rows.append({"id": "xss", "question": "Say hi.", "answer_a": SCRIPT, "answer_b": "Hi!"})
    for row in rows:
        row["human_label"] = HUMAN.get(row["id"], "")
    items = folder / "pairs.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    output = folder / "run.jsonl"
    judgekit.judge(items, "pairwise_preference@v1", backend=engine, output=output)
    return output


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).is_file():
        pytest.skip(
            f"no Chromium at {CHROMIUM}: apt-get install chromium (Debian), or set "
            "JUDGEKIT_CHROMIUM"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_viewer_in_browser(sample_run: Path, browser: object, tmp_path: Path) -> None:
    verdicts = [json.loads(line) for line in items_path(sample_run).open()]
    flipped = sorted(v["item_id"] for v in verdicts if v["flip"])
    page_path = write_view([sample_run], tmp_path / "view.html")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(page_path.as_uri())
    assert page.inner_text("#count") == "9 of 9 items"
    page.check("#f-flip")
    shown = page.locator("#list tbody tr.row td:first-child").all_inner_texts()
    assert sorted(shown) == flipped
    assert page.inner_text("#count") == f"{len(flipped)} of 9 items"
    page.uncheck("#f-flip")
    page.check("#f-human")  # the judge's label differs from the human's
    disagree = page.locator("#list tbody tr.row td:first-child").all_inner_texts()
    expected = [
        v["item_id"]
        for v in verdicts
        if v["item_id"] in HUMAN and v["label"] != HUMAN[v["item_id"]]
    ]
    assert sorted(disagree) == sorted(expected)
    page.uncheck("#f-human")
    page.click("#list tbody tr.row:has(td:text-is('xss'))")
    answers = page.locator("#detail pre.answer").all_inner_texts()
    assert answers == [SCRIPT, "Hi!"]  # shown as text, never run
    assert page.title().startswith("judgekit view") and not errors
    page.click("#list tbody tr.row:has(td:text-is('fr'))")
    assert page.inner_text("#detail pre.question") == "What is the capital of France?"
    fr = next(v for v in verdicts if v["item_id"] == "fr")
    assert f"{fr['score']:.3f}" in page.inner_text("#detail table")
    page.click("#detail details summary:text-is('direct BA')")
    prompt = page.locator("#detail details[open] pre").all_inner_texts()
    assert prompt[-1] == "[assistant]\nAnswer:" and "Lyon" in prompt[1]
    artefacts = Path(os.environ.get("JUDGEKIT_ARTIFACTS", REPO / "results"))
    artefacts.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(artefacts / "viewer.png"), full_page=True)
    assert (artefacts / "viewer.png").stat().st_size > 20_000


def test_labelling_loop(
    sample_run: Path, engine: judgekit.Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Export the queue, fill the labels as a human would, calibrate on them with the engine."""
    queue = tmp_path / "queue.csv"
    exported = runner.invoke(
        cli.app, ["label-queue", str(sample_run), "--n", "6", "--out", str(queue)]
    )
    assert exported.exit_code == 0, exported.output
    rows = list(csv.DictReader(queue.open()))
    assert len(rows) == 6 and all(r["label"] == "" for r in rows)
    priorities = [float(r["priority"]) for r in rows]
    assert priorities == sorted(priorities, reverse=True)
    for row in rows:
        row["label"] = HUMAN.get(row["id"], "")  # 'xss' and 'moon' stay unlabelled if present
    with queue.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    labelled = sum(bool(r["label"]) for r in rows)
    lend(monkeypatch, engine)
    out = tmp_path / "card"
    calibrated = runner.invoke(
        cli.app,
        [
            "calibrate",
            *("--rubric", "pairwise_preference@v1", "--set", str(queue)),
            *("--label-column", "label", "--split", "all", "--no-fit-dev"),
            *("--out", str(out), "--cards-dir", str(tmp_path / "cards"), "--n-resamples", "200"),
        ],
    )
    assert calibrated.exit_code == 0, calibrated.output
    card = json.loads((out / "card.json").read_text())
    assert card["set_name"] == "queue" and card["set_sha256"] == sha256_file(queue)
    assert card["n"] == labelled and card["judge_model"] == "embedded:SmolLM2-135M-Instruct"
    report = (out / "report.html").read_text()
    assert 'href="view.html"' in report and (out / "view.html").stat().st_size > 10_000
