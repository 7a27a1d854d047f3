"""A log view on Textual's line API: only the visible lines are read, parsed and rendered.

The source is the core tail engine's StreamIndex (the log and its rotated files as one stream);
`rows` maps view rows to record positions in it (all records, or those a filter kept). Rendered
strips are LRU-cached, so scrolling a 1 GB log stays smooth.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
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


class NearTop(Message):
    """The view is within a screen of its first row: the source may have older lines to add."""


class LogView(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    LogView { height: 1fr; }
    """
    BINDINGS: ClassVar = [
        Binding("j,down", "scroll_down", "Down", show=False, id="log.down", tooltip="Next line"),
        Binding("k,up", "scroll_up", "Up", show=False, id="log.up", tooltip="Previous line"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
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

    def rows_prepended(self, rows: Sequence[int], added: int) -> None:
        """`added` older rows now come first: the same records stay in view."""
        self._rows = rows
        self._cache.clear()
        self.virtual_size = Size(240, len(rows))
        if self.follow:
            self.scroll_end(animate=False)
        else:
            self.scroll_to(y=self.scroll_offset.y + added, animate=False, immediate=True)
        self.refresh()

    def on_resize(self) -> None:
        if self.follow:  # a pane shown for the first time opens at the newest record
            self.scroll_end(animate=False, immediate=True)

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
        if self.size.height:  # a hidden view has no scroll range: it must not stop following
            self.follow = new >= self.max_scroll_y
        if new < old and new < max(self.size.height, 20):
            self.post_message(NearTop())
