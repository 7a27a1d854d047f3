"""Untrusted text made safe to show: a server's body, a header, an env value or a log line may carry
escape sequences that clear a screen, retitle a window or write the clipboard. `visible` shows every
control character as a `\\xNN` escape instead of letting the terminal act on it."""

from __future__ import annotations

import re

# C0 controls (tab and newline handled by the caller's choice), DEL, and the C1 range (8-bit CSI/OSC)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_AND_NEWLINES = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def visible(text: str, *, multiline: bool = False) -> str:
    """`text` with control characters shown, never interpreted. With `multiline`, newlines and tabs
    stay as they are; otherwise they are shown too, so one field cannot forge another line."""
    pattern = _CONTROL if multiline else _CONTROL_AND_NEWLINES
    return pattern.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
