"""What every pane needs to know about the session: the `Ops` it works through, live or not."""

from __future__ import annotations

from dataclasses import dataclass

from opsdash.ops.base import Ops
from opsdash.ops.config import LoadedConfig, OpsdashSettings


@dataclass
class DashboardContext:
    ops: Ops
    demo: bool = False
    live: bool = True  # False: no network work on mount (snapshots feed the panes themselves)
    record: bool = True
    error: str | None = None  # the configuration could not be loaded: shown instead of the panes

    @property
    def loaded(self) -> LoadedConfig | None:
        return self.ops.config

    @property
    def settings(self) -> OpsdashSettings:
        return self.ops.settings

    @property
    def operator(self) -> str:
        return self.ops.operator
