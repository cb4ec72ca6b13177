"""The examples in README.md and docs/*.md as data: fenced blocks, their commands, their skip marks.

HTML comments right above a fence (blank lines aside) steer the docs test, invisible on the page:

- ``<!-- docs-test: skip REASON -->``: the block does not run here (a GPU, a server, a long
  calibration); the docs test lists each one with its reason;
- ``<!-- docs-test: setup COMMAND -->``: a ``judgekit`` command (or ``cp SRC DEST``) run first,
  for what the page assumes exists (a baseline run, a sample file under the page's name for it);
- ``<!-- docs-test: file PATH -->``: the block (any language) is a file the page shows; it is
  written to ``PATH`` rather than run;
- ``<!-- docs-test: exit CODE [CODE...] -->``: the block's commands end with one of these codes
  (a gate that the weak embedded judge may fail: ``exit 0 1``; in a Python block, 1 lets a
  ``GateFailure`` through).

Shell blocks hold ``judgekit`` commands (one per line, ``\\`` continues a line, ``#`` starts a
comment); anything else in a shell block must be marked. ``bash scripts/setup.sh &&
.venv/bin/judgekit ...`` runs as ``judgekit ...`` (the setup script has its own test:
tests/test_setup_script.py).
"""

from __future__ import annotations

import glob
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHELL = {"bash", "sh", "shell", "console"}
PYTHON = {"python", "py"}
DIRECTIVE = re.compile(
    r"^\s*<!--\s*docs-test:\s*(?P<kind>skip|setup|file|exit)\s+(?P<value>.+?)\s*-->\s*$"
)
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)\s*$")
SETUP = "bash scripts/setup.sh"


@dataclass(frozen=True)
class Block:
    """One fenced example: where it is, its language and text, and why it is skipped (if it is)."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: str | None = None
    setup: tuple[str, ...] = ()
    file: str | None = None
    exit: tuple[int, ...] = (0,)

    @property
    def where(self) -> str:
        path = self.path.relative_to(REPO) if self.path.is_relative_to(REPO) else self.path
        return f"{path}:{self.line}"


def doc_files() -> list[Path]:
    """README.md and every Markdown page under docs/ (new pages are picked up by themselves)."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """The shell and Python blocks of one Markdown file, in document order."""
    lines = path.read_text().splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith("```"):
            end += 1
        lang = opening["lang"].lower()
        marks = _directives(lines, index)
        if lang in SHELL | PYTHON or "file" in marks:
            indent = len(opening["indent"])
            code = "\n".join(line[indent:] for line in lines[index + 1 : end])
            found.append(
                Block(
                    path,
                    index + 1,
                    lang,
                    code + "\n",
                    skip=marks.get("skip", [None])[-1],
                    setup=tuple(marks.get("setup", ())),
                    file=marks.get("file", [None])[-1],
                    exit=tuple(int(code) for code in marks.get("exit", ["0"])[-1].split()),
                )
            )
        index = end + 1
    return found


def _directives(lines: list[str], fence: int) -> dict[str, list[str]]:
    """The ``docs-test`` comments right above a fence (blank lines between them allowed)."""
    found: dict[str, list[str]] = {}
    above = fence - 1
    while above >= 0:
        if lines[above].strip():
            mark = DIRECTIVE.match(lines[above])
            if not mark:
                break
            found.setdefault(mark["kind"], []).insert(0, mark["value"])
        above -= 1
    return found


def commands(block: Block) -> list[str]:
    """A shell block's commands, continuations joined, comments and blank lines dropped."""
    joined = re.sub(r"\s*\\\n\s*", " ", block.code)
    found = []
    for raw in joined.splitlines():
        line = _strip_comment(raw).strip()
        if not line:
            continue
        parts = [part.strip() for part in line.split("&&")]
        if parts[0] == SETUP:
            parts = parts[1:]
        found += [re.sub(r"^\.venv/bin/judgekit\b", "judgekit", part) for part in parts]
    return found


def _strip_comment(line: str) -> str:
    """``line`` without a trailing ``# comment`` (a ``#`` inside quotes is text)."""
    quote = None
    for position, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (position == 0 or line[position - 1].isspace()):
            return line[:position]
    return line


def argv(command: str, cwd: Path) -> list[str]:
    """A ``judgekit`` command's arguments as the shell gives them: quotes removed, globs expanded.

    An unquoted word with ``*`` or ``?`` expands to the sorted matching paths under ``cwd``
    (left as written when nothing matches, as bash does).
    """
    lexer = shlex.shlex(command, posix=False)
    lexer.whitespace_split = True
    lexer.commenters = ""
    words: list[str] = []
    for word in lexer:
        if word[:1] in "'\"" and word[-1:] == word[:1]:
            words.append(word[1:-1])
        elif any(char in word for char in "*?"):
            matches = sorted(glob.glob(word, root_dir=cwd))
            words += matches or [word]
        else:
            words.append(word)
    if words[:1] != ["judgekit"]:
        raise ValueError(f"not a judgekit command: {command!r}")
    return words[1:]
