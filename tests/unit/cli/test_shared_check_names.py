"""Two targets, one record, one check name: two profiles (two config files, targets Alpha and Beta)
record into one data directory (SQLite) or one database (PostgreSQL), each with a check called
"api", each watched by its own `opsdash serve`. Each target's incident is its own: one going down
pages for that target alone and its recovery resolves that one alone, while the other, healthy, is
neither resolved nor held back by it; both down are two incidents and two notices."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsdash.demo.httpserver import Request, Response
from tests.conftest import Project
from tests.pg import pg_server, pg_url  # noqa: F401 - fixtures
from tests.servers import ThreadedHttpServer
from tests.unit.cli.test_team import WAIT, Serve, Team, team  # noqa: F401 - fixture
from tests.waits import wait_until

TARGETS = ("Alpha", "Beta")


class Stage:
    """Each target's /<target>/api (200 until it is put down), and a webhook alert receiver that
    keeps every notice (its target, key and status)."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.polls = dict.fromkeys(TARGETS, 0)
        self.notices: list[tuple[str, str, str]] = []
        self.server = ThreadedHttpServer(self.handle)

    async def handle(self, request: Request) -> Response:
        if request.method == "POST" and request.path == "/hook":
            body = json.loads(request.body)
            self.notices.append((body["target"], body["key"], body["status"]))
            return Response(200)
        target = request.path.split("/")[1]
        if target in self.polls:
            self.polls[target] += 1
        return Response.json('{"status":"UP"}', 503 if target in self.down else 200)

    def api(self) -> list[tuple[str, str]]:
        """The notices about the "api" checks, as (target, status), in the order they came."""
        return [(target, status) for target, key, status in self.notices if key == "api"]

    def polled(self, target: str, more: int) -> Any:
        goal = self.polls[target] + more
        return lambda: self.polls[target] >= goal


@pytest.fixture
def stage() -> Iterator[Stage]:
    s = Stage()
    yield s
    s.server.close()


def profiles(project: Project, stage: Stage) -> dict[str, Path]:
    base = project.profile.read_text()
    assert 'name = "BetaSkill"' in base
    out = {}
    for target in TARGETS:
        path = project.root / f"{target.lower()}.toml"
        path.write_text(
            base.replace('name = "BetaSkill"', f'name = "{target}"', 1)
            + f"""
[[checks]]
name = "api"
kind = "http"
url = "{stage.server.base_url}/{target}/api"
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
        out[target] = path
    return out


def test_two_targets_with_a_check_of_the_same_name_each_have_their_own_incident(
    team: Team,  # noqa: F811 - the fixture
    project: Project,
    stage: Stage,
) -> None:
    paths = profiles(project, stage)
    # Alpha's serve on one host, Beta's on the other: one data directory, or one database
    replicas = {"Alpha": Serve(team.a, paths["Alpha"]), "Beta": Serve(team.b, paths["Beta"])}
    try:
        for target in TARGETS:
            wait_until(stage.polled(target, 2), f"{target}'s serve polls its api", WAIT)
        stage.down.add("Alpha")
        wait_until(lambda: stage.api(), "the pager hears of Alpha's incident", WAIT)
        # Beta's serve goes on seeing its own api healthy: that resolves nothing of Alpha's
        wait_until(stage.polled("Beta", 4), "Beta's serve polls its healthy api", WAIT)
        wait_until(stage.polled("Alpha", 2), "Alpha's serve polls its failing api", WAIT)
        assert stage.api() == [("Alpha", "firing")]
        stage.down.add("Beta")  # Alpha's open incident must not hold Beta's back
        wait_until(lambda: len(stage.api()) >= 2, "the pager hears of Beta's incident", WAIT)
        wait_until(stage.polled("Beta", 3), "Beta's serve polls on", WAIT)
        assert stage.api() == [("Alpha", "firing"), ("Beta", "firing")]  # two incidents, two notices
        stage.down.discard("Alpha")
        wait_until(lambda: ("Alpha", "resolved") in stage.api(), "the pager hears Alpha recovered", WAIT)
        wait_until(stage.polled("Beta", 3), "Beta's serve polls its failing api", WAIT)
        assert ("Beta", "resolved") not in stage.api()  # Alpha's recovery ends Alpha's alone
        stage.down.discard("Beta")
        wait_until(lambda: ("Beta", "resolved") in stage.api(), "the pager hears Beta recovered", WAIT)
        codes = [replica.stop() for replica in replicas.values()]
    finally:
        for replica in replicas.values():
            replica.kill()
    assert codes == [0, 0]
    assert stage.api() == [
        ("Alpha", "firing"),
        ("Beta", "firing"),
        ("Alpha", "resolved"),
        ("Beta", "resolved"),
    ]
    with team.record() as history:
        alerts = [(a.key, a.status, a.title) for a in history.alerts.all()]
        targets = [str(r[0]) for r in history.conn.execute("SELECT target FROM alerts ORDER BY id")]
    assert alerts == [("api", "resolved", "api is failing")] * 2  # one incident per target
    assert targets == ["Alpha", "Beta"]
    team.assert_no_database_errors()
