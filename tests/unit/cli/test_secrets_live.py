"""`opsdash secrets trace --live` end to end, in-process: the live site serves the current secret and
the rotated-away one, the provider still accepts the old one. Every output (text, JSON, SARIF,
stderr, the history database and its WAL, the audit log) is searched for both values: only
fingerprints may appear."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsdash.core.providers import ikhokha
from opsdash.demo.httpserver import Request, Response
from tests.conftest import Project, Run, json_object
from tests.servers import ThreadedHttpServer

API = "/public-api/v1/api"


class Served:
    """The live site and the provider: two servers on 127.0.0.1."""

    def __init__(self, app_id: str) -> None:
        self.pages: dict[str, bytes] = {}
        self.app_id = app_id
        self.accepted: set[str] = set()
        self.site = ThreadedHttpServer(self.page)
        self.api = ThreadedHttpServer(self.provider)

    async def page(self, req: Request) -> Response:
        body = self.pages.get(req.path)
        return Response(200, body) if body is not None else Response(404, b"")

    async def provider(self, req: Request) -> Response:
        signature = req.headers.get("ik-sign", "")
        ok = req.headers.get("ik-appid") == self.app_id and any(
            ikhokha.verify(s, req.path, req.body, signature) for s in self.accepted
        )
        return Response.json('{"payments":[]}') if ok else Response.json('{"message":"Unauthorized"}', 401)

    def close(self) -> None:
        self.site.close()
        self.api.close()


def env_of(project: Project) -> dict[str, str]:
    return dict(line.split("=", 1) for line in project.env_file.read_text().splitlines() if "=" in line)


@pytest.fixture
def served(project: Project) -> Iterator[Served]:
    served = Served(env_of(project)["IKHOKHA_API_KEY"])
    text = re.sub(
        r'^base_url = ".*"$',
        f'base_url = "{served.site.base_url}/"',
        project.profile.read_text(),
        count=1,
        flags=re.M,
    )
    text += (
        f'\n[[checks]]\nname = "ikhokha-api"\nkind = "provider"\nbase_url = "{served.api.base_url}{API}"\n'
        'endpoint = "history"\ntimeout = 3\n'
    )
    project.profile.write_text(text)
    yield served
    served.close()


def test_live_trace_outputs_carry_fingerprints_only(run: Run, project: Project, served: Served) -> None:
    assert run("validate", "--config", project.profile).code in (0, 1)  # the record keeps today's prints
    env = env_of(project)
    old, new = env["IKHOKHA_API_SECRET"], secrets.token_hex(16)
    webhook = env["IKHOKHA_WEBHOOK_SECRET"]
    project.write_env({**env, "IKHOKHA_API_SECRET": new})  # rotated in the app ...
    served.accepted = {old, new}  # ... but never revoked at the provider
    encoded = base64.b64encode(webhook.encode()).decode()
    served.pages = {
        "/": b'<!doctype html><script type="module" src="/assets/index-9f.js"></script>',
        "/assets/index-9f.js": f'const o="{old}",w=atob("{encoded}");\n//# sourceMappingURL=index-9f.js.map\n'.encode(),
        "/assets/index-9f.js.map": json.dumps(
            {"version": 3, "sourcesContent": [f"const w = '{webhook}'"]}
        ).encode(),
    }
    config = ("--config", project.profile)
    text = run("secrets", "trace", "--live", *config, "--verbose")
    as_json = run("secrets", "trace", "--live", *config, "--json")
    sarif = run("secrets", "trace", "--live", *config, "--format", "sarif")
    assert text.code == as_json.code == sarif.code == 2, text.out + text.err
    report = json_object(as_json.out)
    found = {(f["rule"], f["subject"], f["severity"]) for f in report["findings"]}
    site = served.site.base_url
    assert ("previous-secret-still-accepted", "IKHOKHA_API_SECRET", "CRIT") in found, found
    assert ("secret-served-live", f"{site}/assets/index-9f.js", "CRIT") in found, found  # the webhook secret
    assert ("secret-served-live", f"{site}/assets/index-9f.js.map", "CRIT") in found, found
    assert "live site: 3 assets from" in text.out and f"{site}/assets/index-9f.js" in text.out
    uris = {
        loc["physicalLocation"]["artifactLocation"]["uri"]
        for r in json.loads(sarif.out)["runs"][0]["results"]
        for loc in r.get("locations", [])
    }
    assert f"{site}/assets/index-9f.js.map" in uris
    # revoked: the old value is now rejected, and that is said, at INFO
    served.accepted = {new}
    revoked = json_object(run("secrets", "trace", "--live", *config, "--json").out)
    tried = next(f for f in revoked["findings"] if f["rule"] == "previous-secret-still-accepted")
    assert (tried["severity"], tried["evidence"]["provider"]) == ("INFO", "rejected")
    outputs = [r.out + r.err for r in (text, as_json, sarif)] + [json.dumps(revoked)]
    data = Path(os.environ["OPSDASH_DATA_DIR"])
    files = [p for p in data.rglob("*") if p.is_file()]
    assert any(p.name.startswith("audit.log") for p in files) and any(p.name == "history.db" for p in files)
    for value in (old, new, webhook):
        for output in outputs:
            assert value not in output
        for path in files:
            assert value.encode() not in path.read_bytes(), path


def test_sarif_places_a_secret_in_history_at_its_path_and_commit(run: Run, project: Project) -> None:
    import shutil
    import subprocess

    from opsdash.demo.target import build_repository

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    secret = env_of(project)["IKHOKHA_API_SECRET"]
    repo = project.root / "app"
    build_repository(repo, secret)
    first = subprocess.run(
        ["git", "-C", str(repo), "rev-list", "--max-parents=0", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    result = run("secrets", "trace", "--config", project.profile, "--repo", repo, "--format", "sarif")
    assert result.code == 2, result.err
    results = json.loads(result.out)["runs"][0]["results"]
    located = [
        loc
        for r in results
        if r["ruleId"] == "secret-in-git-history"
        for loc in r["locations"]
        if loc["physicalLocation"]["artifactLocation"]["uri"] == "src/config/ikhokha.ts"
    ]
    assert located and located[0]["properties"]["commit"].startswith(first[:7]), results
    assert located[0]["physicalLocation"]["region"]["startLine"] == 3
    assert secret not in result.out + result.err
