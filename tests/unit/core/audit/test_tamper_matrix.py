"""Every way to tamper with the audit log that the threat model covers is caught, naming the first
bad seq: edits, deletions, reordering, truncation by any number of records (with history's anchor
intact, deleted, or edited to match the cut), torn and forged records, removed rotated files and a
replaced key. The head anchor lives outside the data directory, as `opsdash` keeps it beside the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from opsdash.core.audit.log import AuditLog, AuditRefused, Head, HeadAnchor, log_files
from opsdash.core.audit.verify import verify

KEY = b"matrix-audit-key-0123456789abcdef012345"
OTHER_KEY = b"an-attackers-key-0123456789abcdef0123456"
NEWEST = 8  # genesis plus eight records: seq 0..8


@dataclass
class Setup:
    data: Path
    anchor: HeadAnchor
    log: AuditLog
    heads: list[Head]  # the head after each append, as history records them per run

    @property
    def current(self) -> Path:
        return self.data / "audit.log"

    def lines(self, path: Path | None = None) -> list[bytes]:
        return (path or self.current).read_bytes().splitlines(keepends=True)

    def write(self, content: list[bytes], path: Path | None = None) -> None:
        (path or self.current).write_bytes(b"".join(content))


def build(tmp_path: Path, records: int = NEWEST, max_bytes: int = 100 * 1024 * 1024) -> Setup:
    data = tmp_path / "data"  # what the attacker can write
    anchor = HeadAnchor(tmp_path / "config" / "audit-anchors" / "x.head", KEY)  # beside the key
    log = AuditLog(data, KEY, operator="alice", max_bytes=max_bytes, anchor=anchor)
    heads = []
    for i in range(records):
        record = log.append(
            "operator_action", "validate", subject="BetaSkill", outcome="OK", details={"i": i}
        )
        heads.append(Head(record["log_id"], record["seq"], record["mac"]))
    return Setup(data, anchor, log, heads)


def check(
    setup: Setup, first_bad: int, reason: str, history: list[Head] | None = None, key: bytes = KEY
) -> None:
    anchors = [(head, "history run r1") for head in history or []]
    head_file = HeadAnchor(setup.anchor.path, key)
    result = verify(setup.data, key, anchors=anchors, head_file=head_file)
    assert not result.ok and result.status == "TAMPERED"
    assert result.problem is not None
    assert result.problem.first_bad_seq == first_bad, result.problem
    assert reason in result.problem.reason, result.problem


def forged_line(base: dict[str, object], **changes: object) -> bytes:
    """A record made to look right, signed with a key that is not the log's."""
    body = {k: v for k, v in base.items() if k != "mac"} | changes
    raw = json.dumps(body, separators=(",", ":")).encode()[:-1]
    mac = hmac.new(OTHER_KEY, raw, hashlib.sha256).hexdigest()
    return raw + b',"mac":"' + mac.encode() + b'"}\n'


def test_the_untouched_log_verifies_against_every_anchor(tmp_path: Path) -> None:
    setup = build(tmp_path)
    result = verify(setup.data, KEY, anchors=[(setup.heads[-1], "history run r1")], head_file=setup.anchor)
    assert result.status == "OK" and result.records == NEWEST + 1
    assert setup.anchor.load() == setup.heads[-1] == result.head
    assert not setup.anchor.path.is_relative_to(setup.data)


# ---------------------------------------------------------------- edits, deletions, order


def _edit(setup: Setup) -> None:
    content = setup.lines()
    content[3] = content[3].replace(b'"outcome":"OK"', b'"outcome":"NO"')
    setup.write(content)


def _edit_newest(setup: Setup) -> None:
    content = setup.lines()
    content[NEWEST] = content[NEWEST].replace(b'"operator":"alice"', b'"operator":"mallory"')
    setup.write(content)


def _edit_mac(setup: Setup) -> None:
    content = setup.lines()
    content[3] = content[3][:-10] + (b"0" if content[3][-10:-9] != b"0" else b"1") + content[3][-9:]
    setup.write(content)


def _delete(setup: Setup) -> None:
    content = setup.lines()
    del content[3]
    setup.write(content)


def _delete_genesis(setup: Setup) -> None:
    setup.write(setup.lines()[1:])


def _reorder(setup: Setup) -> None:
    content = setup.lines()
    content[3], content[4] = content[4], content[3]
    setup.write(content)


def _replay(setup: Setup) -> None:
    content = setup.lines()
    content.insert(4, content[3])
    setup.write(content)


def _garbage(setup: Setup) -> None:
    content = setup.lines()
    content.insert(3, b"not a record\n")
    setup.write(content)


def _forge_appended(setup: Setup) -> None:
    content = setup.lines()
    last = json.loads(content[-1])
    forged = forged_line(last, seq=NEWEST + 1, prev=last["mac"], action="rollback")
    setup.write([*content, forged])


def _forge_replaced(setup: Setup) -> None:
    content = setup.lines()
    record = json.loads(content[5])
    content[5] = forged_line(record, outcome="CRIT")
    setup.write(content)


def _torn_newest(setup: Setup) -> None:
    content = setup.lines()
    content[-1] = content[-1][:40]  # cut inside the newest record
    setup.write(content)


CASES: dict[str, tuple[Callable[[Setup], None], int, str]] = {
    "edit a field": (_edit, 3, "MAC mismatch"),
    "edit the newest record": (_edit_newest, NEWEST, "MAC mismatch"),
    "edit a MAC": (_edit_mac, 3, "MAC mismatch"),
    "delete a record": (_delete, 3, "gap: seq 3..3 missing"),
    "delete the genesis": (_delete_genesis, 0, "not at a genesis record"),
    "reorder two records": (_reorder, 3, "records reordered: seq 4 comes before seq 3"),
    "replay a record": (_replay, 4, "reordered or replayed"),
    "insert a line": (_garbage, 3, "unparseable line"),
    "forge a newer record": (_forge_appended, NEWEST + 1, "MAC mismatch"),
    "forge over a record": (_forge_replaced, 5, "MAC mismatch"),
    "tear the newest record": (_torn_newest, NEWEST, "unparseable line at the end of the file"),
}


@pytest.mark.parametrize("case", CASES)
def test_tampering_is_caught_at_the_first_bad_seq(tmp_path: Path, case: str) -> None:
    tamper, first_bad, reason = CASES[case]
    setup = build(tmp_path)
    tamper(setup)
    check(setup, first_bad, reason)


# ---------------------------------------------------------------- truncation


@pytest.mark.parametrize("history", ["intact", "deleted", "edited to the cut", "older than the cut"])
@pytest.mark.parametrize("cut", range(1, NEWEST + 1))
def test_cutting_any_number_of_newest_records_is_caught(tmp_path: Path, cut: int, history: str) -> None:
    setup = build(tmp_path)
    setup.write(setup.lines()[: NEWEST + 1 - cut])
    remaining = setup.heads[-cut - 1] if cut < NEWEST else None
    rows = {
        "intact": [setup.heads[-1]],
        "deleted": [],  # history.db removed, or its anchor rows deleted
        "edited to the cut": [remaining] if remaining else [],  # rows rewritten to the new end
        "older than the cut": [setup.heads[0]],  # records written after the last run (the old gap)
    }[history]
    check(setup, NEWEST + 1 - cut, f"(seq {NEWEST + 1 - cut}..{NEWEST} cut)", rows)


def test_emptying_or_deleting_the_log_is_caught(tmp_path: Path) -> None:
    setup = build(tmp_path)
    setup.write([])
    check(setup, 0, "truncated: the log has no records")
    setup.current.unlink()
    check(setup, 0, "log is missing")


def test_rolling_back_to_an_earlier_copy_is_caught(tmp_path: Path) -> None:
    setup = build(tmp_path, records=3)
    backup = setup.current.read_bytes()
    for _ in range(3):
        setup.log.append("operator_action", "rollback")
    setup.current.write_bytes(backup)
    check(setup, 4, "(seq 4..6 cut)")


# ---------------------------------------------------------------- rotation and keys


@pytest.fixture
def rotated(tmp_path: Path) -> Setup:
    setup = build(tmp_path, records=40, max_bytes=4096)
    assert len(log_files(setup.data)) >= 3
    return setup


def first_seq(path: Path) -> int:
    return int(json.loads(path.read_bytes().splitlines()[0])["seq"])


def test_removing_the_oldest_rotated_file_is_caught(rotated: Setup) -> None:
    log_files(rotated.data)[0].unlink()
    check(rotated, 0, "not at a genesis record")


def test_removing_a_middle_rotated_file_is_caught(rotated: Setup) -> None:
    middle = log_files(rotated.data)[1]
    missing = first_seq(middle)
    middle.unlink()
    check(rotated, missing, f"gap: seq {missing}..")


def test_removing_the_current_file_is_caught(rotated: Setup) -> None:
    missing = first_seq(rotated.current)
    rotated.current.unlink()
    check(rotated, missing, "truncated")


def test_a_replaced_key_fails_at_the_first_record_and_the_anchor(tmp_path: Path) -> None:
    setup = build(tmp_path)
    check(setup, 0, "does not verify with the audit key", key=OTHER_KEY)
    setup.anchor.path.unlink()  # even with no anchor to object, the log itself fails at its genesis
    check(setup, 0, "MAC mismatch", key=OTHER_KEY)


def test_an_edited_anchor_is_reported_rather_than_trusted(tmp_path: Path) -> None:
    setup = build(tmp_path)
    setup.write(setup.lines()[:4])
    data = json.loads(setup.anchor.path.read_text())
    setup.anchor.path.write_text(json.dumps({**data, "seq": 3, "mac": json.loads(setup.lines()[3])["mac"]}))
    check(setup, 0, "does not verify with the audit key")


# ---------------------------------------------------------------- appends never paper over tampering


def test_an_append_refuses_to_continue_a_cut_log(tmp_path: Path) -> None:
    setup = build(tmp_path)
    setup.write(setup.lines()[:5])
    before = setup.current.read_bytes()
    with pytest.raises(AuditRefused, match=r"ends at seq 4 .* anchors seq 8"):
        setup.log.append("operator_action", "validate")
    assert setup.current.read_bytes() == before and setup.anchor.load() == setup.heads[-1]
    check(setup, 5, "(seq 5..8 cut)")


def test_an_append_refuses_to_repair_a_record_torn_by_a_cut(tmp_path: Path) -> None:
    setup = build(tmp_path)
    _torn_newest(setup)
    with pytest.raises(AuditRefused, match="records were cut"):
        setup.log.append("operator_action", "validate")


def test_an_append_refuses_a_deleted_log_and_another_key(tmp_path: Path) -> None:
    setup = build(tmp_path)
    other = AuditLog(setup.data, OTHER_KEY, anchor=HeadAnchor(setup.anchor.path, OTHER_KEY))
    with pytest.raises(AuditRefused, match="does not verify with this audit key"):
        other.append("operator_action", "validate")
    setup.current.unlink()
    with pytest.raises(AuditRefused, match="the log was deleted"):
        setup.log.append("operator_action", "validate")
    assert not setup.current.read_bytes()


def test_a_crash_between_the_record_and_its_anchor_is_not_tampering(tmp_path: Path) -> None:
    setup = build(tmp_path)
    setup.anchor.store(setup.heads[-3], setup.data)  # the anchor two appends behind the log
    assert verify(setup.data, KEY, head_file=setup.anchor).ok
    record = setup.log.append("operator_action", "validate")
    assert setup.anchor.load() == Head(record["log_id"], NEWEST + 1, record["mac"])
