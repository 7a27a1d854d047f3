"""The audit trail every operation writes through, the key it signs with, and verifying it."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Unpack

from opsdash.core.audit.log import (
    ACK_ACTION,
    LOG_NAME,
    AuditLog,
    AuditRefused,
    Head,
    HeadAnchor,
    log_files,
    read_head,
)
from opsdash.core.audit.tail import Entry, Follower, RecordFilter, StreamIndex, tail
from opsdash.core.audit.verify import Verification, parse_anchor, verify
from opsdash.core.errors import InputError
from opsdash.core.findings import Report, Severity
from opsdash.ops import paths
from opsdash.ops.config import OpsdashSettings

if TYPE_CHECKING:
    from opsdash.storage.history import History
    from opsdash.storage.rows import Anchor


class RecordFields(TypedDict, total=False):
    """What a record says besides its kind and action (`AuditLog.append`)."""

    subject: str
    outcome: str
    details: Mapping[str, object] | None


AUDIT_KEY_FILE = "audit.key"
ANCHOR_DIR = "audit-anchors"
EXPOSURE_RULES = {
    "secret-client-exposed",
    "secret-in-bundle",
    "url-secret-in-query",
    "secret-in-git-history",
    "secret-in-source",
}


def anchor_path(data_dir: Path) -> Path:
    """Where the head of the log in `data_dir` is anchored: beside the key, one file per data dir."""
    name = hashlib.sha256(str(data_dir.expanduser().resolve()).encode()).hexdigest()[:16]
    return paths.config_dir() / ANCHOR_DIR / f"{name}.head"


def audit_key(settings: OpsdashSettings) -> bytes:
    """OPSDASH_AUDIT_KEY, else a 0600 key file in the config dir (never the data dir, so whoever can
    edit the log cannot also re-sign it), created on first use, and never while a log signed with an
    earlier key exists: a new key would make that whole log fail verification."""
    if settings.audit_key is not None:
        return settings.audit_key.get_secret_value().encode()
    path = paths.config_dir() / AUDIT_KEY_FILE
    if not path.exists():
        _refuse_a_new_key(path, settings.resolved_data_dir())
        paths.ensure_dir(path.parent)
        _create_key(path)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(f"{path}: the audit key is readable by others (mode {mode & 0o777:o}); chmod 600 it")
    key = path.read_text().strip()
    if len(key) < 32:
        raise InputError(f"{path}: the audit key is too short; restore the key that signed the log")
    return key.encode()


def _create_key(path: Path) -> None:
    """Write a new key whole under a temporary name, then link it into place: of two processes
    making the first key at once (a dashboard and a CLI command on a new machine), one key wins and
    the other process reads it, never a half-written file or a "file exists" error."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        os.unlink(temp)


def _refuse_a_new_key(path: Path, data_dir: Path) -> None:
    """A missing key while a log it signed exists (this profile's, or any other whose head is
    anchored beside the key) is a lost key, not a first run: a new one would fail that whole log."""
    signed = log_files(data_dir)[-1:] if data_dir.is_dir() else []
    anchors = sorted((path.parent / ANCHOR_DIR).glob("*.head"))
    if not signed and not anchors:
        return
    what = f"the audit log {signed[0]}" if signed else f"the log anchored in {anchors[0]}"
    aside = [*([f"the audit*.log files in {data_dir}"] if signed else []), *map(str, anchors)]
    raise InputError(
        f"{path} is missing, but {what} was signed with it: opsdash will not make a new key while a "
        "log signed by the old one exists. Restore the key file from backup (mode 0600), or set "
        "OPSDASH_AUDIT_KEY to it. To start again without it (those logs can no longer be verified), "
        f"move aside {', '.join(aside)} (see 'When audit verify fails' in docs/operator-guide.md)"
    )


@dataclass(frozen=True)
class VerifyOutcome:
    result: Verification
    anchor_source: str
    head_anchor: str | None = None


class AuditTrail:
    """The one way every component writes to the audit log, and verifies it. The key is read once,
    on first use. `latest_anchor` is how it finds the newest anchor a run left in history (`Ops`
    hands in its own history reader; without one, verify has the head anchor and --anchor only)."""

    def __init__(
        self,
        settings: OpsdashSettings,
        operator: str,
        *,
        latest_anchor: Callable[[], Anchor | None] | None = None,
    ) -> None:
        self.settings, self.operator = settings, operator
        self.latest_anchor = latest_anchor
        self._key: bytes | None = None
        self._log: AuditLog | None = None
        self.unwritten: list[str] = []  # why records could not be written, in this process

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

    def head_anchor(self) -> HeadAnchor:
        return HeadAnchor(anchor_path(self.directory), self.key())

    def log(self) -> AuditLog:
        if self._log is None:
            self._log = AuditLog(
                paths.ensure_dir(self.directory),
                self.key(),
                operator=self.operator,
                max_bytes=self.settings.audit_max_bytes,
                anchor=self.head_anchor(),
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

    def index(self) -> StreamIndex:
        """The log and its rotated files as one stream, indexed backwards from the end on demand, for
        a scrolling view: the newest page is readable at once, older ones as the view asks."""
        return StreamIndex.of_directory(self.directory)

    def event(self, kind: str, action: str, **fields: Unpack[RecordFields]) -> Head | None:
        """Append one record (`AuditLog.append`'s subject, outcome, details). A failure to write is
        reported on stderr and never loses the operator's result; returns the new head."""
        try:
            record = self.log().append(kind, action, **fields)
        except AuditRefused as exc:
            print(f"opsdash: warning: audit: {exc}", file=sys.stderr)
            self.unwritten.append(str(exc))
            return None
        except (OSError, InputError) as exc:
            print(f"opsdash: warning: audit log not written: {exc}", file=sys.stderr)
            self.unwritten.append(str(exc))
            return None
        return Head(record["log_id"], record["seq"], record["mac"])

    def require_written(self, what: str) -> None:
        """A gate or a webhook verdict whose audit record is missing is not a result anyone may act
        on: an InputError (exit 3) saying why. Read-only commands only warn (in `event`)."""
        if self.unwritten:
            raise InputError(
                f"{what}: the audit log could not be written ({self.unwritten[0]}), so this result "
                "is not recorded and does not count; fix the audit log (docs/operator-guide.md, "
                "'When audit verify fails') and run again"
            )

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
            history.anchors.record(report.run_id, head.log_id, head.seq, head.mac)

    # verifying: the chain against every anchor there is

    def verify(self, anchor: str | None = None) -> VerifyOutcome:
        """Verify the whole chain against the head anchor beside the key, and --anchor SEQ:MAC, else
        the latest anchor in history (an extra signal: history.db sits in the data dir with the log)."""
        wanted: list[tuple[Head, str]] = []
        source = "none"
        if anchor:
            wanted, source = [(parse_anchor(anchor), "--anchor")], "--anchor"  # ValueError: usage error
        elif self.latest_anchor is not None:
            latest = self.latest_anchor()
            if latest is not None:
                source = f"history run {latest.run_id}"
                wanted = [(Head(latest.log_id, latest.seq, latest.mac), source)]
        head_file = self.head_anchor()
        result = verify(self.directory, self.key(), anchors=wanted, head_file=head_file)
        return VerifyOutcome(result, source, str(head_file.path) if head_file.exists() else None)

    def acknowledge_repairs(self) -> tuple[VerifyOutcome, tuple[int, ...]]:
        """Record that an operator has seen the repaired torn writes verify reports; nothing is
        acknowledged unless the chain verifies. Returns the verification and the seqs acknowledged."""
        outcome = self.verify()
        repairs = outcome.result.unacknowledged_repairs
        if not outcome.result.ok or not repairs:
            return outcome, ()
        self.log().append("system", ACK_ACTION, details={"repairs": list(repairs)})
        return outcome, repairs

    def export_head(self) -> Head | None:
        """The head to copy somewhere else (CI log, ticket): the anchored one, else the log's last
        record."""
        return self.head_anchor().load() or read_head(self.directory)
