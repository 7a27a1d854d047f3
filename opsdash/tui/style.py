"""How severity looks. One palette for the whole session, chosen at start-up: full colour, the
terminal's 16 ANSI colours, or monochrome (NO_COLOR) where severity is carried by bold, reverse and
underline instead of hue. No two severities share a look in any palette."""

from __future__ import annotations

from textual.theme import Theme

from opsdash.core.findings import Severity

PALETTES: dict[str, dict[Severity, str]] = {
    "colour": {
        Severity.CRIT: "bold red",
        Severity.UNKNOWN: "bold magenta",
        Severity.WARN: "yellow",
        Severity.INFO: "blue",
        Severity.OK: "green",
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
    "colour": {"GO": "bold white on green", "NO-GO": "bold white on red", "UNKNOWN": "bold white on magenta"},
    "mono": {"GO": "bold", "NO-GO": "bold reverse", "UNKNOWN": "reverse"},
}

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
)


def use_palette(name: str) -> None:
    SEVERITY_STYLE.clear()
    SEVERITY_STYLE.update(PALETTES[name])
    _gate.clear()
    _gate.update(GATE_STYLE[name])


def gate_style(label: str) -> str:
    return _gate.get(label, _gate["UNKNOWN"])
