"""The service: one or more profiles watched by the one watch loop (`opsdash.ops.checks.Watch`),
validated on an interval, and reported on /metrics, /probe (one check, as blackbox_exporter's),
/healthz and /events (the live picture pushed to attached dashboards: ops/serve/events.py).

Everything it records goes through the same ops functions as the CLI and the dashboard: the
Watch records each result in history, audits changes of sustained state and raises alerts; the
validation loop calls `ops.validation.run`; the audit log is verified with `ops.audit.verify()`.

Signals: SIGTERM and SIGINT stop polling, let the probes in flight finish (bounded by
`drain_timeout`), flush what they produced to history and alerts, and return 0. SIGHUP reads each
profile again; a profile that no longer loads keeps being watched as it was, with a warning.
Without a signal, each target's Watch notices an edited profile or env file itself, probes with
what it now says and has the target validated again at once (a broken file: a warning, as for
SIGHUP); a renamed target or clashing check names still take a SIGHUP to be relabelled or refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from opsdash.core.errors import ConfigError, OpsdashError
from opsdash.core.health.model import CheckResult
from opsdash.core.health.state import SustainedState
from opsdash.core.secrets import redactor
from opsdash.core.text import did_you_mean, visible
from opsdash.ops import live, validation
from opsdash.ops.base import Ops
from opsdash.ops.checks import Watch, select_checks
from opsdash.ops.retention import Background
from opsdash.ops.serve.events import HEARTBEAT, Broadcast, is_loopback
from opsdash.ops.serve.http import Endpoint
from opsdash.ops.serve.metrics import CONTENT_TYPE, Exposition, TargetStatus, probe_body
from opsdash.ops.sources import Reload
from opsdash.storage.rows import AlertRow, SessionRow

DEFAULT_PORT = 9477
ALERT_COUNT_EVERY = 5.0  # seconds between reads of the open alerts for opsdash_alerts_firing
# Scrapes within this many seconds of a render share its body: a flood of scrapes costs one
# render a second on the loop the probes share, not one each.
METRICS_MAX_AGE = 1.0
SESSIONS_EVERY = 2.0  # seconds between reads of the runbook sessions, while a dashboard is attached


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    from_env: bool | None = None
    drain_timeout: float = 10.0  # seconds the probes in flight get to finish on SIGTERM
    validate: bool = True
    max_connections: int | None = None  # None: from the open-file limit (ops/serve/http.connection_cap)
    idle_timeout: float = 15.0  # seconds a connection may wait for a complete request head
    token: str | None = None  # what /events needs as 'Authorization: Bearer' (a secret: never printed)
    heartbeat: float = HEARTBEAT  # seconds between /events heartbeats


def warn(message: str) -> None:
    print(f"opsdash serve: warning: {message}", file=sys.stderr, flush=True)


def check_targets(all_ops: Sequence[Ops]) -> None:
    """Profiles served together need distinct target names (the `target` label), and those that
    share a data directory need distinct check names: alerts and check history are kept by check
    name there."""
    seen: dict[str, Path] = {}
    by_dir: dict[Path, dict[str, str]] = {}
    for ops in all_ops:
        assert ops.config is not None
        name, path = ops.profile.target.name, ops.config.path
        select_checks(ops.profile)  # a profile with no [[checks]] is refused before anything starts
        if name in seen:
            raise ConfigError(
                f"{seen[name]} and {path} both name their target {name!r}; the target label must differ"
            )
        seen[name] = path
        checks = by_dir.setdefault(ops.data_dir.resolve(), {})
        for check in ops.profile.checks:
            if check.name in checks:
                raise ConfigError(
                    f"targets {checks[check.name]!r} and {name!r} share the data directory {ops.data_dir} "
                    f"and both have a check named {check.name!r}; give each profile its own "
                    "[opsdash] data_dir"
                )
            checks[check.name] = name


def one_per_data_dir(all_ops: Sequence[Ops]) -> list[Ops]:
    """The first profile of each data directory (several may share one)."""
    seen: dict[Path, Ops] = {}
    for ops in all_ops:
        seen.setdefault(ops.data_dir.resolve(), ops)
    return list(seen.values())


class Target:
    """One profile being served: its Watch, its validation loop and what /metrics says of it."""

    def __init__(
        self,
        ops: Ops,
        exposition: Exposition,
        options: ServeOptions,
        generator_url: str,
        broadcast: Broadcast | None = None,
    ) -> None:
        self.ops, self.exposition, self.options = ops, exposition, options
        self.generator_url = generator_url
        self.broadcast = broadcast
        profile = ops.profile
        self.watch = Watch(ops, from_env=options.from_env, on_reload=self._reloaded, on_alerts=self._alerted)
        ops.alerts.generator_url = generator_url
        self.status = TargetStatus(profile.target.name, len(self.watch.checks), self.watch.states)
        self.open_alerts: list[AlertRow] = []
        self.validation_problem: str | None = None
        self._stop = asyncio.Event()
        self._validate_now = asyncio.Event()  # set on stop too: the validation loop's wake-up
        self._alerts_now = asyncio.Event()  # the watch fired or resolved one: read them at once
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def name(self) -> str:
        return self.status.name

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        loops = [self.watch.run(self._on_result), self._alerts_loop()]
        if self.options.validate:
            loops.append(self._validate_loop())
        await asyncio.gather(*loops)

    def stop(self) -> None:
        self._stop.set()
        self._validate_now.set()
        self._alerts_now.set()
        self.watch.stop()

    def close(self) -> None:
        """Wait until every result so far is recorded (history, audit, alerts)."""
        self.watch.close()

    def _on_result(self, result: CheckResult, state: SustainedState) -> None:
        self.exposition.update(self.name, result, state)
        if self.broadcast is not None:
            self.broadcast.publish(
                "check", {"target": self.name, "state": live.state_out(state), "at": time.time()}
            )

    def _alerted(self, _fired: list[str], _resolved: list[str]) -> None:
        """On the watch's recording thread: the open alerts are read again now, not in 5 s."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._alerts_now.set)

    def picture(self) -> dict[str, object]:
        """This target in a /events snapshot."""
        return {
            "name": self.name,
            "environment": self.ops.profile.target.environment,
            "checks": [c.name for c in self.watch.checks],
            "states": {name: live.state_out(s) for name, s in self.watch.states.items()},
            "report": live.report_out(self.status.validation),
            "validated_at": self.status.validated_at,
            "validation_problem": self.validation_problem,
            "alerts": [live.alert_out(a) for a in self.open_alerts],
            "verdict": self.status.gate(),
        }

    def _reloaded(self, change: Reload) -> None:
        """The Watch read an edited profile or env file: validate with it now, not at the next interval."""
        if change.problem is not None:
            warn(f"{self.name}: {change.problem}; still serving it as it was")
            return
        change.ops.alerts.generator_url = self.generator_url
        self.ops = change.ops
        self.status.expected_checks = len(change.checks)
        self.exposition.forget(self.name, keep=[c.name for c in change.checks])
        self._validate_now.set()

    async def _validate_loop(self) -> None:
        while not self._stop.is_set():
            self._validate_now.clear()
            try:
                run = await asyncio.to_thread(
                    validation.run, self.ops, from_env=self.options.from_env, alert=True
                )
                self.status.validation, self.status.validated_at = run.report, time.time()
                self.validation_problem = None
            except OpsdashError as exc:
                warn(f"{self.name}: validation could not run: {exc}")
                self.validation_problem = redactor.redact(str(exc))
            if self.broadcast is not None:
                self.broadcast.publish(
                    "validation",
                    {
                        "target": self.name,
                        "report": live.report_out(self.status.validation),
                        "problem": self.validation_problem,
                        "at": self.status.validated_at or time.time(),
                    },
                )
            try:
                outcome = await asyncio.to_thread(self.ops.audit.verify)
                self.status.audit_verified = outcome.result.ok
                if not outcome.result.ok:
                    warn(f"{self.name}: the audit log did not verify: {outcome.result.problem}")
            except (OpsdashError, OSError, ValueError) as exc:
                self.status.audit_verified = False
                warn(f"{self.name}: the audit log could not be verified: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._validate_now.wait(), self.ops.profile.serve.validate_interval)

    async def _alerts_loop(self) -> None:
        while not self._stop.is_set():
            self._alerts_now.clear()
            try:
                open_alerts = await asyncio.to_thread(self._open_alerts)
                self.status.alerts = [a.contribution() for a in open_alerts]
                self.status.alerts_firing = sum(1 for a in open_alerts if not a.silenced)
                self._alerts_read(open_alerts)
            except OpsdashError as exc:
                warn(f"{self.name}: open alerts not read: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._alerts_now.wait(), ALERT_COUNT_EVERY)

    def _alerts_read(self, open_alerts: list[AlertRow]) -> None:
        before = {a.id: a for a in self.open_alerts}
        now = {a.id: a for a in open_alerts}
        self.open_alerts = open_alerts
        if self.broadcast is None or before.keys() == now.keys():
            return
        self.broadcast.publish(
            "alerts",
            {
                "target": self.name,
                "alerts": [live.alert_out(a) for a in open_alerts],
                "fired": [a.title for i, a in now.items() if i not in before],
                "resolved": [a.key for i, a in before.items() if i not in now],
                "at": time.time(),
            },
        )

    def _open_alerts(self) -> list[AlertRow]:
        """This target's open alerts (silenced ones too: the dashboard's verdict counts them)."""
        if not self.ops.has_history():
            return []
        keys = {c.name for c in self.watch.checks} | {self.name}
        with self.ops.history(write=False) as history:
            return [a for a in history.alerts.firing(self.name) if a.key in keys]


class Service:
    """`opsdash serve`: build it with the profiles' Ops, then `asyncio.run(service.run())`."""

    def __init__(
        self,
        all_ops: Sequence[Ops],
        options: ServeOptions = ServeOptions(),
        *,
        announce: Callable[[str], None] = lambda _url: None,
    ) -> None:
        check_targets(all_ops)
        self.options, self.announce = options, announce
        self.targets: list[Target] = []
        self.exposition = Exposition(lambda: [t.status for t in self.targets])
        self.server = Endpoint(
            self._route, max_connections=options.max_connections, idle_timeout=options.idle_timeout
        )
        self.broadcast = Broadcast(
            self._snapshot,
            token=options.token,
            open_without_token=is_loopback(options.host),
            max_streams=max(1, self.server.max_connections // 2),
            heartbeat=options.heartbeat,
        )
        self.sessions: list[SessionRow] = []  # of every operator, as last read from the record(s)
        self._metrics: tuple[float, bytes] = (-METRICS_MAX_AGE, b"")
        self._all_ops = list(all_ops)
        self._wake = asyncio.Event()
        self._stopping = False
        self._reload = False
        self._tasks: dict[Target, asyncio.Task[None]] = {}
        self.started_at = time.time()

    @property
    def url(self) -> str:
        host = f"[{self.options.host}]" if ":" in self.options.host else self.options.host
        return f"http://{host}:{self.server.port}"

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def reload(self) -> None:
        self._reload = True
        self._wake.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        try:
            await self.server.start(self.options.host, self.options.port)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {self.options.host}:{self.options.port}: {exc.strerror}"
            ) from None
        # retention in batches on a thread of its own per data directory, woken by each validation
        purges = [Background(ops, on_problem=warn).start() for ops in one_per_data_dir(self._all_ops)]
        sessions = asyncio.create_task(self._sessions_loop(), name="serve:sessions")
        try:
            for ops in self._all_ops:
                self._start(
                    await asyncio.to_thread(
                        Target, ops, self.exposition, self.options, self.url, self.broadcast
                    )
                )
            await asyncio.to_thread(self._audit, "serve-start")
            self.announce(self.url)
            while not self._stopping:
                await self._wake.wait()
                self._wake.clear()
                if self._reload and not self._stopping:
                    self._reload = False
                    await self._reload_targets()
            await self._drain(list(self.targets))
            await asyncio.to_thread(self._audit, "serve-stop")
        finally:
            sessions.cancel()
            self.broadcast.close()  # the streams end before the server waits for its connections
            for purge in purges:  # after the batch in hand
                await asyncio.to_thread(purge.stop)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await self.server.close()
        return 0

    def _start(self, target: Target) -> None:
        self.targets.append(target)
        self._tasks[target] = asyncio.create_task(target.run(), name=f"serve:{target.name}")
        self._tasks[target].add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            warn(f"{task.get_name()} stopped: {type(task.exception()).__name__}: {task.exception()}")

    async def _drain(self, targets: Sequence[Target]) -> None:
        """Stop polling, give the probes in flight `drain_timeout` to finish, record everything."""
        for t in targets:
            t.stop()
        tasks = [self._tasks.pop(t) for t in targets if t in self._tasks]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=self.options.drain_timeout)
            for task in pending:
                task.cancel()
            if pending:
                warn(
                    f"{len(pending)} target(s) still probing after {self.options.drain_timeout:g}s; cancelled"
                )
                await asyncio.gather(*pending, return_exceptions=True)
        for t in targets:
            await asyncio.to_thread(t.close)

    async def _reload_targets(self) -> None:
        fresh: list[Ops] = []
        for t in self.targets:
            try:  # reading and validating a profile takes a while: not on the loop the probes share
                fresh.append(await asyncio.to_thread(t.ops.reloaded))
            except OpsdashError as exc:
                where = t.ops.config.path if t.ops.config else t.name
                warn(f"reload: {where}: {exc}; still serving it as it was")
                return
        try:
            check_targets(fresh)
        except ConfigError as exc:
            warn(f"reload: {exc}; still serving the profiles as they were")
            return
        old = list(self.targets)
        await self._drain(old)
        self.targets = []
        for before, ops in zip(old, fresh, strict=True):
            try:
                target = await asyncio.to_thread(
                    Target, ops, self.exposition, self.options, self.url, self.broadcast
                )
            except OpsdashError as exc:
                warn(f"reload: {before.name}: {exc}; still serving it as it was")
                target = await asyncio.to_thread(
                    Target, before.ops, self.exposition, self.options, self.url, self.broadcast
                )
            if target.name != before.name:
                self.exposition.forget(before.name)
            self.exposition.forget(target.name, keep=[c.name for c in target.watch.checks])
            self._start(target)
        self.broadcast.refresh()
        await asyncio.to_thread(self._audit, "serve-reload")  # fsynced appends: off the loop

    async def _sessions_loop(self) -> None:
        """The runbook sessions of every operator, read from the record while a dashboard is
        attached (a session is run by whichever process its operator started: the record is
        where they all meet), and pushed when they change."""
        while True:
            if self.broadcast.attached:
                try:
                    found = await asyncio.to_thread(self._read_sessions)
                except OpsdashError as exc:
                    warn(f"runbook sessions not read: {exc}")
                else:
                    if found != self.sessions:
                        self.sessions = found
                        self.broadcast.publish(
                            "sessions", {"sessions": [live.session_out(r) for r in found], "at": time.time()}
                        )
            await asyncio.sleep(SESSIONS_EVERY)

    def _read_sessions(self) -> list[SessionRow]:
        found: list[SessionRow] = []
        for ops in one_per_data_dir(self._all_ops):
            if ops.has_history():
                with ops.history(write=False) as history:
                    found.extend(history.sessions.recent(limit=20))
        return sorted(found, key=lambda r: r.started_at, reverse=True)

    def _snapshot(self) -> dict[str, object]:
        return {
            "at": time.time(),
            "service": {"url": self.url, "started_at": self.started_at},
            "targets": [t.picture() for t in self.targets],
            "sessions": [live.session_out(r) for r in self.sessions],
        }

    def _audit(self, action: str) -> None:
        for t in self.targets:
            t.ops.audit.event("operator_action", action, subject=t.name, details={"listen": self.url})

    # ------------------------------------------------------------------ HTTP

    def _route(self, req: web.BaseRequest) -> web.StreamResponse | Awaitable[web.StreamResponse]:
        """GET and HEAD (the same headers, no body: aiohttp leaves it out) on every path."""
        if req.method not in ("GET", "HEAD"):
            return text(405, "only GET and HEAD\n", allow="GET, HEAD")
        if req.path == "/events":
            refused = self.broadcast.refusal(req)
            if refused is not None:
                return refused
            if req.method == "HEAD":
                return web.Response(headers={"Content-Type": "text/event-stream; charset=utf-8"})
            return self.broadcast.stream(req)
        if req.path == "/metrics":
            return web.Response(body=self._render_metrics(), headers={"Content-Type": CONTENT_TYPE})
        if req.path == "/healthz":
            return self._health()
        if req.path == "/probe":
            return self._probe(req)
        if req.path == "/":
            return text(200, "opsdash serve: /metrics (Prometheus), /probe?target=CHECK, /healthz, /events\n")
        return text(404, "not found\n")

    def _probe(self, req: web.BaseRequest) -> web.Response:
        """blackbox_exporter's /probe, for its scrape config: `target` names a check (`module` is
        accepted and ignored; `profile` picks one target when several serve a check of that name).
        Answers the check's latest result; the check runs on its own interval, not per scrape."""
        check = req.query.get("target", "")
        if not check:
            return text(400, "target parameter is missing: /probe?target=CHECK\n")
        shown = visible(redactor.redact(check))  # a blackbox config's targets are URLs, maybe with keys
        found = self.exposition.latest(check)
        wanted = req.query.get("profile")
        if wanted and found:
            found = [f for f in found if f[0] == wanted]
            if not found:
                return text(404, f"no profile {visible(redactor.redact(wanted))} serves {shown}\n")
        if not found:
            hint = did_you_mean(check, self.exposition.check_names())
            return text(404, f"no result yet for a check named {shown}{hint}\n")
        if len(found) > 1:
            names = ", ".join(sorted(t for t, _r, _s in found))
            return text(400, f"several targets serve {shown} ({names}): add &profile=NAME\n")
        _target, result, state = found[0]
        return web.Response(body=probe_body(result, state), headers={"Content-Type": CONTENT_TYPE})

    def _render_metrics(self) -> bytes:
        rendered_at, body = self._metrics
        now = time.monotonic()
        if now - rendered_at >= METRICS_MAX_AGE:
            body = self.exposition.render()
            self._metrics = (now, body)
        return body

    def _health(self) -> web.Response:
        targets = [
            {
                "target": t.name,
                "checks": t.status.expected_checks,
                "evaluated": sum(1 for s in t.status.states.values() if s.last is not None),
                "validated_at": t.status.validated_at,
            }
            for t in self.targets
        ]
        status = "stopping" if self._stopping else "ok"
        body = json.dumps(
            {"status": status, "uptime_s": round(time.time() - self.started_at, 1), "targets": targets}
        )
        return web.Response(
            status=503 if self._stopping else 200,
            body=body.encode() + b"\n",
            headers={"Content-Type": "application/json"},
        )


def text(status: int, body: str, **headers: str) -> web.Response:
    return web.Response(
        status=status, body=body.encode(), headers={"Content-Type": "text/plain; charset=utf-8", **headers}
    )
