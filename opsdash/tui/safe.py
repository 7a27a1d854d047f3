"""Untrusted text on its way to a widget: a server's body or headers, an env value, a log line.
Secrets known to the redactor are masked, control and invisible format characters are shown as
escapes (core.text.visible), and the result is a rich Text, so `[link=…]` in a health body is
shown as typed, never parsed as markup. Widgets take `safe(...)`, never a bare str, for such text."""

from __future__ import annotations

from rich.text import Text

from opsdash.core.secrets import redactor
from opsdash.core.text import visible


def clean(value: object, *, multiline: bool = False) -> str:
    return visible(redactor.redact(str(value)), multiline=multiline)


def safe(value: object, style: str = "") -> Text:
    return Text(clean(value), style=style)
