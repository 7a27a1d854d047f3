"""What every pane needs to know about the session: which profile, which data, live or not."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from opsdash.ops.config import LoadedConfig, OpsdashSettings


@dataclass
class DashboardContext:
    config_path: Path | None
    loaded: LoadedConfig | None
    settings: OpsdashSettings
    operator: str
    demo: bool = False
    live: bool = True  # False: no network work on mount (snapshots feed the panes themselves)
    record: bool = True
    error: str | None = None  # the configuration could not be loaded: shown instead of the panes

    @property
    def data_dir(self) -> Path:
        return self.settings.resolved_data_dir()
