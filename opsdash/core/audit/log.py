"""An append-only, hash-chained JSON-lines audit log, and the head anchor that pins its end.

Each record carries its sequence number, the previous record's MAC and its own MAC: HMAC-SHA256 keyed
with a secret that is *not* in the data directory. Editing, deleting, reordering or forging a record
breaks the chain at that record.

Format 2 (what `append` writes): the MAC covers the line's bytes as written, up to `,"mac":`, and the
fields the chain needs come first in a fixed order (`v`, `seq`, `log_id`, `prev`, `kind`), so
`verify.py` checks a record with one prefix comparison and one HMAC of the raw bytes; re-serialising
JSON per record made it 9x slower than the HMAC alone. Format 1 records (no `v`; the MAC over a
canonical serialisation: sorted keys, no spaces, UTF-8) still verify, and a format-1 log simply
continues in format 2.

Cutting records off the end leaves a valid, shorter chain, so the head (log_id, seq, MAC) is anchored
on every append in a file beside the key (`HeadAnchor`), where whoever can write the data directory
cannot; verify checks the log against it. An append refuses to continue a log that disagrees with its
anchor or was signed with another key, so a cut is never papered over by new records.

Appends hold an exclusive file lock and are fsynced, so two processes can append at once. A crash
mid-write leaves at most one torn final line; the next append starts on a new line after a signed
repair record, which `verify` reports (WARN) until an operator acknowledges it.
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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsdash.core.errors import InputError, OpsdashError
from opsdash.core.files import exclusive_lock, open_private
from opsdash.core.secrets import redactor

KINDS = ("operator_action", "security_event", "check_result", "system")
LOG_NAME = "audit.log"
FORMAT = 2
REPAIR_ACTION = "torn-line-repaired"
ACK_ACTION = "repair-acknowledged"
_ROTATED = re.compile(r"^audit-(\d{6})\.log$")
_TAIL_READ = 256 * 1024
FORMAT_2_START = b'{"v":2,'
MAC_MARK = b',"mac":"'
MAC_TAIL = len(MAC_MARK) + 64 + 2  # ,"mac":"<64 hex>"}


class AuditRefused(OpsdashError):
    """Appending would hide tampering or mix keys; the message names the files and the way out."""


# ---------------------------------------------------------------- record formats


def _dump(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def canonical(record: Mapping[str, Any]) -> bytes:
    """Format 1: what the MAC covers, the record without its MAC, sorted keys, no spaces, UTF-8."""
    return _dump({k: v for k, v in record.items() if k != "mac"})


def line_bytes(record: Mapping[str, Any]) -> bytes:
    """Format 1: how a record is written, canonical too, so any byte changed in the file shows."""
    return _dump(record) + b"\n"


def mac_of(key: bytes, record: Mapping[str, Any]) -> str:
    """Format 1 MAC."""
    return hmac.new(key, canonical(record), hashlib.sha256).hexdigest()


def encode(key: bytes, record: Mapping[str, Any]) -> tuple[bytes, str]:
    """A format-2 line for `record` (no mac; fields in the order given) and its MAC."""
    body = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8")[:-1]
    mac = hmac.digest(key, body, "sha256").hex()
    return body + MAC_MARK + mac.encode() + b'"}\n', mac


def format_2_parts(raw: bytes) -> tuple[bytes, bytes] | None:
    """(the bytes the MAC covers, the MAC as written) of a format-2 line without its newline."""
    if len(raw) <= MAC_TAIL or raw[-MAC_TAIL:-66] != MAC_MARK or raw[-2:] != b'"}':
        return None
    return raw[:-MAC_TAIL], raw[-66:-2]


def signed_by(key: bytes, raw: bytes, record: Mapping[str, Any]) -> bool:
    """Whether the line `raw` (no newline), parsed as `record`, was written with `key`, byte for byte."""
    if raw.startswith(FORMAT_2_START):
        parts = format_2_parts(raw)
        return parts is not None and hmac.compare_digest(
            hmac.digest(key, parts[0], "sha256").hex().encode(), parts[1]
        )
    return (
        hmac.compare_digest(mac_of(key, record), str(record.get("mac"))) and line_bytes(record) == raw + b"\n"
    )


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


def _head(record: Mapping[str, Any]) -> Head:
    return Head(str(record["log_id"]), int(record["seq"]), str(record["mac"]))


# ---------------------------------------------------------------- the head anchor


@dataclass(frozen=True)
class HeadAnchor:
    """The newest record's (log_id, seq, MAC), rewritten atomically after every append, kept outside
    the data directory (beside the key) and signed with the key so it cannot be swapped for another."""

    path: Path
    key: bytes

    def _sign(self, head: Head) -> str:
        message = f"opsdash-audit-head\0{head.log_id}\0{head.seq}\0{head.mac}".encode()
        return hmac.digest(self.key, message, "sha256").hex()

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> Head | None:
        """The anchored head, None before the first append. AuditRefused when it is unusable."""
        try:
            data = json.loads(self.path.read_bytes())
            head = Head(str(data["log_id"]), int(data["seq"]), str(data["mac"]))
            signature = str(data["anchor_mac"])
        except FileNotFoundError:
            return None
        except OSError as exc:  # not evidence of anything: a usage problem (exit 3)
            raise InputError(f"{self.path}: cannot read the audit head anchor ({exc.strerror})") from None
        except (ValueError, TypeError, KeyError, AttributeError):
            raise AuditRefused(f"{self.path}: the audit head anchor is not readable (damaged?)") from None
        if not hmac.compare_digest(self._sign(head), signature):
            raise AuditRefused(
                f"{self.path}: the audit head anchor does not verify with the audit key "
                "(edited, or written with another key)"
            )
        return head

    def store(self, head: Head, directory: Path) -> None:
        """Replace the anchor (a new file, fsynced, then renamed: a crash leaves the old or the new)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        payload = {
            "log_id": head.log_id,
            "seq": head.seq,
            "mac": head.mac,
            "data_dir": str(directory),
            "updated": _now(),
            "anchor_mac": self._sign(head),
        }
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = open_private(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            os.write(fd, json.dumps(payload, indent=1).encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self.path)


# ---------------------------------------------------------------- reading the end of a file


@dataclass(frozen=True)
class _Tail:
    """The end of an open log: its last record (line and parsed), a torn final fragment if any,
    and the complete lines read, newest last (to find an anchored record without a full scan)."""

    size: int
    raw: bytes | None
    last: dict[str, Any] | None
    torn: bytes | None
    lines: list[bytes]


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "seq" in record and "mac" in record else None


def _tail_of(fd: int) -> _Tail:
    size = os.fstat(fd).st_size
    if size == 0:
        return _Tail(0, None, None, None, [])
    start = max(0, size - _TAIL_READ)
    data = os.pread(fd, size - start, start)
    lines = data.split(b"\n")
    torn = lines.pop() or None  # what follows the last newline: empty unless a write was torn
    if start > 0:
        lines = lines[1:]  # the first line of the window is probably partial
    for raw in reversed(lines):
        if raw.strip() and (record := _parse(raw)) is not None:
            return _Tail(size, raw, record, torn, lines)
    if start > 0:  # a pathological 256 KiB of garbage: scan the whole file
        found = _find(fd, lambda record: True)
        if found is not None:
            return _Tail(size, found[0], found[1], torn, [])
    return _Tail(size, None, None, torn, lines)


def _find(fd: int, wanted: Any) -> tuple[bytes, dict[str, Any]] | None:
    """The last complete record of a whole file for which `wanted(record)` holds."""
    found = None
    with os.fdopen(os.dup(fd), "rb") as handle:
        handle.seek(0)
        for line in handle:
            if line.endswith(b"\n") and (record := _parse(line[:-1])) is not None and wanted(record):
                found = (line[:-1], record)
    return found


# ---------------------------------------------------------------- writing


@dataclass
class AuditLog:
    directory: Path
    key: bytes
    operator: str = "unknown"
    max_bytes: int = 100 * 1024 * 1024
    host: str = field(default_factory=socket.gethostname)
    anchor: HeadAnchor | None = None

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
        """Append one record (fsynced), re-anchor the head and return the record. Text is scrubbed
        of known secrets first. AuditRefused when the log disagrees with its anchor or its key."""
        if kind not in KINDS:
            raise ValueError(f"unknown audit kind {kind!r}")
        clean_details = json.loads(redactor.redact(json.dumps(dict(details or {}), default=str)))
        with self._locked():
            fd = open_private(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
            try:
                tail = _tail_of(fd)
                if tail.last is None or tail.raw is None:
                    if tail.size:
                        raise AuditRefused(
                            f"{self.path}: {tail.size} bytes but no audit record in it; move the file "
                            "aside (keep it) and run again to start a new log"
                        )
                    last = self._start(fd)
                else:
                    self._check(fd, tail.raw, tail.last, tail.lines)
                    last = tail.last
                if tail.torn is not None:  # the torn line stays, for verify to check and report
                    last = self._write(
                        fd,
                        self._fields(
                            last,
                            "system",
                            REPAIR_ACTION,
                            {
                                "torn_bytes": len(tail.torn),
                                "torn_sha256": hashlib.sha256(tail.torn).hexdigest(),
                            },
                        ),
                        prefix=b"\n",
                    )
                if os.fstat(fd).st_size >= self.max_bytes:
                    fd = self._rotate(fd)
                    last = self._write(fd, self._rotated(last))
                fields = self._fields(last, kind, redactor.redact(action), clean_details)
                fields.update(  # filled in where _fields put them: the order is the format
                    subject=redactor.redact(subject),
                    outcome=redactor.redact(outcome),
                    operator=redactor.redact(operator or self.operator),
                )
                record = self._write(fd, fields)
            finally:
                os.close(fd)
            if self.anchor is not None:
                try:
                    self.anchor.store(_head(record), self.directory)
                except OSError as exc:
                    raise AuditRefused(
                        f"record seq {record['seq']} written, but its head anchor {self.anchor.path} "
                        f"could not be ({exc.strerror or exc}); a cut after it would go unnoticed"
                    ) from None
        return record

    def _fields(
        self, last: Mapping[str, Any] | None, kind: str, action: str, details: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The record after `last`, as this process's own (system) record: no subject or outcome."""
        # the order is the format: verify reads v, seq, log_id, prev and kind by position
        return {
            "v": FORMAT,
            "seq": 0 if last is None else int(last["seq"]) + 1,
            "log_id": secrets.token_hex(8) if last is None else str(last["log_id"]),
            "prev": "" if last is None else str(last["mac"]),
            "kind": kind,
            "ts": _now(),
            "operator": self.operator,
            "host": self.host,
            "action": action,
            "subject": "",
            "outcome": "",
            "details": dict(details or {}),
        }

    def _rotated(self, last: Mapping[str, Any]) -> dict[str, Any]:
        """The record that opens a file after rotation, naming the last seq of the one before."""
        return self._fields(last, "system", "rotated", {"previous_file_last_seq": last["seq"]})

    def _write(self, fd: int, fields: dict[str, Any], prefix: bytes = b"") -> dict[str, Any]:
        line, mac = encode(self.key, fields)
        os.write(fd, prefix + line)
        os.fsync(fd)
        return {**fields, "mac": mac}

    def _start(self, fd: int) -> dict[str, Any]:
        """The first record of an empty current file: the continuation of the newest rotated file
        (a rotation was interrupted), else a new log's genesis, unless an anchor says a log existed."""
        rotated = [p for p in log_files(self.directory) if p != self.path]
        if rotated:
            rfd = os.open(rotated[-1], os.O_RDONLY)
            try:
                tail = _tail_of(rfd)
                if tail.last is None or tail.raw is None:
                    raise AuditRefused(f"{rotated[-1]}: no audit record in it; cannot continue the log")
                self._check(rfd, tail.raw, tail.last, tail.lines)
            finally:
                os.close(rfd)
            return self._write(fd, self._rotated(tail.last))
        head = self.anchor.load() if self.anchor is not None else None
        if head is not None and self.anchor is not None:
            raise AuditRefused(
                f"{self.path} is missing or empty, but {self.anchor.path} records that log {head.log_id} "
                f"reached seq {head.seq}: the log was deleted. Restore it from backup; to start a new log "
                "deliberately, move the anchor file aside (keep it as evidence)"
            )
        return self._write(fd, self._fields(None, "system", "genesis"))

    def _check(self, fd: int, raw: bytes, last: Mapping[str, Any], lines: Sequence[bytes]) -> None:
        """Continue only a log written with this key and still reaching its anchored head."""
        seq = last.get("seq")
        if not signed_by(self.key, raw, last):
            raise AuditRefused(
                f"{self.path}: its last record (seq {seq}) does not verify with this audit key: the key "
                "was replaced, or the record edited. Nothing is appended under another key; restore the "
                "key that signed the log, and run `opsdash audit verify`"
            )
        head = self.anchor.load() if self.anchor is not None else None
        if head is None or self.anchor is None:
            return
        if head.log_id == last.get("log_id") and isinstance(seq, int) and seq >= head.seq:
            found: Mapping[str, Any] | None = last
            if seq > head.seq:  # the log is ahead of its anchor: a crash between the two writes
                found = next(
                    (r for raw in reversed(lines) if (r := _parse(raw)) is not None and r["seq"] == head.seq),
                    None,
                )
                if found is None and (hit := _find(fd, lambda r: r.get("seq") == head.seq)) is not None:
                    found = hit[1]
            if found is not None and hmac.compare_digest(str(found.get("mac")), head.mac):
                return
        raise AuditRefused(
            f"{self.path}: the log ends at seq {seq} (log {last.get('log_id')}) but {self.anchor.path} "
            f"anchors seq {head.seq} of log {head.log_id}: records were cut or the log replaced. Nothing "
            "is appended until an operator has looked: run `opsdash audit verify` (recovery: "
            "docs/operator-guide.md, 'When audit verify fails')"
        )

    def _rotate(self, fd: int) -> int:
        """Rename the full file to the next number; the open file for the new one (`fd` closed)."""
        numbers = [int(m.group(1)) for p in self.directory.iterdir() if (m := _ROTATED.match(p.name))]
        self.path.rename(self.directory / f"audit-{max(numbers, default=0) + 1:06d}.log")
        new = open_private(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
        os.close(fd)
        return new

    def head(self) -> Head | None:
        return read_head(self.directory)


def read_head(directory: Path) -> Head | None:
    """The head as the current file says (unverified): its last complete record's seq and MAC."""
    try:
        fd = os.open(directory / LOG_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        last = _tail_of(fd).last
    finally:
        os.close(fd)
    return _head(last) if last else None
