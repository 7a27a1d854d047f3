"""An append-only, hash-chained JSON-lines audit log.

Each record carries its sequence number, the previous record's MAC and its own MAC: HMAC-SHA256,
keyed with a secret that is *not* in the data directory, over a canonical serialisation (sorted
keys, no spaces, UTF-8). Editing, deleting, reordering or forging a record breaks the chain at that
record; truncating the tail is caught against an anchor (seq and MAC) kept elsewhere.

Appends hold an exclusive file lock and are fsynced, so two processes can append at once. A crash
mid-write leaves at most one torn final line; the next append starts on a new line and says so in
its own record, and `verify` reports the torn line either way.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsdash.core.files import exclusive_lock, open_private
from opsdash.core.secrets import redactor

KINDS = ("operator_action", "security_event", "check_result", "system")
LOG_NAME = "audit.log"
_ROTATED = re.compile(r"^audit-(\d{6})\.log$")
_TAIL_READ = 256 * 1024


def _dump(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def canonical(record: Mapping[str, Any]) -> bytes:
    """What the MAC covers: the record without its MAC, sorted keys, no spaces, UTF-8."""
    return _dump({k: v for k, v in record.items() if k != "mac"})


def line_bytes(record: Mapping[str, Any]) -> bytes:
    """How a record is written: canonical too, so that any byte changed in the file is detectable."""
    return _dump(record) + b"\n"


def mac_of(key: bytes, record: Mapping[str, Any]) -> str:
    return hmac.new(key, canonical(record), hashlib.sha256).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def log_files(directory: Path) -> list[Path]:
    """Rotated files oldest first, then the current log."""
    rotated = sorted(
        (p for p in directory.glob("audit-*.log") if _ROTATED.match(p.name)), key=lambda p: p.name
    )
    current = directory / LOG_NAME
    return [*rotated, *([current] if current.exists() else [])]


@dataclass(frozen=True)
class Head:
    log_id: str
    seq: int
    mac: str


def _last_record(fd: int) -> tuple[dict[str, Any] | None, bool]:
    """The last complete, parseable record of an open file, and whether the file ends mid-line."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None, False
    start = max(0, size - _TAIL_READ)
    data = os.pread(fd, size - start, start)
    torn = not data.endswith(b"\n")
    lines = data.split(b"\n")
    if torn:
        lines = lines[:-1]
    for raw in reversed(lines):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict) and "seq" in record and "mac" in record:
            return record, torn
    if start > 0:  # a pathological 256 KiB of garbage: scan the whole file
        return _last_record_slow(fd), torn
    return None, torn


def _last_record_slow(fd: int) -> dict[str, Any] | None:
    last = None
    with os.fdopen(os.dup(fd), "rb") as handle:
        handle.seek(0)
        for raw in handle:
            with contextlib.suppress(ValueError):
                record = json.loads(raw)
                if isinstance(record, dict) and "seq" in record and "mac" in record:
                    last = record
    return last


@dataclass
class AuditLog:
    directory: Path
    key: bytes
    operator: str = "unknown"
    max_bytes: int = 100 * 1024 * 1024
    host: str = field(default_factory=socket.gethostname)

    @property
    def path(self) -> Path:
        return self.directory / LOG_NAME

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with exclusive_lock(self.directory / "audit.lock"):
            yield

    def append(
        self,
        kind: str,
        action: str,
        *,
        subject: str = "",
        outcome: str = "",
        details: Mapping[str, Any] | None = None,
        operator: str | None = None,
    ) -> dict[str, Any]:
        """Append one record (fsynced) and return it. Text is scrubbed of known secrets first."""
        if kind not in KINDS:
            raise ValueError(f"unknown audit kind {kind!r}")
        clean_details = json.loads(redactor.redact(json.dumps(dict(details or {}), default=str)))
        with self._locked():
            if self.path.exists() and self.path.stat().st_size >= self.max_bytes:
                self._rotate()
            fd = open_private(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
            try:
                last, torn = _last_record(fd)
                prefix = b""
                if last is None:
                    last = self._genesis(fd)
                if torn:
                    prefix = b"\n"  # start on a new line; the torn line stays for verify to report
                    clean_details["repaired_torn_line"] = True
                record = {
                    "seq": int(last["seq"]) + 1,
                    "ts": _now(),
                    "log_id": last["log_id"],
                    "operator": redactor.redact(operator or self.operator),
                    "host": self.host,
                    "kind": kind,
                    "action": redactor.redact(action),
                    "subject": redactor.redact(subject),
                    "outcome": redactor.redact(outcome),
                    "details": clean_details,
                    "prev": last["mac"],
                }
                record["mac"] = mac_of(self.key, record)
                os.write(fd, prefix + line_bytes(record))
                os.fsync(fd)
            finally:
                os.close(fd)
        return record

    def _genesis(self, fd: int, previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The first record of a file: a new log, or the continuation of a rotated one."""
        record: dict[str, Any] = {
            "seq": 0 if previous is None else int(previous["seq"]) + 1,
            "ts": _now(),
            "log_id": secrets.token_hex(8) if previous is None else previous["log_id"],
            "operator": self.operator,
            "host": self.host,
            "kind": "system",
            "action": "genesis" if previous is None else "rotated",
            "subject": "",
            "outcome": "",
            "details": {} if previous is None else {"previous_file_last_seq": previous["seq"]},
            "prev": "" if previous is None else previous["mac"],
        }
        record["mac"] = mac_of(self.key, record)
        os.write(fd, line_bytes(record))
        os.fsync(fd)
        return record

    def _rotate(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            last, _torn = _last_record(fd)
        finally:
            os.close(fd)
        numbers = [int(m.group(1)) for p in self.directory.iterdir() if (m := _ROTATED.match(p.name))]
        self.path.rename(self.directory / f"audit-{max(numbers, default=0) + 1:06d}.log")
        if last is not None:
            fd = open_private(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
            try:
                self._genesis(fd, previous=last)
            finally:
                os.close(fd)

    def head(self) -> Head | None:
        if not self.path.exists():
            return None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            last, _torn = _last_record(fd)
        finally:
            os.close(fd)
        return Head(last["log_id"], int(last["seq"]), last["mac"]) if last else None


# ---------------------------------------------------------------- verification


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    seq: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" + (f" (seq {self.seq})" if self.seq is not None else "")
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class Verification:
    ok: bool
    records: int
    files: tuple[str, ...]
    head: Head | None
    problem: Problem | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "files": list(self.files),
            "head": None if self.head is None else self.head.__dict__,
            "problem": None
            if self.problem is None
            else {**self.problem.__dict__, "message": str(self.problem)},
            "notes": list(self.notes),
        }


def verify(directory: Path, key: bytes, anchor: Head | None = None) -> Verification:
    """Walk every file in order; report the first bad record and why."""
    files = log_files(directory)
    names = tuple(str(f) for f in files)
    if not files:
        if anchor is not None:
            problem = Problem(
                str(directory / LOG_NAME),
                0,
                None,
                f"log is missing but an anchor says seq {anchor.seq} existed (deleted?)",
            )
            return Verification(False, 0, names, None, problem)
        return Verification(True, 0, names, None, notes=("no audit log yet",))
    prev: dict[str, Any] | None = None
    count = 0
    notes: list[str] = []
    pending_torn: Problem | None = None
    anchor_seen = False

    def fail(problem: Problem) -> Verification:
        head = Head(prev["log_id"], int(prev["seq"]), prev["mac"]) if prev else None
        return Verification(False, count, names, head, problem, tuple(notes))

    for path in files:
        for number, raw, torn_tail, following in _lines(path):
            try:
                record = json.loads(raw.decode("utf-8"))
                if not isinstance(record, dict):
                    raise ValueError("not an object")
            except (ValueError, UnicodeDecodeError):
                if pending_torn is not None:
                    return fail(pending_torn)
                pending_torn = Problem(
                    str(path),
                    number,
                    None,
                    "unparseable line"
                    + (
                        " at the end of the file: a write was interrupted (crash?) or the file was cut"
                        if torn_tail
                        else " (edited, or a torn write that was never repaired)"
                    ),
                )
                continue
            seq = record.get("seq")
            where = (str(path), number, seq if isinstance(seq, int) else None)
            if not isinstance(seq, int) or "mac" not in record:
                return fail(Problem(*where, "not an audit record (no seq or mac)"))
            if pending_torn is not None:
                if record.get("details", {}).get("repaired_torn_line") is True:
                    notes.append(
                        f"{pending_torn.file}:{pending_torn.line}: torn line from an interrupted write, "
                        f"marked repaired by seq {seq}"
                    )
                    pending_torn = None
                else:
                    return fail(pending_torn)
            if not hmac.compare_digest(mac_of(key, record), str(record["mac"])):
                return fail(
                    Problem(*where, "MAC mismatch: the record was changed, or written without the key")
                )
            if line_bytes(record) != raw + b"\n":
                return fail(Problem(*where, "the line is not byte-for-byte as written (edited)"))
            if prev is None:
                if seq != 0 or record.get("action") != "genesis":
                    return fail(
                        Problem(
                            *where,
                            f"the log starts at seq {seq}, not at a genesis record "
                            "(earlier records removed?)",
                        )
                    )
            else:
                expected = int(prev["seq"]) + 1
                if seq < expected:
                    return fail(
                        Problem(*where, f"seq {seq} after seq {prev['seq']}: records reordered or replayed")
                    )
                if seq > expected:
                    if _seq_of(following) == expected:
                        return fail(
                            Problem(*where, f"records reordered: seq {seq} comes before seq {expected}")
                        )
                    return fail(Problem(*where, f"gap: seq {expected}..{seq - 1} missing (records deleted)"))
                if record.get("prev") != prev["mac"] or record.get("log_id") != prev["log_id"]:
                    return fail(Problem(*where, "broken link: prev does not match the previous record's MAC"))
            if anchor is not None and seq == anchor.seq:
                anchor_seen = True
                if not hmac.compare_digest(str(record["mac"]), anchor.mac):
                    return fail(Problem(*where, "differs from the anchor recorded earlier (log rewritten)"))
            prev = record
            count += 1
    if pending_torn is not None:
        return fail(pending_torn)
    assert prev is not None
    head = Head(prev["log_id"], int(prev["seq"]), prev["mac"])
    if anchor is not None and not anchor_seen:
        problem = Problem(
            names[-1],
            0,
            None,
            f"truncated: the log ends at seq {head.seq}, before the anchor seq {anchor.seq}",
        )
        return Verification(False, count, names, head, problem, tuple(notes))
    return Verification(True, count, names, head, None, tuple(notes))


def _lines(path: Path) -> Iterator[tuple[int, bytes, bool, bytes | None]]:
    """(line number, line, is a torn final line, the next line) — streamed, so a log of any size
    verifies in constant memory; the next line lets a reordering be told from a deletion."""
    with path.open("rb") as handle:
        current = handle.readline()
        number = 1
        while current:
            following = handle.readline()
            complete = current.endswith(b"\n")
            yield number, current[:-1] if complete else current, not complete, following.rstrip(b"\n") or None
            current, number = following, number + 1


def _seq_of(raw: bytes | None) -> int | None:
    """The seq of a line, if it is a record."""
    if raw is None:
        return None
    try:
        seq = json.loads(raw).get("seq")
    except (ValueError, AttributeError):
        return None
    return seq if isinstance(seq, int) else None


def parse_anchor(text: str) -> Head:
    seq, sep, mac = text.partition(":")
    if not sep or not seq.isdigit() or not re.fullmatch(r"[0-9a-f]{64}", mac):
        raise ValueError(f"anchor {text!r}: expected SEQ:MAC (a number, a colon, 64 hex digits)")
    return Head("", int(seq), mac)
