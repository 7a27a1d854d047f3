"""The history database's schema, versioned: MIGRATIONS[n] takes a database from version n to n + 1.

A migration only ever adds tables, columns and indexes (or drops an index no query uses); it never
rewrites a row an older opsdash wrote. History runs every pending migration in one transaction, so a
failure part-way (a full disk) leaves the database as it was and the next open completes the work.

Each step is a list of changes written as data: `Table("name", "col col:int ...", pk=...)` (a
column's type is str unless it says `:int`, `:float` or `:bytes`), `Columns`, `Index`, `Sql`.
Every change is idempotent (tables and indexes `if_not_exists`, columns added once), so a database
an older opsdash left half-made by a failed first creation is completed, not refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by History only when a migration is pending
    import sqlite_utils

_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bytes": bytes}


def _columns(spec: str) -> dict[str, type]:
    """`"id:int run_id rule"` -> {"id": int, "run_id": str, "rule": str}, in order."""
    pairs = (word.partition(":") for word in spec.split())
    return {name: _TYPES[kind or "str"] for name, _, kind in pairs}


@dataclass(frozen=True)
class Table:
    name: str
    columns: str
    pk: str | tuple[str, ...] = "id"
    foreign_keys: tuple[tuple[str, str, str], ...] = ()

    def apply(self, db: sqlite_utils.Database) -> None:
        db.table(self.name).create(
            _columns(self.columns), pk=self.pk, foreign_keys=list(self.foreign_keys), if_not_exists=True
        )


@dataclass(frozen=True)
class Columns:
    """Columns added to a table that exists (each only if it is not there yet)."""

    table: str
    columns: str

    def apply(self, db: sqlite_utils.Database) -> None:
        table = db.table(self.table)
        for name, kind in _columns(self.columns).items():
            if name not in table.columns_dict:
                table.add_column(name, kind)


@dataclass(frozen=True)
class Index:
    table: str
    columns: str
    unique: bool = False

    def apply(self, db: sqlite_utils.Database) -> None:
        db.table(self.table).create_index(self.columns.split(), unique=self.unique, if_not_exists=True)


@dataclass(frozen=True)
class Sql:
    statement: str

    def apply(self, db: sqlite_utils.Database) -> None:
        db.execute(self.statement)


Change = Table | Columns | Index | Sql

STEPS: list[tuple[Change, ...]] = [
    # v1: runs, their findings, and the fingerprints of the env keys they read
    (
        Table(
            "runs", "run_id kind target operator started_at duration_ms:int verdict counts summary", "run_id"
        ),
        Table(
            "findings",
            "id:int run_id rule severity category subject title detail remediation runbook evidence",
            foreign_keys=(("run_id", "runs", "run_id"),),
        ),
        Table(
            "env_keys",
            "run_id key source fingerprint secret:int",
            ("run_id", "key"),
            foreign_keys=(("run_id", "runs", "run_id"),),
        ),
        Index("runs", "kind started_at"),
        Index("runs", "target started_at"),
        Index("findings", "run_id"),
    ),
    # v2: health check results, one row per probe, read as "latest per check" and "last N of a check"
    (
        Table(
            "check_results",
            "id:int run_id check_name kind target started_at severity sustained error_class summary "
            "latency_ms:float phases metrics facts",
        ),
        Index("check_results", "check_name started_at"),
        Index("check_results", "run_id"),
        Index("check_results", "started_at"),
    ),
    # v3: audit anchors: the audit log's head after each run, so truncating the log is detectable
    (Table("audit_anchors", "id:int run_id log_id seq:int mac recorded_at"),),
    # v4: the webhook replay store (seen delivery ids with expiry), failed verifications, and alerts
    (
        Table("webhook_seen", "scheme delivery_id seen_at:float expires_at:float", ("scheme", "delivery_id")),
        Index("webhook_seen", "expires_at"),
        Table("webhook_failures", "id:int source at:float outcome"),
        Index("webhook_failures", "source at"),
        Table("alerts", "id:int rule key severity title detail raised_at:float resolved_at:float"),
        Index("alerts", "rule key raised_at"),
    ),
    # v5: runbook sessions, their steps and every transition (the executor writes before it acts)
    (
        Table(
            "runbook_sessions",
            "id runbook_id runbook_path title params operator status current_step:int started_at updated_at",
        ),
        Index("runbook_sessions", "runbook_id started_at"),
        Table(
            "runbook_steps",
            "session_id step_index:int status started_at finished_at exit_code:int output note detail",
            ("session_id", "step_index"),
        ),
        Table("runbook_events", "id:int session_id at step_index:int event detail operator"),
        Index("runbook_events", "session_id"),
    ),
    # v6: the alert lifecycle (firing/resolved, reminders, silences) and every delivery per channel
    (
        Columns("alerts", "status last_sent_at:float silenced:int runbook"),
        Sql("UPDATE alerts SET status = 'firing', last_sent_at = raised_at, silenced = 0"),
        Table("alert_deliveries", "id:int alert_id:int channel event ok:int attempts:int error at:float"),
        Index("alert_deliveries", "alert_id"),
    ),
    # v7: the process group a running command step started, so a restart can tell it still runs
    (Columns("runbook_steps", "pid:int"),),
    # v8: a year of runs: a check result row carries everything its report showed (a run's summary
    # no longer copies them), every query the CLI and dashboard make has an index, and `meta`
    # remembers when the file was last integrity-checked
    (
        # conditions, findings: JSON lists, NULL when the check has none
        Columns("check_results", "duration_ms:float attempts:int hint runbook conditions findings"),
        # retention deletes per check through (check_name, started_at); this index cost 37 bytes a row
        Sql("DROP INDEX IF EXISTS idx_check_results_started_at"),
        Index("runs", "started_at"),  # history list, latest~N, the history pane
        Index("alerts", "status raised_at"),
        Index("alert_deliveries", "at"),
        Index("webhook_failures", "at"),
        Index("audit_anchors", "recorded_at"),
        Index("runbook_sessions", "status updated_at"),
        # the facts a check's results share (a certificate's subject, issuer, dates, chain: ~550
        # bytes that change when the certificate does), stored once; a row keeps what changes
        Columns("check_results", "facts_id:int"),
        Table("shared_facts", "id:int digest:bytes body last_used"),
        Index("shared_facts", "digest", unique=True),
        Index("shared_facts", "last_used"),
        Table("meta", "key value", "key"),
    ),
    # v9: a runbook session's exclusive group and target: one active session per (group, target)
    # (rows written before have neither, and never block)
    (
        Columns("runbook_sessions", "exclusive_group target"),
        Index("runbook_sessions", "exclusive_group target status"),
    ),
    # v10: the credential trace. A scan is one repository under one set of needles (a hash of their
    # fingerprints, never of the values); its objects are the ids read clean (20 bytes each), its
    # places where the objects that held a value were put. An env key's value length: the shape a
    # previous value is looked for in (the length is in every mask already)
    (
        Table("trace_scans", "id:int repo needles updated_at"),
        Index("trace_scans", "repo", unique=True),
        Sql(
            "CREATE TABLE IF NOT EXISTS trace_objects (scan_id INTEGER NOT NULL, oid BLOB NOT NULL, "
            "PRIMARY KEY (scan_id, oid)) WITHOUT ROWID"
        ),
        Table("trace_places", "scan_id:int oid commit_id path", pk=("scan_id", "oid", "commit_id", "path")),
        Columns("env_keys", "length:int"),
    ),
    # v11: the timeline reads a window's unhealthy check results alone (a few of a year's million
    # rows), for deriving incidents; healthy rows stay out of this index
    (
        Sql(
            "CREATE INDEX IF NOT EXISTS idx_check_results_failing ON check_results (started_at, check_name) "
            "WHERE severity != 'OK' OR sustained != 'OK'"
        ),
    ),
    # v12: coordination for a team (one database, several hosts). A runbook session's driver (the
    # process that holds its exclusive group's lock; NULL once it paused cleanly), so a start can
    # tell a session whose process died from one parked on purpose; when a firing alert was last
    # re-posted to Alertmanager (claimed, so replicas do not each re-post it); and every host's audit chain
    # (its lines as written, and its head), keyed by host, for `audit verify --all-hosts`
    (
        Columns("runbook_sessions", "driver"),
        Columns("alerts", "posted_at:float"),  # the last re-post to Alertmanager, claimed by one process
        Table(
            "audit_hosts",
            "host_id hostname data_dir log_id seq:int mac stream_bytes:int lines:int updated_at",
            "host_id",
        ),
        Table("audit_lines", "host_id n:int seq:int line:bytes", pk=("host_id", "n")),
    ),
]


def _step(changes: tuple[Change, ...]) -> Callable[[sqlite_utils.Database], None]:
    def migrate(db: sqlite_utils.Database) -> None:
        for change in changes:
            change.apply(db)

    return migrate


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_step(changes) for changes in STEPS]
SCHEMA_VERSION = len(MIGRATIONS)
