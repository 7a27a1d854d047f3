"""Colour and keys come from the configuration and the terminal: NO_COLOR gives a monochrome
theme where severity stays salient, a 16-colour terminal gets the ANSI theme, an unknown theme or
keymap id is a config error with file:line, and without a terminal the dashboard says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from rich.style import Style
from textual.app import App
from textual.binding import Binding
from textual.color import Color
from textual.content import Content
from textual.theme import Theme
from textual.widget import Widget
from textual.widgets import Static

from opsdash.core.findings import Severity
from opsdash.core.profile import DASHBOARD_THEMES, KEYMAP_IDS
from opsdash.tui.app import PANE_CLASSES, HelpScreen, OpsdashApp, VerdictBar, choose_theme, pane_class
from opsdash.tui.style import PALETTES, SEVERITY_STYLE, use_palette
from opsdash.tui.widgets.logview import LogView
from opsdash.tui.widgets.table import FilterBar, OpsTable
from tests.conftest import Project
from tests.tui.conftest import SIZE, feed_sample, sample_on, settle

OPSDASH = str(Path(sys.executable).with_name("opsdash"))


def test_the_config_knows_every_theme_and_binding_id_the_dashboard_has() -> None:
    themes = set(App[None]().available_themes) | {"opsdash-mono"}
    assert set(DASHBOARD_THEMES) == themes
    owners = [OpsdashApp, *(pane_class(p) for p in PANE_CLASSES), OpsTable, FilterBar, LogView, HelpScreen]
    ids = {b.id for owner in owners for b in owner.BINDINGS if isinstance(b, Binding) and b.id}
    assert set(KEYMAP_IDS) == ids


async def test_the_monochrome_theme_chosen_in_the_profile_is_used(tmp_path: Path) -> None:
    """`config validate` accepts theme = "opsdash-mono"; the dashboard must then use it (and its
    severity styles), not refuse it because NO_COLOR is unset."""
    from opsdash.tui import style
    from tests.conftest import EXAMPLE_PROFILE

    profile = tmp_path / "opsdash.toml"
    profile.write_text(
        EXAMPLE_PROFILE.read_text().replace("[opsdash]\n", '[opsdash]\ntheme = "opsdash-mono"\n', 1)
    )
    profile_dir = EXAMPLE_PROFILE.parent
    profile.write_text(
        profile.read_text().replace('".env.production"', f'"{profile_dir / ".env.production"}"')
    )
    app = OpsdashApp.on_profile(profile, live=False, record=False, data_dir=tmp_path / "data")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert app.theme == "opsdash-mono"
            assert not [n for n in app._notifications if "not a theme" in n.message]
            assert style.gate_style("NO-GO") != style.gate_style("GO") and "reverse" in style.gate_style(
                "NO-GO"
            )
    finally:
        style.use_palette("colour")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('theme = "solarised"', "unknown theme 'solarised'"),
        ('keymap = { "health.bogus" = "x" }', "health.bogus"),
    ],
)
def test_config_validate_rejects_unknown_theme_and_keymap_ids(
    project: Project, line: str, problem: str
) -> None:
    text = project.profile.read_text().replace("[opsdash]\n", f"[opsdash]\n{line}\n")
    project.profile.write_text(text)
    lineno = text.splitlines().index(line) + 1
    done = subprocess.run(
        [OPSDASH, "config", "validate", "--config", str(project.profile)], capture_output=True, text=True
    )
    assert done.returncode == 3
    assert f"{project.profile}:{lineno}:" in done.stderr and problem in done.stderr


def test_plain_opsdash_without_a_terminal_exits_with_a_clear_error(project: Project) -> None:
    done = subprocess.run(
        [OPSDASH, "--config", str(project.profile)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert done.returncode == 3
    assert "needs a terminal" in done.stderr


def test_theme_choice() -> None:
    assert choose_theme("textual-dark", monochrome=True, colours="truecolor") == "opsdash-mono"
    assert choose_theme("textual-dark", monochrome=False, colours="standard") == "ansi-dark"
    assert choose_theme("nord", monochrome=False, colours="standard") == "nord"  # the profile's choice wins
    assert choose_theme("textual-dark", monochrome=False, colours="256") == "textual-dark"


def test_no_two_severities_look_the_same_in_any_palette() -> None:
    for palette in PALETTES.values():
        assert len(set(palette.values())) == len(palette)
    assert all(word in PALETTES["mono"][Severity.CRIT] for word in ("bold", "reverse"))
    assert "red" not in " ".join(PALETTES["mono"].values())


async def test_no_color_draws_severity_with_bold_and_reverse(
    sample_app: OpsdashApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = OpsdashApp(sample_app.ctx.ops, live=False, record=False)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await feed_sample(app)
            await settle(pilot)
            assert app.theme == "opsdash-mono"
            assert SEVERITY_STYLE[Severity.CRIT] == "bold reverse"
            bar = app.query_one(VerdictBar).render()
            assert isinstance(bar, Content), type(bar)
            spans = [s for s in bar.spans if "NO-GO" in bar.plain[s.start : s.end]]
            raw = spans[0].style
            style = Style.parse(raw) if isinstance(raw, str) else raw
            assert style.reverse and style.bold
    finally:
        use_palette("colour")


def _colour_of(widget: Widget, word: str) -> str | None:
    """The colour `word` is painted in on `widget` now (its first appearance on the lines shown)."""
    for y in range(widget.size.height):
        for segment in widget.render_line(y):
            if word in segment.text and segment.style is not None and segment.style.color is not None:
                triplet = segment.style.color.get_truecolor()
                return triplet.hex
    return None


async def test_switching_the_theme_recolours_every_severity(sample_app: OpsdashApp) -> None:
    """Severity colours are theme variables: the findings table, the overview and the header take
    the new theme's colours at once, and a theme that declares its own `severity-crit` gets it."""
    async with sample_app.run_test(size=SIZE) as pilot:
        await sample_on(pilot, "2")
        table = sample_app.query_one("#findings", OpsTable)
        table.move_cursor(row=table.row_count - 1)  # the cursor row has the cursor's colours
        await pilot.pause()
        before = _colour_of(table, "CRIT")
        assert before == Color.parse(sample_app.theme_variables["error"]).hex.lower()

        sample_app.theme = "nord"
        await pilot.pause()
        nord = _colour_of(table, "CRIT")
        assert nord == Color.parse(sample_app.theme_variables["error"]).hex.lower() != before

        sample_app.register_theme(
            Theme(name="crit-teal", primary="#0178D4", dark=True, variables={"severity-crit": "#00a0a0"})
        )
        sample_app.theme = "crit-teal"
        await pilot.pause()
        assert _colour_of(table, "CRIT") == "#00a0a0"
        await pilot.press("1")
        await settle(pilot)
        checks = sample_app.query_one("#overview-checks", Static)
        assert _colour_of(checks, "CRIT") == "#00a0a0"  # the overview's cards too
