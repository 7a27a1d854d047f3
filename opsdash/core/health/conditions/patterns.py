"""pat(): Gatus's pattern.Match, which is Go's filepath.Match with the separator removed from both
sides (so `*` spans everything)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from opsdash.core.health.conditions.language import ConditionError


@dataclass(frozen=True)
class _Glob:
    chunks: tuple[tuple[re.Pattern[str], int], ...]  # star-separated runs of one-character terms
    leading_star: bool
    trailing_star: bool


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> _Glob:
    """Compile a pattern; ConditionError columns are 1-based within the pattern."""
    chars = [(i + 1, ch) for i, ch in enumerate(pattern) if ch != "/"]
    terms: list[str | None] = []  # None is a star; else a regex for exactly one character
    i = 0
    while i < len(chars):
        col, ch = chars[i]
        if ch == "*":
            terms.append(None)
            i += 1
        elif ch == "?":
            terms.append(".")
            i += 1
        elif ch == "\\":
            if i + 1 >= len(chars):
                raise ConditionError("pat(): the \\ at the end escapes nothing", col)
            terms.append(re.escape(chars[i + 1][1]))
            i += 2
        elif ch == "[":
            i, term = _glob_class(chars, i)
            terms.append(term)
        else:
            terms.append(re.escape(ch))
            i += 1
    chunks: list[tuple[re.Pattern[str], int]] = []
    run: list[str] = []
    for each in [*terms, None]:
        if each is not None:
            run.append(each)
        elif run:
            chunks.append((re.compile("".join(run), re.DOTALL), len(run)))
            run = []
    leading = bool(terms) and terms[0] is None
    trailing = bool(terms) and terms[-1] is None
    return _Glob(tuple(chunks), leading, trailing)


def _glob_class(chars: list[tuple[int, str]], i: int) -> tuple[int, str]:
    start = chars[i][0]

    def one(j: int) -> tuple[str, int]:
        if j >= len(chars):
            raise ConditionError("pat(): [ is not closed with ]", start)
        col, ch = chars[j]
        if ch in "-]":
            raise ConditionError(f"pat(): unexpected {ch!r} in [...]", col)
        if ch == "\\":
            j += 1
            if j >= len(chars):
                raise ConditionError("pat(): [ is not closed with ]", start)
        if j + 1 >= len(chars):
            raise ConditionError("pat(): [ is not closed with ]", start)
        return chars[j][1], j + 1

    j = i + 1
    negated = j < len(chars) and chars[j][1] == "^"
    j += negated
    ranges: list[tuple[str, str]] = []
    while True:
        if j < len(chars) and chars[j][1] == "]" and ranges:
            j += 1
            break
        lo, j = one(j)
        hi = lo
        if chars[j][1] == "-":
            hi, j = one(j + 1)
        ranges.append((lo, hi))
    parts = [re.escape(lo) + ("-" + re.escape(hi) if hi != lo else "") for lo, hi in ranges if lo <= hi]
    if not parts:
        return j, "." if negated else "(?!)"
    return j, "[" + ("^" if negated else "") + "".join(parts) + "]"


def pattern_matches(pattern: str, text: str) -> bool:
    glob = compile_pattern(pattern)
    text = text.replace("/", "")
    chunks = list(glob.chunks)
    if not glob.leading_star and not glob.trailing_star and len(chunks) <= 1:
        return chunks[0][0].fullmatch(text) is not None if chunks else text == ""
    start, end = 0, len(text)
    if not glob.leading_star:
        regex, width = chunks.pop(0)
        if regex.match(text, 0) is None:
            return False
        start = width
    if not glob.trailing_star:
        regex, width = chunks.pop()
        if end - width < start or regex.match(text, end - width) is None:
            return False
        end -= width
    for regex, _width in chunks:
        found = regex.search(text, start, end)
        if found is None:
            return False
        start = found.end()
    return True
