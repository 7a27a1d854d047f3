"""A log view on Textual's line API: only the visible lines are read, parsed and rendered.

The source is the core tail engine's LineIndex; `rows` maps view rows to line numbers (all lines,
or those a filter kept). Rendered strips are LRU-cached, so scrolling a 1 GB log stays smooth.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from opsdash.core.audit.tail import Entry
from opsdash.tui.safe import safe

KIND_STYLE = {
    "security_event": "bold red",
    "operator_action": "cyan",
    "check_result": "green",
    "system": "dim",
}
CACHE = 2000


def entry_text(entry: Entry) -> Text:
    if entry.record is None:
        return safe(entry.summary(), style="reverse red")
    kind = str(entry.record.get("kind", ""))
    text = safe(entry.summary())
    text.stylize(KIND_STYLE.get(kind, ""), 0, len(text))
    return text


class LogView(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    LogView { height: 1fr; }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._read: Callable[[int], bytes] = lambda _n: b""
        self._rows: Sequence[int] = []
        self._cache: OrderedDict[int, Strip] = OrderedDict()
        self.follow = True

    def set_source(self, read: Callable[[int], bytes], rows: Sequence[int]) -> None:
        """Show `rows` (line numbers), read with `read`; keeps the bottom pinned while following."""
        self._read, self._rows = read, rows
        self._cache.clear()
        self.virtual_size = Size(240, len(rows))
        if self.follow:
            self.scroll_end(animate=False)
        self.refresh()

    def rows_appended(self, rows: Sequence[int]) -> None:
        self._rows = rows
        self.virtual_size = Size(240, len(rows))
        if self.follow:
            self.scroll_end(animate=False)
        self.refresh()

    @property
    def row_count(self) -> int:
        return len(self._rows)

    def entry_at(self, row: int) -> Entry | None:
        if not 0 <= row < len(self._rows):
            return None
        return Entry.parse(self._read(self._rows[row]))

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.scrollable_content_region.width
        if row >= len(self._rows):
            return Strip.blank(width)
        strip = self._cache.get(row)
        if strip is None:
            entry = Entry.parse(self._read(self._rows[row]))
            segments = list(entry_text(entry).render(self.app.console))
            strip = Strip([s for s in segments if s.text != "\n"] or [Segment("")])
            self._cache[row] = strip
            if len(self._cache) > CACHE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(row)
        return strip.crop(scroll_x, scroll_x + width).extend_cell_length(width, Style())

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self.follow = new >= self.max_scroll_y
