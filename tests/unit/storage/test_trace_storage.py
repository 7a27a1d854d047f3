"""The trace's object cache: clean ids per repository and needle set, places of found objects; a
new needle set starts the repository over; --full forgets it; only hashes and ids are stored."""

from __future__ import annotations

import hashlib
from pathlib import Path

from opsdash.storage.history import History
from tests.unit.storage.conftest import set_schema_version


def _oid(i: int) -> str:
    return hashlib.sha1(str(i).encode()).hexdigest()


def test_remember_then_read_back(tmp_path: Path) -> None:
    with History.open(tmp_path / "data") as history:
        scan = history.trace.remember(
            "/r/.git", "sha256:aaaa", [_oid(1), _oid(2)], {_oid(3): [("c1", "a.txt")]}
        )
        assert history.trace.scan_id("/r/.git", "sha256:aaaa") == scan
        history.trace.remember("/r/.git", "sha256:aaaa", [_oid(4)], {_oid(3): [("c2", "b.txt")]})
        assert history.trace.clean(scan) == {_oid(1), _oid(2), _oid(4)}
        assert history.trace.places(scan) == [(_oid(3), "c1", "a.txt"), (_oid(3), "c2", "b.txt")]


def test_needle_sets_keep_their_own_scans_up_to_a_few_per_repository(tmp_path: Path) -> None:
    """Review #32 (Low): two needle sets on one repository erased each other's cache."""
    from opsdash.storage.trace import NEEDLE_SETS

    with History.open(tmp_path / "data") as history:
        first = history.trace.remember("/r/.git", "sha256:aaaa", [_oid(1)], {})
        other = history.trace.remember("/other/.git", "sha256:aaaa", [_oid(9)], {})
        second = history.trace.remember("/r/.git", "sha256:bbbb", [_oid(2)], {})
        again = history.trace.remember("/r/.git", "sha256:aaaa", [_oid(3)], {})
        assert again == first and history.trace.clean(first) == {_oid(1), _oid(3)}
        assert history.trace.clean(second) == {_oid(2)}
        for i in range(NEEDLE_SETS):  # newer sets push the oldest out
            history.trace.remember("/r/.git", f"sha256:c{i}", [_oid(10 + i)], {})
        assert history.trace.scan_id("/r/.git", "sha256:aaaa") is None
        assert history.trace.clean(first) == set()
        assert history.trace.clean(other) == {_oid(9)}  # another repository is untouched


def test_forget(tmp_path: Path) -> None:
    with History.open(tmp_path / "data") as history:
        scan = history.trace.remember("/r/.git", "sha256:aaaa", [_oid(1)], {_oid(2): [("c", "p")]})
        assert history.trace.forget("/r/.git") is True
        assert history.trace.clean(scan) == set() and history.trace.places(scan) == []
        assert history.trace.forget("/r/.git") is False


def test_secret_prints_carry_the_length(tmp_path: Path) -> None:
    from opsdash.core.envfiles import EnvSnapshot, EnvValue
    from opsdash.core.findings import Report
    from opsdash.core.secrets import fingerprint

    value = "s3cr3t-" + "x" * 25
    env = EnvSnapshot(
        values={"API_SECRET": EnvValue("API_SECRET", value, "f:1"), "MODE": EnvValue("MODE", "p", "f:2")}
    )
    report = Report("validate", "t", "run-1", "2026-12-01T00:00:00+00:00", 1, ())
    with History.open(tmp_path / "data") as history:
        history.runs.record(report, operator="me", env=env, is_secret=lambda k: k.endswith("SECRET"))
        assert history.runs.secret_prints(10) == [("API_SECRET", fingerprint(value), 32)]


def test_v12_drops_an_older_cache_and_its_paths(tmp_path: Path) -> None:
    """The v10 cache could hold a path with a secret in clear; v12 drops it (a full scan, once)."""
    data = tmp_path / "data"
    with History.open(data) as history:
        scan = history.trace.remember(
            "/r/.git", "sha256:aaaa", [_oid(1)], {_oid(2): [("c", "cache/s3cr3t.json")]}
        )
        history.conn.execute("DROP INDEX idx_trace_scans_repo_needles")
        history.conn.execute("CREATE UNIQUE INDEX idx_trace_scans_repo ON trace_scans (repo)")
        set_schema_version(history, 11)
    with History.open(data) as history:
        assert history.trace.places(scan) == [] and history.trace.clean(scan) == set()
        history.trace.remember("/r/.git", "sha256:aaaa", [_oid(1)], {})
        history.trace.remember("/r/.git", "sha256:bbbb", [_oid(1)], {})  # one repository, two sets
        assert history.trace.scan_id("/r/.git", "sha256:aaaa") is not None
