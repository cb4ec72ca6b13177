"""Token ids of texts, with each long shared prefix tokenised once and verified.

Judging prompts repeat long texts: every candidate of an article repeats the rubric text and the
article, every variant of a candidate repeats everything up to its instruction, and every
prompt of a variant ends with the same instruction. Tokenising each whole text spends most of
the host's time on text it has tokenised before. So when a text shares a long prefix with the
text before it, it is cut at a word boundary well inside the shared part; the part before the
cut is tokenised once and its ids are reused by every later text that starts with it. Endings
shared with a recent text are cut off and reused the same way.

A cut is exact only where the tokenizer does not merge across it. Each cut is verified once, when
it is found: the ids of a text tokenised whole must end with the ids of its part after the cut
alone (a prefix) or start with the ids of its part before the cut (a suffix), and the remaining
ids become the cut's own. A cut is reused only by a text that also repeats the ``_MARGIN``
characters on the other side of it, so the tokenizer sees the same text on both sides of the
cut as when it was verified. A cut that fails is dropped and its texts are tokenised whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

#: Characters beside a cut that a text must repeat to reuse it (the verified context).
_MARGIN = 32
#: A prefix cut must save at least this many characters over the longest known prefix.
_MIN_GAIN = 128
#: A suffix cut must save at least this many characters.
_MIN_SUFFIX = 32
#: Cuts kept for reuse: the planner sorts prompts, so a group's texts are adjacent.
_RECENT = 8
#: Distinct texts whose ids are kept between calls.
_CACHE_LIMIT = 16384


@dataclass(eq=False)
class _Cut:
    """Text whose ids are reused: verified, or (within one call) waiting for its check."""

    text: str
    key: str
    ids: list[int] = field(default_factory=list)
    ok: bool = False
    checked: bool = False


@dataclass(eq=False)
class _Prefix(_Cut):
    """``witness``: the previous text's plan, whose ids are known; the cut is good when they
    start with the base's ids and end with the ids of ``witness_tail`` (its part after the cut)."""

    base: _Prefix | None = None
    witness: _Plan | None = None
    witness_tail: str = ""


@dataclass(eq=False)
class _Suffix(_Cut):
    """Good when the ids of ``witness`` (a rest ending with it) start with the ids of ``head``."""

    witness: str = ""
    head: str = ""


@dataclass(eq=False)
class _Plan:
    """One text as reused prefix + tokenised middle + reused suffix."""

    text: str
    prefix: _Prefix | None
    rest: str
    suffix: _Suffix | None
    ids: list[int] = field(default_factory=list)

    @property
    def middle(self) -> str:
        return self.rest[: len(self.rest) - len(self.suffix.text)] if self.suffix else self.rest


def _common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix (binary search on slice compares, which run in C)."""
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: str, b: str) -> int:
    """Length of the longest common suffix."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid :] == b[len(b) - mid :]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _boundary(text: str, at: int) -> bool:
    """A word boundary: a space between two non-spaces."""
    return text[at] == " " and not text[at - 1].isspace() and not text[at + 1].isspace()


def _cut_before(text: str, start: int, end: int) -> int:
    """The last word boundary in ``text[start:end]``, or 0."""
    for _ in range(8):
        cut = text.rfind(" ", start, end)
        if cut <= start:
            return 0
        if _boundary(text, cut):
            return cut
        end = cut
    return 0


def _cut_after(text: str, start: int, end: int) -> int:
    """The first word boundary in ``text[start:end]``, or 0."""
    for _ in range(8):
        cut = text.find(" ", start, end)
        if cut < 1:
            return 0
        if _boundary(text, cut):
            return cut
        start = cut + 1
    return 0


#: Texts in, the ids of each text out (one batched tokenizer call).
Encode = Callable[[list[str]], list[list[int]]]


class TextIds:
    """Ids of a stream of texts (prompts in planned order), cuts reused."""

    def __init__(self, encode: Encode) -> None:
        self._encode = encode
        #: Characters sent to the tokenizer so far (what the reuse saves is measured against it).
        self.chars = 0
        self._clear()

    def _clear(self) -> None:
        self._ids: dict[str, list[int]] = {}
        self._prefixes: list[_Prefix] = []
        self._suffixes: list[_Suffix] = []
        self._rests: list[str] = []
        self._previous = ""
        self._last: _Plan | None = None

    def _tokenize(self, texts: Sequence[str]) -> None:
        """One batch call of the tokenizer for the texts not cached yet."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._ids))
        if missing:
            self.chars += sum(len(t) for t in missing)
            self._ids.update(zip(missing, self._encode(missing), strict=True))

    def _prefix(self, text: str, shared: int) -> _Prefix | None:
        """The longest known prefix ``text`` may reuse, or a new, longer one cut here."""
        base = max(
            (p for p in self._prefixes if text.startswith(p.key)),
            key=lambda p: len(p.text),
            default=None,
        )
        start = len(base.text) if base else 0
        last = self._last
        if last is None or shared - _MARGIN - start < _MIN_GAIN:
            return base
        cut = _cut_before(text, start + _MIN_GAIN, shared - _MARGIN)
        if not cut:
            return base
        prefix = _Prefix(
            text[:cut], text[: cut + _MARGIN], base=base, witness=last,
            witness_tail=last.text[cut:],
        )  # fmt: skip
        self._prefixes = [*self._prefixes, prefix][-_RECENT:]
        return prefix

    def _suffix(self, rest: str) -> _Suffix | None:
        """The longest known suffix ``rest`` may reuse, or a new one shared with a recent rest."""
        known = [s for s in self._suffixes if rest.endswith(s.key)]
        if known:
            return max(known, key=lambda s: len(s.text))
        probe = rest[-(_MIN_SUFFIX + _MARGIN) :]
        shared = max(
            (_common_suffix(rest, r) for r in self._rests if len(probe) and r.endswith(probe)),
            default=0,
        )
        if shared < _MIN_SUFFIX + _MARGIN:
            return None
        cut = _cut_after(rest, len(rest) - shared + _MARGIN, len(rest) - _MIN_SUFFIX)
        if not cut:
            return None
        suffix = _Suffix(rest[cut:], rest[cut - _MARGIN :], witness=rest, head=rest[:cut])
        self._suffixes = [*self._suffixes, suffix][-_RECENT:]
        return suffix

    def _plan(self, text: str) -> _Plan:
        shared = _common_prefix(text, self._previous)
        self._previous = text
        if text in self._ids:
            plan = _Plan(text, None, text, None)
        else:
            prefix = self._prefix(text, shared)
            rest = text[len(prefix.text) if prefix else 0 :]
            plan = _Plan(text, prefix, rest, self._suffix(rest))
            self._rests = [*self._rests, rest][-_RECENT:]
        self._last = plan
        return plan

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of each text, as the tokenizer gives for the text alone."""
        if len(self._ids) > _CACHE_LIMIT:
            self._clear()
        plans = [self._plan(t) for t in texts]
        prefixes = list(dict.fromkeys(p.prefix for p in plans if p.prefix and not p.prefix.checked))
        suffixes = list(dict.fromkeys(p.suffix for p in plans if p.suffix and not p.suffix.checked))
        self._tokenize(
            [p.middle for p in plans]
            + [t for s in suffixes for t in (s.witness, s.head)]
            + [p.witness_tail for p in prefixes]
        )
        for s in suffixes:
            whole, head = self._ids[s.witness], self._ids[s.head]
            s.ok, s.ids, s.checked = whole[: len(head)] == head, whole[len(head) :], True
        self._tokenize([p.rest for p in plans if p.suffix and not p.suffix.ok])
        for plan in plans:  # in order: a witness has its ids before the prefix it checks
            if plan.suffix and not plan.suffix.ok:
                rest_ids = self._ids[plan.rest]
            else:
                rest_ids = self._ids[plan.middle] + (plan.suffix.ids if plan.suffix else [])
            p = plan.prefix
            if p and not p.checked:
                assert p.witness is not None
                whole, tail = p.witness.ids, self._ids[p.witness_tail]
                base = p.base.ids if p.base and p.base.ok else None
                own = len(whole) - len(tail)
                p.ok = (
                    (p.base is None or base is not None)
                    and own > len(base or [])
                    and whole[: len(base or [])] == (base or [])
                    and whole[own:] == tail
                )
                p.ids, p.checked, p.witness = whole[:own], True, None
            if p and not p.ok:
                self._tokenize([plan.text])
                plan.ids = self._ids[plan.text]
            else:
                plan.ids = (p.ids if p else []) + rest_ids
        self._prefixes = [p for p in self._prefixes if p.ok or not p.checked]
        self._suffixes = [s for s in self._suffixes if s.ok or not s.checked]
        return [p.ids for p in plans]
