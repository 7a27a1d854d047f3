"""Untrusted text made safe to show: a server's body, a header, an env value or a log line may carry
escape sequences that clear a screen, retitle a window or write the clipboard. `visible` shows every
control character as a `\\xNN` escape instead of letting the terminal act on it."""

from __future__ import annotations

import re
from collections.abc import Iterable

# C0 controls (tab and newline handled by the caller's choice), DEL, the C1 range (8-bit CSI/OSC), and
# the invisible format characters that reorder or hide text on screen: bidi overrides and isolates,
# zero-width characters, line/paragraph separators, the BOM, lone surrogates.
_FORMAT = "\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff"
_CONTROL = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{_FORMAT}]")
_CONTROL_AND_NEWLINES = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_FORMAT}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, *, multiline: bool = False) -> str:
    """`text` with control characters shown, never interpreted. With `multiline`, newlines and tabs
    stay as they are; otherwise they are shown too, so one field cannot forge another line."""
    pattern = _CONTROL if multiline else _CONTROL_AND_NEWLINES
    return pattern.sub(_escape, text)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'validate'?)` for a near miss among `choices` (difflib's ratio ≥ 0.6), else ''."""
    import difflib

    close = difflib.get_close_matches(word, [c for c in choices if c != word], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
