"""The audit trail every operation writes through, the key it signs with, and verifying it."""

from __future__ import annotations

import os
import secrets
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsdash.core.audit.log import LOG_NAME, AuditLog, Head, Verification, parse_anchor, verify
from opsdash.core.audit.tail import Entry, Follower, LineIndex, RecordFilter, tail
from opsdash.core.errors import InputError
from opsdash.core.findings import Report, Severity
from opsdash.ops import paths
from opsdash.ops.config import OpsdashSettings

if TYPE_CHECKING:
    from opsdash.ops.base import Ops
    from opsdash.storage.history import History

AUDIT_KEY_FILE = "audit.key"
EXPOSURE_RULES = {"secret-client-exposed", "secret-in-bundle", "url-secret-in-query"}


def audit_key(settings: OpsdashSettings) -> bytes:
    """OPSDASH_AUDIT_KEY, else a 0600 key file in the config dir (never the data dir, so whoever can
    edit the log cannot also re-sign it), created on first use."""
    if settings.audit_key is not None:
        return settings.audit_key.get_secret_value().encode()
    path = paths.config_dir() / AUDIT_KEY_FILE
    if not path.exists():
        paths.ensure_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(f"{path}: the audit key is readable by others (mode {mode & 0o777:o}); chmod 600 it")
    key = path.read_text().strip()
    if len(key) < 32:
        raise InputError(f"{path}: the audit key is too short; delete it to create a new one")
    return key.encode()


class AuditTrail:
    """The one way every component writes to the audit log. The key is read once, on first use."""

    def __init__(self, settings: OpsdashSettings, operator: str) -> None:
        self.settings, self.operator = settings, operator
        self._key: bytes | None = None
        self._log: AuditLog | None = None

    @property
    def directory(self) -> Path:
        return self.settings.resolved_data_dir()

    @property
    def path(self) -> Path:
        return self.directory / LOG_NAME

    def key(self) -> bytes:
        if self._key is None:
            self._key = audit_key(self.settings)
        return self._key

    def log(self) -> AuditLog:
        if self._log is None:
            self._log = AuditLog(
                paths.ensure_dir(self.directory),
                self.key(),
                operator=self.operator,
                max_bytes=self.settings.audit_max_bytes,
            )
        return self._log

    # reading: the tail engine's views of this trail's log, so no front end opens files itself

    def exists(self) -> bool:
        return self.path.exists()

    def newest(self, count: int, flt: RecordFilter | None = None) -> list[Entry]:
        """The newest `count` records (those `flt` matches), oldest first; none before the log exists."""
        return tail(self.path, count, flt) if self.path.exists() else []

    def follower(self) -> Follower:
        """Follows appends from the current end (through truncation and rotation)."""
        return Follower.at_end(self.path)

    def index(self) -> LineIndex:
        """A line index of the log for a scrolling view (the newest page is readable before it is built)."""
        return LineIndex(self.path)

    def event(
        self,
        kind: str,
        action: str,
        *,
        subject: str = "",
        outcome: str = "",
        details: dict[str, Any] | None = None,
    ) -> Head | None:
        """Append one record. A failure to write is reported on stderr and never loses the
        operator's result; returns the new head."""
        try:
            record = self.log().append(kind, action, subject=subject, outcome=outcome, details=details)
        except (OSError, InputError) as exc:
            print(f"opsdash: warning: audit log not written: {exc}", file=sys.stderr)
            return None
        return Head(record["log_id"], record["seq"], record["mac"])

    def report(self, report: Report, history: History | None) -> None:
        """A run's security events and its outcome; the outcome's head becomes the run's anchor."""
        for f in report.findings:
            if f.rule in EXPOSURE_RULES:
                self.event(
                    "security_event",
                    "secret-exposure",
                    subject=f.subject,
                    outcome=f.severity.value,
                    details={"rule": f.rule, "run_id": report.run_id},
                )
        crit = sorted({f.rule for f in report.findings if f.severity is Severity.CRIT})
        if crit:
            self.event(
                "security_event",
                "crit-findings",
                subject=report.target,
                outcome="CRIT",
                details={"rules": crit, "run_id": report.run_id},
            )
        head = self.event(
            "operator_action",
            report.kind,
            subject=report.target,
            outcome=report.verdict.value,
            details={"run_id": report.run_id, **report.counts()},
        )
        if head is not None and history is not None:
            history.record_anchor(report.run_id, head.log_id, head.seq, head.mac)


@dataclass(frozen=True)
class VerifyOutcome:
    result: Verification
    anchor_source: str


def verify_log(ops: Ops, anchor: str | None = None) -> VerifyOutcome:
    """Verify the whole chain against --anchor SEQ:MAC, else the latest anchor in history."""
    wanted: Head | None = None
    source = "none"
    if anchor:
        wanted, source = parse_anchor(anchor), "--anchor"  # ValueError: the caller's usage error
    elif ops.has_history():
        with ops.history() as history:
            latest = history.latest_anchor()
        if latest is not None:
            wanted, source = Head(latest.log_id, latest.seq, latest.mac), f"history run {latest.run_id}"
    return VerifyOutcome(verify(ops.audit.directory, ops.audit.key(), wanted), source)
