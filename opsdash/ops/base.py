"""`Ops`: the one object the CLI, the dashboard and tests work through.

It owns what every operation records with: the settings, the loaded profile, the operator, the
clock, the probe context, the history database, the audit trail and the alert dispatcher.
`Ops.open()` builds it from a config path; tests hand in fakes (a clock, a probe context, a
dispatcher whose delivery is a function of the test's). The history database and the audit and
alert modules are imported only when an operation needs them, so `opsdash validate --no-history`
loads none of them.

`Ops` sits above the parts it composes (`ops.audit`, `ops.alerts`, the probe context below) and
below the capabilities that take it (`ops.checks`, `ops.validation`, ...): the parts are handed
what they need (settings, the operator, a history reader) and never import `Ops`. The layers
contract for `opsdash.ops` in pyproject.toml holds this.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from opsdash.core.errors import ConfigError, OpsdashError
from opsdash.ops import paths

if TYPE_CHECKING:
    from opsdash.core.health.probes import ProbeContext
    from opsdash.core.profile import Profile
    from opsdash.ops.alerts import AlertDispatcher
    from opsdash.ops.audit import AuditTrail
    from opsdash.ops.config import LoadedConfig, OpsdashSettings
    from opsdash.storage.history import History
    from opsdash.storage.rows import Anchor


@dataclass(frozen=True)
class Source:
    """Where a session's settings and profile come from: the profile file (None: settings only)
    and the flags that override it."""

    path: Path | None
    operator: str | None = None
    data_dir: Path | None = None


@dataclass(frozen=True)
class Loaded:
    settings: OpsdashSettings
    config: LoadedConfig | None
    operator: str


PREVIOUS_RUNS = 5  # a secret seen in this many of the newest env-reading runs is still masked


def probe_context(
    profile: Profile, *, env_files: Sequence[Path] | None = None, from_env: bool | None = None
) -> ProbeContext:
    """What probes need: the target's credentials from its env files when they are there (checks
    that need none run anyway), and the TLS trust (`health.ca_file`)."""
    from opsdash.core.health.probes import ProbeContext, make_ssl_context
    from opsdash.core.validators import load_target_env

    env = load_target_env(profile, env_files=env_files, from_env=from_env, required=False)
    ca_file = profile.health.ca_file
    try:
        ssl_context = make_ssl_context(str(ca_file) if ca_file else None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"health.ca_file {ca_file}: cannot load it as a CA bundle ({exc})") from None
    return ProbeContext(profile=profile, env=env, ssl_context=ssl_context)


def learn_previous_secrets(history: History) -> None:
    """Teach the masker the fingerprints of the secrets the last runs saw, so a rotated-away value
    that turns up again (an old build, a log line, a command's output) is masked like a live one."""
    from opsdash.core.secrets import redactor

    redactor.register_fingerprints(history.runs.secret_fingerprints(PREVIOUS_RUNS))


@dataclass
class Ops:
    source: Source
    clock: Callable[[], float] = time.time
    audit_trail: AuditTrail | None = None
    dispatcher: AlertDispatcher | None = None
    probes: ProbeContext | None = None  # given: every check runs with it (tests); else from the env files
    loaded: Loaded | None = field(default=None, repr=False)  # None until something needs the settings
    _previous_secrets_learnt: bool = field(default=False, init=False, repr=False)

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
            path: Path | None = paths.find_config(config)
        except ConfigError:
            if require:
                raise
            path = None
        ops = cls(Source(path, operator, data_dir))
        ops.load()
        return ops

    @classmethod
    def bare(cls, *, operator: str | None = None, data_dir: Path | None = None) -> Ops:
        """Settings only (flags and OPSDASH_* variables), no profile."""
        ops = cls(Source(None, operator, data_dir))
        ops.load()
        return ops

    @classmethod
    def reading(cls, config: Path | None = None) -> Ops:
        """For commands that only read the data directory (`history list`, `show`, `diff`): nothing
        is loaded until asked for, and the data directory is found without the settings models
        (`paths.quick_data_dir`), so a read starts in a fraction of the time and a profile broken
        elsewhere does not stop anyone reading the history. Anything else it is asked loads the
        settings and profile then, with their usual errors."""
        try:
            path: Path | None = paths.find_config(config)
        except ConfigError:
            path = None
        return cls(Source(path))

    @classmethod
    def open_or_error(cls, config: Path | None, *, data_dir: Path | None = None) -> tuple[Ops, str | None]:
        """For the dashboard, which shows a broken profile on screen instead of exiting: the Ops, and
        the problem that kept the profile from loading (the Ops then has settings only)."""
        if config is None:
            return cls.bare(data_dir=data_dir), None
        try:
            return cls.open(config, data_dir=data_dir), None
        except OpsdashError as exc:
            try:
                return cls.bare(data_dir=data_dir), str(exc)
            except OpsdashError:  # the settings themselves are broken: defaults, and say why
                from opsdash.ops.config import load_settings

                settings = load_settings()
                bare = cls(Source(None), loaded=Loaded(settings, None, settings.resolved_operator()))
                return bare, str(exc)

    def load(self) -> Loaded:
        """The settings and the profile, loaded (and validated) on first use."""
        if self.loaded is None:
            from opsdash.ops.config import load_config, load_settings

            source = self.source
            config = load_config(source.path) if source.path is not None else None
            settings = load_settings(
                config.file_table if config is not None else None,
                operator=source.operator,
                data_dir=source.data_dir,
            )
            self.loaded = Loaded(settings, config, settings.resolved_operator())
        return self.loaded

    def reloaded(self) -> Ops:
        """The same session with its profile read again from disk (after the operator edited it)."""
        if self.config is None:
            return self
        from opsdash.ops.config import load_config

        loaded = Loaded(self.settings, load_config(self.config.path), self.operator)
        return dataclasses.replace(self, loaded=loaded, audit_trail=self.audit, dispatcher=None)

    # ------------------------------------------------------------------ what it knows

    @property
    def settings(self) -> OpsdashSettings:
        return self.load().settings

    @property
    def config(self) -> LoadedConfig | None:
        return self.load().config

    @property
    def operator(self) -> str:
        return self.load().operator

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
        if self.loaded is None:
            quick = paths.quick_data_dir(self.source.path, self.source.data_dir)
            if quick is not None:
                return quick
        return self.settings.resolved_data_dir()

    # ------------------------------------------------------------------ what it records with

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def probe_context(
        self, *, env_files: Sequence[Path] | None = None, from_env: bool | None = None
    ) -> ProbeContext:
        """What probes need: the target's credentials (from its env files) and the TLS trust."""
        if self.probes is not None:
            return self.probes
        return probe_context(self.profile, env_files=env_files, from_env=from_env)

    def history(self, *, shared: bool = False, write: bool = True) -> History:
        """A connection to the history database (one per thread; close it, or use `with`).
        `write=False` for reading only: a read-only data directory is read as it is."""
        from opsdash.storage.history import History

        history = History.open(self.data_dir, shared=shared, write=write, database=self.database)
        if not self._previous_secrets_learnt:
            self._previous_secrets_learnt = True
            learn_previous_secrets(history)
        return history

    @property
    def database(self) -> str | None:
        """The team database's postgresql:// URL, or None for the data directory's SQLite file."""
        if self.loaded is None and paths.quick_data_dir(self.source.path, self.source.data_dir) is not None:
            quick = paths.quick_database(self.source.path)
            return None if quick is None else paths.check_database_url(quick)
        return self.settings.resolved_database()

    def has_history(self) -> bool:
        from opsdash.storage.history import DB_NAME

        return self.database is not None or (self.data_dir / DB_NAME).exists()

    @property
    def audit(self) -> AuditTrail:
        if self.audit_trail is None:
            from opsdash.ops.audit import AuditTrail

            self.audit_trail = AuditTrail(self.settings, self.operator, latest_anchor=self._latest_anchor)
        return self.audit_trail

    def _latest_anchor(self) -> Anchor | None:
        """The newest anchor a run left in history, for verifying the audit log (none before the
        history database exists: reading it would create it)."""
        if not self.has_history():
            return None
        from opsdash.ops.audit import host_id

        with self.history(write=False) as history:  # this host's: a shared database holds every host's
            return history.anchors.latest(host_id(self.settings.resolved_data_dir()))

    @property
    def alerts(self) -> AlertDispatcher:
        if self.dispatcher is None:
            from opsdash.ops.alerts import AlertDispatcher

            self.dispatcher = AlertDispatcher(self.profile, self.audit, clock=self.clock)
        return self.dispatcher
