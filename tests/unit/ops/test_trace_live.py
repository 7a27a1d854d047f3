"""The live-site trace on real local servers (HTTP and HTTPS): what a site serves is fetched the way
a browser gets it (gzip as served, module preloads, chunks, source maps) and scanned for the target's
secrets; an asset that cannot be fetched is an UNKNOWN finding naming it, never a silent OK; a
redirect to another origin is not followed; a previous value found by fingerprint is tried against a
provider that still accepts it, or does not."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from opsdash.core.findings import Finding, Severity
from opsdash.core.health.probes.base import ProbeContext, make_ssl_context
from opsdash.core.providers import ikhokha
from opsdash.core.validators import load_target_env
from opsdash.demo.httpserver import Request, Response
from opsdash.ops import trace_live, validation
from opsdash.ops.base import Ops
from tests.conftest import Project, Run, json_object
from tests.servers import Certs, ThreadedHttpServer

API = "/public-api/v1/api"


@dataclass
class Site:
    """A web site in a thread of its own: path → (status, body, headers); `hang` paths never answer."""

    routes: dict[str, tuple[int, bytes, dict[str, str]]] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)
    server: ThreadedHttpServer | None = None

    async def handle(self, req: Request) -> Response:
        self.requests.append(req.path)
        if req.path in self.hang:
            await asyncio.sleep(3600)
        status, body, headers = self.routes.get(req.path, (404, b"not found", {}))
        return Response(status, body, dict(headers))

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.base_url


@pytest.fixture(scope="module")
def certs() -> Certs:
    return Certs()


@pytest.fixture(params=["http", "https"])
def site(request: pytest.FixtureRequest, certs: Certs) -> Iterator[Site]:
    site = Site()
    site.server = ThreadedHttpServer(site.handle, certs.valid if request.param == "https" else None)
    yield site
    site.server.close()


@pytest.fixture(name="other")
def plain_site() -> Iterator[Site]:
    site = Site()
    site.server = ThreadedHttpServer(site.handle)
    yield site
    site.server.close()


def ops_for(project: Project, certs: Certs, tmp_path: Path) -> Ops:
    ops = Ops.open(project.profile, operator="dana")
    ca = certs.ca_file(str(tmp_path))
    env = load_target_env(ops.profile, required=False)
    ops.probes = ProbeContext(ops.profile, env, ssl_context=make_ssl_context(ca))
    return ops


def env_of(project: Project) -> dict[str, str]:
    return dict(line.split("=", 1) for line in project.env_file.read_text().splitlines() if "=" in line)


def by_subject(findings: tuple[Finding, ...] | list[Finding]) -> dict[str, Finding]:
    return {f.subject: f for f in findings}


def html(*tags: str) -> bytes:
    return (
        "<!doctype html><html><head>" + "".join(tags) + "</head><body><div id=app></div></body></html>"
    ).encode()


def js(text: str) -> tuple[int, bytes, dict[str, str]]:
    return 200, text.encode(), {"content-type": "text/javascript"}


def test_every_served_asset_is_scanned_in_the_form_it_is_served(
    project: Project, certs: Certs, site: Site, tmp_path: Path
) -> None:
    env = env_of(project)
    secret, webhook = env["IKHOKHA_API_SECRET"], env["IKHOKHA_WEBHOOK_SECRET"]
    b64 = base64.b64encode(f'{{"k":"{secret}"}}'.encode()).decode()
    half = len(webhook) // 2
    site.routes = {
        "/": (
            200,
            html(
                '<script type="module" crossorigin src="/assets/index-4f2a.js"></script>',
                '<link rel="modulepreload" crossorigin href="/assets/vendor-9c1e.js">',
                '<link rel="stylesheet" href="/assets/index-77aa.css">',
            ),
            {"content-type": "text/html"},
        ),
        # minified, the secret as a plain literal, and a lazily imported chunk
        "/assets/index-4f2a.js": js(
            f'import{{a as r}}from"./vendor-9c1e.js";const n="{secret}";'
            'const l=()=>import("./Checkout-1b2c.js");r(n,l);\n//# sourceMappingURL=index-4f2a.js.map\n'
        ),
        # the module preload, served gzip: the secret inside a base64 blob
        "/assets/vendor-9c1e.js": (
            200,
            gzip.compress(f'export function a(e,t){{return atob("{b64}")}}'.encode()),
            {"content-type": "text/javascript", "content-encoding": "gzip"},
        ),
        # the chunk: the webhook secret split by + concatenation, as minifiers leave it
        "/assets/Checkout-1b2c.js": js(f'export default{{w:"{webhook[:half]}"+"{webhook[half:]}"}};'),
        # a stylesheet whose source map comes by header
        "/assets/index-77aa.css": (
            200,
            b"#app{color:#222}",
            {"content-type": "text/css", "SourceMap": "/assets/index-77aa.css.map"},
        ),
        "/assets/index-77aa.css.map": (200, b'{"version":3,"sources":["a.css"],"mappings":""}', {}),
        # the script's source map: the source, with JSON escapes, in sourcesContent
        "/assets/index-4f2a.js.map": (
            200,
            json.dumps(
                {
                    "version": 3,
                    "sources": ["../src/config/ikhokha.ts"],
                    "sourcesContent": [f'export const SECRET = "{secret}"; // fallback\n'],
                    "mappings": "AAAA",
                }
            ).encode(),
            {"content-type": "application/json"},
        ),
    }
    ops = ops_for(project, certs, tmp_path)
    found = trace_live.trace(ops, base_url=site.url + "/")
    findings = by_subject(found.findings)
    base = site.url
    leaking = {
        f"{base}/assets/index-4f2a.js": ("IKHOKHA_API_SECRET", "raw"),
        f"{base}/assets/vendor-9c1e.js": ("IKHOKHA_API_SECRET", "base64"),
        f"{base}/assets/Checkout-1b2c.js": ("IKHOKHA_WEBHOOK_SECRET", "concat"),
        f"{base}/assets/index-4f2a.js.map": ("IKHOKHA_API_SECRET", "raw"),
    }
    for url, (variable, encoding) in leaking.items():
        f = findings[url]
        assert (f.rule, f.severity) == ("secret-served-live", Severity.CRIT), url
        assert variable in f.evidence["variables"] and encoding in f.evidence["encodings"], f.evidence
    assert findings[f"{base}/assets/vendor-9c1e.js"].evidence["served_encoding"] == "gzip"
    assert findings[f"{base}/assets/vendor-9c1e.js"].evidence["asset"] == "modulepreload"
    assert findings[f"{base}/assets/index-4f2a.js.map"].evidence["asset"] == "sourcemap"
    # clean assets were fetched and scanned, and are not findings
    kinds = {a.url: a.kind for a in found.assets}
    assert kinds[f"{base}/assets/index-77aa.css.map"] == "sourcemap"
    assert f"{base}/assets/index-77aa.css" not in findings and f"{base}/" not in findings
    assert all(a.error is None for a in found.assets), [a.summary() for a in found.assets]
    shown = json.dumps([f.to_dict() for f in found.findings]) + json.dumps(found.summary())
    assert secret not in shown and webhook not in shown and webhook[:half] not in shown


def test_assets_that_cannot_be_scanned_are_unknown_never_ok(
    project: Project, certs: Certs, site: Site, tmp_path: Path
) -> None:
    site.routes = {
        "/": (
            200,
            html(
                '<script src="/assets/slow.js"></script>',
                '<script src="/assets/big.js"></script>',
                '<script src="/assets/gone.js"></script>',
                '<script src="/assets/brotli.js"></script>',
                '<script src="/assets/fine.js"></script>',
            ),
            {},
        ),
        "/assets/big.js": js("x" * 300_000),
        "/assets/brotli.js": (200, b"\x1b\x03\x00\xf8\xa5", {"content-encoding": "br"}),
        "/assets/fine.js": js("console.log(1)"),
    }
    site.hang = {"/assets/slow.js"}
    ops = ops_for(project, certs, tmp_path)
    found = trace_live.trace(ops, base_url=site.url + "/", timeout=2.0, max_asset_bytes=100_000)
    findings = by_subject(found.findings)
    reasons = {
        "slow.js": "deadline",
        "big.js": "larger than 100,000 bytes",
        "gone.js": "HTTP 404",
        "brotli.js": "Content-Encoding 'br'",
    }
    for name, reason in reasons.items():
        f = findings[f"{site.url}/assets/{name}"]
        assert f.severity is Severity.UNKNOWN and f.rule == "secret-served-live", f
        assert reason in f.detail, f.detail
        assert f.evidence["referenced_by"] == site.url + "/"
    assert f"{site.url}/assets/fine.js" not in findings
    assert max(f.severity.rank for f in found.findings) == Severity.UNKNOWN.rank


def test_a_redirect_to_another_origin_is_not_followed(
    project: Project, certs: Certs, site: Site, other: Site, tmp_path: Path
) -> None:
    other.routes = {"/": (200, html('<script src="/x.js"></script>'), {})}
    site.routes = {"/": (302, b"", {"location": other.url + "/"})}
    found = trace_live.trace(ops_for(project, certs, tmp_path), base_url=site.url + "/")
    f = by_subject(found.findings)[site.url + "/"]
    assert f.severity is Severity.UNKNOWN and "another origin: not followed" in f.detail
    assert other.requests == []


def test_a_same_origin_redirect_is_followed_and_other_origins_are_listed_not_fetched(
    project: Project, certs: Certs, site: Site, other: Site, tmp_path: Path
) -> None:
    secret = env_of(project)["IKHOKHA_API_SECRET"]
    other.routes = {"/cdn.js": js(f'var s="{secret}"')}
    site.routes = {
        "/": (301, b"", {"location": "/app/"}),
        "/app/": (
            200,
            html(f'<script src="{other.url}/cdn.js"></script>', '<script src="a.js"></script>'),
            {},
        ),
        "/app/a.js": js(f'var s="{secret}"'),
    }
    found = trace_live.trace(ops_for(project, certs, tmp_path), base_url=site.url + "/")
    findings = by_subject(found.findings)
    assert findings[f"{site.url}/app/a.js"].severity is Severity.CRIT
    assert findings["other origins"].severity is Severity.INFO
    assert f"{other.url}/cdn.js" in findings["other origins"].detail
    assert other.requests == []
    assert [f for f in found.findings if f.severity is Severity.UNKNOWN] == []
    assert {a.redirected_from for a in found.assets} >= {site.url + "/"}
    # allowed explicitly, it is fetched and found
    allowed = trace_live.trace(
        ops_for(project, certs, tmp_path), base_url=site.url + "/", origins=[other.url]
    )
    assert by_subject(allowed.findings)[f"{other.url}/cdn.js"].severity is Severity.CRIT


class Provider:
    """An iKhokha-shaped API that accepts requests signed with any of `accepted` secrets."""

    def __init__(self, app_id: str, accepted: set[str]) -> None:
        self.app_id, self.accepted = app_id, accepted
        self.server = ThreadedHttpServer(self.handle)

    async def handle(self, req: Request) -> Response:
        signature = req.headers.get("ik-sign", "")
        ok = req.headers.get("ik-appid") == self.app_id and any(
            ikhokha.verify(s, req.path, req.body, signature) for s in self.accepted
        )
        if not ok:
            return Response.json('{"message":"Unauthorized"}', 401)
        return Response.json('{"payments":[],"count":0}')


def rotated(project: Project, tmp_path: Path, provider_url: str) -> tuple[Ops, str, str]:
    """A project whose API secret was rotated after a recorded validation run: the record keeps only
    the old value's fingerprint. Returns the ops, the old and the new value."""
    ops = Ops.open(project.profile, operator="dana")
    validation.run(ops)  # records the fingerprints of the values of the day
    env = env_of(project)
    old, new = env["IKHOKHA_API_SECRET"], secrets.token_hex(16)
    project.write_env({**env, "IKHOKHA_API_SECRET": new})
    with project.profile.open("a") as f:
        f.write(
            f'\n[[checks]]\nname = "ikhokha-api"\nkind = "provider"\nbase_url = "{provider_url}{API}"\n'
            'endpoint = "history"\ntimeout = 3\n'
        )
    return Ops.open(project.profile, operator="dana"), old, new


@pytest.mark.parametrize("revoked", [False, True], ids=["still-accepted", "revoked"])
def test_a_previous_value_served_live_is_tried_against_the_provider(
    project: Project, other: Site, tmp_path: Path, revoked: bool
) -> None:
    site = other  # plain http: the crawl's https is covered above
    app_id = env_of(project)["IKHOKHA_API_KEY"]
    provider = Provider(app_id, set())
    try:
        ops, old, new = rotated(project, tmp_path, provider.server.base_url)
        provider.accepted = {new} if revoked else {old, new}
        site.routes = {
            "/": (200, html('<script src="/assets/index-old.js"></script>'), {}),
            "/assets/index-old.js": js(f'const k="{old}";'),
        }
        found = trace_live.trace(ops, base_url=site.url + "/")
    finally:
        provider.server.close()
    findings = by_subject(found.findings)
    tried = findings["IKHOKHA_API_SECRET"]
    served = findings[f"{site.url}/assets/index-old.js"]
    assert tried.rule == "previous-secret-still-accepted"
    if revoked:
        assert (tried.severity, tried.evidence["provider"]) == (Severity.INFO, "rejected")
        assert "rejected" in tried.detail and served.severity is Severity.INFO
    else:
        assert (tried.severity, tried.evidence["provider"]) == (Severity.CRIT, "accepted")
        assert served.severity is Severity.CRIT
    assert f"{site.url}/assets/index-old.js" in tried.evidence["found_at"]
    shown = json.dumps([f.to_dict() for f in found.findings])
    assert old not in shown and new not in shown


def test_without_env_the_trace_says_it_did_not_look(
    project: Project, certs: Certs, site: Site, tmp_path: Path
) -> None:
    project.env_file.unlink()
    ops = Ops.open(project.profile, operator="dana")
    found = trace_live.trace(ops, base_url=site.url + "/")
    (f,) = found.findings
    assert f.severity is Severity.UNKNOWN and "No secret values to look for" in f.detail
    assert site.requests == []


def test_preflight_runs_the_git_scan_of_the_profiles_repository(project: Project, run: Run) -> None:
    import shutil

    from opsdash.demo.target import build_repository

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    secret = env_of(project)["IKHOKHA_API_SECRET"]
    note = build_repository(project.root / "app", secret)
    assert "trace it with" in note
    text = project.profile.read_text().replace("[env]\n", '[target.trace]\nrepo = "app"\n\n[env]\n', 1)
    project.profile.write_text(text)
    result = run("preflight", "--config", project.profile, "--no-history", "--no-live", "--json")
    assert "secret-in-git-history" not in result.out  # --no-live: neither the site nor the history
    result = run("preflight", "--config", project.profile, "--no-history", "--json")
    report = json_object(result.out)
    crit = {(f["rule"], f["subject"]) for f in report["findings"] if f["severity"] == "CRIT"}
    assert any(r == "secret-in-git-history" for r, _s in crit), report["findings"]
    assert report["gate"] == "NO-GO" and secret not in result.out + result.err


def test_a_hostile_page_is_bounded_and_said_so(
    project: Project, certs: Certs, site: Site, tmp_path: Path
) -> None:
    """Broken URLs are skipped, a page of many scripts is cut at the asset cap in one finding, and a
    credential in an asset's URL is masked where the URL is shown."""
    scripts = "".join(f'<script src="/s/{n}.js"></script>' for n in range(20))
    site.routes = {
        "/": (
            200,
            html(
                '<script src="http://[::1/x.js"></script><script src="http://h:port/x.js"></script>',
                '<script src="/k.js?api_key=c2VjcmV0LXRva2VuLXZhbHVl"></script>',
                scripts,
            ),
            {},
        )
    }
    site.routes |= {f"/s/{n}.js": js("1") for n in range(20)}
    found = trace_live.trace(ops_for(project, certs, tmp_path), base_url=site.url + "/", max_assets=10)
    over = [f for f in found.findings if f.subject.endswith(" assets")]
    assert len(over) == 1 and "more than 10 assets" in over[0].detail and over[0].severity is Severity.UNKNOWN
    shown = json.dumps([f.to_dict() for f in found.findings]) + json.dumps(found.summary())
    assert "c2VjcmV0LXRva2VuLXZhbHVl" not in shown and "/k.js?api_key=" in shown
    assert not any("[::1" in a.url for a in found.assets)


def test_a_redirect_names_its_location_masked_and_a_malformed_one_as_such(
    project: Project, certs: Certs, site: Site, tmp_path: Path
) -> None:
    """Review #32 (Low): the other origin's Location was shown (and stored) with its userinfo in
    clear; a Location that is no URL read 'redirect to , another origin'."""
    site.routes = {
        "/": (302, b"", {"location": "https://deploy:hunter2-pa55w0rd@cdn.invalid/app/"}),
        "/bad": (302, b"", {"location": "//evil.invalid:99999/x"}),
    }
    ops = ops_for(project, certs, tmp_path)
    found = trace_live.trace(ops, base_url=site.url + "/")
    f = by_subject(found.findings)[site.url + "/"]
    assert f.severity is Severity.UNKNOWN and "cdn.invalid/app/, another origin: not followed" in f.detail
    assert "hunter2-pa55w0rd" not in json.dumps([x.to_dict() for x in found.findings])
    bad = trace_live.trace(ops, base_url=site.url + "/bad")
    g = by_subject(bad.findings)[site.url + "/bad"]
    assert g.severity is Severity.UNKNOWN
    assert "redirect to '//evil.invalid:99999/x', which is no URL: not followed" in g.detail, g.detail


def test_two_previous_values_of_one_variable_keep_their_own_outcomes(project: Project, other: Site) -> None:
    """Review #32 (Low): outcomes were keyed by variable, so one previous value's 'rejected' could
    stand for another one's 'accepted'."""
    site = other
    app_id = env_of(project)["IKHOKHA_API_KEY"]
    provider = Provider(app_id, set())
    try:
        ops = Ops.open(project.profile, operator="dana")
        env = env_of(project)
        first = env["IKHOKHA_API_SECRET"]
        validation.run(ops)
        second = secrets.token_hex(16)
        project.write_env({**env, "IKHOKHA_API_SECRET": second})
        validation.run(Ops.open(project.profile, operator="dana"))
        ops, _, new = rotated(project, Path(), provider.server.base_url)
        provider.accepted = {first, new}  # the first was never revoked; the second was
        site.routes = {
            "/": (200, html('<script src="/a.js"></script>', '<script src="/b.js"></script>'), {}),
            "/a.js": js(f'const k="{first}";'),
            "/b.js": js(f'const k="{second}";'),
        }
        found = trace_live.trace(ops, base_url=site.url + "/")
    finally:
        provider.server.close()
    served = by_subject(found.findings)
    assert (served[site.url + "/a.js"].severity, served[site.url + "/a.js"].evidence["provider"]) == (
        Severity.CRIT,
        "accepted",
    )
    assert (served[site.url + "/b.js"].severity, served[site.url + "/b.js"].evidence["provider"]) == (
        Severity.INFO,
        "rejected",
    )
    tried = sorted(
        f.evidence["provider"] for f in found.findings if f.rule == "previous-secret-still-accepted"
    )
    assert tried == ["accepted", "rejected"]


def test_secrets_too_short_to_trace_are_not_searched_raw_on_the_live_site(
    project: Project, other: Site
) -> None:
    """Review #32 (Low): with every secret shorter than 8 characters, the live trace derived its
    own needles without the length filter and called a 5-character value served live (CRIT)."""
    short = {
        k: ("x" + str(i) + "a9Q")[:5]
        for i, k in enumerate(("IKHOKHA_API_KEY", "IKHOKHA_API_SECRET", "IKHOKHA_WEBHOOK_SECRET"))
    }
    project.write_env({**env_of(project), **short})
    other.routes = {"/": (200, html("<p>" + " ".join(short.values()) + "</p>"), {})}
    text = project.profile.read_text()
    start = text.index('base_url = "', text.index("[target]"))
    end = text.index("\n", start)
    project.profile.write_text(text[:start] + f'base_url = "{other.url}/"' + text[end:])
    ops = Ops.open(project.profile, operator="dana")
    traced = trace_live.run(ops, record=False, live=True, use_git=False)
    served = [
        f for f in traced.report.findings if f.rule == "secret-served-live" and f.severity is Severity.CRIT
    ]
    assert served == []
    notes = [f for f in traced.report.findings if f.title == "Secret not traced"]
    assert len(notes) == 3 and all(f.severity is Severity.UNKNOWN for f in notes)
