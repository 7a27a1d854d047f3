"""The live-site part of `opsdash secrets trace`: what the target's `base_url` serves to every
visitor — its HTML, and every script, stylesheet, module preload and source map that HTML (and those
scripts) reference — fetched on the probes' wire engine (one overall deadline, a body cap per asset,
the probes' error classes) and scanned with the trace's matcher for the target's secrets.

Same-origin by default: a script on another origin is listed (INFO), not fetched, and a redirect to
another origin is not followed (UNKNOWN: what that URL serves was not looked at). An asset that
cannot be fetched (timeout, too big, 404, a content encoding opsdash cannot decode) is an UNKNOWN
finding naming it, never a silent OK.

A previous (rotated-away) value the matcher finds by fingerprint is tried against the provider with
the provider probe's own signed read-only request (`try_previous`): accepted means the rotation did
not revoke it. The candidate lives in memory for that request only; findings show its fingerprint.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urldefrag, urljoin, urlsplit

from opsdash.core.envfiles import EnvSnapshot, EnvValue
from opsdash.core.findings import Finding, Severity
from opsdash.core.health.errors import ErrorClass
from opsdash.core.health.probes.base import ProbeContext, ProbeFailed
from opsdash.core.health.probes.http import exchange
from opsdash.core.health.probes.wire import REDIRECTS, Exchange, Request
from opsdash.core.rules import rule
from opsdash.core.secrets import fingerprint, mask, mask_url, redactor
from opsdash.core.text import visible
from opsdash.core.trace.match import MIN_FORM, Hit, Matcher, Needle, PreviousPrint

if TYPE_CHECKING:
    from opsdash.core.profile import Profile, ProviderCheck
    from opsdash.core.trace.git import Progress
    from opsdash.ops.base import Ops
    from opsdash.ops.trace import TraceRun
    from opsdash.storage.history import History

TIMEOUT = 30.0  # seconds for the whole crawl: every asset shares one deadline
MAX_ASSET_BYTES = 16 * 1024 * 1024  # per asset, after decoding (source maps of real apps run to MBs)
MAX_ASSETS = 300
CONCURRENCY = 6
MAX_REDIRECTS = 5
PREVIOUS_RUNS = 200  # how far back the record is read for the fingerprints of rotated-away values
# What a browser is sent; opsdash decodes gzip and deflate, so it asks for nothing else (a server
# that sends br or zstd unasked gets an UNKNOWN finding: its bytes were not scanned).
ACCEPT_ENCODING = "gzip, deflate"
_DECODED = frozenset({b"", b"identity", b"gzip", b"x-gzip", b"deflate"})

_SOURCE_MAP = re.compile(rb"[#@][ \t]*sourceMappingURL=([^\s'\"*]+)")
# a chunk a script imports: `from"./vendor-3f2a.js"`, `import("./Page-9c1.js")`, `"/assets/x.css"`
_CHUNK = re.compile(rb"""["'`]((?:\.{1,2}/|/)[A-Za-z0-9_\-./@~%]+\.(?:m?js|css))["'`]""")


@dataclass(frozen=True)
class Asset:
    """One thing the live site serves, as the crawl saw it. `body` is held only until scanned."""

    url: str
    kind: str  # page | script | stylesheet | modulepreload | sourcemap
    referrer: str | None = None
    status: int | None = None
    encoding: str = ""  # the Content-Encoding it was served with
    size: int = 0  # bytes scanned (after decoding)
    error: str | None = None  # why it was not scanned
    redirected_from: str | None = None  # the URL referenced, when a same-origin redirect led here
    body: bytes | None = field(default=None, repr=False, compare=False)

    def summary(self) -> dict[str, object]:
        return {
            "url": shown(self.url),
            "kind": self.kind,
            "referrer": shown(self.referrer) if self.referrer else None,
            "status": self.status,
            "encoding": self.encoding or "identity",
            "bytes": self.size,
            "error": self.error,
            "redirected_from": shown(self.redirected_from) if self.redirected_from else None,
        }


@dataclass(frozen=True)
class Located:
    """A hit and the asset it was found in."""

    asset: Asset
    hit: Hit


@dataclass(frozen=True)
class LiveTrace:
    base_url: str
    assets: tuple[Asset, ...]
    findings: tuple[Finding, ...]
    skipped: tuple[str, ...] = ()  # other origins, listed not fetched
    duration_ms: int = 0

    def summary(self) -> dict[str, object]:
        return {
            "base_url": shown(self.base_url),
            "assets": [a.summary() for a in self.assets],
            "skipped": [shown(u) for u in self.skipped],
            "duration_ms": self.duration_ms,
        }


# ---------------------------------------------------------------- what a page references


class _Links(HTMLParser):
    """The scripts, stylesheets and module preloads a page references, in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str]] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "").strip() for k, v in attrs}
        if tag == "base" and a.get("href") and self.base is None:
            self.base = a["href"]
        elif tag == "script" and a.get("src"):
            self.found.append((a["src"], "script"))
        elif tag == "link" and a.get("href"):
            rels = set(a.get("rel", "").lower().split())
            kind = (
                "modulepreload"
                if "modulepreload" in rels
                else "stylesheet"
                if "stylesheet" in rels or ("preload" in rels and a.get("as") == "style")
                else "script"
                if "preload" in rels and a.get("as") == "script"
                else None
            )
            if kind:
                self.found.append((a["href"], kind))


def page_links(url: str, html: bytes) -> list[tuple[str, str]]:
    """(absolute URL, kind) of each script, stylesheet and module preload of the page at `url`."""
    parser = _Links()
    # html.parser is lenient; what it still throws on a broken page must not end the trace
    with contextlib.suppress(ValueError, AssertionError):
        parser.feed(html.decode("utf-8", "replace"))
        parser.close()
    base = urljoin(url, parser.base) if parser.base else url
    found = [(_absolute(base, ref), kind) for ref, kind in parser.found if _fetchable(ref)]
    return [(url, kind) for url, kind in found if url]


def asset_links(asset: Asset, body: bytes, headers: Mapping[bytes, bytes]) -> list[tuple[str, str]]:
    """What a script or stylesheet references: its source map (comment or SourceMap header) and the
    chunks a script imports."""
    found: list[tuple[str, str]] = []
    header = (headers.get(b"sourcemap") or headers.get(b"x-sourcemap") or b"").decode("latin-1").strip()
    refs = [header] if header else []
    tail = _SOURCE_MAP.findall(body[-4096:]) or _SOURCE_MAP.findall(body)
    refs += [m.decode("latin-1") for m in tail[-1:]]
    for ref in dict.fromkeys(refs):
        if _fetchable(ref):  # an inline data: map is in the body itself, scanned with it
            found.append((_absolute(asset.url, ref), "sourcemap"))
    if asset.kind in ("script", "modulepreload"):
        for chunk in dict.fromkeys(_CHUNK.findall(body)):
            ref = chunk.decode("latin-1")
            found.append((_absolute(asset.url, ref), "stylesheet" if ref.endswith(".css") else "script"))
    return [(url, kind) for url, kind in found if url]


def _fetchable(ref: str) -> bool:
    return bool(ref) and not ref.lower().startswith(("data:", "javascript:", "blob:", "about:"))


def _absolute(base: str, ref: str) -> str:
    """`ref` resolved against `base`, without its fragment; "" when it is no URL at all (a server's
    HTML may hold anything: `http://[::1`, a port that is no number)."""
    try:
        url = urldefrag(urljoin(base, ref))[0]
        origin(url)
    except ValueError:
        return ""
    return url


def origin(url: str) -> str:
    """scheme://host:port of `url` (ValueError for a malformed one)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def shown(url: str) -> str:
    """A URL as findings and summaries show it: credentials in it (userinfo, `?token=`) masked."""
    return mask_url(url)


def _said(location: str) -> str:
    """A Location header that is no URL, as a finding quotes it: credentials masked where they can
    be told, control characters escaped, at most 200 characters."""
    try:
        masked = shown(location)
    except ValueError:
        masked = location
    text = visible(redactor.redact(masked))
    return repr(text if len(text) <= 200 else text[:200] + "…")


# ---------------------------------------------------------------- the crawl


@dataclass
class _Crawl:
    ctx: ProbeContext
    allowed: frozenset[str]
    deadline: float  # on the loop's clock
    timeout: float
    max_bytes: int
    max_assets: int
    scan: Callable[[Asset], None]
    assets: list[Asset] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    async def run(self, base_url: str) -> None:
        limit = asyncio.Semaphore(CONCURRENCY)
        pending: set[asyncio.Task[None]] = set()

        def enqueue(url: str, kind: str, referrer: str | None) -> None:
            if url in self.seen or urlsplit(url).scheme not in ("http", "https"):
                return
            self.seen.add(url)
            if origin(url) not in self.allowed:
                self.skipped.append(url)
                return
            if len(self.seen) > self.max_assets:
                self.assets.append(
                    Asset(url, kind, referrer, error=f"not fetched: more than {self.max_assets} assets")
                )
                return
            pending.add(asyncio.ensure_future(one(url, kind, referrer)))

        async def one(url: str, kind: str, referrer: str | None) -> None:
            async with limit:
                asset, headers = await self.fetch(url, kind, referrer)
            body = asset.body
            self.seen.add(asset.url)
            self.assets.append(replace(asset, body=None))
            if body is None:
                return
            await asyncio.get_running_loop().run_in_executor(None, self.scan, asset)
            if kind == "page":
                links = page_links(asset.url, body)
            elif kind == "sourcemap":
                links = []
            else:
                links = asset_links(asset, body, headers)
            for link, link_kind in links:
                enqueue(link, link_kind, asset.url)

        enqueue(base_url, "page", None)
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            pending -= done
            for task in done:
                task.result()

    async def fetch(self, url: str, kind: str, referrer: str | None) -> tuple[Asset, Mapping[bytes, bytes]]:
        """The asset at `url`, following same-origin redirects; its body, or why there is none."""
        loop = asyncio.get_running_loop()
        first = url
        for _hop in range(MAX_REDIRECTS + 1):
            left = self.deadline - loop.time()
            if left <= 0:
                return Asset(first, kind, referrer, error=self._late()), {}
            request = Request(
                "GET",
                url,
                left,
                {"Accept-Encoding": ACCEPT_ENCODING, "Accept": _ACCEPT[kind]},
                max_body_bytes=self.max_bytes,
            )
            try:
                ex = await exchange(request, resolve=self.ctx.resolver, ssl_context=self.ctx.ssl_context)
            except ProbeFailed as exc:
                reason = exc.reason
                if exc.error in (ErrorClass.READ_TIMEOUT, ErrorClass.CONNECT_TIMEOUT) and loop.time() >= (
                    self.deadline - 0.05
                ):
                    reason = f"{reason} (the live-site trace's {self.timeout:g}s deadline)"
                return Asset(first, kind, referrer, error=f"{exc.error.info.title}: {reason}"), {}
            if ex.status in REDIRECTS and ex.location:
                target = _absolute(url, ex.location)
                if not target:
                    why = f"HTTP {ex.status} redirect to {_said(ex.location)}, which is no URL: not followed"
                    return Asset(first, kind, referrer, status=ex.status, error=why), {}
                if origin(target) not in self.allowed:
                    why = f"HTTP {ex.status} redirect to {shown(target)}, another origin: not followed"
                    return Asset(first, kind, referrer, status=ex.status, error=why), {}
                url = target
                continue
            answer = self._answer(url, kind, referrer, ex)
            return (replace(answer, redirected_from=first) if url != first else answer), ex.headers
        why = f"more than {MAX_REDIRECTS} redirects"
        return Asset(first, kind, referrer, error=why), {}

    def _answer(self, url: str, kind: str, referrer: str | None, ex: Exchange) -> Asset:
        encoding = ex.headers.get(b"content-encoding", b"").strip().lower()
        shown = encoding.decode("latin-1")
        if not 200 <= ex.status < 300:
            return Asset(url, kind, referrer, status=ex.status, encoding=shown, error=f"HTTP {ex.status}")
        if encoding not in _DECODED:
            why = f"served with Content-Encoding {shown!r}, which opsdash does not decode (it asks for gzip)"
            return Asset(url, kind, referrer, status=ex.status, encoding=shown, error=why)
        return Asset(url, kind, referrer, ex.status, shown, len(ex.body), body=ex.body)

    def _late(self) -> str:
        return f"not fetched: the live-site trace's {self.timeout:g}s deadline ran out"


_ACCEPT = {
    "page": "text/html,application/xhtml+xml,*/*;q=0.8",
    "script": "*/*",
    "modulepreload": "*/*",
    "stylesheet": "text/css,*/*;q=0.1",
    "sourcemap": "application/json,*/*",
}


def crawl(
    ctx: ProbeContext,
    base_url: str,
    scan: Callable[[Asset], None],
    *,
    timeout: float = TIMEOUT,
    max_asset_bytes: int = MAX_ASSET_BYTES,
    max_assets: int = MAX_ASSETS,
    origins: Iterable[str] = (),
) -> tuple[list[Asset], list[str]]:
    """Fetch `base_url` and what it references within `timeout` seconds; `scan` sees each body (on
    a worker thread, while other assets download) before it is dropped. Returns the assets (bodies
    dropped) and the URLs of other origins that were listed, not fetched. Runs on its own event
    loop in a worker thread, so it behaves the same from the CLI, a runbook step or the dashboard."""
    allowed = frozenset({origin(base_url), *(origin(o) for o in origins)})
    outcome: list[_Crawl | BaseException] = []

    async def go() -> _Crawl:
        loop = asyncio.get_running_loop()
        job = _Crawl(ctx, allowed, loop.time() + timeout, timeout, max_asset_bytes, max_assets, scan)
        with contextlib.suppress(TimeoutError):  # each request has the deadline; this guards a stuck scan
            await asyncio.wait_for(job.run(base_url), timeout + 1)
        return job

    def run() -> None:
        try:
            outcome.append(asyncio.run(go()))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, name="opsdash-trace-live", daemon=True)
    worker.start()
    worker.join(timeout + 10)
    if not outcome:
        return [Asset(base_url, "page", error=f"no answer within {timeout:g}s")], []
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    fetched = {a.url for a in result.assets} | {a.redirected_from for a in result.assets if a.redirected_from}
    missing = [u for u in result.seen if u not in fetched and u not in result.skipped]
    late = [Asset(u, "asset", error=result._late()) for u in sorted(missing)]
    return [*result.assets, *late], sorted(result.skipped)


# ---------------------------------------------------------------- needles and previous values


def needles(profile: Profile, env: EnvSnapshot | None) -> list[Needle]:
    """The target's secret values, by variable (the values stay in memory)."""
    if env is None:
        return []
    return [
        Needle(k, v.value)
        for k, v in sorted(env.values.items())
        if len(v.value) >= MIN_FORM and profile.is_secret(k)  # shorter: it would match by chance
    ]


def previous_prints(
    history: History, current: Sequence[Needle], runs: int = PREVIOUS_RUNS
) -> list[PreviousPrint]:
    """Fingerprints (and lengths, where kept) of secret values the newest `runs` env-reading runs
    saw that no current value has: the rotated-away ones."""
    now = {fingerprint(n.value) for n in current}
    return [PreviousPrint(k, p, n) for k, p, n in history.runs.secret_prints(runs) if p not in now]


# ---------------------------------------------------------------- trying a previous value


@dataclass(frozen=True)
class Tried:
    """What the provider said to a previous value."""

    outcome: str  # accepted | rejected | unknown | untried
    reason: str


def _provider_check(profile: Profile) -> ProviderCheck | None:
    from opsdash.core.profile import ProviderCheck

    for check in profile.checks:
        if isinstance(check, ProviderCheck):
            return check
    if profile.provider is None:
        return None
    return ProviderCheck.model_validate({"name": "provider", "kind": "provider", "retries": 0})


def _api_variable(profile: Profile, name: str) -> bool:
    """Whether `name` held the provider's API secret (under a client prefix it was still the same)."""
    wanted = profile.provider.secret_variable if profile.provider else None
    if not wanted:
        return False
    prefixes = tuple(profile.target.client_prefixes)
    bare = next((name[len(p) :] for p in prefixes if name.startswith(p)), name)
    return name == wanted or bare == wanted


async def try_one(ctx: ProbeContext, name: str, value: str) -> Tried:
    """Sign the provider probe's read-only request with `value` as the API secret (the current
    application id beside it) and say what the provider made of it."""
    from opsdash.core.health.probes.provider import probe_provider

    profile = ctx.profile
    if not _api_variable(profile, name):
        what = profile.provider.secret_variable if profile.provider else None
        return Tried(
            "untried",
            f"not tried: only the API secret ({what or 'no [provider] secret_variable'}) signs provider "
            f"requests, and {name} is not it",
        )
    check = _provider_check(profile)
    if check is None or ctx.env is None or profile.provider is None:
        return Tried("unknown", "cannot try it: the profile has no [provider], or no env files were read")
    secret_var = profile.provider.secret_variable
    assert secret_var is not None
    values = dict(ctx.env.values)
    values[secret_var] = EnvValue(secret_var, value, "previous value (in memory only)")
    tried = replace(ctx, env=replace(ctx.env, values=values))
    check = check.model_copy(update={"retries": 0})
    result = await probe_provider(check, tried, datetime.now(UTC), time.perf_counter())
    summary = redactor.redact(result.summary)
    if result.error_class is None or result.error_class is ErrorClass.CONDITION:
        return Tried("accepted", f"the provider accepted a request signed with it ({summary})")
    if result.error_class is ErrorClass.HTTP_AUTH:
        return Tried("rejected", f"the provider rejected it ({summary}): revoked")
    return Tried("unknown", f"cannot tell: {summary}")


def try_previous(
    ctx: ProbeContext, candidates: Mapping[tuple[str, str], Sequence[str]]
) -> dict[tuple[str, str], Finding]:
    """Each previous value found (variable, value) → where it was found, tried against the provider:
    a `previous-secret-still-accepted` finding for each (CRIT accepted, UNKNOWN cannot tell, INFO
    rejected or not an API secret), its subject the variable, keyed by (variable, value): two
    previous values of one variable each keep their own outcome."""
    if not candidates:
        return {}
    for _name, value in candidates:
        redactor.register(value)

    async def all_of_them() -> list[Tried]:
        return list(await asyncio.gather(*(try_one(ctx, n, v) for n, v in candidates)))

    outcomes: list[Tried] = []

    def run() -> None:
        outcomes.extend(asyncio.run(all_of_them()))

    worker = threading.Thread(target=run, name="opsdash-trace-try", daemon=True)
    worker.start()
    worker.join(120)
    findings = {}
    for (name, value), where in candidates.items():
        tried = outcomes.pop(0) if outcomes else Tried("unknown", "cannot tell: the provider did not answer")
        findings[(name, value)] = previous_finding(name, value, where, tried)
    return findings


_TRIED_SEVERITY = {
    "accepted": Severity.CRIT,
    "unknown": Severity.UNKNOWN,
    "rejected": Severity.INFO,
    "untried": Severity.INFO,
}


def previous_finding(name: str, value: str, where: Sequence[str], tried: Tried) -> Finding:
    places = list(dict.fromkeys(where))
    shown = ", ".join(places[:3]) + (f" (+{len(places) - 3} more)" if len(places) > 3 else "")
    severity = _TRIED_SEVERITY[tried.outcome]
    titles = {
        "accepted": None,
        "unknown": "Cannot tell whether a previous secret is still accepted",
        "rejected": "A previous secret was found; the provider rejects it",
        "untried": "A previous secret was found (not an API credential: not tried)",
    }
    return rule("previous-secret-still-accepted").finding(
        name,
        f"A previous value of {name} ({mask(value)}) was found at {shown}; {tried.reason}.",
        severity=severity,
        title=titles[tried.outcome],
        evidence={
            "value": mask(value),
            "found_at": ", ".join(places),
            "provider": tried.outcome,
        },
    )


# ---------------------------------------------------------------- the findings


def served_findings(located: Sequence[Located], tried: Mapping[tuple[str, str], str]) -> list[Finding]:
    """One `secret-served-live` finding per asset: CRIT for a current value (a previous value: as
    bad as what the provider made of that value: `tried` is keyed by (variable, fingerprint)), its
    subject the asset's URL."""
    by_asset: dict[str, list[Located]] = {}
    for item in located:
        by_asset.setdefault(item.asset.url, []).append(item)
    findings = []
    for raw_url, items in by_asset.items():
        url = shown(raw_url)
        asset = items[0].asset
        current = [i for i in items if not i.hit.previous]
        names = list(dict.fromkeys(i.hit.name for i in (current or items)))
        encodings = sorted({i.hit.encoding for i in items})
        lines = sorted({i.hit.line for i in items})
        evidence = {
            "url": url,
            "asset": asset.kind,
            "variables": ", ".join(names),
            "encodings": ", ".join(encodings),
            "line": str(lines[0]),
            "lines": ", ".join(map(str, lines[:10])),
        }
        if asset.referrer:
            evidence["referenced_by"] = shown(asset.referrer)
        if asset.encoding:
            evidence["served_encoding"] = asset.encoding
        if current:
            detail = (
                f"{url} ({asset.kind}) serves the current value of {', '.join(names)} to every visitor "
                f"(line {lines[0]}, {', '.join(encodings)})."
            )
            findings.append(rule("secret-served-live").finding(url, detail, evidence=evidence))
            continue
        outcomes = (tried.get((i.hit.name, fingerprint(i.hit.value or "")), "unknown") for i in items)
        outcome = max(outcomes, key=lambda o: _TRIED_SEVERITY[o].rank)
        evidence["provider"] = outcome
        findings.append(
            rule("secret-served-live").finding(
                url,
                f"{url} ({asset.kind}) serves a previous value of {', '.join(names)}; the provider: "
                f"{outcome}.",
                severity=_TRIED_SEVERITY[outcome],
                title="A previous (rotated-away) secret is served by the live site",
                remediation="Rebuild and redeploy without it; if the provider still accepts it, revoke "
                "it now.",
                evidence=evidence,
            )
        )
    return findings


_LISTED = 5  # URLs named in a finding's detail before "+N more"
_ONE_EACH = 3  # up to this many assets failing alike get a finding each; more share one


def _listed(urls: Sequence[str]) -> str:
    more = f" (+{len(urls) - _LISTED} more)" if len(urls) > _LISTED else ""
    return ", ".join(urls[:_LISTED]) + more


def unscanned_findings(assets: Sequence[Asset], skipped: Sequence[str]) -> list[Finding]:
    """UNKNOWN for each asset that could not be scanned (those failing alike, past a few, in one
    finding: a page of a thousand scripts past the deadline is one finding, not a thousand), and one
    INFO listing the assets of other origins."""
    why = rule("secret-served-live")
    fix = "Make the asset reachable from here (or raise the trace's deadline or size cap) and trace again."
    alike: dict[str, list[Asset]] = {}
    for asset in assets:
        if asset.error is not None:
            alike.setdefault(asset.error, []).append(asset)
    findings = []
    for error, group in alike.items():
        if len(group) > _ONE_EACH:
            urls = [shown(a.url) for a in group]
            findings.append(
                why.finding(
                    f"{len(group)} assets",
                    f"{len(group)} assets were not scanned: {error}. What they serve is unknown: "
                    f"{_listed(urls)}.",
                    severity=Severity.UNKNOWN,
                    title="Served assets could not be scanned",
                    remediation=fix,
                    runbook=None,
                    evidence={"urls": ", ".join(urls)},
                )
            )
            continue
        for asset in group:
            url = shown(asset.url)
            evidence = {"url": url, "asset": asset.kind}
            if asset.referrer:
                evidence["referenced_by"] = shown(asset.referrer)
            findings.append(
                why.finding(
                    url,
                    f"{url} ({asset.kind}) was not scanned: {error}. What it serves is unknown.",
                    severity=Severity.UNKNOWN,
                    title="A served asset could not be scanned",
                    remediation=fix,
                    runbook=None,
                    evidence=evidence,
                )
            )
    if skipped:
        urls = [shown(u) for u in skipped]
        findings.append(
            why.finding(
                "other origins",
                f"{len(urls)} asset(s) on other origins were listed, not fetched: {_listed(urls)}.",
                severity=Severity.INFO,
                title="Assets on other origins were not scanned",
                remediation="If your own bundle is served from another origin (a CDN), allow it "
                "(--live-origin) so it is scanned too.",
                runbook=None,
                evidence={"skipped": ", ".join(urls)},
            )
        )
    return findings


# ---------------------------------------------------------------- the capability


def trace(
    ops: Ops,
    *,
    env_files: Sequence[Path] | None = None,
    from_env: bool | None = None,
    timeout: float = TIMEOUT,
    max_asset_bytes: int = MAX_ASSET_BYTES,
    max_assets: int = MAX_ASSETS,
    origins: Iterable[str] = (),
    base_url: str | None = None,
    current: Sequence[Needle] | None = None,
    previous: Sequence[PreviousPrint] | None = None,
    also: Mapping[tuple[str, str], Sequence[str]] | None = None,
) -> LiveTrace:
    """Crawl the live site, scan every asset for the target's current and previous secrets, and
    try each previous value found against the provider — with those found elsewhere (`also`:
    (variable, value) → where, from the git history and files), each tried once.

    `current` and `previous` are what the caller already worked out (ops/trace.run); by default
    the env the profile reads and the fingerprints the record keeps."""
    started = time.perf_counter()
    ctx = ops.probe_context(env_files=env_files, from_env=from_env)
    profile = ops.profile
    url = base_url or profile.target.base_url
    current = list(current) if current is not None else needles(profile, ctx.env)
    for needle in current:
        redactor.register(needle.value)
    if previous is None:
        previous = []
        if ops.has_history():
            with ops.history(write=False) as history:
                previous = previous_prints(history, current)
    if not current and not previous:
        finding = rule("secret-served-live").finding(
            url,
            "No secret values to look for: no env files were read (pass --env-file or --from-env) or the "
            "profile names no secrets.",
            severity=Severity.UNKNOWN,
            title="The live site was not traced",
            runbook=None,
        )
        return LiveTrace(url, (), (finding,))
    matcher = Matcher(current, previous)
    located: list[Located] = []
    lock = threading.Lock()

    def scan(asset: Asset) -> None:
        assert asset.body is not None
        hits = matcher.scan(asset.body)
        with lock:
            located.extend(Located(replace(asset, body=None), h) for h in hits)

    assets, skipped = crawl(
        ctx,
        url,
        scan,
        timeout=timeout,
        max_asset_bytes=max_asset_bytes,
        max_assets=max_assets,
        origins=origins,
    )
    candidates: dict[tuple[str, str], list[str]] = {k: list(v) for k, v in (also or {}).items()}
    for item in located:
        if item.hit.previous and item.hit.value:
            candidates.setdefault((item.hit.name, item.hit.value), []).append(item.asset.url)
    tried_by_value = try_previous(ctx, candidates)
    tried = {
        (n, fingerprint(v)): f.evidence.get("provider", "unknown") for (n, v), f in tried_by_value.items()
    }
    tried_findings = list(tried_by_value.values())
    findings = [*served_findings(located, tried), *tried_findings, *unscanned_findings(assets, skipped)]
    elapsed = round((time.perf_counter() - started) * 1000)
    return LiveTrace(url, tuple(assets), tuple(findings), tuple(skipped), elapsed)


def run(
    ops: Ops,
    *,
    repo: Path | None = None,
    paths: Sequence[Path] | None = None,
    use_git: bool = True,
    full: bool = False,
    env_files: Sequence[Path] | None = None,
    from_env: bool | None = None,
    progress: Callable[[Progress], None] | None = None,
    record: bool = True,
    live: bool = True,
    origins: Sequence[str] = (),
    timeout: float = TIMEOUT,
) -> TraceRun:
    """The whole credential trace: `ops.trace.run` (the git history, files and builds the profile or
    the caller names, incrementally) and, with `live`, the live site, with every previous value found
    anywhere tried once against the provider. One report, recorded and audited like a validation."""
    from opsdash.core.errors import ConfigError
    from opsdash.core.findings import Report
    from opsdash.ops import trace as tracing

    started, t0 = ops.now(), time.perf_counter()
    where = tracing.targets(ops, repo, paths, use_git)
    if not live or where.repo is not None or where.paths:
        base = tracing.run(
            ops,
            repo=repo,
            paths=paths,
            use_git=use_git,
            full=full,
            env_files=env_files,
            from_env=from_env,
            progress=progress,
            record=record and not live,
        )
        if not live:
            return base
    else:
        base = tracing.TraceRun(report=Report.timed("trace", ops.profile.target.name, started, t0, []))
    try:
        current, previous, notes = tracing.needles(ops, env_files=env_files, from_env=from_env)
    except ConfigError:
        if where.repo is not None or where.paths:
            raise
        current, previous, notes = [], [], []  # the live trace says itself that it had nothing to look for
    also: dict[tuple[str, str], list[str]] = {}
    for prev in base.previous:
        also.setdefault((prev.name, prev.value), []).append(prev.where)
    served = trace(
        ops,
        env_files=env_files,
        from_env=from_env,
        timeout=timeout,
        origins=origins,
        current=current,  # as traced: values too short to look for are left out (a note says so)
        previous=previous,
        also=also,
    )
    seen = {(f.rule, f.subject) for f in base.report.findings}
    findings = [
        *base.report.findings,
        *(f for f in notes if (f.rule, f.subject) not in seen),
        *served.findings,
    ]
    summary = {**base.report.summary, "live": served.summary()}
    summary.setdefault("traced", sorted(n.name for n in current))
    summary.setdefault("previous", len(previous))
    # for the rotation runbook's trace gate: old API secrets known by fingerprint, and how many
    # previous values the provider answered for (a value never found cannot be tried)
    summary["previous_api_secret"] = sum(1 for p in previous if _api_variable(ops.profile, p.name))
    summary["previous_tried"] = sum(
        1
        for f in served.findings
        if f.rule == "previous-secret-still-accepted"
        and f.evidence.get("provider") in ("accepted", "rejected")
    )
    base.report = Report.timed(
        "trace", ops.profile.target.name, started, t0, findings, summary, run_id=base.report.run_id
    )
    if record:
        with ops.history() as history:
            history.runs.record(base.report, operator=ops.operator)
            ops.audit.report(base.report, history)
    return base
