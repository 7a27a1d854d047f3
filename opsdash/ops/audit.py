"""The audit trail every operation writes through, the key it signs with, and verifying it."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import socket
import stat
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
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
from opsdash.core.secrets import redactor
from opsdash.ops import paths
from opsdash.ops.config import OpsdashSettings

if TYPE_CHECKING:
    from opsdash.storage.history import History
    from opsdash.storage.rows import Anchor, AuditHost


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


def shared(history: History) -> bool:
    """Whether this history is a database a team shares (PostgreSQL): only then is each host's
    audit chain copied into it (on SQLite it sits beside the log it would copy)."""
    return history.dialect != "sqlite"


def _record_head(raw: bytes) -> Head | None:
    import json

    try:
        record = json.loads(raw)
        return Head(str(record["log_id"]), int(record["seq"]), str(record["mac"]))
    except (ValueError, KeyError, TypeError):
        return None


def anchor_path(data_dir: Path) -> Path:
    """Where the head of the log in `data_dir` is anchored: beside the key, one file per data dir."""
    name = hashlib.sha256(str(data_dir.expanduser().resolve()).encode()).hexdigest()[:16]
    return paths.config_dir() / ANCHOR_DIR / f"{name}.head"


def audit_key(settings: OpsdashSettings) -> bytes:
    """OPSDASH_AUDIT_KEY, else a 0600 key file in the config dir (never the data dir, so whoever can
    edit the log cannot also re-sign it), created on first use, and never while a log signed with an
    earlier key exists: a new key would make that whole log fail verification."""
    if settings.audit_key is not None:
        return settings.audit_key.get_secret_value().encode()  # learnt by the masker with the settings
    path = paths.config_dir() / AUDIT_KEY_FILE
    if not path.exists():
        try:
            _refuse_a_new_key(path, settings.resolved_data_dir())
        except InputError:
            # another first run may have made the key and signed its first record between our look
            # and this check (six CI jobs at once): its key is the one to use, not a lost one
            if not path.exists():
                raise
        else:
            paths.ensure_dir(path.parent)
            _create_key(path)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(f"{path}: the audit key is readable by others (mode {mode & 0o777:o}); chmod 600 it")
    key = path.read_text().strip()
    if len(key) < 32:
        raise InputError(f"{path}: the audit key is too short; restore the key that signed the log")
    redactor.register(key)  # a runbook command that prints the file is masked
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


PUBLISH_MAX_BYTES = 8 * 1024 * 1024  # one publish's lines: a short transaction; the rest next time
_SEQ = re.compile(rb'^\{"v":2,"seq":(\d+),')


def host_id(data_dir: Path) -> str:
    """A host's key in the shared database: its name and its data directory (one audit chain per
    data directory; two on one machine are two "hosts")."""
    where = hashlib.sha256(str(data_dir.expanduser().resolve()).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}:{where}"


@dataclass(frozen=True)
class HostVerification:
    """One host's chain as the shared database holds it, verified with the key."""

    host: AuditHost
    result: Verification

    def to_dict(self) -> dict[str, object]:
        problem = self.result.problem
        return {
            "host_id": self.host.host_id,
            "hostname": self.host.hostname,
            "data_dir": self.host.data_dir,
            "log_id": self.host.log_id,
            "head_seq": self.host.seq,
            "updated_at": self.host.updated_at,
            "status": self.result.status,
            "records": self.result.records,
            "first_bad_seq": None if problem is None else problem.first_bad_seq,
            "problem": None if problem is None else _host_problem(problem),
        }


def _host_problem(problem: object) -> str:
    """A problem found in a host's copy, without the temporary file it was verified in."""
    text = str(problem)
    return re.sub(r"^\S*audit\.log:\d+ ?", "", text).strip() or text


def _read_stream(directory: Path, offset: int, limit: int) -> tuple[bytes, int]:
    """The bytes of the log files (rotated ones first, then the current one, as one stream) from
    `offset`, at most `limit`; and the stream's whole length."""
    chunks: list[bytes] = []
    position = total = taken = 0
    for path in log_files(directory):
        size = path.stat().st_size
        total += size
        if position + size > offset and taken < limit:
            with path.open("rb") as handle:
                handle.seek(max(offset - position, 0))
                chunk = handle.read(min(limit - taken, size))
            chunks.append(chunk)
            taken += len(chunk)
        position += size
    return b"".join(chunks), total


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
            history.anchors.record(report.run_id, head.log_id, head.seq, head.mac, host_id(self.directory))
            if shared(history):
                self.publish_quietly(history)

    def publish_quietly(self, history: History) -> None:
        """`publish`, saying on stderr (never raising) why this host's chain could not be copied:
        the operator's result stands, and `audit verify --all-hosts` will show the gap."""
        try:
            self.publish(history)
        except (AuditRefused, OSError, InputError) as exc:
            print(f"opsdash: warning: audit chain not copied to the shared database: {exc}", file=sys.stderr)

    # verifying: the chain against every anchor there is

    def verify(self, anchor: str | None = None) -> VerifyOutcome:
        """Verify the whole chain against the head anchor beside the key, and --anchor SEQ:MAC, else
        the latest anchor in history (an extra signal: history.db sits in the data dir with the log)."""
        wanted: list[tuple[Head, str]] = []
        source = "none"
        if anchor:
            wanted, source = [(parse_anchor(anchor), "--anchor")], "--anchor"  # ValueError: usage error
        elif self.latest_anchor is not None:
            try:
                latest = self.latest_anchor()
            except InputError as exc:  # the team database down, history.db unreadable: the local
                latest, source = None, f"no history anchor ({exc})"  # chain and head still verify
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

    # a team: this host's chain in the shared database, and every host's verified there

    def publish(self, history: History) -> int:
        """Copy this host's new audit lines and head to the history database, exactly as written
        (torn lines and repairs too), so `audit verify --all-hosts` can check every host's chain
        from one place. Returns how many lines were copied. Refuses, with an AuditRefused, a local
        log that no longer continues what the database holds (replaced, or cut back)."""
        directory = self.directory
        me = host_id(directory)
        seen = history.anchors.host(me)
        offset = seen.stream_bytes if seen is not None else 0
        from opsdash.core.files import exclusive_lock

        with exclusive_lock(directory / "audit.lock"):  # appends and rotation wait: a still stream
            data, total = _read_stream(directory, offset, PUBLISH_MAX_BYTES)
        if total < offset:
            raise AuditRefused(
                f"{self.path}: the local audit log is shorter ({total} bytes) than the {offset} bytes "
                f"the shared database holds for host {me}: records were cut; run `opsdash audit verify`"
            )
        end = data.rfind(b"\n") + 1  # whole lines only: a line being written waits for the next time
        lines = data[:end].splitlines(keepends=True)
        if not lines:
            return 0
        numbered = [(int(m.group(1)) if (m := _SEQ.match(line)) else None, line) for line in lines]
        last_record = next(((q, raw) for q, raw in reversed(numbered) if q is not None), None)
        log_id, seq, mac = (seen.log_id, seen.seq, seen.mac) if seen is not None else ("", -1, "")
        if last_record is not None:
            head = _record_head(last_record[1])
            if head is None:
                raise AuditRefused(f"{self.path}: its record seq {last_record[0]} cannot be read")
            if seen is not None and seen.log_id and head.log_id != seen.log_id:
                raise AuditRefused(
                    f"{self.path}: this is audit log {head.log_id}, but the shared database holds log "
                    f"{seen.log_id} for host {me}: the local log was replaced; run `opsdash audit verify`"
                )
            log_id, seq, mac = head.log_id, head.seq, head.mac
        from opsdash.storage.rows import AuditHost

        new = AuditHost(
            me,
            socket.gethostname(),
            str(directory),
            log_id,
            seq,
            mac,
            offset + end,
            (seen.lines if seen is not None else 0) + len(lines),
            datetime.now(UTC).isoformat(timespec="seconds"),
        )
        return len(lines) if history.anchors.publish(new, numbered, seen) else 0

    def verify_hosts(self, history: History) -> list[HostVerification]:
        """Every host's chain as the shared database holds it, verified with this key (the team's
        key: each host signs with it) against the head the database holds for it. Each result
        names the first bad record of its host."""
        key = self.key()
        outcomes = []
        for host in history.anchors.hosts():
            with tempfile.TemporaryDirectory(prefix="opsdash-audit-") as temp:
                copy = Path(temp) / LOG_NAME
                with copy.open("wb") as handle:
                    for line in history.anchors.chain(host.host_id):
                        handle.write(line)
                held = f"the head the database holds for {host.host_id}"
                anchors = [(Head(host.log_id, host.seq, host.mac), held)] if host.seq >= 0 else []
                result = verify(Path(temp), key, anchors=anchors)
            outcomes.append(HostVerification(host, result))
        return outcomes

    def export_head(self) -> Head | None:
        """The head to copy somewhere else (CI log, ticket): the anchored one, else the log's last
        record."""
        return self.head_anchor().load() or read_head(self.directory)
