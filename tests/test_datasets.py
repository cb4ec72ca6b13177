"""Calibration sets: manifests, hash verification, record mapping, and the dev/held-out split.

Real-data tests read ``../shared/data`` (beside the repository, or ``$JUDGEKIT_DATA_DIR``; the
``shared_data`` fixture of conftest.py) and skip when it is absent.
"""

from __future__ import annotations

import io
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from judgekit.data.set_manifest import AnnotatorSpec
from judgekit.data.sets import (
    CalibrationRecord,
    DatasetError,
    builtin_sets_dir,
    list_calibration_sets,
    load_calibration_set,
    load_manifest,
)
from judgekit.data.split import HeldOutError, Split, heldout_mask, require_dev, split_records
from judgekit.files import sha256_file
from judgekit.schema import PairwiseItem, PointwiseItem

# name, metric, rows (from shared/README.md), mode
LOCAL_SETS = [
    ("pandalm", None, 999, "pairwise"),
    ("llmbar_natural", None, 100, "pairwise"),
    ("llmeval2", None, 200, "pairwise"),
    ("summeval", "coherence", 1600, "pointwise"),
    ("newsroom", "coherence", 420, "pointwise"),
]


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No data-dir override and a private cache: the loader must use (and fill) the cache."""
    monkeypatch.delenv("JUDGEKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("JUDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "data"


def test_builtin_manifests_validate() -> None:
    manifests = {m.name: m for m in list_calibration_sets()}
    expected = {name for name, *_ in LOCAL_SETS} | {
        "llmbar_adversarial_neighbor",
        "llmbar_adversarial_gptinst",
        "llmbar_adversarial_gptout",
        "llmbar_adversarial_manual",
        "mt_bench_human",
    }
    assert expected <= set(manifests)
    for manifest in manifests.values():
        assert manifest.source.revision in manifest.source.url
    assert manifests["mt_bench_human"].sha256 is None
    assert all(m.sha256 for name, m in manifests.items() if name != "mt_bench_human")


@pytest.mark.parametrize(("name", "metric", "rows", "mode"), LOCAL_SETS)
def test_local_sets_load_and_verify(
    shared_data: Path, name: str, metric: str | None, rows: int, mode: str
) -> None:
    loaded = load_calibration_set(name, data_dir=shared_data, metric=metric)
    assert len(loaded.records) == rows
    assert loaded.verified
    assert loaded.sha256 == loaded.manifest.sha256 == sha256_file(loaded.path)
    assert loaded.path == shared_data / loaded.manifest.local_path
    item_type = PairwiseItem if mode == "pairwise" else PointwiseItem
    assert all(isinstance(r.item, item_type) and r.item.id == r.id for r in loaded.records)
    assert len({r.id for r in loaded.records}) == rows
    assert all(r.item.question and r.consensus is not None for r in loaded.records)


def test_data_dir_from_environment(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGEKIT_DATA_DIR", str(shared_data))
    assert len(load_calibration_set("llmbar_natural").records) == 100


def test_corrupted_copy_names_both_hashes(shared_data: Path, tmp_path: Path) -> None:
    manifest = load_manifest(builtin_sets_dir() / "llmbar_natural.yaml")
    copy = tmp_path / manifest.local_path
    copy.parent.mkdir(parents=True)
    rows = json.loads((shared_data / manifest.local_path).read_text(encoding="utf-8"))
    rows[0]["label"] = 3 - rows[0]["label"]  # one flipped label: still valid JSON, wrong data
    copy.write_text(json.dumps(rows), encoding="utf-8")
    with pytest.raises(DatasetError) as err:
        load_calibration_set("llmbar_natural", data_dir=tmp_path)
    message = str(err.value)
    assert manifest.sha256 in message
    assert sha256_file(copy) in message
    assert str(copy) in message


def test_pandalm_majority_consensus(shared_data: Path) -> None:
    pandalm = load_calibration_set("pandalm", data_dir=shared_data)
    assert pandalm.annotator_names == ("annotator1", "annotator2", "annotator3")  # the fields
    records = {r.id: r for r in pandalm.records}
    # hand-checked in testset-v1.json (annotator1..3; 0 = tie, 1 = response1, 2 = response2)
    assert records["0"].human == ("B", "B", "B") and records["0"].consensus == "B"
    assert records["157"].human == ("A", "A", "tie") and records["157"].consensus == "A"
    first = records["0"].item
    assert isinstance(first, PairwiseItem)
    assert first.answer_a == "If you have any questions about my rate, please let me know."
    assert first.answer_b == "If you have any questions, please let me know."
    assert first.context.startswith("If you have any questions about my rate or if you find")
    # every record's consensus is the plurality of its three labels
    for record in records.values():
        (top, count), *rest = Counter(record.human).most_common()
        assert record.consensus == (top if not rest or rest[0][1] < count else None)
    assert Counter(r.consensus for r in records.values()) == {"B": 472, "A": 422, "tie": 105}


def test_single_label_and_ordinal_records(shared_data: Path) -> None:
    natural = load_calibration_set("llmbar_natural", data_dir=shared_data)
    raw = json.loads(natural.path.read_text(encoding="utf-8"))
    assert [r.consensus for r in natural.records] == [{1: "A", 2: "B"}[x["label"]] for x in raw]
    assert all(r.human == () for r in natural.records) and natural.annotator_names == ()

    summeval = load_calibration_set("summeval", data_dir=shared_data, metric="relevance")
    first = summeval.records[0]
    assert first.id == "A0-S0" and first.human == ()
    line = json.loads(summeval.path.read_text(encoding="utf-8").splitlines()[0])
    assert first.consensus == pytest.approx(line["relevance"])
    assert isinstance(first.item, PointwiseItem)
    assert (first.item.answer, first.item.context) == (line["summary"], line["article"])

    newsroom = load_calibration_set("newsroom", data_dir=shared_data, metric="fluency")
    record = newsroom.records[0]
    assert newsroom.annotator_names is None  # a list field: its positions name nobody
    assert record.id == "1" and record.human == (3.0, 5.0, 3.0)
    assert record.consensus == pytest.approx(11 / 3)
    assert isinstance(record.item, PointwiseItem)
    assert record.item.answer.startswith("collection of all usatoday.com coverage")
    assert record.item.context.startswith("'16 & Pregnant' Couple Arrested")
    assert "###" not in record.item.answer + record.item.context


def test_metric_is_required_and_checked(shared_data: Path) -> None:
    with pytest.raises(DatasetError, match="needs metric= one of"):
        load_calibration_set("newsroom", data_dir=shared_data)
    with pytest.raises(DatasetError, match="needs metric= one of"):
        load_calibration_set("newsroom", data_dir=shared_data, metric="Fluency")
    with pytest.raises(DatasetError, match="has no metrics"):
        load_calibration_set("pandalm", data_dir=shared_data, metric="coherence")


def test_missing_file_in_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"pandalm/testset-v1\.json not found"):
        load_calibration_set("pandalm", data_dir=tmp_path)


def test_unpinned_manifest_refuses_without_opt_in(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="allow_unverified=True"):
        load_calibration_set("mt_bench_human", data_dir=tmp_path)


def _mt_bench_parquet(path: Path) -> None:
    """A few rows shaped like lmsys/mt_bench_human_judgments, split human."""

    def conv(q1: str, a1: str) -> list[dict[str, str]]:
        return [
            {"content": q1, "role": "user"},
            {"content": a1, "role": "assistant"},
            {"content": "follow-up", "role": "user"},
            {"content": "second answer", "role": "assistant"},
        ]

    rows = [
        (81, "gpt-4", "vicuna-13b", "model_a", "expert_1", 1),
        (81, "gpt-4", "vicuna-13b", "tie", "expert_2", 1),
        (81, "gpt-4", "vicuna-13b", "model_a", "author_0", 1),
        (81, "gpt-4", "vicuna-13b", "model_b", "expert_1", 2),  # turn 2: dropped
        (82, "alpaca-13b", "gpt-4", "model_b", "expert_3", 1),
        (83, "alpaca-13b", "gpt-4", "model_b", "expert_3", 1),
        (83, "alpaca-13b", "gpt-4", "model_a", "expert_4", 1),
    ]
    table = pa.Table.from_pylist(
        [
            {
                "question_id": q,
                "model_a": a,
                "model_b": b,
                "winner": w,
                "judge": j,
                "conversation_a": conv(f"question {q}", f"{a} answer {q}"),
                "conversation_b": conv(f"question {q}", f"{b} answer {q}"),
                "turn": t,
            }
            for q, a, b, w, j, t in rows
        ]
    )
    path.parent.mkdir(parents=True)
    pq.write_table(table, path)


def test_mt_bench_votes_grouped_by_item(tmp_path: Path) -> None:
    manifest = load_manifest(builtin_sets_dir() / "mt_bench_human.yaml")
    _mt_bench_parquet(tmp_path / manifest.local_path)
    loaded = load_calibration_set("mt_bench_human", data_dir=tmp_path, allow_unverified=True)
    assert not loaded.verified and loaded.sha256 == sha256_file(loaded.path)
    records = {r.id: r for r in loaded.records}
    assert list(records) == ["81:gpt-4:vicuna-13b", "82:alpaca-13b:gpt-4", "83:alpaca-13b:gpt-4"]
    # votes are placed by the `judge` column, never by row order; None = that judge did not vote
    assert loaded.annotator_names == ("author_0", "expert_1", "expert_2", "expert_3", "expert_4")
    first = records["81:gpt-4:vicuna-13b"]
    assert first.human == ("A", "A", "tie", None, None) and first.consensus == "A"
    assert records["83:alpaca-13b:gpt-4"].human == (None, None, None, "B", "A")
    assert first.item == PairwiseItem(
        id=first.id,
        question="question 81",
        answer_a="gpt-4 answer 81",
        answer_b="vicuna-13b answer 81",
    )
    assert records["82:alpaca-13b:gpt-4"].consensus == "B"
    assert records["83:alpaca-13b:gpt-4"].consensus is None  # 1-1: tied majority


def test_mt_bench_votes_anonymous_or_named_once(tmp_path: Path) -> None:
    """Without an annotator column the votes are anonymous (names None, positions = row order);
    one judge voting twice on an item is an error naming the row and field."""
    raw = yaml.safe_load((builtin_sets_dir() / "mt_bench_human.yaml").read_text(encoding="utf-8"))
    _mt_bench_parquet(tmp_path / "data" / raw["local_path"])
    del raw["annotators"]["annotator"]
    sets = tmp_path / "sets"
    sets.mkdir()
    (sets / "mt_bench_human.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    anonymous = load_calibration_set(
        "mt_bench_human", data_dir=tmp_path / "data", allow_unverified=True, sets_dir=sets
    )
    assert anonymous.annotator_names is None
    assert anonymous.records[0].human == ("A", "tie", "A")
    path = tmp_path / "data" / raw["local_path"]
    table = pq.read_table(path).to_pylist()
    table[1]["judge"] = "expert_1"  # expert_1 now votes twice on question 81
    pq.write_table(pa.Table.from_pylist(table), path)
    with pytest.raises(DatasetError, match=r"row 2: field annotators\.annotator: 'expert_1' alr"):
        load_calibration_set("mt_bench_human", data_dir=tmp_path / "data", allow_unverified=True)
    with pytest.raises(ValueError, match="annotator applies only to votes"):
        AnnotatorSpec(fields=("a", "b"), annotator="judge")


def _write_manifest(folder: Path, **changes: object) -> Path:
    raw = yaml.safe_load((builtin_sets_dir() / "llmbar_natural.yaml").read_text(encoding="utf-8"))
    raw.update(changes)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_manifest_error_names_file_and_field(tmp_path: Path) -> None:
    path = _write_manifest(tmp_path, name="broken", sha256="not-a-hash")
    with pytest.raises(DatasetError) as err:
        load_calibration_set("broken", sets_dir=tmp_path)
    assert str(path) in str(err.value) and "field sha256" in str(err.value)

    path = _write_manifest(tmp_path, name="unknown_key", extra_field=1)
    with pytest.raises(DatasetError, match=r"unknown_key\.yaml: field extra_field"):
        load_manifest(path)

    path = _write_manifest(tmp_path, name="pointwise_pair", mode="pointwise")
    with pytest.raises(DatasetError, match=r"pointwise_pair\.yaml: .*pointwise sets map answer"):
        load_manifest(path)


def test_bad_row_names_file_row_and_field(shared_data: Path, tmp_path: Path) -> None:
    sets = tmp_path / "sets"
    fields = {"id": "input", "question": "prompt", "answer_a": "output_1", "answer_b": "output_2"}
    _write_manifest(sets, fields=fields)
    with pytest.raises(DatasetError, match=r"dataset.json: row 1: field fields.question: .*prompt"):
        load_calibration_set("llmbar_natural", data_dir=shared_data, sets_dir=sets)


def test_download_into_cache_verifies_then_renames(
    monkeypatch: pytest.MonkeyPatch, shared_data: Path, no_env: Path
) -> None:
    manifest = load_manifest(builtin_sets_dir() / "llmeval2.yaml")
    good = (shared_data / manifest.local_path).read_bytes()
    served: list[str] = []

    def fake_urlopen(url: str, timeout: float) -> io.BytesIO:
        served.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr("judgekit.data.sets.urllib.request.urlopen", fake_urlopen)
    payload = good[:-10] + b"  ]"
    with pytest.raises(DatasetError) as err:
        load_calibration_set("llmeval2")
    assert manifest.sha256 in str(err.value) and manifest.source.url in str(err.value)
    assert not no_env.exists() or not any(p.is_file() for p in no_env.rglob("*"))

    payload = good
    loaded = load_calibration_set("llmeval2")
    assert loaded.path == no_env / manifest.local_path and len(loaded.records) == 200
    load_calibration_set("llmeval2")  # now cached: no second download
    assert served == [manifest.source.url] * 2


def test_cached_file_is_verified_too(no_env: Path, shared_data: Path) -> None:
    manifest = load_manifest(builtin_sets_dir() / "llmeval2.yaml")
    target = no_env / manifest.local_path
    target.parent.mkdir(parents=True)
    shutil.copyfile(shared_data / manifest.local_path, target)
    assert len(load_calibration_set("llmeval2").records) == 200
    target.write_bytes(target.read_bytes() + b"\n")
    with pytest.raises(DatasetError, match=manifest.sha256 or "sha256"):
        load_calibration_set("llmeval2")


def test_record_id_must_match_item() -> None:
    item = PointwiseItem(id="x", question="q", answer="a")
    with pytest.raises(ValueError, match="item id"):
        CalibrationRecord(id="y", item=item, human=(), consensus=1.0)


# --- split -------------------------------------------------------------------------------------


def test_heldout_mask_deterministic_and_near_fraction() -> None:
    ids = [f"item-{i}" for i in range(20_000)]
    for fraction in (0.2, 0.5, 0.8):
        mask = heldout_mask(ids, fraction)
        assert mask.dtype == bool and mask.shape == (len(ids),)
        assert np.array_equal(mask, heldout_mask(ids, fraction))
        assert abs(mask.mean() - fraction) < 0.015  # ~4.5 sigma at n = 20,000
    assert not heldout_mask(ids, 0.0).any() and heldout_mask(ids, 1.0).all()
    assert not np.array_equal(heldout_mask(ids), heldout_mask(ids, salt="other-salt"))
    with pytest.raises(ValueError, match="fraction"):
        heldout_mask(ids, 1.5)


def test_heldout_mask_stable_under_additions_and_reordering() -> None:
    ids = [f"q{i}" for i in range(500)]
    base = dict(zip(ids, heldout_mask(ids), strict=True))
    grown = ids + [f"new{i}" for i in range(300)]
    rng = np.random.default_rng(0)
    shuffled = [grown[i] for i in rng.permutation(len(grown))]
    moved = dict(zip(shuffled, heldout_mask(shuffled), strict=True))
    assert all(moved[i] == side for i, side in base.items())
    # an id's side never depends on its neighbours
    assert [heldout_mask([i])[0] for i in ids[:50]] == [base[i] for i in ids[:50]]


# what each set's split_group must keep together: the content two items of one group share
SHARED_CONTENT = {
    "summeval": lambda r: r.item.context,  # the article: 16 system summaries each
    "newsroom": lambda r: r.item.context,  # the article: 7 system summaries each
    "pandalm": lambda r: (r.item.question, r.item.context),  # ~6 model pairs per instruction
    "llmeval2": lambda r: r.item.question,
    "llmbar_natural": lambda r: r.item.question,
}


@pytest.mark.parametrize(("name", "metric", "rows", "mode"), LOCAL_SETS)
def test_no_article_or_question_in_both_splits(
    shared_data: Path, name: str, metric: str | None, rows: int, mode: str
) -> None:
    """Splitting by item id put the same SummEval article on both sides (and PandaLM's
    instructions); by the manifest's split_group, none is."""
    records = load_calibration_set(name, data_dir=shared_data, metric=metric).records
    held, dev = (split_records(records, side) for side in ("heldout", "dev"))
    assert len(held) + len(dev) == rows and held and dev
    content = SHARED_CONTENT[name]
    assert not {content(r) for r in held} & {content(r) for r in dev}
    # the group key is exactly that content: one group per article / instruction
    assert len({r.group for r in records}) == len({content(r) for r in records})


def test_grouped_split_sizes_on_summeval_and_pandalm(shared_data: Path) -> None:
    """Held-out sizes under the group split (by id they were summeval 778, pandalm 496)."""
    summeval = load_calibration_set("summeval", data_dir=shared_data, metric="coherence")
    held = split_records(summeval.records, "heldout")
    assert (len(held), len({r.group for r in held})) == (800, 50)
    assert summeval.manifest.split_group.describe() == "field article_id"
    pandalm = load_calibration_set("pandalm", data_dir=shared_data)
    held = split_records(pandalm.records, "heldout")
    assert (len(held), len({r.group for r in held})) == (440, 77)


def _record(item_id: str, group: str) -> CalibrationRecord:
    item = PointwiseItem(id=item_id, question="q", answer="a")
    return CalibrationRecord(id=item_id, item=item, human=(), consensus=1.0, group=group)


def test_group_split_stable_as_items_are_added() -> None:
    """New items of a known group join its side; new groups never move old items."""
    base = [_record(f"a{g}-s{s}", f"a{g}") for g in range(200) for s in range(4)]
    side = {r.id: r in split_records(base, "heldout") for r in base}
    assert {side[f"a{g}-s{s}"] for g in range(200) for s in range(4)} == {True, False}
    for g in range(200):  # a group never straddles
        assert len({side[f"a{g}-s{s}"] for s in range(4)}) == 1
    grown = base + [_record(f"a{g}-new", f"a{g}") for g in range(200)]
    grown += [_record(f"b{g}-s0", f"b{g}") for g in range(300)]
    order = np.random.default_rng(0).permutation(len(grown))
    shuffled = [grown[i] for i in order]
    held = {r.id for r in split_records(shuffled, "heldout")}
    assert all((item_id in held) == was for item_id, was in side.items())
    assert all((f"a{g}-new" in held) == side[f"a{g}-s0"] for g in range(200))
    dev = {r.id for r in split_records(shuffled, "dev")}
    assert held.isdisjoint(dev) and len(held | dev) == len(grown)
    # a record built without a group is its own group (the id)
    assert CalibrationRecord(id="x", item=base[0].item.model_copy(update={"id": "x"}), human=(),
                             consensus=1.0).group == "x"  # fmt: skip


def test_split_record(shared_data: Path) -> None:
    ids = [r.id for r in load_calibration_set("pandalm", data_dir=shared_data).records]
    split = Split.of(ids, fraction=0.3)
    mask = split.mask(ids)
    assert (split.n_heldout, split.n_dev) == (int(mask.sum()), len(ids) - int(mask.sum()))
    assert split.salt == "judgekit-split-v1" and split.fraction == 0.3
    assert Split.model_validate(split.model_dump()) == split


def test_require_dev() -> None:
    require_dev("dev")
    with pytest.raises(HeldOutError, match="dev"):
        require_dev("heldout")
    with pytest.raises(ValueError, match="unknown split"):
        require_dev("test")
