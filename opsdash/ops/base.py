"""`Ops`: the one object the CLI, the dashboard and tests work through.

It owns what every operation records with: the settings, the loaded profile, the operator, the
clock, the history database, the audit trail and the alert dispatcher. `Ops.open()` builds it from
a config path; tests build it directly and hand in fakes (a clock, an audit trail, a dispatcher
whose channels are local servers). The history database and the audit/alert modules are imported
only when an operation needs them, so `opsdash validate --no-history` loads neither.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opsdash.core.errors import ConfigError
from opsdash.core.profile import Profile
from opsdash.ops.config import LoadedConfig, OpsdashSettings, find_config, load_config, load_settings

if TYPE_CHECKING:
    from opsdash.ops.alerts import AlertDispatcher
    from opsdash.ops.audit import AuditTrail
    from opsdash.storage.history import History

HISTORY_DB = "history.db"


@dataclass
class Ops:
    settings: OpsdashSettings
    config: LoadedConfig | None
    operator: str
    clock: Callable[[], float] = time.time
    audit_trail: AuditTrail | None = None
    dispatcher: AlertDispatcher | None = None

    @classmethod
    def open(
        cls,
        config: Path | None = None,
        *,
        operator: str | None = None,
        require: bool = True,
        data_dir: Path | None = None,
    ) -> Ops:
        """Find and load the profile (--config, OPSDASH_CONFIG, ./opsdash.toml, the user config dir)
        and the settings. With `require=False` a missing profile is not an error: commands that can
        work without one (history, audit, runbooks) still get the data directory right."""
        try:
            path = find_config(config)
        except ConfigError:
            if require or config is not None:
                raise
            settings = load_settings(operator=operator, data_dir=data_dir)
            return cls(settings, None, settings.resolved_operator())
        loaded = load_config(path)
        settings = load_settings(loaded.file_table, operator=operator, data_dir=data_dir)
        return cls(settings, loaded, settings.resolved_operator())

    def reloaded(self) -> Ops:
        """The same session with its profile read again from disk (after the operator edited it)."""
        if self.config is None:
            return self
        return dataclasses.replace(self, config=load_config(self.config.path), dispatcher=None)

    # ------------------------------------------------------------------ what it knows

    @property
    def profile(self) -> Profile:
        if self.config is None:
            raise ConfigError("no configuration loaded: pass --config or run 'opsdash init'")
        return self.config.profile

    @property
    def profile_or_none(self) -> Profile | None:
        return self.config.profile if self.config is not None else None

    @property
    def data_dir(self) -> Path:
        return self.settings.resolved_data_dir()

    # ------------------------------------------------------------------ what it records with

    def history(self, *, shared: bool = False) -> History:
        """A connection to the history database (one per thread; close it, or use `with`)."""
        from opsdash.storage.history import History

        return History.open(self.data_dir, shared=shared)

    def has_history(self) -> bool:
        return (self.data_dir / HISTORY_DB).exists()

    @property
    def audit(self) -> AuditTrail:
        if self.audit_trail is None:
            from opsdash.ops.audit import AuditTrail

            self.audit_trail = AuditTrail(self.settings, self.operator)
        return self.audit_trail

    @property
    def alerts(self) -> AlertDispatcher:
        if self.dispatcher is None:
            from opsdash.ops.alerts import AlertDispatcher

            self.dispatcher = AlertDispatcher(self.profile, self.audit, clock=self.clock)
        return self.dispatcher
