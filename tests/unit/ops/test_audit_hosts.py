"""The audit trail for a team: each host copies its signed chain (lines exactly as written, and its
head) to the shared database, and `verify_hosts` checks every host's copy with the key, naming the
first bad record of each. The database is the team's PostgreSQL database (a server the tests
start, tests/pg.py) and, where its binaries are absent, one SQLite file both "hosts" write to: the
copy and the verification are the same on both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opsdash.core.audit.log import AuditRefused
from opsdash.ops.audit import AuditTrail, HostVerification, host_id
from opsdash.ops.config import OpsdashSettings
from opsdash.storage.history import History
from tests.pg import pg_server, pg_url  # noqa: F401 - fixtures

KEY = "k" * 64


@pytest.fixture(params=["sqlite", "postgresql"])
def team(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[AuditTrail, AuditTrail, History]]:
    monkeypatch.setenv("OPSDASH_AUDIT_KEY", KEY)
    hosts = [AuditTrail(OpsdashSettings(data_dir=tmp_path / name), f"op-{name}") for name in ("a", "b")]
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    with History.open(tmp_path / "shared", database=url) as history:
        yield hosts[0], hosts[1], history


def write(trail: AuditTrail, count: int) -> None:
    for n in range(count):
        trail.event("operator_action", "check", subject=f"thing-{n}", outcome="OK")


def by_dir(outcomes: list[HostVerification]) -> dict[str, HostVerification]:
    return {Path(o.host.data_dir).name: o for o in outcomes}


def test_every_host_s_chain_is_copied_and_verifies(team: tuple[AuditTrail, AuditTrail, History]) -> None:
    a, b, history = team
    write(a, 5)
    write(b, 3)
    assert a.publish(history) == 6 and b.publish(history) == 4  # genesis + records
    write(a, 2)
    assert a.publish(history) == 2 and a.publish(history) == 0  # only what is new, once
    outcomes = by_dir(a.verify_hosts(history))
    assert {name: (o.result.status, o.result.records, o.host.seq) for name, o in outcomes.items()} == {
        "a": ("OK", 8, 7),
        "b": ("OK", 4, 3),
    }
    assert outcomes["a"].host.host_id != outcomes["b"].host.host_id


def lines_of(history: History, trail: AuditTrail) -> list[tuple[int, bytes]]:
    rows = history.conn.execute(
        "SELECT seq, line FROM audit_lines WHERE host_id = ? ORDER BY n", [host_id(trail.directory)]
    )
    return [(int(seq), bytes(line)) for seq, line in rows]


def test_a_record_changed_in_the_database_is_named_for_its_host_only(
    team: tuple[AuditTrail, AuditTrail, History],
) -> None:
    a, b, history = team
    write(a, 5)
    write(b, 5)
    a.publish(history)
    b.publish(history)
    seq, line = lines_of(history, b)[3]
    history.conn.execute(
        "UPDATE audit_lines SET line = ? WHERE seq = ? AND line = ?",
        [line.replace(b"thing-", b"THING-"), seq, line],
    )
    history.conn.commit()
    outcomes = by_dir(a.verify_hosts(history))
    assert outcomes["a"].result.status == "OK"
    bad = outcomes["b"]
    assert bad.result.status == "TAMPERED" and bad.result.problem is not None
    assert bad.result.problem.first_bad_seq == 3
    assert "MAC mismatch" in str(bad.to_dict()["problem"]) and "audit.log:" not in str(
        bad.to_dict()["problem"]
    )


def test_a_deleted_record_and_a_forged_one_are_caught(team: tuple[AuditTrail, AuditTrail, History]) -> None:
    a, b, history = team
    write(a, 5)
    write(b, 5)
    a.publish(history)
    b.publish(history)
    history.conn.execute("DELETE FROM audit_lines WHERE seq = 2 AND host_id = ?", [host_id(a.directory)])
    # a DBA writes a record of their own into b's chain: without the key its MAC cannot be right
    seq, line = lines_of(history, b)[-1]
    forged = line.replace(f'"seq":{seq},'.encode(), f'"seq":{seq + 1},'.encode())
    history.conn.execute(
        "INSERT INTO audit_lines (host_id, n, seq, line) SELECT host_id, n + 1, ?, ? FROM audit_lines "
        "WHERE seq = ? AND line = ?",
        [seq + 1, forged, seq, line],
    )
    history.conn.commit()
    outcomes = by_dir(a.verify_hosts(history))
    assert outcomes["a"].result.problem is not None and outcomes["a"].result.problem.first_bad_seq == 2
    assert "gap" in str(outcomes["a"].to_dict()["problem"])
    assert outcomes["b"].result.problem is not None and outcomes["b"].result.problem.first_bad_seq == seq + 1


def test_a_chain_cut_back_in_the_database_is_caught_by_the_head_it_holds(
    team: tuple[AuditTrail, AuditTrail, History],
) -> None:
    a, _b, history = team
    write(a, 5)
    a.publish(history)
    history.conn.execute("DELETE FROM audit_lines WHERE seq >= 4")  # lines gone, head row left
    history.conn.commit()
    (outcome,) = a.verify_hosts(history)
    assert outcome.result.status == "TAMPERED" and "truncated" in str(outcome.to_dict()["problem"])


def test_a_local_log_replaced_or_cut_is_not_copied_over_the_chain(
    team: tuple[AuditTrail, AuditTrail, History],
) -> None:
    a, _b, history = team
    write(a, 3)
    a.publish(history)
    for path in a.directory.glob("audit*"):
        if path.suffix == ".log":
            path.write_bytes(path.read_bytes()[:50])  # cut to less than what was copied
    with pytest.raises(AuditRefused, match="shorter"):
        a.publish(history)
    (outcome,) = a.verify_hosts(history)
    assert outcome.result.status == "OK" and outcome.result.records == 4  # the copy still holds
