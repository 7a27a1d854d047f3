"""`opsdash check` against `opsdash demo --no-tui`, a real process serving real HTTPS on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsdash.demo import FAULTS
from tests.conftest import Demo, Project, Run, json_object
from tests.waits import read_line, wait_until


@pytest.fixture
def demo(demo_process: Demo, monkeypatch: pytest.MonkeyPatch, run: Run) -> Iterator[Demo]:
    monkeypatch.setenv("OPSDASH_DATA_DIR", str(demo_process.data_dir))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(demo_process.config_home))
    yield demo_process
    for fault in FAULTS:
        run("demo", "fault", fault, "off")


def check_json(run: Run, demo: Demo, *names: str) -> tuple[int, dict[str, dict[str, Any]]]:
    result = run("check", "--config", demo.profile, "--json", *names)
    report = json_object(result.out)
    return result.code, {c["name"]: c for c in report["summary"]["checks"]}


def test_healthy_demo_is_ok(run: Run, demo: Demo) -> None:
    code, checks = check_json(run, demo)
    assert code == 0
    assert set(checks) == {
        "app-health",
        "app-tls",
        "payment-return-page",
        "ikhokha-api",
        "ikhokha-tls",
        "webhook-endpoint",
        "app-port",
    }
    assert all(c["severity"] == "OK" for c in checks.values())
    assert checks["app-health"]["metrics"]["payments.success_rate"] > 0.95


FAULT_CASES = {
    "provider-down": ("ikhokha-api", "CRIT", "http-5xx"),
    "provider-slow": ("ikhokha-api", "CRIT", "read-timeout"),
    "credentials-rejected": ("ikhokha-api", "CRIT", "http-auth"),
    "cert-expiring": ("app-tls", "WARN", None),
    "cert-expired": ("app-tls", "CRIT", "tls-expired"),
    "webhook-unsigned": ("webhook-endpoint", "CRIT", "condition-failed"),
    "app-down": ("app-health", "CRIT", "http-5xx"),
    "payments-degraded": ("app-health", "CRIT", "condition-failed"),
    "env-plan-shaped": ("ikhokha-api", "UNKNOWN", "not-evaluated"),
    "app-slow": ("app-health", "OK", None),  # slower, not failing: verify-deploy's latency comparison sees it
    "secret-rotated": ("ikhokha-api", "OK", None),  # both sides rotated: verify-deploy sees the fingerprint
    "bundle-leak": ("app-health", "OK", None),  # the checks pass; the live-site trace sees it (preflight)
    "old-secret-accepted": (
        "ikhokha-api",
        "OK",
        None,
    ),  # the current secret works too; the trace tries the old
}


def test_every_fault_has_a_case() -> None:
    assert set(FAULT_CASES) == set(FAULTS)


@pytest.mark.parametrize("fault", sorted(FAULT_CASES))
def test_each_fault_turns_the_right_check(run: Run, demo: Demo, fault: str) -> None:
    name, severity, error = FAULT_CASES[fault]
    switched = run("demo", "fault", fault, "on")
    assert switched.code == 0 and fault in switched.out
    code, checks = check_json(run, demo)
    assert (checks[name]["severity"], checks[name]["error_class"]) == (severity, error)
    assert code == {"OK": 0, "WARN": 1, "CRIT": 2, "UNKNOWN": 3}[severity]
    assert run("demo", "fault", fault, "off").code == 0
    assert check_json(run, demo, name)[0] == 0


def test_human_output_has_hint_and_runbook(run: Run, demo: Demo) -> None:
    run("demo", "fault", "credentials-rejected", "on")
    result = run("check", "--config", demo.profile, "ikhokha-api")
    assert result.code == 2
    assert "Credentials rejected" in result.out and "runbook: payment-provider-outage" in result.out


def test_results_go_to_history(run: Run, demo: Demo) -> None:
    from opsdash.storage.history import History

    run("check", "--config", demo.profile, "app-port")
    with History.open(demo.data_dir) as history:
        (latest,) = history.checks.latest(["app-port"])
    assert (latest.check_name, latest.severity) == ("app-port", "OK")


def test_unknown_check_name_and_fault_are_clear_errors(run: Run, demo: Demo) -> None:
    result = run("check", "--config", demo.profile, "no-such-check")
    assert result.code == 3 and "no check named no-such-check" in result.err and "app-health" in result.err
    assert run("demo", "fault", "volcano", "on").code == 3


def test_listing_faults_shows_their_state(run: Run, demo: Demo) -> None:
    run("demo", "fault", "app-down", "on")
    listing = run("demo", "fault").out
    assert "on   app-down" in listing and "off  provider-down" in listing


def test_no_demo_running_is_a_clear_error(run: Run) -> None:
    result = run("demo", "fault", "app-down", "on")
    assert result.code == 3 and "no running demo" in result.err


def watching_app_port(demo: Demo) -> subprocess.Popen[str]:
    """`opsdash check --watch 1 --json app-port` on the demo, its JSON lines on a pipe."""
    env = {**os.environ, "OPSDASH_DATA_DIR": str(demo.data_dir)}
    opsdash = str(Path(sys.executable).with_name("opsdash"))
    return subprocess.Popen(
        [opsdash, "check", "--config", str(demo.profile), "--watch", "1", "--json", "app-port"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_watch_json_lines_show_sustained_state(demo: Demo) -> None:
    proc = watching_app_port(demo)
    assert proc.stdout is not None
    lines = [json.loads(read_line(proc.stdout)) for _ in range(2)]
    proc.send_signal(signal.SIGINT)
    proc.wait(15)
    assert [line["name"] for line in lines] == ["app-port", "app-port"]
    assert [line["sustained"] for line in lines] == ["OK", "OK"]
    assert proc.returncode == 0


def test_a_watch_purges_a_years_history_in_the_background(demo: Demo) -> None:
    """`check --watch` records for as long as it runs and runs no validation: it purges in the
    background like the dashboard and serve (one batch per command would never catch up)."""
    from datetime import UTC, datetime

    from tests.retention_data import fill_year, old_runs

    fill_year(demo.data_dir, datetime.now(UTC))
    before = old_runs(demo.data_dir, datetime.now(UTC))
    assert before > 100
    proc = watching_app_port(demo)
    assert proc.stdout is not None
    try:
        read_line(proc.stdout)
        wait_until(lambda: old_runs(demo.data_dir, datetime.now(UTC)) == 0, "the year purged")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
    assert proc.returncode == 0


def test_no_checks_in_profile(run: Run, project: Project) -> None:
    result = run("check", "--config", project.profile)
    assert result.code == 3 and "no [[checks]]" in result.err


def test_no_demo_secret_in_check_output_or_history(run: Run, demo: Demo) -> None:
    env_file = demo.profile.with_name(".env.production")
    secrets = [
        line.split("=", 1)[1]
        for line in env_file.read_text().splitlines()
        if "=" in line and ("SECRET" in line or "API_KEY" in line)
    ]
    assert len(secrets) == 3
    run("demo", "fault", "credentials-rejected", "on")
    outputs = [run("check", "--config", demo.profile, *flags) for flags in ([], ["--json"])]
    blob = "".join(r.out + r.err for r in outputs).encode()
    blob += b"".join(p.read_bytes() for p in demo.data_dir.glob("history.db*"))
    assert b"credentials rejected" in blob
    for value in secrets:
        assert value.encode() not in blob


def test_demo_checks_mirror_the_example_profile(demo_process: Demo) -> None:
    """The demo writes its own loopback copy of the example's [[checks]]: the two lists must not drift."""
    from opsdash.ops.config import load_config
    from tests.conftest import EXAMPLE_PROFILE

    example = load_config(EXAMPLE_PROFILE).profile
    demo = load_config(demo_process.profile).profile
    assert [(c.name, c.kind, c.conditions[:2]) for c in demo.checks] == [
        (c.name, c.kind, c.conditions[:2]) for c in example.checks
    ]
    assert demo.deploy.rollback_runbook == example.deploy.rollback_runbook


def test_a_hostile_health_body_is_shown_not_obeyed(run: Run, tmp_path: Path) -> None:
    """A body that would clear the screen, write the clipboard and style itself reaches the operator
    as visible text in `opsdash check`; the JSON output keeps it exact."""
    import asyncio

    from tests.servers import ThreadedRawServer

    hostile = "[link=https://e.example/]x[/link]\x1b[2J\x1b]52;c;ZQ==\x07"
    body = json.dumps({"status": hostile}).encode()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()

    server = ThreadedRawServer(answer)
    try:
        profile = tmp_path / "opsdash.toml"
        profile.write_text(
            '[target]\nname = "T"\nbase_url = "https://app.example.com"\n[[checks]]\nname = "app"\n'
            f'kind = "http"\nurl = "{server.url}health"\nconditions = ["[BODY].status == UP"]\n'
        )
        text = run("check", "--config", profile, "--no-history")
        as_json = run("check", "--config", profile, "--no-history", "--json")
    finally:
        server.close()
    assert text.code == 2
    assert "\x1b" not in text.out and "\x07" not in text.out
    assert "\\x1b[2J" in text.out and "\\x1b]52;c;" in text.out
    assert "[link=https://e.example/]x[/link]" in text.out
    (check,) = json.loads(as_json.out)["summary"]["checks"]
    assert "\\x1b[2J" in check["conditions"][0]["actual"]  # a shown value is escaped there too
