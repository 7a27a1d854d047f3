"""The tail engine: last page first, a full index, following appends, and marking broken lines."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from opsdash.core.audit.tail import Entry, Follower, LineIndex, RecordFilter, parse_since, tail


def rec(
    seq: int,
    kind: str = "operator_action",
    operator: str = "alice",
    ts: str = "2026-11-26T10:00:00+00:00",
    action: str = "validate",
) -> bytes:
    return json.dumps({"seq": seq, "ts": ts, "kind": kind, "operator": operator, "action": action}).encode()


def write_log(path: Path, records: list[bytes], trailing_newline: bool = True) -> None:
    path.write_bytes(b"\n".join(records) + (b"\n" if trailing_newline else b""))


def test_last_lines_and_backwards_iteration(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, [rec(i) for i in range(100)])
    with LineIndex(path) as index:
        last = index.last_lines(3)
        assert [json.loads(line)["seq"] for _, line in last] == [97, 98, 99]
        assert sum(1 for _ in index.iter_backwards()) == 100


def test_full_index_matches_the_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    records = [rec(i) for i in range(1000)]
    write_log(path, records, trailing_newline=False)
    progress: list[int] = []
    with LineIndex(path) as index:
        offsets = index.build(lambda done, total: progress.append(done))
        assert len(offsets) == 1000
        assert [index.line(i) for i in (0, 500, 999)] == [records[0], records[500], records[999]]
    assert progress[-1] == path.stat().st_size


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_bytes(b"")
    with LineIndex(path) as index:
        assert index.last_lines(5) == [] and len(index.build()) == 0
    assert tail(path, 5) == []


def test_broken_lines_are_marked_not_dropped(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, [rec(1), b"\xff\xfe\x00binary", b"{not json", b"[1,2]", rec(2)])
    entries = tail(path, 10)
    assert [e.problem for e in entries] == [None, "not UTF-8", "not JSON", "not a record", None]
    assert entries[1].summary().startswith("[not UTF-8]")


def test_filters(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(
        path,
        [
            rec(1, operator="alice"),
            rec(2, kind="security_event", operator="bob"),
            rec(3, ts="2026-11-20T10:00:00+00:00", action="rollback"),
            b"garbage mentions rollback",
            rec(4),
        ],
    )
    assert [e.record and e.record["seq"] for e in tail(path, 10, RecordFilter(kind="security_event"))] == [2]
    assert [e.record and e.record["seq"] for e in tail(path, 10, RecordFilter(operator="bob"))] == [2]
    by_text = tail(path, 10, RecordFilter(grep="ROLLBACK"))
    assert [e.problem for e in by_text] == [None, "not JSON"]  # text search includes broken lines
    since = parse_since("2026-11-25")
    assert 3 not in [e.record and e.record["seq"] for e in tail(path, 10, RecordFilter(since=since))]
    assert [e.record and e.record["seq"] for e in tail(path, 2, RecordFilter(kind="operator_action"))] == [
        3,
        4,
    ]


def test_parse_since() -> None:
    assert parse_since("2h").tzinfo is not None
    with pytest.raises(ValueError, match="--since"):
        parse_since("yesterday")


def test_follower_appends_partial_lines_truncation_and_rotation(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, [rec(1)])
    follower = Follower.at_end(path)
    assert follower.poll() == ([], None)
    with path.open("ab") as handle:
        handle.write(rec(2) + b"\n" + rec(3)[:10])  # the writer is mid-line
    lines, event = follower.poll()
    assert [json.loads(x)["seq"] for x in lines] == [2] and event is None
    with path.open("ab") as handle:
        handle.write(rec(3)[10:] + b"\n")
    assert [json.loads(x)["seq"] for x in follower.poll()[0]] == [3]
    path.write_bytes(rec(9) + b"\n")  # truncated and rewritten shorter
    lines, event = follower.poll()
    assert event == "truncated" and [json.loads(x)["seq"] for x in lines] == [9]
    os.rename(path, tmp_path / "audit-000001.log")
    write_log(path, [rec(10), rec(11)])
    lines, event = follower.poll()
    assert event == "rotated" and [json.loads(x)["seq"] for x in lines] == [10, 11]


def test_entry_summary_reads_like_a_log_line() -> None:
    entry = Entry.parse(rec(5, action="rollback"))
    assert entry.summary().startswith("2026-11-26T10:00:00+00:00  #5  operator_action  alice  rollback")


# ---------------------------------------------------------------- StreamIndex: what the Audit pane reads

from opsdash.core.audit.tail import LineIndex as _LineIndex  # noqa: E402
from opsdash.core.audit.tail import StreamIndex  # noqa: E402


def _write(path: Path, first: int, count: int) -> None:
    with path.open("ab") as handle:
        for n in range(first, first + count):
            handle.write(b'{"seq":%d,"kind":"system","pad":"%s"}\n' % (n, b"x" * (n % 37)))


def _lines(index: StreamIndex) -> list[bytes]:
    return [index.line_at(p) for p in index.offsets]


def test_stream_index_reads_backwards_on_demand_and_matches_a_full_index(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    _write(log, 0, 5000)
    with _LineIndex(log) as full:
        everything = [full.line(n) for n in range(len(full.build()))]
    with StreamIndex([log]) as index:
        added = index.extend_back(4096)
        incomplete = not index.complete  # (a name: mypy would keep `complete` narrowed through the loop)
        assert 0 < added < 200 and incomplete  # one small step: only the newest lines
        assert _lines(index) == everything[-added:]
        while not index.complete:
            index.extend_back(10_000)
        assert _lines(index) == everything


def test_stream_index_spans_rotated_files_and_follows_rotation(tmp_path: Path) -> None:
    first, current = tmp_path / "audit-000001.log", tmp_path / "audit.log"
    _write(first, 0, 100)
    _write(current, 100, 50)
    with StreamIndex([first, current]) as index:
        while not index.complete:
            index.extend_back(1000)
        assert [int(line.split(b",")[0][7:]) for line in _lines(index)] == list(range(150))
        _write(current, 150, 5)  # appended, then the file is rotated and a new one started
        current.rename(tmp_path / "audit-000002.log")
        _write(current, 155, 3)
        assert index.refresh() == "rotated"
        assert [int(line.split(b",")[0][7:]) for line in _lines(index)] == list(range(158))
        _write(current, 158, 2)
        assert index.refresh() == "appended"
        assert index.refresh() is None
        assert _lines(index)[-1].startswith(b'{"seq":159,')


def test_stream_index_reports_truncation(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    _write(log, 0, 10)
    with StreamIndex([log]) as index:
        index.extend_back()
        log.write_bytes(b"")
        assert index.refresh() == "reset"


def test_stream_index_scan_finds_matches_in_every_file(tmp_path: Path) -> None:
    first, current = tmp_path / "audit-000001.log", tmp_path / "audit.log"
    _write(first, 0, 30)
    _write(current, 30, 30)
    with StreamIndex([first, current]) as index:
        found = index.scan(lambda raw: b'"seq":1' in raw)
        seqs = [int(index.line_at(p).split(b",")[0][7:]) for p in found]
        assert seqs == [1, *range(10, 20)]  # positions read back without a full index
