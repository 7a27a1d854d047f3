"""Verifying the audit log: walk every file, report the first bad record and the first bad seq.

A record is good when its MAC verifies, its seq follows the previous one and it links to the previous
record's MAC; the log must also reach every anchor it is checked against (the head anchor beside the
key, the anchors history keeps per run, one given by hand). Format-2 records that are the expected
next one take a fast path (a prefix comparison and one HMAC of the raw bytes); everything else, and
anything that fails there, goes through the full check, which says what is wrong. The formats
themselves are defined in `log.py`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsdash.core.audit.log import (
    ACK_ACTION,
    FORMAT_2_START,
    LOG_NAME,
    MAC_MARK,
    REPAIR_ACTION,
    AuditRefused,
    Head,
    HeadAnchor,
    format_2_parts,
    log_files,
    mac_of,
    signed_by,
)
from opsdash.core.errors import InputError


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    seq: int | None
    reason: str
    first_bad_seq: int | None = None

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
    warnings: tuple[str, ...] = ()
    unacknowledged_repairs: tuple[int, ...] = ()

    @property
    def status(self) -> str:
        return "TAMPERED" if not self.ok else "WARN" if self.warnings else "OK"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "status": self.status,
            "records": self.records,
            "files": list(self.files),
            "head": None if self.head is None else self.head.__dict__,
            "problem": None
            if self.problem is None
            else {**self.problem.__dict__, "message": str(self.problem)},
            "notes": list(self.notes),
            "warnings": list(self.warnings),
            "unacknowledged_repairs": list(self.unacknowledged_repairs),
        }


class _Walk:
    """The chain so far, while verify walks the files."""

    def __init__(self, key: bytes, anchors: Sequence[tuple[Head, str]], names: tuple[str, ...]) -> None:
        self.key, self.names = key, names
        self.anchors: dict[int, list[tuple[Head, str]]] = {}
        for head, source in anchors:
            self.anchors.setdefault(head.seq, []).append((head, source))
        self.seq, self.mac, self.log_id = -1, "", ""
        self.prefix = b""  # how the next format-2 record must start
        self.count = 0
        self.notes: list[str] = []
        self.pending: tuple[Problem, bytes] | None = None
        self.repairs: dict[int, str] = {}
        self.acked: set[int] = set()
        self.lines = 0  # lines in the file walked last

    def finish(self) -> Verification:
        """After the last file: torn leftovers, anchors beyond the end, unacknowledged repairs."""
        if self.pending is not None:
            return self.fail(self.pending[0])
        head = self.head()
        last = head.seq if head is not None else -1
        beyond = [s for s in self.anchors if s > last]
        if beyond:
            seq = max(beyond)  # the newest anchor tells how much was cut
            source = self.anchors[seq][0][1]
            ends = f"ends at seq {last}" if last >= 0 else "has no records"
            reason = f"truncated: the log {ends}, before seq {seq} anchored in {source} "
            reason += f"(seq {last + 1}..{seq} cut)"
            problem = Problem(self.names[-1], self.lines + 1, None, reason, last + 1)
            return Verification(False, self.count, self.names, head, problem, tuple(self.notes))
        if head is None:
            return Verification(True, 0, self.names, None, notes=("the audit log has no records yet",))
        unacked = tuple(sorted(s for s in self.repairs if s not in self.acked))
        warnings = tuple(
            f"{self.repairs[s]}; the record being written is lost. Not acknowledged yet "
            "(`opsdash audit ack-repair`)"
            for s in unacked
        )
        return Verification(True, self.count, self.names, head, None, tuple(self.notes), warnings, unacked)

    def head(self) -> Head | None:
        return Head(self.log_id, self.seq, self.mac) if self.seq >= 0 else None

    def fail(self, problem: Problem) -> Verification:
        if problem.first_bad_seq is None:
            problem = Problem(problem.file, problem.line, problem.seq, problem.reason, self.seq + 1)
        return Verification(False, self.count, self.names, self.head(), problem, tuple(self.notes))

    def advance(self, seq: int, mac: str, log_id: str) -> Problem | None:
        self.seq, self.mac, self.log_id = seq, mac, log_id
        self.prefix = b'{"v":2,"seq":%d,"log_id":"%s","prev":"%s","kind":"' % (
            seq + 1,
            log_id.encode(),
            mac.encode(),
        )
        self.count += 1
        for head, source in self.anchors.get(seq, ()):
            if not hmac.compare_digest(mac, head.mac):
                return Problem(
                    "",
                    0,
                    seq,
                    f"differs from the head anchored in {source}: the log was rewritten up to here",
                    seq,
                )
        return None

    def record(self, path: Path, number: int, line: bytes, following: Any) -> Problem | None:
        """Check one line the fast path did not accept; None when it is good (state advanced)."""
        torn_tail = not line.endswith(b"\n")
        raw = line if torn_tail else line[:-1]
        try:
            record = json.loads(raw.decode("utf-8"))
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError):
            if self.pending is not None:
                return self.pending[0]
            reason = "unparseable line" + (
                " at the end of the file: a write was interrupted (crash?) or the file was cut"
                if torn_tail
                else " (edited, or a torn write that was never repaired)"
            )
            self.pending = (Problem(str(path), number, None, reason, self.seq + 1), raw)
            self.prefix = b""  # nothing takes the fast path until the repair record
            return None
        seq = record.get("seq")
        where = (str(path), number, seq if isinstance(seq, int) else None)
        if not isinstance(seq, int) or "mac" not in record:
            return Problem(*where, "not an audit record (no seq or mac)")
        details = record.get("details")
        details = details if isinstance(details, dict) else {}
        is_repair = record.get("kind") == "system" and record.get("action") == REPAIR_ACTION
        if self.pending is not None:
            torn, fragment = self.pending
            if is_repair and (
                details.get("torn_bytes") != len(fragment)
                or details.get("torn_sha256") != hashlib.sha256(fragment).hexdigest()
            ):
                return Problem(
                    torn.file, torn.line, None, f"the torn line that seq {seq} repaired was changed"
                )
            if not is_repair and details.get("repaired_torn_line") is not True:  # format 1 marked it so
                return torn
            self.repairs[seq] = (
                f"{torn.file}:{torn.line}: a write was interrupted (torn line); repaired by seq {seq}"
            )
            self.pending = None
        elif is_repair:
            return Problem(*where, "the torn line this record repaired is missing (deleted?)")
        if not signed_by(self.key, raw, record):
            if raw.startswith(FORMAT_2_START) or not hmac.compare_digest(
                mac_of(self.key, record), str(record["mac"])
            ):
                return Problem(*where, "MAC mismatch: the record was changed, or written without the key")
            return Problem(*where, "the line is not byte-for-byte as written (edited)")
        if self.seq < 0:
            if seq != 0 or record.get("action") != "genesis":
                return Problem(
                    *where, f"the log starts at seq {seq}, not at a genesis record (earlier records removed?)"
                )
            for entries in self.anchors.values():
                for head, source in entries:
                    if head.log_id and head.log_id != record.get("log_id"):
                        return Problem(
                            *where,
                            f"this is log {record.get('log_id')}, but {source} anchors log {head.log_id}: "
                            "the log was replaced",
                        )
        else:
            expected = self.seq + 1
            if seq < expected:
                return Problem(*where, f"seq {seq} after seq {self.seq}: records reordered or replayed")
            if seq > expected:
                if _seq_of(following) == expected:
                    return Problem(*where, f"records reordered: seq {seq} comes before seq {expected}")
                return Problem(*where, f"gap: seq {expected}..{seq - 1} missing (records deleted)")
            if record.get("prev") != self.mac or record.get("log_id") != self.log_id:
                return Problem(*where, "broken link: prev does not match the previous record's MAC")
        acked = details.get("repairs") if record.get("action") == ACK_ACTION else None
        if record.get("kind") == "system" and isinstance(acked, list):
            self.acked.update(s for s in acked if isinstance(s, int))
        mac = format_2_parts(raw)[1].decode() if raw.startswith(FORMAT_2_START) else str(record["mac"])  # type: ignore[index]
        problem = self.advance(seq, mac, str(record.get("log_id")))
        return None if problem is None else Problem(*where, problem.reason, problem.first_bad_seq)


def verify(
    directory: Path,
    key: bytes,
    anchor: Head | None = None,
    *,
    anchors: Sequence[tuple[Head, str]] = (),
    head_file: HeadAnchor | None = None,
) -> Verification:
    """Walk every file in order; report the first bad record and why, with the first bad seq. The
    log must reach every anchor: `anchor` (given by hand), `anchors` (head, where it came from) and
    the head anchor file. Repairs of torn writes not yet acknowledged come back as warnings."""
    files = log_files(directory)
    names = tuple(str(f) for f in files)
    wanted = [*([(anchor, "the given anchor")] if anchor is not None else []), *anchors]
    if head_file is not None:
        try:
            from_file = head_file.load()
        except AuditRefused as exc:
            reason = str(exc).removeprefix(f"{head_file.path}: ")
            return Verification(False, 0, names, None, Problem(str(head_file.path), 0, None, reason, 0))
        if from_file is not None:
            wanted.append((from_file, f"the head anchor {head_file.path}"))
    if not files:
        if not wanted:
            return Verification(True, 0, names, None, notes=("no audit log yet",))
        newest, source = max(wanted, key=lambda item: item[0].seq)
        reason = f"log is missing but {source} says seq {newest.seq} existed (deleted?)"
        return Verification(False, 0, names, None, Problem(str(directory / LOG_NAME), 0, None, reason, 0))
    walk = _Walk(key, wanted, names)
    for path in files:
        problem = _walk_file(walk, path)
        if problem is not None:
            return walk.fail(problem)
    return walk.finish()


def _walk_file(walk: _Walk, path: Path) -> Problem | None:
    """Walk one file. The fast path takes the expected next record when it is not a system one: a
    prefix comparison and one HMAC of the raw bytes, with the chain state in locals meanwhile."""
    keyed = hmac.new(walk.key, digestmod="sha256")  # copies skip the per-record key setup
    same, anchored = hmac.compare_digest, walk.anchors
    seq, mac, prefix, log_id, count = walk.seq, walk.mac.encode(), walk.prefix, walk.log_id, 0
    number = 0
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the audit log ({exc.strerror})") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if (
                prefix
                and line.startswith(prefix)
                and line[len(prefix) : len(prefix) + 7] != b'system"'
                and line[-75:-67] == MAC_MARK
                and line[-3:] == b'"}\n'
            ):
                h = keyed.copy()
                h.update(line[:-75])
                if same(h.hexdigest().encode(), line[-67:-3]):
                    seq, mac, count = seq + 1, line[-67:-3], count + 1
                    prefix = b'{"v":2,"seq":%d,"log_id":"%s","prev":"%s","kind":"' % (
                        seq + 1,
                        log_id.encode(),
                        mac,
                    )
                    if seq in anchored:
                        walk.seq, walk.count, count = seq - 1, walk.count + count - 1, 0
                        differs = walk.advance(seq, mac.decode(), log_id)
                        if differs is not None:
                            return Problem(str(path), number, seq, differs.reason, seq)
                    continue
            walk.seq, walk.mac, walk.prefix, walk.count = seq, mac.decode(), prefix, walk.count + count
            problem = walk.record(path, number, line, _Following(handle))
            if problem is not None:
                return problem
            seq, mac, prefix, log_id, count = walk.seq, walk.mac.encode(), walk.prefix, walk.log_id, 0
    walk.lines = number
    walk.seq, walk.mac, walk.prefix, walk.count = seq, mac.decode(), prefix, walk.count + count
    return None


class _Following:
    """The line after the current one, read only when a gap must be told from a reordering."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def seq(self) -> int | None:
        position = self.handle.tell()
        try:
            return _line_seq(self.handle.readline().rstrip(b"\n"))
        finally:
            self.handle.seek(position)


def _seq_of(following: _Following | None) -> int | None:
    return None if following is None else following.seq()


def _line_seq(raw: bytes) -> int | None:
    """The seq of a line, if it is a record."""
    if not raw:
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
