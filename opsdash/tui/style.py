"""How severity looks. The colours are theme variables — `$severity-crit`, `$severity-unknown`,
`$severity-warn`, `$severity-info`, `$severity-ok` — so switching the theme recolours every
severity on screen: the `.tcss` uses them as it uses `$error`, and the panes' text is Textual
`Content` whose styles name them, resolved when it is painted. A theme may declare its own
(`Theme(variables={"severity-crit": ...})`); one that does not gets its `$error`, `$warning`,
`$primary` and `$success` (and a magenta of ours for UNKNOWN, which no theme names).

Beside the colour each severity has a weight, from one palette for the whole session chosen at
start-up: full colour, or monochrome (NO_COLOR, the mono theme) where severity is carried by bold,
reverse and underline instead of hue. No two severities share a look in any palette."""

from __future__ import annotations

from collections.abc import Mapping

from textual.content import Content
from textual.theme import Theme

from opsdash.core.findings import Severity

SEVERITY_VARIABLES: dict[Severity, str] = {
    Severity.CRIT: "severity-crit",
    Severity.UNKNOWN: "severity-unknown",
    Severity.WARN: "severity-warn",
    Severity.INFO: "severity-info",
    Severity.OK: "severity-ok",
}
# The theme colour a severity takes where the theme does not declare its own.
THEME_FALLBACK: dict[str, str] = {
    "severity-crit": "error",
    "severity-warn": "warning",
    "severity-info": "primary",
    "severity-ok": "success",
}
# "could not evaluate": apart from every other severity in every theme (the ANSI themes: ANSI's)
UNKNOWN_FALLBACK = "#c061cb"
UNKNOWN_FALLBACK_ANSI = "ansi_magenta"

PALETTES: dict[str, dict[Severity, str]] = {
    "colour": {
        Severity.CRIT: "bold $severity-crit",
        Severity.UNKNOWN: "bold $severity-unknown",
        Severity.WARN: "$severity-warn",
        Severity.INFO: "$severity-info",
        Severity.OK: "$severity-ok",
    },
    "mono": {
        Severity.CRIT: "bold reverse",
        Severity.UNKNOWN: "reverse",
        Severity.WARN: "bold underline",
        Severity.INFO: "italic",
        Severity.OK: "dim",
    },
}
GATE_STYLE: dict[str, dict[str, str]] = {
    "colour": {
        "GO": "bold $text on $severity-ok",
        "NO-GO": "bold $text on $severity-crit",
        "UNKNOWN": "bold $text on $severity-unknown",
    },
    "mono": {"GO": "bold", "NO-GO": "bold reverse", "UNKNOWN": "reverse"},
}
# A verdict recorded before this start (the header's first frame): the gate's look, faded and
# slanted, and its marker ("last known, 3 min ago — checking…") in italics beside it, so it is
# never read as live.
STALE = "dim italic"
STALE_NOTE = "italic $text-warning"
HINT = "$text-secondary"  # a remediation or a runbook to open: not a severity (nor $accent: WARN in some)
Part = str | Content | tuple[str, str]  # what `Content.assemble` joins: text, content, (text, style)

# The palette in use; `use_palette` switches it for the whole session before the first paint.
SEVERITY_STYLE: dict[Severity, str] = dict(PALETTES["colour"])
_gate: dict[str, str] = dict(GATE_STYLE["colour"])

MONO_THEME = Theme(
    name="opsdash-mono",
    primary="#d0d0d0",
    secondary="#a0a0a0",
    accent="#ffffff",
    foreground="#e0e0e0",
    background="#000000",
    surface="#101010",
    panel="#202020",
    error="#ffffff",
    warning="#d0d0d0",
    success="#909090",
    dark=True,
    variables={
        "severity-crit": "#ffffff",
        "severity-unknown": "#e0e0e0",
        "severity-warn": "#d0d0d0",
        "severity-info": "#b0b0b0",
        "severity-ok": "#909090",
    },
)


def severity_variables(theme_variables: Mapping[str, str]) -> dict[str, str]:
    """The severity variables for a theme's variables: its own where it declares them, else its
    error/warning/primary/success colours."""
    derived = {name: theme_variables[base] for name, base in THEME_FALLBACK.items()}
    ansi = derived["severity-crit"].startswith("ansi_")
    derived["severity-unknown"] = UNKNOWN_FALLBACK_ANSI if ansi else UNKNOWN_FALLBACK
    return {name: theme_variables.get(name, value) for name, value in derived.items()}


def use_palette(name: str) -> None:
    SEVERITY_STYLE.clear()
    SEVERITY_STYLE.update(PALETTES[name])
    _gate.clear()
    _gate.update(GATE_STYLE[name])


def gate_style(label: str) -> str:
    return _gate.get(label, _gate["UNKNOWN"])


def gate_parts(label: str, headline: str, reason: str, *, live: bool = True, note: str = "") -> list[Part]:
    """The verdict as the header and the overview paint it: the live one as a badge and its reason;
    a last known one faded, with its marker, so the two never look alike."""
    if live:
        return [(f" {headline} ", gate_style(label)), f" {reason}"]
    parts: list[Part] = [(f" {headline} ", f"{gate_style(label)} {STALE}")]
    if note:
        parts.append((f" ({note})", STALE_NOTE))
    parts.append((f" {reason}", "italic"))
    return parts


def severity(text: str, level: Severity, extra: str = "") -> Content:
    """`text` in `level`'s look (plain text: nothing in it is read as markup)."""
    return Content.styled(text, f"{SEVERITY_STYLE[level]} {extra}".strip())
