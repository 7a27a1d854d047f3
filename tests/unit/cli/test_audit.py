"""`opsdash audit tail|verify` and the audit trail that validate, check, init and demo leave."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Project, good_env


def data_dir() -> Path:
    return Path(os.environ["OPSDASH_DATA_DIR"])


def test_validate_leaves_an_audit_trail_and_an_anchor(run, project: Project) -> None:
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


def test_verify_reports_tampering_with_exit_2(run, project: Project) -> None:
    run("validate", "--config", project.profile)
    run("validate", "--config", project.profile)
    log = data_dir() / "audit.log"
    lines = log.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"outcome":"OK"', b'"outcome":"CRIT"')
    log.write_bytes(b"".join(lines))
    result = run("audit", "verify")
    assert result.code == 2
    assert result.out.startswith("TAMPERED") and "audit.log:2 (seq 1): MAC mismatch" in result.out


def test_truncation_is_caught_with_the_history_anchor(run, project: Project) -> None:
    run("validate", "--config", project.profile)
    run("validate", "--config", project.profile)
    log = data_dir() / "audit.log"
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:2]))
    result = run("audit", "verify")
    assert result.code == 2 and "truncated" in result.out and "anchor: history run" in result.out


def test_explicit_anchor_and_bad_anchor(run, project: Project) -> None:
    run("validate", "--config", project.profile)
    head = json.loads(run("audit", "verify", "--json").out)["head"]
    assert run("audit", "verify", "--anchor", f"{head['seq']}:{head['mac']}").code == 0
    assert run("audit", "verify", "--anchor", f"{head['seq'] + 5}:{head['mac']}").code == 2
    bad = run("audit", "verify", "--anchor", "nonsense")
    assert bad.code == 3 and "SEQ:MAC" in bad.err


def test_tail_filters_and_empty_log(run, project: Project) -> None:
    assert "no audit log yet" in run("audit", "tail").err
    project.write_env({**good_env(), "ENFORCE_HTTPS": "false"})
    run("validate", "--config", project.profile)
    text = run("audit", "tail", "--kind", "security_event").out
    assert "crit-findings" in text and "validate" not in text
    assert run("audit", "tail", "--since", "soon").code == 3


def test_audit_key_lives_outside_the_data_dir_and_is_private(run, project: Project, tmp_path: Path) -> None:
    run("validate", "--config", project.profile)
    key = tmp_path / "home" / "config" / "opsdash" / "audit.key"
    assert key.exists() and oct(key.stat().st_mode & 0o777) == "0o600"
    assert not list(data_dir().glob("*.key"))
    key.chmod(0o644)
    result = run("audit", "verify")
    assert result.code == 3 and "readable by others" in result.err


def test_audit_key_from_environment(run, project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSDASH_AUDIT_KEY", "an-operator-supplied-audit-key-000000")
    run("validate", "--config", project.profile)
    assert run("audit", "verify").code == 0
    monkeypatch.setenv("OPSDASH_AUDIT_KEY", "a-different-key-000000000000000000000")
    assert run("audit", "verify").code == 2


def test_init_is_audited(run, tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    run("init", "--dir", app)
    assert "config-init" in run("audit", "tail").out


def test_no_canary_in_the_audit_log(run, project: Project) -> None:
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
        assert "validate" in follow.stdout.readline()
        subprocess.run(
            [opsdash, "validate", "--config", str(project.profile), "--operator", "dave"],
            check=False,
            capture_output=True,
        )
        appended = [follow.stdout.readline() for _ in range(1)]
        assert "dave" in appended[0]
    finally:
        follow.terminate()
        follow.wait(10)
