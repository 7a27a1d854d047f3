"""The one table every pane uses: vi keys (j/k/g/G), a `/` filter, and columns that share the
terminal's width (fixed columns keep their width, flexible ones take what is left)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.events import Resize
from textual.message import Message
from textual.style import Style
from textual.widgets import DataTable, Input
from textual.widgets._data_table import ColumnKey, RowKey


@dataclass(frozen=True)
class Col:
    label: str
    width: int  # the fixed width, or the minimum of a flexible column
    flex: int = 0  # share of the spare width (0: fixed)
    key: str | None = None


class Painted:
    """A `Content` cell. DataTable paints Rich renderables, which know no theme variables; this one
    resolves its styles (`$severity-crit`) against the app's theme each time it is painted, so a
    theme switch recolours the table like everything else."""

    def __init__(self, content: Content) -> None:
        self.content = content

    def __str__(self) -> str:
        return self.content.plain

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for text, style in self.content.render(end="", parse_style=_parse):
            yield Segment(text, style.rich_style)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.content.cell_length, self.content.cell_length)


def _parse(style: str | Style) -> Style:
    return style if isinstance(style, Style) else Style.parse(style)  # the running app's variables


def _cell(value: Any) -> Any:
    return Painted(value) if isinstance(value, Content) else value


class OpsTable(DataTable[Any]):
    """A DataTable that remembers every row, so a filter can hide and show rows without the pane
    re-adding them; `update_cell` on a hidden row updates what it will show when it returns."""

    BINDINGS: ClassVar = [
        Binding("j", "cursor_down", "Down", show=False, id="table.down", tooltip="Next row"),
        Binding("k", "cursor_up", "Up", show=False, id="table.up", tooltip="Previous row"),
        Binding("g", "scroll_top", "First", show=False, id="table.first", tooltip="First row"),
        Binding("G", "scroll_bottom", "Last", show=False, id="table.last", tooltip="Last row"),
    ]

    def __init__(self, columns: Sequence[Col] = (), **kwargs: Any) -> None:
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", True)
        super().__init__(**kwargs)
        self.spec = list(columns)
        self._all: dict[str, list[Any]] = {}
        self._keys: list[str] = []
        self.filter_text = ""

    def on_mount(self) -> None:
        for col in self.spec:
            self.add_column(col.label, key=col.key or col.label.lower(), width=col.width)
        # the first Resize may have come before the columns existed: fit once they do
        self.call_after_refresh(lambda: self.fit_columns(self.size.width))

    # ---------------------------------------------------------------- width

    @on(Resize)
    def _resized(self, event: Resize) -> None:
        self.fit_columns(event.size.width)

    def fit_columns(self, width: int) -> None:
        """Fixed columns keep their width; flexible ones share the rest by weight."""
        flexible = [c for c in self.spec if c.flex]
        if not flexible or width <= 0:
            return
        padding = 2 * self.cell_padding
        fixed = sum(c.width + padding for c in self.spec if not c.flex) + padding * len(flexible)
        spare = max(0, width - 2 - fixed - sum(c.width for c in flexible))  # 2: the scrollbar
        weights = sum(c.flex for c in flexible)
        for col in flexible:
            column = self.columns.get(ColumnKey(col.key or col.label.lower()))
            if column is not None:
                column.width = col.width + spare * col.flex // weights
                column.auto_width = False
        self._require_update_dimensions = True
        self.refresh()

    # ---------------------------------------------------------------- rows

    def add_row(
        self, *cells: Any, height: int | None = 1, key: str | None = None, label: Any = None
    ) -> RowKey:
        name = key if key is not None else str(len(self._keys))
        cells = tuple(map(_cell, cells))
        self._all[name] = list(cells)
        self._keys.append(name)
        if self._matches(cells):
            return super().add_row(*cells, height=height, key=name, label=label)
        return RowKey(name)

    def remove_row(self, row_key: RowKey | str) -> None:
        name = str(row_key.value if isinstance(row_key, RowKey) else row_key)
        if self._all.pop(name, None) is not None:
            self._keys.remove(name)
        if RowKey(name) in self.rows:
            super().remove_row(name)

    def clear(self, columns: bool = False) -> OpsTable:
        self._all.clear()
        self._keys.clear()
        super().clear(columns)
        return self

    def update_cell(
        self,
        row_key: RowKey | str,
        column_key: ColumnKey | str,
        value: Any,
        *,
        update_width: bool = False,
    ) -> None:
        name = row_key.value if isinstance(row_key, RowKey) else row_key
        value = _cell(value)
        cells = self._all.get(str(name))
        if cells is not None:
            index = self.get_column_index(column_key)
            cells[index] = value
        if RowKey(str(name)) in self.rows:
            super().update_cell(row_key, column_key, value, update_width=update_width)

    @property
    def current_key(self) -> str | None:
        if self.row_count == 0:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return str(row_key.value)

    def move_to(self, key: str) -> None:
        if RowKey(key) in self.rows:
            self.move_cursor(row=self.get_row_index(key), animate=False)

    # ---------------------------------------------------------------- filter

    def _matches(self, cells: Sequence[Any]) -> bool:
        if not self.filter_text:
            return True
        words = " ".join(c.plain if isinstance(c, Text) else str(c) for c in cells).lower()
        return all(part in words for part in self.filter_text.lower().split())

    def set_filter(self, text: str) -> None:
        """Show only rows containing every word of `text` (any column); the cursor stays on its row
        when that row is still shown."""
        if text == self.filter_text:
            return
        current = self.current_key
        self.filter_text = text
        super().clear()
        for name in self._keys:
            cells = self._all[name]
            if self._matches(cells):
                super().add_row(*cells, key=name)
        if current is not None:
            self.move_to(current)


class FilterBar(Input):
    """`/` opens it; typing filters the table as you type; Enter keeps the filter and returns to
    the table; Esc clears it and returns."""

    class Closed(Message):
        pass

    BINDINGS: ClassVar = [
        Binding("escape", "close(True)", "Clear filter", id="filter.clear", tooltip="Clear the filter"),
        Binding("enter", "close(False)", "Keep filter", id="filter.keep", tooltip="Keep the filter"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("placeholder", "filter: words to match in any column (Enter keeps, Esc clears)")
        super().__init__(**kwargs)
        self.display = False

    def open(self) -> None:
        self.display = True
        self.focus()

    def action_close(self, clear: bool) -> None:
        if clear:
            self.value = ""
        if not self.value:
            self.display = False
        self.post_message(self.Closed())


class FilteredTable(Vertical):
    """A FilterBar over an OpsTable; `/` anywhere in the pane opens the bar."""

    DEFAULT_CSS = """
    FilteredTable { height: 1fr; }
    FilteredTable > FilterBar { height: 1; border: none; padding: 0 1; }
    """

    def __init__(self, table: OpsTable, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table = table

    def compose(self) -> ComposeResult:
        yield FilterBar()
        yield self.table

    def open_filter(self) -> None:
        self.query_one(FilterBar).open()

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        self.table.set_filter(event.value.strip())

    @on(FilterBar.Closed)
    def _filter_closed(self, event: FilterBar.Closed) -> None:
        event.stop()
        self.table.focus()
