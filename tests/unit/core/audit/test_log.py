"""The audit log: every kind of tampering is caught with the right record and reason."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
from pathlib import Path

import pytest

from opsdash.core.audit.log import AuditLog, Head, HeadAnchor, line_bytes, log_files, mac_of
from opsdash.core.audit.verify import parse_anchor, verify

KEY = b"test-audit-key-0123456789abcdef0123456789"


def make_log(directory: Path, records: int = 5, max_bytes: int = AuditLog.max_bytes) -> AuditLog:
    log = AuditLog(directory, KEY, operator="alice", max_bytes=max_bytes)
    for i in range(records):
        log.append("operator_action", "validate", subject="BetaSkill", outcome="OK", details={"i": i})
    return log


def lines(directory: Path) -> list[bytes]:
    return (directory / "audit.log").read_bytes().splitlines(keepends=True)


def write(directory: Path, content: list[bytes]) -> None:
    (directory / "audit.log").write_bytes(b"".join(content))


def test_valid_log_verifies(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    result = verify(tmp_path, KEY)
    assert result.ok and result.records == 6  # genesis + 5
    assert result.head == log.head()
    first = json.loads(lines(tmp_path)[0])
    assert (first["seq"], first["action"], first["kind"]) == (0, "genesis", "system")
    second = json.loads(lines(tmp_path)[1])
    assert second["prev"] == first["mac"] and second["operator"] == "alice" and second["host"]


def test_edited_byte_is_a_mac_mismatch_at_that_record(tmp_path: Path) -> None:
    make_log(tmp_path)
    content = lines(tmp_path)
    content[3] = content[3].replace(b'"outcome":"OK"', b'"outcome":"NO"')
    write(tmp_path, content)
    result = verify(tmp_path, KEY)
    assert not result.ok and result.problem is not None
    assert (result.problem.line, result.problem.seq) == (4, 3)
    assert "MAC mismatch" in result.problem.reason


def test_whitespace_edit_is_caught_too(tmp_path: Path) -> None:
    make_log(tmp_path)
    content = lines(tmp_path)
    content[2] = content[2].replace(b'"kind":', b'"kind": ')
    write(tmp_path, content)
    result = verify(tmp_path, KEY)
    assert result.problem is not None and result.problem.seq == 2
    assert "MAC mismatch" in result.problem.reason  # the MAC covers the bytes as written


def write_format_1(directory: Path, count: int) -> None:
    """A log as earlier versions wrote it: MAC over sorted, compact JSON; no "v"."""
    prev, out = "", []
    for seq in range(count):
        record = {
            "seq": seq,
            "ts": "2026-11-20T10:00:00.000+00:00",
            "log_id": "00112233aabbccdd",
            "operator": "alice",
            "host": "old",
            "kind": "system" if seq == 0 else "operator_action",
            "action": "genesis" if seq == 0 else "validate",
            "subject": "",
            "outcome": "",
            "details": {},
            "prev": prev,
        }
        record["mac"] = prev = mac_of(KEY, record)
        out.append(line_bytes(record))
    write(directory, out)


def test_a_format_1_log_still_verifies_and_continues_in_format_2(tmp_path: Path) -> None:
    write_format_1(tmp_path, 4)
    assert verify(tmp_path, KEY).ok
    edited = lines(tmp_path)
    edited[2] = edited[2].replace(b'"kind":', b'"kind": ')
    write(tmp_path, edited)
    result = verify(tmp_path, KEY)
    assert result.problem is not None and result.problem.seq == 2
    assert "not byte-for-byte" in result.problem.reason
    write_format_1(tmp_path, 4)
    record = AuditLog(tmp_path, KEY).append("operator_action", "validate")
    assert record["seq"] == 4 and record["v"] == 2 and lines(tmp_path)[-1].startswith(b'{"v":2,"seq":4,')
    migrated = verify(tmp_path, KEY)
    assert migrated.ok and migrated.records == 5 and migrated.head == Head(record["log_id"], 4, record["mac"])


def test_deleted_line_is_a_gap(tmp_path: Path) -> None:
    make_log(tmp_path)
    content = lines(tmp_path)
    del content[2]
    write(tmp_path, content)
    result = verify(tmp_path, KEY)
    assert result.problem is not None and result.problem.seq == 3
    assert "gap: seq 2..2 missing" in result.problem.reason


def test_swapped_lines_are_reordering(tmp_path: Path) -> None:
    make_log(tmp_path)
    content = lines(tmp_path)
    content[2], content[3] = content[3], content[2]
    write(tmp_path, content)
    result = verify(tmp_path, KEY)
    assert result.problem is not None and (result.problem.line, result.problem.seq) == (3, 3)
    assert result.problem.reason == "records reordered: seq 3 comes before seq 2"


def test_truncated_tail_is_caught_against_the_anchor(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    anchor = log.head()
    assert anchor is not None
    write(tmp_path, lines(tmp_path)[:-2])
    assert verify(tmp_path, KEY).ok  # without an anchor a clean cut looks like a shorter log ...
    result = verify(tmp_path, KEY, anchor)  # ... which is why runs record anchors
    assert not result.ok and result.problem is not None
    assert "truncated: the log ends at seq 3, before seq 5" in result.problem.reason
    assert result.problem.first_bad_seq == 4


def test_replaced_log_differs_from_anchor(tmp_path: Path) -> None:
    log = make_log(tmp_path, records=3)
    anchor = log.head()
    assert anchor is not None
    (tmp_path / "audit.log").unlink()
    make_log(tmp_path, records=3)  # a fresh log with the same key and length
    result = verify(tmp_path, KEY, anchor)
    assert result.problem is not None and "the log was replaced" in result.problem.reason
    by_seq_only = verify(tmp_path, KEY, Head("", anchor.seq, anchor.mac))  # as --anchor SEQ:MAC gives it
    assert by_seq_only.problem is not None and by_seq_only.problem.first_bad_seq == 3
    assert "differs from the head anchored in the given anchor" in by_seq_only.problem.reason


def test_forged_line_without_the_key(tmp_path: Path) -> None:
    make_log(tmp_path)
    last = json.loads(lines(tmp_path)[-1])
    forged = {**last, "seq": last["seq"] + 1, "prev": last["mac"], "action": "rollback", "mac": "0" * 64}
    forged["mac"] = __import__("hmac").new(b"guessed-key", b"x", "sha256").hexdigest()
    write(
        tmp_path,
        [*lines(tmp_path), json.dumps(forged, sort_keys=True, separators=(",", ":")).encode() + b"\n"],
    )
    result = verify(tmp_path, KEY)
    assert result.problem is not None and result.problem.seq == 6 and "MAC mismatch" in result.problem.reason


def test_wrong_key_fails_at_genesis(tmp_path: Path) -> None:
    make_log(tmp_path)
    result = verify(tmp_path, b"another-key-entirely-0000000000000")
    assert result.problem is not None and result.problem.seq == 0


def test_removed_genesis_is_reported(tmp_path: Path) -> None:
    make_log(tmp_path)
    write(tmp_path, lines(tmp_path)[1:])
    result = verify(tmp_path, KEY)
    assert result.problem is not None and "not at a genesis record" in result.problem.reason


def test_torn_final_line_is_reported_then_repaired_and_warned_about_until_acknowledged(
    tmp_path: Path,
) -> None:
    log = make_log(tmp_path)
    with (tmp_path / "audit.log").open("ab") as handle:
        handle.write(b'{"v":2,"seq":6,"log_id":"')  # the process died mid-write
    result = verify(tmp_path, KEY)
    assert not result.ok and result.problem is not None and result.status == "TAMPERED"
    assert "interrupted" in result.problem.reason and result.problem.line == 7
    assert result.problem.first_bad_seq == 6
    record = log.append("operator_action", "validate")
    assert record["seq"] == 7
    repair = json.loads(lines(tmp_path)[7])
    assert (repair["seq"], repair["kind"], repair["action"]) == (6, "system", "torn-line-repaired")
    for appended in range(2):  # it keeps being reported, whatever is appended after it
        repaired = verify(tmp_path, KEY)
        assert repaired.ok and repaired.status == "WARN" and repaired.records == 8 + appended
        assert repaired.unacknowledged_repairs == (6,)
        assert "audit.log:7: a write was interrupted" in repaired.warnings[0]
        log.append("operator_action", "validate")
    log.append("system", "repair-acknowledged", details={"repairs": [6]}, operator="bob")
    acknowledged = verify(tmp_path, KEY)
    assert acknowledged.status == "OK" and not acknowledged.warnings
    content = lines(tmp_path)
    content[6] = content[6].replace(b"seq", b"SEQ")  # the kept fragment is covered by the repair record
    write(tmp_path, content)
    changed = verify(tmp_path, KEY)
    assert (
        changed.problem is not None
        and "the torn line that seq 6 repaired was changed" in changed.problem.reason
    )


def test_garbage_line_in_the_middle_is_not_silently_skipped(tmp_path: Path) -> None:
    make_log(tmp_path)
    content = lines(tmp_path)
    content.insert(3, b"\xff\xfe not a record\n")
    write(tmp_path, content)
    result = verify(tmp_path, KEY)
    assert result.problem is not None and result.problem.line == 4 and "unparseable" in result.problem.reason


def test_rotation_links_files_and_verify_walks_them(tmp_path: Path) -> None:
    log = make_log(tmp_path, records=40, max_bytes=4096)
    files = log_files(tmp_path)
    assert len(files) >= 3 and files[-1].name == "audit.log"
    first_of_current = json.loads(files[-1].read_bytes().splitlines()[0])
    assert first_of_current["action"] == "rotated"
    result = verify(tmp_path, KEY, log.head())
    assert result.ok and result.records == 41 + len(files) - 1  # each rotation adds its link record
    middle = files[1]
    middle.write_bytes(b"".join(middle.read_bytes().splitlines(keepends=True)[1:]))
    broken = verify(tmp_path, KEY)
    assert broken.problem is not None and broken.problem.file == str(middle)


def test_secrets_are_scrubbed_before_writing(tmp_path: Path) -> None:
    from opsdash.core.secrets import redactor

    canary = "canary-audit-secret-7f3e9a1b2c"
    redactor.register(canary)
    log = AuditLog(tmp_path, KEY)
    log.append("security_event", f"leak of {canary}", subject=canary, details={"value": canary})
    assert canary.encode() not in (tmp_path / "audit.log").read_bytes()
    assert verify(tmp_path, KEY).ok


def test_anchor_parsing() -> None:
    mac = "a" * 64
    assert parse_anchor(f"12:{mac}") == Head("", 12, mac)
    for bad in ("12", "x:" + mac, "12:xyz"):
        with pytest.raises(ValueError, match="SEQ:MAC"):
            parse_anchor(bad)


def _append_many(directory: str, who: str, count: int) -> None:
    anchor = HeadAnchor(Path(directory).with_name("config") / "x.head", KEY)
    log = AuditLog(Path(directory), KEY, operator=who, anchor=anchor)
    for i in range(count):
        log.append("operator_action", "step", subject=who, details={"i": i})


def test_two_processes_appending_at_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_append_many, args=(str(data), who, 3_000)) for who in ("p1", "p2")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(300)
        assert w.exitcode == 0
    anchor = HeadAnchor(tmp_path / "config" / "x.head", KEY)
    result = verify(data, KEY, head_file=anchor)
    assert result.ok, result.problem
    assert result.records == 6_001 and anchor.load() == result.head  # the anchor kept up with both
    by_who = [json.loads(line)["operator"] for line in lines(data)[1:]]
    assert by_who.count("p1") == by_who.count("p2") == 3_000
    assert sum(a != b for a, b in itertools.pairwise(by_who)) > 10  # they did interleave
    assert oct(os.stat(data / "audit.log").st_mode & 0o777) == "0o600"
