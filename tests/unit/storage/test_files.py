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
from tests.conftest import Run

# SQLite only: the file's mode and links
pytestmark = pytest.mark.sqlite_only


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


def test_init_replaces_a_planted_link_instead_of_writing_through_it(run: Run, tmp_path: Path) -> None:
    project = tmp_path / "app"
    project.mkdir()
    (project / ".env.production").write_text("VITE_APP_URL=https://app.example.com\n")
    victim = tmp_path / "victim"
    victim.write_text("root's file\n")
    (project / "opsdash.toml").symlink_to(victim)
    result = run("init", "--dir", project, "--force")
    assert result.code == 0, result.err
    assert victim.read_text() == "root's file\n"
    assert not (project / "opsdash.toml").is_symlink()
    assert "[target]" in (project / "opsdash.toml").read_text()


@pytest.mark.parametrize("planted", ["link", "not-empty"])
def test_demo_refuses_a_workspace_it_does_not_own(run: Run, tmp_path: Path, planted: str) -> None:
    workspace = tmp_path / "opsdash-demo"
    if planted == "link":
        target = tmp_path / "elsewhere"
        target.mkdir()
        workspace.symlink_to(target)
    else:
        workspace.mkdir()
        (workspace / "notes.txt").write_text("someone's notes\n")
    result = run("demo", "--no-tui", "--dir", str(workspace))
    assert result.code == 3, result.out + result.err
    assert ("symbolic link" if planted == "link" else "not empty") in result.err
    assert "internal error" not in result.err
