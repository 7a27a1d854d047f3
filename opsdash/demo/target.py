"""The simulated BetaSkill deployment: app and iKhokha API servers on 127.0.0.1, with faults.

Both servers speak HTTPS with certificates from a CA generated at start-up (trustme). The app serves
a health endpoint with payment metrics, return/cancel pages, a version endpoint and a webhook
endpoint that verifies iKhokha signatures; the API checks IK-APPID/IK-SIGN on its read-only
endpoints. Faults switch behaviour while it runs, through a token-protected control endpoint.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import secrets
import shutil
import ssl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme

from opsdash.core.errors import ConfigError
from opsdash.core.files import write_file
from opsdash.core.providers import ikhokha
from opsdash.demo import FAULTS, betaskill_env, env_text, example_profile_text
from opsdash.demo.httpserver import HttpServer, Request, Response

APP_VERSION = "2026.11.3"
PREVIOUS_VERSION = "2026.11.2"
WEBHOOK_PATH = "/api/payments/ikhokha/webhook"
CHECKS_MARKER = "# ---- health checks"
API_BASE_PATH = "/public-api/v1/api"
# The front end as Vite builds it: an entry script, a module preload, a stylesheet, source maps.
ENTRY = "/assets/index-Bq7xT2mK.js"
VENDOR = "/assets/vendor-C9sLw3Pd.js"
STYLES = "/assets/index-Dk2mQ8vR.css"
APP_REPO = "app"  # the demo's git repository: a secret committed, then deleted


class UnknownFault(KeyError):
    pass


def _context(cert: trustme.LeafCert) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    return ctx


DEMO_FILES = frozenset({"opsdash.toml", ".env.production", "demo-ca.pem", APP_REPO})


def claim_workdir(path: Path) -> None:
    """The demo writes a profile, an env file and a CA into `path`: a new private directory, or an
    existing one that is a real directory of this user's, empty or holding a previous demo. Another
    local user's link or directory (`--dir /tmp/opsdash-demo` made by someone else) is refused."""
    if path.is_symlink():
        raise ConfigError(f"{path} is a symbolic link; give the demo a directory of your own")
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
        return
    if not path.is_dir():
        raise ConfigError(f"{path} is not a directory")
    if path.stat().st_uid != os.getuid():
        raise ConfigError(f"{path} belongs to another user; give the demo a directory of your own")
    others = sorted(p.name for p in path.iterdir() if p.name not in DEMO_FILES)
    if others:
        raise ConfigError(
            f"{path} is not empty ({', '.join(others[:3])}{' …' if len(others) > 3 else ''}); "
            "give the demo a new or empty directory"
        )


@dataclass
class DemoTarget:
    workdir: Path
    faults: set[str] = field(default_factory=set)
    data_dir: Path | None = None  # written into the profile: every command given it finds this demo
    token: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    def __post_init__(self) -> None:
        unknown = self.faults - FAULTS.keys()
        if unknown:
            raise UnknownFault(", ".join(sorted(unknown)))
        self.env = betaskill_env()
        self._original_secret = self.env["IKHOKHA_API_SECRET"]
        self._rotated = secrets.token_hex(16)
        if "secret-rotated" in self.faults:
            self.env["IKHOKHA_API_SECRET"] = self._rotated
        self.ca = trustme.CA(organization_name="opsdash demo CA")
        now = dt.datetime.now(dt.UTC)
        ids = ("127.0.0.1", "localhost")
        self._contexts = {
            "valid": _context(self.ca.issue_cert(*ids, not_after=now + dt.timedelta(days=365))),
            "cert-expiring": _context(self.ca.issue_cert(*ids, not_after=now + dt.timedelta(days=20))),
            "cert-expired": _context(
                self.ca.issue_cert(
                    *ids, not_before=now - dt.timedelta(days=90), not_after=now - dt.timedelta(days=2)
                )
            ),
        }
        app_ctx = _context(self.ca.issue_cert(*ids))
        app_ctx.sni_callback = self._pick_certificate
        self.app = HttpServer(self._app, app_ctx)
        self.api = HttpServer(self._api, self._contexts["valid"])
        self.control = HttpServer(self._control)
        self.seen_paylinks: set[str] = set()
        self.repo_note = ""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> Path:
        await self.app.start()
        await self.api.start()
        await self.control.start()
        claim_workdir(self.workdir)
        write_file(self.workdir / "demo-ca.pem", self.ca.cert_pem.bytes(), 0o644)
        self.repo_note = build_repository(self.workdir / APP_REPO, self._original_secret)
        write_file(self.workdir / "opsdash.toml", self.profile_text(), 0o644)
        self._write_env()
        return self.workdir / "opsdash.toml"

    async def close(self) -> None:
        for server in (self.app, self.api, self.control):
            await server.close()

    @property
    def control_url(self) -> str:
        return self.control.base_url

    def state(self) -> dict[str, Any]:
        return {
            "control_url": self.control_url,
            "token": self.token,
            "profile": str(self.workdir / "opsdash.toml"),
            "faults": sorted(self.faults),
        }

    def set_fault(self, name: str, on: bool) -> None:
        if name not in FAULTS:
            raise UnknownFault(name)
        (self.faults.add if on else self.faults.discard)(name)
        if name == "secret-rotated":
            self.env["IKHOKHA_API_SECRET"] = self._rotated if on else self._original_secret
        if name in ("env-plan-shaped", "secret-rotated"):
            self._write_env()

    def _write_env(self) -> None:
        values = betaskill_env(plan_shaped=True) if "env-plan-shaped" in self.faults else self.env
        write_file(
            self.workdir / ".env.production",
            "# Generated by 'opsdash demo': fake values for a simulated BetaSkill.\n" + env_text(values),
        )

    def _pick_certificate(self, sock: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        for fault in ("cert-expired", "cert-expiring"):
            if fault in self.faults:
                sock.context = self._contexts[fault]
                return
        sock.context = self._contexts["valid"]

    # ------------------------------------------------------------------ the profile

    def profile_text(self) -> str:
        text = example_profile_text().replace('example = ".env.production.example"', "# (no example file)")
        text = text[: text.index(CHECKS_MARKER)]
        if self.data_dir is not None:
            text = text.replace("[opsdash]\n", f"[opsdash]\ndata_dir = {json.dumps(str(self.data_dir))}\n", 1)
        app, api = self.app.base_url, self.api.base_url
        text = text.replace('base_url = "https://app.betaskill.com"', f'base_url = "{app}/"', 1)
        checks = f'''{CHECKS_MARKER}
# ---- written by 'opsdash demo': the same checks, against the simulated servers on 127.0.0.1 ----
[deploy]
version_url = "{app}/version"
rollback_runbook = "rollback"

[health]
concurrency = 20
ca_file = "demo-ca.pem"

[[checks]]
name = "app-health"
kind = "http"
url = "{app}/health"
interval = 5
timeout = 3
conditions = [
    "[STATUS] == 200",
    "[BODY].status == UP",
    "[BODY].payments.success_rate >= 0.95",
    "[RESPONSE_TIME] < 3000",  # generous: the demo shares its machine with whatever runs beside it
]
metrics = ["payments.pending", "database.latency_ms"]

[[checks]]
name = "app-tls"
kind = "tls"
host = "127.0.0.1"
port = {self.app.port}
interval = 30

[[checks]]
name = "payment-return-page"
kind = "http"
url = "{app}/payments/success"
interval = 15

[[checks]]
name = "ikhokha-api"
kind = "provider"
base_url = "{api}{API_BASE_PATH}"
interval = 10
timeout = 2
retries = 0

[[checks]]
name = "ikhokha-tls"
kind = "tls"
host = "127.0.0.1"
port = {self.api.port}
interval = 30

[[checks]]
name = "webhook-endpoint"
kind = "webhook"
url = "{app}{WEBHOOK_PATH}"
signed_delivery = true
interval = 15

[[checks]]
name = "app-port"
kind = "tcp"
host = "127.0.0.1"
port = {self.app.port}
interval = 10
'''
        if (self.workdir / APP_REPO / ".git").is_dir():
            # Not traced by default: the healthy demo is GO, and the secret of the day is committed
            # there (the plan's leak), so preflight would be NO-GO from the start. Traced, the
            # rotation runbook's trace gate finds the old secret there and tries it at the provider.
            checks += (
                "\n# The app's repository (a secret committed, then deleted). Uncomment to trace it in\n"
                "# preflight and the rotation runbook: until the secret is rotated, it is CRIT.\n"
                f'# [target.trace]\n# repo = "{APP_REPO}"\n'
            )
        return text + checks

    # ------------------------------------------------------------------ the app

    async def _app(self, req: Request) -> Response:
        if req.path == "/health":
            if "app-slow" in self.faults:
                await asyncio.sleep(0.6)
            if "app-down" in self.faults:
                return Response.json('{"status":"DOWN","reason":"database unreachable"}', 503)
            rate = 0.72 if "payments-degraded" in self.faults else 0.987
            return Response.json(
                json.dumps(
                    {
                        "status": "UP",
                        "version": APP_VERSION,
                        "payments": {
                            "success_rate": rate,
                            "pending": 3,
                            "failed_last_hour": 1 if rate > 0.9 else 41,
                        },
                        "database": {"status": "UP", "latency_ms": 4.2},
                    }
                )
            )
        if req.path == "/version":
            return Response.json(json.dumps({"current": APP_VERSION, "previous": PREVIOUS_VERSION}))
        if req.path in ("/payments/success", "/payments/cancelled"):
            word = "Thank you" if req.path.endswith("success") else "Payment cancelled"
            return Response(
                200,
                f"<!doctype html><title>BetaSkill</title><h1>{word}</h1>".encode(),
                {"content-type": "text/html"},
            )
        if req.path == WEBHOOK_PATH and req.method == "POST":
            return self._webhook(req)
        if req.method == "GET":
            asset = self._site().get(req.path)
            if asset is not None:
                return Response(200, asset[1], {"content-type": asset[0]})
        return Response(404, b"not found")

    def _site(self) -> dict[str, tuple[str, bytes]]:
        """The front end the app serves: clean, or (bundle-leak) built with the API secret in it, as
        a VITE_ variable bundles it; the build predates any rotation, so it holds the first value."""
        leak = "bundle-leak" in self.faults
        config = '{apiBase:"/api/payments",testMode:!1' + (
            f',appSecret:"{self._original_secret}"}}' if leak else "}"
        )
        entry = (
            f'import{{c as t,r as e}}from"./{VENDOR.rsplit("/", 1)[1]}";const o={config};'
            f'e(t(o),document.getElementById("app"));\n//# sourceMappingURL={ENTRY.rsplit("/", 1)[1]}.map\n'
        )
        source = (
            "export const config = {\n  apiBase: '/api/payments',\n  testMode: false,\n"
            + (
                f"  appSecret: import.meta.env.VITE_IKHOKHA_API_SECRET || '{self._original_secret}',\n"
                if leak
                else ""
            )
            + "};\n"
        )
        sourcemap = json.dumps(
            {
                "version": 3,
                "sources": ["../../src/config/ikhokha.ts"],
                "sourcesContent": [source],
                "mappings": "AAAA",
            }
        )
        page = (
            '<!doctype html><html lang="en"><head><meta charset="UTF-8"><title>BetaSkill</title>'
            f'<script type="module" crossorigin src="{ENTRY}"></script>'
            f'<link rel="modulepreload" crossorigin href="{VENDOR}">'
            f'<link rel="stylesheet" crossorigin href="{STYLES}">'
            '</head><body><div id="app"></div></body></html>'
        )
        return {
            "/": ("text/html", page.encode()),
            ENTRY: ("text/javascript", entry.encode()),
            ENTRY + ".map": ("application/json", sourcemap.encode()),
            VENDOR: (
                "text/javascript",
                b"export function c(n){return n}export function r(n,t){t.textContent=n.apiBase}",
            ),
            STYLES: ("text/css", b"#app{font-family:system-ui}"),
        }

    def _webhook(self, req: Request) -> Response:
        if "webhook-unsigned" in self.faults:
            return Response.json('{"received":true}')
        app_id = req.headers.get(ikhokha.APP_ID_HEADER.lower(), "")
        signature = req.headers.get(ikhokha.SIGN_HEADER.lower(), "")
        if app_id != self.env["IKHOKHA_API_KEY"] or not signature:
            return Response.json('{"error":"missing or unknown IK-APPID/IK-SIGN"}', 401)
        if not ikhokha.verify(self.env["IKHOKHA_WEBHOOK_SECRET"], req.path, req.body, signature):
            return Response.json('{"error":"bad signature"}', 401)
        try:
            paylink = str(json.loads(req.body).get("paylinkID", ""))
        except (ValueError, AttributeError):
            return Response.json('{"error":"body is not JSON"}', 400)
        if paylink in self.seen_paylinks:
            return Response.json('{"error":"duplicate delivery"}', 409)
        self.seen_paylinks.add(paylink)
        return Response.json('{"received":true}')

    # ------------------------------------------------------------------ the iKhokha API

    async def _api(self, req: Request) -> Response:
        if "provider-slow" in self.faults:
            await asyncio.sleep(4)
        if "provider-down" in self.faults:
            return Response.json('{"message":"Service Unavailable"}', 503)
        if not req.path.startswith(API_BASE_PATH + "/"):
            return Response.json('{"message":"Not Found"}', 404)
        if req.method == "POST" and req.path == API_BASE_PATH + "/payment":
            return Response.json('{"message":"the demo never creates payments"}', 405)
        app_id = req.headers.get(ikhokha.APP_ID_HEADER.lower(), "")
        signature = req.headers.get(ikhokha.SIGN_HEADER.lower(), "")
        accepted = [self.env["IKHOKHA_API_SECRET"]]
        if "old-secret-accepted" in self.faults:  # the rotation was never completed at the provider
            accepted.append(self._original_secret)
        valid = app_id == self.env["IKHOKHA_API_KEY"] and any(
            ikhokha.verify(secret, req.path, req.body, signature) for secret in accepted
        )
        if "credentials-rejected" in self.faults or not valid:
            return Response.json('{"message":"Unauthorized"}', 401)
        if req.path == API_BASE_PATH + "/payments/history":
            return Response.json(json.dumps({"payments": [], "count": 0}))
        if req.path.startswith(API_BASE_PATH + "/getStatus/"):
            return Response.json('{"message":"paylink not found"}', 404)
        return Response.json('{"message":"Not Found"}', 404)

    # ------------------------------------------------------------------ control

    async def _control(self, req: Request) -> Response:
        if req.headers.get("authorization") != f"Bearer {self.token}":
            return Response.json('{"error":"bad token"}', 403)
        if req.path == "/faults" and req.method == "GET":
            return Response.json(json.dumps({"faults": sorted(self.faults), "known": FAULTS}))
        parts = req.path.strip("/").split("/")
        if len(parts) == 2 and parts[0] == "faults" and req.method == "POST":
            state = (req.query.get("state") or ["on"])[0]
            try:
                self.set_fault(parts[1], state == "on")
            except UnknownFault:
                return Response.json(json.dumps({"error": f"unknown fault {parts[1]}"}), 404)
            return Response.json(json.dumps({"faults": sorted(self.faults)}))
        return Response.json('{"error":"not found"}', 404)


def build_repository(path: Path, secret: str) -> str:
    """The app's repository as the plan leaves it: a commit that hard-codes the API secret as a
    fallback in src/config/ikhokha.ts, and a later one that deletes it (the value stays in history).
    Made with the git CLI; without git the demo runs without it and says so."""
    git = shutil.which("git")
    if git is None:
        return "git is not installed: the demo has no app repository to trace (install git for it)"
    if path.is_dir() and not path.is_symlink():  # a previous demo's, with its own (older) values
        shutil.rmtree(path)
    (path / "src" / "config").mkdir(parents=True, exist_ok=True)
    env = {
        "GIT_AUTHOR_NAME": "BetaSkill dev",
        "GIT_AUTHOR_EMAIL": "dev@betaskill.invalid",
        "GIT_COMMITTER_NAME": "BetaSkill dev",
        "GIT_COMMITTER_EMAIL": "dev@betaskill.invalid",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(path),
        "PATH": os.environ.get("PATH", ""),
    }
    config = path / "src" / "config" / "ikhokha.ts"

    def run(*args: str, date: str = "2026-11-02T09:00:00Z") -> None:
        dated = {**env, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
        subprocess.run(  # noqa: S603 - git from PATH, fixed arguments, in a directory the demo made
            [git, *args], cwd=path, env=dated, check=True, capture_output=True, timeout=30
        )

    def commit(message: str, date: str) -> None:
        run("add", "-A", date=date)
        run("commit", "-q", "-m", message, date=date)

    try:
        run("init", "-q", "-b", "main")
        (path / "README.md").write_text("# BetaSkill (opsdash demo repository: fake values only)\n")
        config.write_text(
            "export const ikhokha = {\n  appId: import.meta.env.VITE_IKHOKHA_API_KEY,\n"
            f"  secret: import.meta.env.VITE_IKHOKHA_API_SECRET || '{secret}',\n}};\n"
        )
        commit("Add iKhokha config with a fallback", "2026-11-02T09:14:00Z")
        config.write_text("export const ikhokha = {\n  appId: import.meta.env.VITE_IKHOKHA_API_KEY,\n};\n")
        commit("Remove the hard-coded fallback secret", "2026-11-03T16:40:00Z")
    except (OSError, subprocess.SubprocessError) as exc:
        return f"could not build the demo's app repository with git: {exc}"
    return (
        f"app repository (a secret committed, then deleted): {path}; "
        f"trace it with: opsdash secrets trace --config {path.parent / 'opsdash.toml'} --repo {path}"
    )
