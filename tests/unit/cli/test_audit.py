"""`opsdash audit tail|verify` and the audit trail that validate, check, init and demo leave."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Project, Run, good_env
from tests.waits import read_line


def data_dir() -> Path:
    return Path(os.environ["OPSDASH_DATA_DIR"])


def test_validate_leaves_an_audit_trail_and_an_anchor(run: Run, project: Project) -> None:
    project.write_env({**good_env(), "VITE_IKHOKHA_API_SECRET": "f" * 8 + "0123456789abcdef0123"})
    report = json.loads(run("validate", "--config", project.profile, "--json", "--operator", "carol").out)
    records = [json.loads(x) for x in run("audit", "tail", "--json").out.splitlines()]
    actions = [(r["kind"], r["action"], r["operator"]) for r in records]
    assert actions == [
        ("system", "genesis", "carol"),
        ("security_event", "secret-exposure", "carol"),
        ("security_event", "crit-findings", "carol"),
        ("operator_action", "validate", "carol"),
    ]
    assert records[-1]["details"]["run_id"] == report["run_id"] and records[-1]["outcome"] == "CRIT"
    verified = run("audit", "verify", "--json")
    assert verified.code == 0
    body = json.loads(verified.out)
    assert body["ok"] and body["records"] == 4 and body["anchor_source"] == f"history run {report['run_id']}"
    assert body["status"] == "OK" and body["head_anchor"] is not None


def test_verify_reports_tampering_with_exit_2(run: Run, project: Project) -> None:
    run("validate", "--config", project.profile)
    run("validate", "--config", project.profile)
    log = data_dir() / "audit.log"
    lines = log.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"outcome":"OK"', b'"outcome":"CRIT"')
    log.write_bytes(b"".join(lines))
    result = run("audit", "verify")
    assert result.code == 2
    assert result.out.startswith("TAMPERED") and "audit.log:2 (seq 1): MAC mismatch" in result.out


def test_truncation_is_caught_with_the_history_anchor(run: Run, project: Project) -> None:
    run("validate", "--config", project.profile)
    run("validate", "--config", project.profile)
    log = data_dir() / "audit.log"
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:2]))
    result = run("audit", "verify")
    assert result.code == 2 and "truncated" in result.out and "history run" in result.out
    assert "first bad seq: 2" in result.out


def test_verify_runs_with_the_history_database_out_of_reach(
    run: Run, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The team database down (or history.db unreadable): the local chain and the head anchor
    beside the key still verify, saying the history anchor was not read; tampering is still
    caught (the reviewer's case: exit 3, nothing verified)."""
    from tests.servers import closed_port

    run("validate", "--config", project.profile)
    run("validate", "--config", project.profile)
    monkeypatch.setenv(
        "OPSDASH_DATABASE_URL", f"postgresql://ops:pw-not-shown-1234@127.0.0.1:{closed_port()}/ops"
    )
    result = run("audit", "verify", "--config", project.profile)
    assert result.code == 0, result.out + result.err
    said = " ".join(result.out.split())  # wrapped to the terminal
    assert said.startswith("OK") and "no history anchor" in said and "cannot connect" in said
    assert "pw-not-shown-1234" not in result.out + result.err
    log = data_dir() / "audit.log"
    lines = log.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"outcome":"OK"', b'"outcome":"CRIT"')
    log.write_bytes(b"".join(lines))
    tampered = run("audit", "verify", "--config", project.profile)
    assert tampered.code == 2 and tampered.out.startswith("TAMPERED"), tampered.out + tampered.err


def cut_newest(count: int) -> None:
    log = data_dir() / "audit.log"
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:-count]))


def test_cutting_records_written_after_the_last_run_is_caught(
    run: Run, project: Project, tmp_path: Path
) -> None:
    """The records a webhook or runbook wrote after the last run were invisible to history's anchor."""
    run("validate", "--config", project.profile)
    run("init", "--dir", tmp_path)  # an operator action after the run: audited, no history row
    run("init", "--dir", tmp_path, "--force")
    cut_newest(2)
    result = run("audit", "verify", "--json")
    body = json.loads(result.out)
    assert result.code == 2 and body["status"] == "TAMPERED"
    assert body["problem"]["first_bad_seq"] == 2 and "(seq 2..3 cut)" in body["problem"]["reason"]
    anchor = Path(body["head_anchor"])
    assert (
        anchor.is_relative_to(tmp_path / "home" / "config") and oct(anchor.stat().st_mode & 0o777) == "0o600"
    )


@pytest.mark.parametrize("history", ["deleted", "anchor rows edited"])
def test_truncation_is_caught_even_when_history_is_tampered_with_too(
    run: Run, project: Project, history: str
) -> None:
    run("validate", "--config", project.profile)
    run("validate", "--config", project.profile)
    cut_newest(1)
    db = data_dir() / "history.db"
    if history == "deleted":
        db.unlink()
    else:
        import sqlite3

        kept = json.loads((data_dir() / "audit.log").read_bytes().splitlines()[-1])
        with sqlite3.connect(db) as con:
            con.execute("UPDATE audit_anchors SET seq = ?, mac = ?", (kept["seq"], kept["mac"]))
    result = run("audit", "verify")
    assert result.code == 2 and "truncated" in result.out and "first bad seq: 2" in result.out


def test_a_cut_log_is_not_papered_over_by_the_next_run(run: Run, project: Project) -> None:
    run("validate", "--config", project.profile)
    run("validate", "--config", project.profile)
    cut_newest(1)
    before = (data_dir() / "audit.log").read_bytes()
    again = run("validate", "--config", project.profile)  # a gate not on the record does not count
    assert again.code == 3 and "records were cut" in again.err and "opsdash audit verify" in again.err
    assert (data_dir() / "audit.log").read_bytes() == before
    assert run("audit", "verify").code == 2


def test_a_repaired_torn_write_warns_until_acknowledged(run: Run, project: Project) -> None:
    run("validate", "--config", project.profile)
    with (data_dir() / "audit.log").open("ab") as handle:
        handle.write(b'{"v":2,"seq":2,"log_id"')  # a crash mid-write
    torn = run("audit", "verify")
    assert torn.code == 2 and "a write was interrupted" in torn.out
    run("validate", "--config", project.profile)  # repairs: a signed repair record, then its own
    for _ in range(2):
        warned = run("audit", "verify")
        assert warned.code == 1 and warned.out.startswith("WARN")
        assert "audit.log:3: a write was interrupted (torn line); repaired by seq 2" in warned.out
        assert "opsdash audit ack-repair" in warned.out
    acked = run("audit", "ack-repair", "--operator", "erin")
    assert acked.code == 0 and "seq 2" in acked.out
    assert run("audit", "verify").code == 0
    newest = json.loads(run("audit", "tail", "-n", "1", "--json").out)
    assert (newest["action"], newest["operator"], newest["details"]) == (
        "repair-acknowledged",
        "erin",
        {"repairs": [2]},
    )
    assert "nothing to acknowledge" in run("audit", "ack-repair").out


def test_ack_repair_refuses_a_tampered_log(run: Run, project: Project) -> None:
    run("validate", "--config", project.profile)
    cut_newest(1)
    result = run("audit", "ack-repair")
    assert result.code == 2 and "nothing acknowledged" in result.out


def test_head_exports_what_verify_anchor_accepts(run: Run, project: Project) -> None:
    assert run("audit", "head").code == 3
    run("validate", "--config", project.profile)
    head = run("audit", "head").out.strip()
    seq, mac = head.split(":")
    assert seq == "1" and len(mac) == 64
    assert json.loads(run("audit", "head", "--json").out)["mac"] == mac
    printed = run("audit", "verify", "--print-head")
    assert printed.code == 0 and f"head: {head}" in printed.out
    run("validate", "--config", project.profile)
    assert run("audit", "verify", "--anchor", head).code == 0
    log = data_dir() / "audit.log"
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:1]))
    assert run("audit", "verify", "--anchor", head).code == 2


def test_explicit_anchor_and_bad_anchor(run: Run, project: Project) -> None:
    run("validate", "--config", project.profile)
    head = json.loads(run("audit", "verify", "--json").out)["head"]
    assert run("audit", "verify", "--anchor", f"{head['seq']}:{head['mac']}").code == 0
    assert run("audit", "verify", "--anchor", f"{head['seq'] + 5}:{head['mac']}").code == 2
    bad = run("audit", "verify", "--anchor", "nonsense")
    assert bad.code == 3 and "SEQ:MAC" in bad.err


def test_tail_filters_and_empty_log(run: Run, project: Project) -> None:
    assert "no audit log yet" in run("audit", "tail").err
    project.write_env({**good_env(), "ENFORCE_HTTPS": "false"})
    run("validate", "--config", project.profile)
    text = run("audit", "tail", "--kind", "security_event").out
    assert "crit-findings" in text and "validate" not in text
    assert run("audit", "tail", "--since", "soon").code == 3


def test_audit_key_lives_outside_the_data_dir_and_is_private(
    run: Run, project: Project, tmp_path: Path
) -> None:
    run("validate", "--config", project.profile)
    key = tmp_path / "home" / "config" / "opsdash" / "audit.key"
    assert key.exists() and oct(key.stat().st_mode & 0o777) == "0o600"
    assert not list(data_dir().glob("*.key"))
    key.chmod(0o644)
    result = run("audit", "verify")
    assert result.code == 3 and "readable by others" in result.err


def test_audit_key_from_environment(run: Run, project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSDASH_AUDIT_KEY", "an-operator-supplied-audit-key-000000")
    run("validate", "--config", project.profile)
    assert run("audit", "verify").code == 0
    monkeypatch.setenv("OPSDASH_AUDIT_KEY", "a-different-key-000000000000000000000")
    assert run("audit", "verify").code == 2
    before = (data_dir() / "audit.log").read_bytes()
    refused = run("validate", "--config", project.profile)
    assert "does not verify with this audit key" in refused.err
    assert (data_dir() / "audit.log").read_bytes() == before


def test_a_lost_key_is_never_silently_replaced(
    run: Run, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("validate", "--config", project.profile)
    key = tmp_path / "home" / "config" / "opsdash" / "audit.key"
    saved = key.read_bytes()
    key.unlink()
    result = run("audit", "verify")
    assert result.code == 3 and "Traceback" not in result.err
    assert f"{key} is missing, but the audit log {data_dir() / 'audit.log'} was signed with it" in result.err
    assert "Restore the key file" in result.err
    assert "audit log not written" in run("validate", "--config", project.profile).err
    with monkeypatch.context() as other_profile:  # a profile whose data dir has no log yet
        other_profile.setenv("OPSDASH_DATA_DIR", str(tmp_path / "other-data"))
        elsewhere = run("validate", "--config", project.profile)
        assert "the log anchored in" in elsewhere.err and "was signed with it" in elsewhere.err
    assert not key.exists()
    key.write_bytes(saved)
    key.chmod(0o600)
    assert run("audit", "verify").code == 0


def test_a_key_another_first_run_made_meanwhile_is_used_not_called_lost(
    run: Run, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six first runs at once (the race `test_first_runs_at_once_share_one_new_key` met under
    load): this one saw no key, then another made it and signed its first record before this one
    checked for a signed log. The key is there: it is this run's too, not a lost one (the run's
    gate used to fail with "audit.key is missing, but the audit log ... was signed with it")."""
    from opsdash.ops import audit

    key = tmp_path / "home" / "config" / "opsdash" / "audit.key"
    original = audit._refuse_a_new_key

    def another_run_first(path: Path, data: Path) -> None:
        if not key.exists():  # the other process: makes the key and signs its first record
            with monkeypatch.context() as inner:
                inner.setattr(audit, "_refuse_a_new_key", original)
                assert run("validate", "--config", project.profile).code == 0
        original(path, data)

    monkeypatch.setattr(audit, "_refuse_a_new_key", another_run_first)
    result = run("validate", "--config", project.profile)
    assert result.code == 0, result.err
    assert "audit log not written" not in result.err
    assert run("audit", "verify").code == 0


def test_init_is_audited(run: Run, tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    run("init", "--dir", app)
    assert "config-init" in run("audit", "tail").out


def test_no_canary_in_the_audit_log(run: Run, project: Project) -> None:
    canary = "canary0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    project.write_env(
        {
            **good_env(),
            "VITE_IKHOKHA_API_SECRET": canary,
            "PAYMENT_RETURN_URL": f"https://app.betaskill.com/ok?token={canary}",
        }
    )
    run("validate", "--config", project.profile)
    blob = (data_dir() / "audit.log").read_bytes()
    assert b"secret-exposure" in blob and canary.encode() not in blob


def test_follow_prints_appended_records(project: Project) -> None:
    opsdash = str(Path(sys.executable).with_name("opsdash"))
    subprocess.run([opsdash, "validate", "--config", str(project.profile)], check=False, capture_output=True)
    follow = subprocess.Popen([opsdash, "audit", "tail", "-n", "1", "-f"], stdout=subprocess.PIPE, text=True)
    try:
        assert follow.stdout is not None
        assert "validate" in read_line(follow.stdout)
        subprocess.run(
            [opsdash, "validate", "--config", str(project.profile), "--operator", "dave"],
            check=False,
            capture_output=True,
        )
        assert "dave" in read_line(follow.stdout)
    finally:
        follow.terminate()
        follow.wait(10)


def test_an_unreadable_log_is_a_clear_error_not_a_traceback(run: Run, project: Project) -> None:
    run("validate", "--config", project.profile)
    (data_dir() / "audit.log").unlink()
    (data_dir() / "audit.log").mkdir()
    result = run("audit", "verify")
    assert result.code == 3 and "audit.log: cannot read the audit log (Is a directory)" in result.err
    assert "Traceback" not in result.err + result.out


@pytest.mark.parametrize("command", ["validate", "preflight"])
def test_a_gate_the_audit_log_cannot_record_fails(run: Run, project: Project, command: str) -> None:
    """A gate whose record cannot be written exits 3 with the reason instead of passing with a
    warning; a read-only command still answers."""
    data = data_dir()
    data.mkdir(parents=True)
    (data / "audit.log").mkdir()
    result = run(command, "--config", project.profile, "--json")
    assert result.code == 3, result
    assert "audit log could not be written" in result.err and "Traceback" not in result.err
    assert result.out == ""  # no GO for a pipeline to read: the error is all there is
    assert run("history", "list", "--config", project.profile).code == 0


def test_first_runs_at_once_share_one_new_key(project: Project) -> None:
    """On a new machine, a dashboard and a command (or two CI jobs) write their first audit record
    at the same moment: one key is made, every gate passes, and the log verifies."""
    opsdash = str(Path(sys.executable).with_name("opsdash"))
    procs = [
        subprocess.Popen(
            [opsdash, "validate", "--config", str(project.profile)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [(p.wait(120), p.stderr.read() if p.stderr else "") for p in procs]
    assert [code for code, _ in results] == [0] * 6, results
    verified = subprocess.run([opsdash, "audit", "verify"], capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_tail_fits_a_terminal_and_keeps_one_record_a_line_when_piped(run: Run, project: Project) -> None:
    import pty

    project.write_env({**good_env(), "ENFORCE_HTTPS": "false", "SECURITY_LOGGING": "false"})
    run("validate", "--config", project.profile)
    piped = run("audit", "tail").out.splitlines()
    assert max(len(line) for line in piped) > 60  # the records are longer than the terminal below
    main_fd, child_fd = pty.openpty()
    env = {**os.environ, "COLUMNS": "60", "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "opsdash", "audit", "tail"], stdout=child_fd, stderr=subprocess.PIPE, env=env
    )
    os.close(child_fd)
    out = b""
    while True:
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:  # the child's side is closed: all read
            break
        if not chunk:
            break
        out += chunk
    os.close(main_fd)
    assert done.returncode == 0, done.stderr
    lines = out.decode().replace("\r\n", "\n").splitlines()
    assert lines and max(len(line) for line in lines) <= 60
    assert len(lines) > len(piped)  # wrapped, not cut: continuation lines are indented
    assert any(line.startswith("    ") for line in lines)
    assert "".join(line.strip() for line in lines).replace(" ", "") == "".join(piped).replace(" ", "")
