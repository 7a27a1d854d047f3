"""Files opsdash writes are private and never written through a symbolic link: another local user
who plants a link where history.db or audit.log will be must not get opsdash to write elsewhere."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from opsdash.core.audit.log import AuditLog
from opsdash.core.errors import InputError
from opsdash.core.files import LinkRefused
from opsdash.storage.history import History


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_history_database_and_data_dir_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with History.open(data):
        pass
    assert mode(data) == 0o700
    assert mode(data / "history.db") == 0o600


def test_history_database_planted_as_a_link_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"root's file")
    (data / "history.db").symlink_to(victim)
    with pytest.raises(InputError, match="symbolic link"):
        History.open(data)
    assert victim.read_bytes() == b"root's file"


def test_audit_log_planted_as_a_link_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"root's file")
    (data / "audit.log").symlink_to(victim)
    log = AuditLog(data, key=b"k" * 32)
    with pytest.raises(LinkRefused, match="symbolic link"):
        log.append("system", "test")
    assert victim.read_bytes() == b"root's file"


def test_audit_log_is_private(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "data", key=b"k" * 32)
    log.append("system", "test")
    assert mode(log.path) == 0o600
    assert os.stat(log.path).st_nlink == 1
