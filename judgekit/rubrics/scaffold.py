"""A new rubric folder to edit: ``judgekit rubrics new NAME --mode ... --labels ...``.

The folder is a valid version 1 (it loads, renders and judges as written): one shared system
text, one material block with the shared content first (request, any input, conversation and
reference, then the answer), and three variants that differ only in their closing instruction,
so the prefix cache serves all of them. Label meanings and instructions say ``EDIT`` where a
person must write what the rubric means before calibrating it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import yaml

from judgekit.rubrics.load import load_rubric_dir
from judgekit.rubrics.manifest import RubricError
from judgekit.rubrics.rubric import Rubric

ScaffoldMode = Literal["pointwise", "pairwise", "checklist"]

_MATERIAL = """[Request]
{{ question }}
{% if context %}

[Input]
{{ context }}
{% endif %}
{% if conversation %}

[Earlier conversation]
{% for turn in conversation %}
{{ turn.role }}: {{ turn.content }}
{% endfor %}
{% endif %}
{% if reference %}

[Reference answer]
{{ reference }}
{% endif %}

"""
_ANSWERS = {
    "pointwise": "[Response]\n{{ answer }}\n[End of response]\n",
    "pairwise": "[Response A]\n{{ answer_a }}\n[End of response A]\n\n"
    "[Response B]\n{{ answer_b }}\n[End of response B]\n",
}
_ASK = {
    "direct": "EDIT: the question to the judge.",
    "strict": "EDIT: the same question, asking for a strict reading.",
    "detailed": "EDIT: the same question, listing what to check first.",
}


def parse_labels(text: str, mode: ScaffoldMode) -> list[dict[str, object]]:
    """``LABEL[=VALUE],...`` -> label specs. Values default to the number a label spells, else
    the position (first label 0); pairwise is always A=1, B=0; a checklist's default Yes=1, No=0."""
    if mode == "pairwise":
        names = [("A", 1.0), ("B", 0.0)]
    else:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if len(parts) < 2:
            raise RubricError(f"--labels {text!r}: give two or more labels, e.g. pass,fail")
        names = []
        if bad := [p for p in parts if re.search(r"[{}%#\s]", p)]:
            raise RubricError(f"--labels: {bad} (labels are plain words or numbers)")
        for position, part in enumerate(parts):
            label, _, value = part.partition("=")
            try:
                number = float(value) if value else float(label)
            except ValueError:
                number = float(position)
            names.append((label, number))
    return [
        {"label": label, "value": value, "meaning": f"EDIT: when to answer {label}."}
        for label, value in names
    ]


def new_rubric(
    root: Path | str,
    name: str,
    *,
    mode: ScaffoldMode,
    labels: str = "",
    criteria: Sequence[str] = (),
    description: str | None = None,
) -> Rubric:
    """Write ``root/NAME/v1`` and load it (RubricError when it exists or does not validate)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise RubricError(f"rubric name {name!r}: use lower-case letters, digits and _")
    folder = Path(root) / name / "v1"
    if folder.exists():
        raise RubricError(f"{folder} exists: a published version never changes; make v2")
    pairwise = mode == "pairwise"
    checklist = mode == "checklist"
    manifest: dict[str, object] = {
        "name": name,
        "version": 1,
        "description": description or f"EDIT: what {name} judges and when to use it.",
        "mode": "pairwise" if pairwise else "pointwise",
        "answer_cue": "Answer:",
        "min_label_mass": 0.2,
        "labels": parse_labels(labels or "Yes=1,No=0" if checklist else labels, mode),
        "variants": {v: {"system": "shared.system.j2", "user": f"{v}.user.j2"} for v in _ASK},
    }
    if checklist:
        manifest |= {"checklist": True, "requires": ["checklist"]}
    if criteria:
        manifest["criteria"] = {
            c: {"description": f"EDIT: what {c} means.", "answer_cue": f"{c.capitalize()}:"}
            for c in criteria
        }
    folder.mkdir(parents=True)
    (folder / "rubric.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    (folder / "shared.system.j2").write_text(
        "EDIT: who the judge is and what it judges. Reply with one label only: "
        + ", ".join(str(spec["label"]) for spec in manifest["labels"])  # type: ignore[attr-defined]
        + ".\n"
    )
    (folder / "material.j2").write_text(
        _MATERIAL + _ANSWERS["pairwise" if pairwise else "pointwise"]
    )
    tail = (
        "Check: {{ check }}\n"
        if checklist
        else ("{{ criterion.name }}: {{ criterion.description }}\n" if criteria else "")
    )
    for variant, ask in _ASK.items():
        (folder / f"{variant}.user.j2").write_text(
            f'{{% include "material.j2" %}}\n\n\n{tail}{ask}\n'
        )
    return load_rubric_dir(folder)
