"""A team, not a laptop: two "hosts" on one record, as real processes.

Each host has its own data and config directories and its own processes (`opsdash serve`, `check`,
`runbook run`, `webhook verify`); on PostgreSQL they share one database (the server started by the
tests from the PostgreSQL binaries), on SQLite the two share one data directory (two processes on
one file: the variant that exists without a server). Against a target and an alert receiver the
tests start on 127.0.0.1 (tests/servers.py), they prove what a team relies on:

- two `serve` replicas watching one target open one incident and send one notice per event
  (firing, resolved), one of them killed with SIGKILL mid-incident and restarted, while `check`
  runs on both hosts lose no row;
- one runbook session of an exclusive group at a time across hosts, a holder killed with SIGKILL
  releasing the group, and a paused one keeping it;
- a webhook delivery accepted by one host is refused as a replay by the other, also when both
  verify it at the same moment;
- (PostgreSQL) `audit verify --all-hosts` verifies both hosts' chains and names the first bad
  record of the one a database administrator edited.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from opsdash.demo.httpserver import Request, Response
from opsdash.storage.history import History
from tests.conftest import Project
from tests.pg import pg_server, pg_url  # noqa: F401 - fixtures
from tests.servers import ThreadedHttpServer
from tests.waits import read_line, wait_until

OPSDASH = str(Path(sys.executable).with_name("opsdash"))
WAIT = 90  # seconds any one condition may take on a loaded machine before the test gives up
AUDIT_KEY = "team-audit-key-" + "0" * 49  # the key every host of the team signs with (fake, for tests)
HOOK_SECRET = "whsec_" + "dGVhbS13ZWJob29rLXNlY3JldC0wMDAwMDAwMDAwMDA="
# What a process must never say: the record failed under it (scripts/torture.py's list)
DB_ERRORS = re.compile(
    r"disk I/O error|malformed|not a database|database is locked|history database is (busy|corrupt)"
    r"|results not recorded|alerts not processed|cannot open history database|readonly database"
    r"|deadlock|could not serialize|Traceback",
    re.IGNORECASE,
)
BOOK = """+++
id = "team-rollback"
title = "Team rollback drill"
exclusive = "production-change"
+++

## Announce {#announce}
Tell the channel a rollback starts.

## Roll back {#roll}
Roll back.
"""


class Stage:
    """The target (/healthy always 200; /flaky 503 until `fixed`) and a webhook alert receiver
    that keeps every notice it is posted."""

    def __init__(self) -> None:
        self.fixed = False
        self.flaky_polls = 0
        self.notices: list[dict[str, Any]] = []
        self.server = ThreadedHttpServer(self.handle)

    async def handle(self, request: Request) -> Response:
        if request.method == "POST" and request.path == "/hook":
            self.notices.append(json.loads(request.body))
            return Response(200)
        failing = request.path == "/flaky" and not self.fixed
        if request.path == "/flaky":
            self.flaky_polls += 1
        return Response.json('{"status":"UP"}', 503 if failing else 200)

    def events(self, key: str) -> list[str]:
        return [n["status"] for n in self.notices if n["key"] == key]

    def polls(self, more: int) -> Any:
        goal = self.flaky_polls + more
        return lambda: self.flaky_polls >= goal


@dataclass
class Host:
    name: str
    env: dict[str, str]
    said: list[str] = field(default_factory=list)  # every output of its processes, checked at the end

    def run(self, *args: str | Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [OPSDASH, *map(str, args)],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=WAIT,
        )
        self.said.append(done.stdout + done.stderr)
        return done

    def start(self, *args: str | Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [OPSDASH, *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )

    def finish(self, proc: subprocess.Popen[str], stdin: str = "") -> tuple[int, str, str]:
        out, err = proc.communicate(stdin, timeout=WAIT)
        self.said.append(out + err)
        return proc.returncode, out, err


@dataclass
class Team:
    backend: str
    a: Host
    b: Host
    database: str  # the data directory (SQLite) or the URL (PostgreSQL) both hosts record in

    def record(self) -> History:
        """The record both hosts write, opened here to read it."""
        if self.backend == "postgresql":
            return History.open(Path(self.a.env["OPSDASH_DATA_DIR"]), write=False, database=self.database)
        return History.open(Path(self.database), write=False)

    def assert_no_database_errors(self) -> None:
        for host in (self.a, self.b):
            for text in host.said:
                found = DB_ERRORS.search(text)
                assert found is None, f"host {host.name}: {text[max(found.start() - 200, 0) :][:600]}"


@pytest.fixture(params=["sqlite", "postgresql"])
def team(request: pytest.FixtureRequest, tmp_path: Path) -> Team:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OPSDASH_")}
    base.update(OPSDASH_AUDIT_KEY=AUDIT_KEY, HOOK_SECRET=HOOK_SECRET)
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        hosts = [
            Host(
                name,
                {
                    **base,
                    "OPSDASH_DATA_DIR": str(tmp_path / name / "data"),
                    "XDG_CONFIG_HOME": str(tmp_path / name / "config"),
                    "OPSDASH_DATABASE_URL": url,
                },
            )
            for name in ("a", "b")
        ]
        return Team("postgresql", hosts[0], hosts[1], url)
    data = tmp_path / "data"  # without a server: two processes on one SQLite file
    hosts = [
        Host(
            name,
            {**base, "OPSDASH_DATA_DIR": str(data), "XDG_CONFIG_HOME": str(tmp_path / name / "config")},
        )
        for name in ("a", "b")
    ]
    return Team("sqlite", hosts[0], hosts[1], str(data))


@pytest.fixture
def stage() -> Iterator[Stage]:
    s = Stage()
    yield s
    s.server.close()


def write_profile(project: Project, stage: Stage) -> Path:
    project.profile.write_text(
        project.profile.read_text()
        + f"""
[[checks]]
name = "healthy"
kind = "http"
url = "{stage.server.base_url}/healthy"
interval = 1
retries = 0

[[checks]]
name = "flaky"
kind = "http"
url = "{stage.server.base_url}/flaky"
interval = 1
retries = 0
failure_threshold = 2
success_threshold = 1

[[alerts.channels]]
name = "pager"
kind = "webhook"
url = "{stage.server.base_url}/hook"
retries = 0
"""
    )
    return project.profile


def history_runs(host: Host, profile: Path, *extra: str) -> list[dict[str, Any]]:
    listed = host.run("history", "list", "--config", profile, "--json", "--limit", "10000", *extra)
    assert listed.returncode == 0, listed.stderr
    runs: list[dict[str, Any]] = json.loads(listed.stdout)
    return runs


class Serve:
    """`opsdash serve` of one host."""

    def __init__(self, host: Host, profile: Path) -> None:
        self.host = host
        self.proc = host.start("serve", "--listen", "127.0.0.1:0", "--config", profile)
        self.url = read_line(self.proc.stdout).strip()
        assert self.url.startswith("http://127.0.0.1:"), self.proc.stderr.read() if self.proc.stderr else ""

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.host.finish(self.proc)[0]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def watches_of_flaky(team: Team, checks: list[str]) -> int:
    """How many watches (serve processes) recorded results of flaky: runs other than the checks'."""
    with team.record() as history:
        marks = ", ".join("?" * len(checks))
        return int(
            history.conn.execute(
                "SELECT COUNT(DISTINCT run_id) FROM check_results WHERE check_name = 'flaky' "
                f"AND run_id NOT IN ({marks})",
                checks,
            ).fetchone()[0]
        )


def test_two_serve_replicas_one_incident_one_notice_per_event_no_lost_rows(
    team: Team, project: Project, stage: Stage
) -> None:
    profile = write_profile(project, stage)
    replicas = [Serve(team.a, profile), Serve(team.b, profile)]
    try:
        wait_until(lambda: stage.events("flaky"), "the pager hears of the incident", WAIT)
        # meanwhile every host runs one-shot checks too: each decides about the same incident
        checks = [(host, host.start("check", "--config", profile, "--json")) for host in (team.a, team.b) * 3]
        run_ids = []
        for host, proc in checks:
            code, out, err = host.finish(proc)
            assert code in (0, 1, 2), err
            run_ids.append(json.loads(out)["run_id"])
        wait_until(stage.polls(8), "both replicas poll flaky, failing", WAIT)
        assert stage.events("flaky") == ["firing"]  # one notice, though two replicas and six checks saw it
        replicas[0].kill()  # SIGKILL one replica mid-incident: the incident is in the record, not in it
        wait_until(stage.polls(3), "the other replica polls on", WAIT)
        stage.fixed = True
        wait_until(lambda: "resolved" in stage.events("flaky"), "the pager hears the end", WAIT)
        wait_until(stage.polls(4), "the replica sees flaky healthy", WAIT)
        replicas[0] = Serve(team.a, profile)  # restarted on its host: it continues, it does not re-raise
        wait_until(lambda: watches_of_flaky(team, run_ids) == 3, "the restarted replica records flaky", WAIT)
        codes = [replica.stop() for replica in replicas]
    finally:
        for replica in replicas:
            replica.kill()
    assert codes == [0, 0]
    if team.backend == "postgresql":  # the hosts share the database, not a file
        assert not any((Path(h.env["OPSDASH_DATA_DIR"]) / "history.db").exists() for h in (team.a, team.b))
    assert stage.events("flaky") == ["firing", "resolved"]  # one notice per event
    assert stage.events("healthy") == []
    # 0 lost rows: every run either host recorded is in the record, read from the other host
    listed = {r["run_id"] for r in history_runs(team.b, profile)} | {
        r["run_id"] for r in history_runs(team.a, profile)
    }
    assert set(run_ids) <= listed
    # both replicas (one of them twice) watched it, and recorded what they saw
    assert watches_of_flaky(team, run_ids) == 3
    with team.record() as history:
        firing = [(a.key, a.status) for a in history.alerts.all()]
    assert firing == [("flaky", "resolved")]  # one incident
    team.assert_no_database_errors()


def sessions(host: Host, profile: Path) -> list[dict[str, Any]]:
    """The runbook sessions of the drill, as `history list` shows them (newest first)."""
    return [r for r in history_runs(host, profile, "--kind", "runbook") if r["target"] == "team-rollback"]


def status(run: dict[str, Any]) -> str:
    summary = run["summary"]
    return str((json.loads(summary) if isinstance(summary, str) else summary)["status"])


def test_one_exclusive_session_across_hosts_and_a_killed_holder_releases_it(
    team: Team, project: Project, tmp_path: Path
) -> None:
    profile = project.profile
    book = tmp_path / "team-rollback.md"
    book.write_text(BOOK, encoding="utf-8")
    run = ("runbook", "run", book, "--config", profile)

    def active() -> list[dict[str, Any]]:
        rows = [r for r in sessions(team.b, profile) if status(r) == "active"]
        assert len(rows) <= 1, rows  # never two of the group at once, whichever host looks
        return rows

    holder = team.a.start(*run, "--operator", "alice")  # waits at its first step
    try:
        (held,) = wait_until(active, "alice's session is in the record", WAIT)
        refused = team.b.run(*run, "--operator", "bob")
        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert (
            "already running" in refused.stderr
            and held["run_id"] in refused.stderr
            and "by alice" in refused.stderr
        )
        assert active() == [held]
        holder.kill()  # SIGKILL: alice's opsdash cleans nothing up; its lock goes with it
        holder.wait(WAIT)
        taken = team.b.run(*run, "--operator", "bob", stdin="q\n")  # bob starts, then pauses
        assert taken.returncode == 3 and "paused; resume with" in taken.stdout, taken.stdout + taken.stderr
        assert "already running" not in taken.stderr
        # bob is told on screen whose session he took the group from, not only in the audit trail
        assert f"took over the exclusive group 'production-change': session {held['run_id']}" in taken.stdout
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(WAIT)
    by_id = {r["run_id"]: r for r in sessions(team.a, profile)}
    assert status(by_id[held["run_id"]]) == "aborted"  # recorded as abandoned, not left dangling
    (bobs,) = active()
    assert bobs["operator"] == "bob"
    # bob's session is paused, not dead: it keeps the group, for alice too
    again = team.a.run(*run, "--operator", "alice")
    assert again.returncode == 3 and "paused" in again.stderr and bobs["run_id"] in again.stderr
    shown = team.a.run("history", "show", held["run_id"], "--config", profile, "--json")
    assert shown.returncode == 0 and "abandoned" in shown.stdout and bobs["run_id"] in shown.stdout
    audited = team.b.run("audit", "tail", "-n", "50", "--config", profile, "--json")  # bob's host's trail
    assert "runbook-group-taken-over" in audited.stdout and held["run_id"] in audited.stdout
    team.assert_no_database_errors()


def test_a_delivery_accepted_by_one_host_is_a_replay_on_the_other(team: Team, tmp_path: Path) -> None:
    body = tmp_path / "delivery.json"
    body.write_bytes(b'{"paylinkID":"pl_123","status":"SUCCESS"}')
    common = ("--scheme", "standard", "--secret-env", "HOOK_SECRET", "--body", body)
    now = "1764150000"

    def headers(delivery: str) -> list[str]:
        signed = team.a.run("webhook", "sign", *common, "--timestamp", now, "--id", delivery)
        assert signed.returncode == 0, signed.stderr
        return [f"--header={line}" for line in signed.stdout.splitlines()]

    first = headers("msg_team_1")
    accepted = team.a.run("webhook", "verify", *common, *first, "--now", now)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    replayed = team.b.run("webhook", "verify", *common, *first, "--now", now)
    assert replayed.returncode == 2 and "[replayed]" in replayed.stdout, replayed.stdout + replayed.stderr
    # both hosts at the same moment: exactly one accepts each delivery
    for n in range(2, 6):
        signed = headers(f"msg_team_{n}")
        procs = [(h, h.start("webhook", "verify", *common, *signed, "--now", now)) for h in (team.a, team.b)]
        outcomes = sorted(h.finish(p)[0] for h, p in procs)
        assert outcomes == [0, 2], outcomes
    assert HOOK_SECRET not in "".join(team.a.said + team.b.said)
    team.assert_no_database_errors()


def test_audit_verify_all_hosts_names_the_first_bad_record_of_each(team: Team, project: Project) -> None:
    profile = project.profile
    if team.backend == "sqlite":  # one file in one data directory: there is no team copy to verify
        refused = team.a.run("audit", "verify", "--all-hosts", "--config", profile)
        assert refused.returncode == 3 and "[opsdash] database" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
        return
    for host in (team.a, team.b):  # a recorded run copies the host's chain to the database
        assert host.run("validate", "--config", profile).returncode in (0, 1, 2)
    verified = team.b.run("audit", "verify", "--all-hosts", "--config", profile, "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    hosts = {Path(h["data_dir"]).parent.name: h for h in json.loads(verified.stdout)["hosts"]}
    assert sorted(hosts) == ["a", "b"] and all(
        h["status"] == "OK" and h["records"] > 1 for h in hosts.values()
    )
    # a database administrator edits one of host a's records (they hold no audit key)
    with team.record() as history:
        (line,) = history.conn.execute(
            "SELECT line FROM audit_lines WHERE host_id = ? AND seq = 1", [hosts["a"]["host_id"]]
        ).fetchone()
        edited = bytes(line).replace(b'"outcome":"', b'"outcome":"OK (edited) ', 1)
        history.conn.execute(
            "UPDATE audit_lines SET line = ? WHERE host_id = ? AND seq = 1", [edited, hosts["a"]["host_id"]]
        )
    tampered = team.b.run("audit", "verify", "--all-hosts", "--config", profile)
    assert tampered.returncode == 2, tampered.stdout + tampered.stderr
    said = tampered.stdout
    assert f"TAMPERED  {hosts['a']['host_id']}" in said and "first bad record: seq 1: " in said
    assert "MAC mismatch" in said and f"OK  {hosts['b']['host_id']}" in said
    # host a's own chain is intact: its local log and anchors are the evidence the copy was edited
    assert team.a.run("audit", "verify", "--config", profile).returncode == 0
    # text from the database reaches the terminal inert: a DBA's escape sequence is shown, not run
    with team.record() as history:
        history.conn.execute(
            "UPDATE audit_hosts SET log_id = ? WHERE host_id = ?", ["\x1b]0;PWNED\x07", hosts["b"]["host_id"]]
        )
    shown = team.b.run("audit", "verify", "--all-hosts", "--config", profile)
    assert "PWNED" in shown.stdout and "\x1b" not in shown.stdout and "\x07" not in shown.stdout, shown.stdout
    team.assert_no_database_errors()
