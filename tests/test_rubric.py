import shutil
from pathlib import Path

import pytest
import yaml

from judgekit.rubrics import (
    RubricError,
    content_hash,
    list_rubrics,
    load_rubric,
    load_rubric_dir,
    lock_violations,
    update_lock,
)
from judgekit.rubrics.load import builtin_rubrics_dir, yank_reason
from judgekit.rubrics.lock import read_lock
from judgekit.schema import PairwiseItem, PointwiseItem

BUILTIN = builtin_rubrics_dir()


def test_builtin_rubrics_load_with_three_variants() -> None:
    refs = {r.ref: r for r in list_rubrics()}
    assert {"overall_quality@v1", "pairwise_preference@v1"} <= set(refs)
    point, pair = refs["overall_quality@v1"], refs["pairwise_preference@v1"]
    assert point.manifest.mode == "pointwise" and point.labels == ("1", "2", "3", "4", "5")
    assert pair.manifest.mode == "pairwise" and pair.labels == ("A", "B")
    for rubric in refs.values():
        assert len(rubric.variants) >= 3
        assert len(rubric.hash) == 64 and rubric.hash == content_hash(rubric.path)


def test_reference_forms() -> None:
    assert load_rubric("pairwise_preference").version == 2  # the latest published version
    assert load_rubric("overall_quality").version == 1  # v2 is yanked (not certified)
    assert load_rubric("overall_quality@v2").version == 2  # a yanked version still loads
    assert load_rubric("overall_quality@v1").ref == load_rubric("overall_quality@1").ref
    with pytest.raises(RubricError, match="versions \\[1, 2\\], not v9"):
        load_rubric("overall_quality@v9")
    with pytest.raises(RubricError, match="not found"):
        load_rubric("no_such_rubric")


def test_yanked_version_is_not_the_default(tmp_path: Path) -> None:
    """``NAME`` skips a yanked version, ``NAME@vN`` still loads it, and yanking every version
    falls back to the latest; ``yanked.yaml`` is checked like any manifest."""
    root = tmp_path / "rubrics"
    for version in ("v1", "v2"):
        shutil.copytree(BUILTIN / "overall_quality" / version, root / "overall_quality" / version)
    yanked = root / "overall_quality" / "yanked.yaml"
    yanked.write_text("2: worse agreement\n")
    assert load_rubric("overall_quality", paths=[root]).version == 1
    assert yank_reason(load_rubric("overall_quality@v2", paths=[root])) == "worse agreement"
    assert yank_reason(load_rubric("overall_quality@v1", paths=[root])) is None
    yanked.write_text("1: a\n2: b\n")
    assert load_rubric("overall_quality", paths=[root]).version == 2
    yanked.write_text("two: b\n")
    with pytest.raises(RubricError, match=r"yanked\.yaml: field two"):
        load_rubric("overall_quality", paths=[root])


def test_published_versions_match_the_lock() -> None:
    """A published rubric version never changes: a change must be a new vN folder."""
    assert lock_violations(BUILTIN) == []
    on_disk = {r.ref for r in list_rubrics() if r.path.is_relative_to(BUILTIN)}
    assert on_disk <= set(read_lock(BUILTIN)), "new rubric versions must be added to the lock"


def _copy(tmp_path: Path, name: str = "overall_quality") -> Path:
    root = tmp_path / "rubrics"
    shutil.copytree(BUILTIN / name, root / name)
    return root


def test_lock_detects_an_edited_published_version(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    update_lock(root)
    assert lock_violations(root) == []
    template = root / "overall_quality" / "v1" / "direct.user.j2"
    template.write_text(template.read_text() + "\nBe generous.")
    [problem] = lock_violations(root)
    assert problem.startswith("overall_quality@v1: content hash")


def _edit_manifest(root: Path, **changes: object) -> Path:
    path = root / "overall_quality" / "v1" / "rubric.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mode": "listwise"}, "field mode: Input should be 'pointwise' or 'pairwise'"),
        ({"labels": [{"label": "1", "value": 1, "meaning": "bad"}]}, "field labels"),
        ({"colour": "red"}, "field colour: Extra inputs are not permitted"),
        ({"version": 2}, "field version: 2 != folder name"),
        (
            {"variants": {"x": {"system": "missing.j2", "user": "direct.user.j2"}}},
            "field variants.x.system: 'missing.j2' not found",
        ),
    ],
)
def test_validation_errors_name_file_and_field(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    root = _copy(tmp_path)
    path = _edit_manifest(root, **changes)
    with pytest.raises(RubricError) as info:
        load_rubric_dir(path.parent)
    assert str(path) in str(info.value) and message in str(info.value)


def test_user_rubric_dir_is_searched_first(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit_manifest(root, description="my own copy")
    assert load_rubric("overall_quality@v1", paths=[root]).manifest.description == "my own copy"


def test_candidate_text_is_data_never_template() -> None:
    rubric = load_rubric("overall_quality@v1")
    nasty = "{{ 7*7 }} {% for x in range(3) %}loop{% endfor %} {{ ''.__class__ }}"
    item = PointwiseItem(id="x", question="Q {{ question }}", answer=nasty)
    for variant in rubric.variants:
        _, user, cue = rubric.render(variant, item)
        assert nasty in user.content and "49" not in user.content
        assert "Q {{ question }}" in user.content
        assert cue.role == "assistant" and cue.content == "Score:"


def test_template_errors_are_sandboxed_and_strict(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    folder = root / "overall_quality" / "v1"
    (folder / "direct.user.j2").write_text("{{ answer.__class__.__mro__ }}")
    item = PointwiseItem(id="x", question="q", answer="a")
    with pytest.raises(RubricError, match="render error"):
        load_rubric_dir(folder).render("direct", item)
    (folder / "direct.user.j2").write_text("{{ not_a_variable }}")
    with pytest.raises(RubricError, match="'not_a_variable' is undefined"):
        load_rubric_dir(folder).render("direct", item)


def test_pairwise_swap_exchanges_the_answers() -> None:
    rubric = load_rubric("pairwise_preference@v1")
    item = PairwiseItem(id="p", question="q", answer_a="FIRST-ANSWER", answer_b="SECOND-ANSWER")
    _, ab, _ = rubric.render("direct", item)
    _, ba, _ = rubric.render("direct", item, swap=True)
    assert ab.content.index("FIRST-ANSWER") < ab.content.index("SECOND-ANSWER")
    assert ba.content.index("SECOND-ANSWER") < ba.content.index("FIRST-ANSWER")
    with pytest.raises(RubricError, match="pairwise but item 'x' has one answer"):
        rubric.render("direct", PointwiseItem(id="x", question="q", answer="a"))


def test_templates_that_read_no_item_field_render_once(tmp_path: Path) -> None:
    """v2's shared system text is rendered once; a template including one that reads an item
    field is not (else every item would get the first item's text)."""
    rubric = load_rubric("overall_quality@v2")
    assert set(rubric._item_free) == {"shared.system.j2"}
    items = [PointwiseItem(id=str(i), question=f"q{i}", answer=f"a{i}") for i in range(2)]
    first, second = (rubric.render("direct", item) for item in items)
    assert first[0] == second[0] and "q0" in first[1].content and "q1" in second[1].content
    root = _copy(tmp_path)
    folder = root / "overall_quality" / "v1"
    (folder / "note.j2").write_text("Asked: {{ question }}")
    manifest = yaml.safe_load((folder / "rubric.yaml").read_text())
    system = folder / manifest["variants"]["direct"]["system"]
    system.write_text(system.read_text() + '\n{% include "note.j2" %}')
    edited = load_rubric_dir(folder)
    assert system.name not in edited._item_free
    systems = [edited.render("direct", item)[0].content for item in items]
    assert systems[0].endswith("Asked: q0") and systems[1].endswith("Asked: q1")
