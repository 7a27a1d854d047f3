"""The `opsdash` command. Bare `opsdash` opens the dashboard; subcommands are the headless CLI.

Textual is imported only by the commands that open the dashboard, so `opsdash validate` in a CI
pipeline starts fast. Usage and config errors exit 3 with one line on stderr, never a traceback.
"""

from __future__ import annotations

import inspect
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from opsdash import __version__
from opsdash.cli.render import emit, emit_json
from opsdash.core.errors import ConfigError, InputError, OpsdashError
from opsdash.core.findings import Severity
from opsdash.core.secrets import redactor
from opsdash.demo import FAULTS
from opsdash.ops.config import LoadedConfig, OpsdashSettings, find_config, load_config, load_settings

F = TypeVar("F", bound=Callable[..., Any])
EXIT_UNKNOWN = 3


@dataclass
class Session:
    """What a command needs: the config (when it has one), settings and the operator."""

    config: LoadedConfig | None
    settings: OpsdashSettings
    operator: str

    def require_config(self) -> LoadedConfig:
        if self.config is None:  # pragma: no cover - guarded by open_session(require=True)
            raise ConfigError("no configuration loaded")
        return self.config


def open_session(config: Path | None, operator: str | None, *, require: bool = True) -> Session:
    try:
        path = find_config(config)
    except ConfigError:
        if require:
            raise
        settings = load_settings(operator=operator)
        return Session(None, settings, settings.resolved_operator())
    loaded = load_config(path)
    settings = load_settings(loaded.file_table, operator=operator)
    return Session(loaded, settings, settings.resolved_operator())


def config_option(f: F) -> F:
    return click.option(
        "--config",
        "config",
        type=click.Path(path_type=Path),
        envvar="OPSDASH_CONFIG",
        help="Profile to use. Default: ./opsdash.toml, then the user config directory.",
    )(f)


def env_options(f: F) -> F:
    """--config, --env-file and --from-env: which profile, and where the target's environment is."""
    options = [
        config_option,
        click.option(
            "--env-file",
            "env_files",
            multiple=True,
            type=click.Path(path_type=Path),
            help="Env file to read (repeatable, later wins); replaces the profile's env.files.",
        ),
        click.option(
            "--from-env",
            is_flag=True,
            default=None,
            help="Also read the process environment (inside the deployed environment or CI).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def common_options(f: F) -> F:
    """--config, --env-file, --from-env, --json and --operator, shared by the target commands."""
    f = click.option("--operator", envvar="OPSDASH_OPERATOR", help="Who is running this. Default: OS user.")(
        f
    )
    f = click.option("--json", "as_json", is_flag=True, help="Machine output on stdout, nothing else.")(f)
    return env_options(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine output on stdout, nothing else.")(f)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="opsdash")
@config_option
@click.pass_context
def cli(ctx: click.Context, config: Path | None) -> None:
    """Operations dashboard and deploy gate for a payment-taking web app.

    Run without a command to open the dashboard. Every command has --help.

    \b
    Deploy day:   opsdash validate    (environment gate, pipeline-friendly)
    History:      opsdash history list | show RUN | diff RUN_A RUN_B
    Set-up:       opsdash init, opsdash config show | validate | schema
    Try it:       opsdash demo

    Exit codes: 0 OK, 1 WARN, 2 CRIT, 3 UNKNOWN or usage/config error.
    """
    if ctx.invoked_subcommand is None:
        from opsdash.tui.app import run_dashboard

        try:
            path: Path | None = find_config(config)
        except ConfigError:
            path = None
        run_dashboard(path)


# ---------------------------------------------------------------- validate


@cli.command()
@common_options
@click.option(
    "--fail-on",
    type=click.Choice(["warn", "crit"]),
    default="warn",
    show_default=True,
    help="Lowest severity that fails the run: with 'crit', warnings exit 0.",
)
@click.option("--verbose", "-v", is_flag=True, help="Also show INFO findings.")
@click.option("--no-history", is_flag=True, help="Do not record this run in history.")
def validate(
    config: Path | None,
    env_files: tuple[Path, ...],
    from_env: bool | None,
    as_json: bool,
    operator: str | None,
    fail_on: str,
    verbose: bool,
    no_history: bool,
) -> None:
    """Validate the target's production environment (no network).

    Reads the profile's env files (or --env-file), checks production mode, test mode, required
    variables, credentials, URLs and policy settings, prints a report grouped by category and records
    the run in history. Secrets are shown only as fingerprints.

    \b
    Exit codes: 0 OK, 1 WARN, 2 CRIT, 3 UNKNOWN or usage/config error.
    """
    from opsdash.cli.render import report_text
    from opsdash.ops.services import validate_and_record

    session = open_session(config, operator)
    run = validate_and_record(
        session.require_config(),
        session.settings,
        session.operator,
        env_files=list(env_files) or None,
        from_env=from_env,
        record=not no_history,
    )
    report = run.report
    if as_json:
        emit_json(report.to_dict())
    else:
        emit(report_text(report, min_severity=Severity.INFO if verbose else Severity.WARN))
    sys.exit(report.exit_code(Severity.parse(fail_on)))


# ---------------------------------------------------------------- check


@cli.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
@common_options
@click.option(
    "--watch",
    "watch",
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    help="Keep polling every SECONDS and redraw in place; shows the sustained state.",
)
@click.option("--no-history", is_flag=True, help="Do not record results in history.")
def check(
    names: tuple[str, ...],
    config: Path | None,
    env_files: tuple[Path, ...],
    from_env: bool | None,
    as_json: bool,
    operator: str | None,
    watch: float | None,
    no_history: bool,
) -> None:
    """Run the profile's live health checks (all, or the NAMEs given) once and report.

    Check kinds: http, tcp, dns, tls, provider (a signed read-only iKhokha request) and webhook
    (the app must reject unsigned deliveries). Every failure has an error class, a recovery hint and
    a runbook. Credentials for provider and webhook checks come from the env files.

    With --watch, checks poll until interrupted; a check goes down after failure_threshold
    consecutive failures and recovers after success_threshold successes. With --json, --watch prints
    one JSON object per result (JSON lines).

    \b
    Exit codes: 0 OK, 1 WARN, 2 CRIT, 3 UNKNOWN or usage/config error.
    """
    import asyncio

    from opsdash.cli.render import checks_text, verdict_line
    from opsdash.ops.services import check_and_record

    session = open_session(config, operator)
    loaded = session.require_config()
    files = list(env_files) or None
    if watch is not None:
        sys.exit(_watch(session, loaded, names, files, from_env, watch, as_json, not no_history))
    report, results = asyncio.run(
        check_and_record(
            loaded,
            session.settings,
            session.operator,
            names=names,
            env_files=files,
            from_env=from_env,
            record=not no_history,
        )
    )
    if as_json:
        emit_json(report.to_dict())
    else:
        emit(verdict_line(report))
        emit(checks_text(results))
    sys.exit(report.exit_code())


def _watch(
    session: Session,
    loaded: LoadedConfig,
    names: tuple[str, ...],
    env_files: list[Path] | None,
    from_env: bool | None,
    seconds: float,
    as_json: bool,
    record: bool,
) -> int:
    import asyncio
    import json

    from opsdash.cli.render import checks_text
    from opsdash.core.alerts import check_candidates, check_scope
    from opsdash.core.findings import new_run_id, worst
    from opsdash.core.health.model import CheckResult
    from opsdash.core.health.state import SustainedState
    from opsdash.ops.alerts import BackgroundAlerts
    from opsdash.ops.services import watcher
    from opsdash.storage.history import History

    w = watcher(loaded, names=names, env_files=env_files, from_env=from_env, interval=seconds)
    run_id = new_run_id()
    latest: dict[str, CheckResult] = {}
    history = History.open(session.settings.resolved_data_dir()) if record else None
    redraw = sys.stdout.isatty()

    alerts = BackgroundAlerts(session.settings, session.operator, loaded.profile) if record else None

    def on_result(result: CheckResult, state: SustainedState) -> None:
        latest[result.name] = result
        if history is not None:
            history.record_checks(run_id, [result], {result.name: state.status})
        if alerts is not None:  # sustained state: a check alerts after its failure threshold
            alerts.submit(check_candidates([result], {result.name: state.status}), check_scope([result]))
        if as_json:
            emit(json.dumps({**result.to_dict(), "sustained": state.status.value}))
            return
        if len(latest) < len(w.checks) and not redraw:
            return
        ordered = [latest[c.name] for c in w.checks if c.name in latest]
        screen = checks_text(ordered, w.states)
        if redraw:
            click.echo("\x1b[H\x1b[2J", nl=False)
            emit(f"opsdash check --watch {seconds:g}s — {loaded.profile.target.name} — Ctrl-C to stop")
        emit(screen)

    try:
        asyncio.run(w.run(on_result))
    except KeyboardInterrupt:
        pass
    finally:
        if history is not None:
            history.close()
        if alerts is not None:
            alerts.close()
    return worst(s.status for s in w.states.values()).exit_code


# ---------------------------------------------------------------- deploy gates


def _gate_output(report: Any, as_json: bool) -> None:
    from opsdash.cli.render import report_text
    from opsdash.core.readiness import gate

    if as_json:
        emit_json({**report.to_dict(), "gate": gate(report)})
        return
    label = gate(report)
    colour = {"GO": "green", "NO-GO": "red"}.get(label, "magenta")
    emit(click.style(label, fg=colour, bold=True) + f"  {report.kind} for {report.target}")
    emit(report_text(report))
    if report.summary.get("next"):
        emit(click.style(f"next: {report.summary['next']}", fg="cyan"))


@cli.command()
@common_options
@click.option("--no-history", is_flag=True, help="Do not record this run (nor alert on it).")
def preflight(
    config: Path | None,
    env_files: tuple[Path, ...],
    from_env: bool | None,
    as_json: bool,
    operator: str | None,
    no_history: bool,
) -> None:
    """The pre-deploy go/no-go: environment validation, every live check (TLS and the webhook
    self-test among them) and rollback readiness, as one verdict with every reason listed.

    Recorded in history (a green preflight is the baseline verify-deploy compares with) and the
    audit log; a NO-GO raises an alert.

    \b
    Exit codes: 0 GO, 1 GO with warnings, 2 NO-GO, 3 UNKNOWN or usage/config error.
    """
    from opsdash.ops.deploys import preflight as run_preflight
    from opsdash.ops.deploys import progress_to_stderr

    session = open_session(config, operator)
    report = run_preflight(
        session.require_config(),
        session.settings,
        session.operator,
        env_files=list(env_files) or None,
        from_env=from_env,
        record=not no_history,
        progress=progress_to_stderr if not as_json else lambda _m: None,
    )
    _gate_output(report, as_json)
    sys.exit(report.exit_code())


@cli.command("verify-deploy")
@common_options
@click.option(
    "--window",
    type=click.FloatRange(min=1),
    default=300,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the checks to settle.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.5),
    default=10,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between sweeps of all checks.",
)
@click.option(
    "--stable",
    type=click.IntRange(1, 100),
    default=3,
    show_default=True,
    metavar="N",
    help="Consecutive passing sweeps that count as settled.",
)
@click.option(
    "--expect-version", metavar="V", help="The release that must now be served ([deploy] version_url)."
)
def verify_deploy_cmd(
    config: Path | None,
    env_files: tuple[Path, ...],
    from_env: bool | None,
    as_json: bool,
    operator: str | None,
    window: float,
    interval: float,
    stable: int,
    expect_version: str | None,
) -> None:
    """After a deploy: watch the checks until they settle, confirm the served release, and compare
    with the last green run (latency regressions, metrics that fell, certificates that now expire
    sooner, env values whose fingerprint changed). On failure it points to the rollback runbook.

    \b
    Exit codes: 0 OK, 1 WARN, 2 CRIT (roll back), 3 UNKNOWN or usage/config error.
    """
    from opsdash.ops.deploys import progress_to_stderr, verify_deploy

    session = open_session(config, operator)
    report = verify_deploy(
        session.require_config(),
        session.settings,
        session.operator,
        window=window,
        interval=interval,
        stable=stable,
        expect_version=expect_version,
        env_files=list(env_files) or None,
        from_env=from_env,
        progress=progress_to_stderr if not as_json else lambda _m: None,
    )
    _gate_output(report, as_json)
    sys.exit(report.exit_code())


# ---------------------------------------------------------------- history


@cli.group()
def history() -> None:
    """Past runs kept in the local history database (OPSDASH_DATA_DIR)."""


def _history(config: Path | None) -> Any:
    from opsdash.storage.history import History

    session = open_session(config, None, require=False)
    return History.open(session.settings.resolved_data_dir())


@history.command("list")
@config_option
@json_option
@click.option(
    "--limit",
    "-n",
    default=20,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="How many runs to show, newest first.",
)
@click.option("--kind", help="Only runs of this kind (validate, ...).")
def history_list(config: Path | None, as_json: bool, limit: int, kind: str | None) -> None:
    """List recent runs, newest first."""
    from opsdash.cli.render import runs_table

    with _history(config) as h:
        runs = h.list_runs(limit=limit, kind=kind)
    if as_json:
        emit_json([{**r.__dict__, "verdict": r.verdict.value} for r in runs])
    else:
        emit(runs_table(runs))


@history.command("show")
@click.argument("run")
@config_option
@json_option
def history_show(run: str, config: Path | None, as_json: bool) -> None:
    """Show one run's report. RUN is an id, a unique prefix of one, `latest` or `latest~N`."""
    from opsdash.cli.render import report_text
    from opsdash.cli.runbook_io import print_session
    from opsdash.storage.runbooks import RunbookStore

    with _history(config) as h:
        row = h.resolve(run)
        if row.kind == "runbook":
            state = RunbookStore(h).load(row.run_id)
            assert state is not None
            if as_json:
                emit_json(
                    {
                        **state.__dict__,
                        "status": state.status.value,
                        "steps": [{**s.__dict__, "status": s.status.value} for s in state.steps],
                    }
                )
            else:
                from opsdash.core.runbooks.parser import parse as parse_runbook

                book, _problems = parse_runbook(Path(state.runbook_path))
                print_session(state, book)
            return
        report = h.report(row)
    if as_json:
        emit_json(report.to_dict())
    else:
        emit(report_text(report))


@history.command("diff")
@click.argument("run_a")
@click.argument("run_b", default="latest")
@config_option
@json_option
def history_diff(run_a: str, run_b: str, config: Path | None, as_json: bool) -> None:
    """What changed from RUN_A to RUN_B (default: the latest run).

    Lists new, resolved and changed findings, and env keys whose value changed (by fingerprint;
    values are never stored). Exit code 0 when nothing changed, 1 when something did.
    """
    from opsdash.cli.render import diff_dict, diff_text
    from opsdash.core.diff import diff_runs

    with _history(config) as h:
        a, b = h.resolve(run_a), h.resolve(run_b)
        diff = diff_runs(
            h.findings(a.run_id),
            h.findings(b.run_id),
            {k: v.fingerprint for k, v in h.env_keys(a.run_id).items()},
            {k: v.fingerprint for k, v in h.env_keys(b.run_id).items()},
        )
    if as_json:
        emit_json(diff_dict(a, b, diff))
    else:
        emit(diff_text(a, b, diff))
    sys.exit(0 if diff.empty else 1)


# ---------------------------------------------------------------- webhook

SCHEME_NAMES = ["ikhokha", "github", "stripe", "standard", "slack", "shopify", "generic"]


def _read_body(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the body ({exc.strerror})") from None


def _parse_headers(values: tuple[str, ...]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition(":")
        if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
            raise click.UsageError(f"--header {value[:60]!r}: expected 'Name: value'")
        headers[name.strip()] = text.strip()
    return headers


def _webhook_profile(
    config: Path | None, env_files: tuple[Path, ...], from_env: bool | None
) -> tuple[Any, Any]:
    """The profile (when there is one) and the target env it reads secrets from."""
    from opsdash.core.validators import load_target_env

    session = open_session(config, None, require=config is not None)
    if session.config is None:
        return session, None
    env = load_target_env(
        session.config.profile, env_files=list(env_files) or None, from_env=from_env, required=False
    )
    return session, env


@cli.group()
def webhook() -> None:
    """Verify captured webhook deliveries, and sign test deliveries."""


@webhook.command("verify")
@click.option("--scheme", type=click.Choice(SCHEME_NAMES), help="Signature scheme. Default: the profile's.")
@click.option(
    "--secret-env",
    "secret_envs",
    multiple=True,
    metavar="VAR",
    help="Environment variable holding a secret (repeatable while rotating). Default: the profile's.",
)
@click.option("--body", "body_path", required=True, metavar="FILE", help="The raw body ('-' for stdin).")
@click.option(
    "--header", "headers", multiple=True, metavar="'Name: value'", help="A delivery header (repeatable)."
)
@click.option(
    "--path", "path", default=None, help="The path the delivery was posted to. Default: the profile's."
)
@click.option("--source-ip", help="Where the delivery came from (checked against allowed_sources).")
@click.option("--now", "now", type=float, help="Verify as of this UNIX time (default: now).")
@env_options
@json_option
def webhook_verify(
    scheme: str | None,
    secret_envs: tuple[str, ...],
    body_path: str,
    headers: tuple[str, ...],
    path: str | None,
    source_ip: str | None,
    now: float | None,
    config: Path | None,
    env_files: tuple[Path, ...],
    from_env: bool | None,
    as_json: bool,
) -> None:
    """Verify one delivery: signature over the raw bytes, timestamp tolerance, replay, source.

    The verdict is one of: verified, missing-header, malformed-header, bad-signature, stale,
    from-the-future, replayed, source-not-allowed, app-id-mismatch. Every failure is a security
    event in the audit log, and a burst from one source raises an alert. Secrets come from
    environment variables or the profile, never from the command line.

    \b
    Exit codes: 0 verified, 2 not verified, 3 usage/config error.
    """
    import time

    from opsdash.core.webhooks import BurstRule, Delivery
    from opsdash.ops.services import verify_delivery, webhook_verifier
    from opsdash.storage.history import History

    session, env = _webhook_profile(config, env_files, from_env)
    profile = session.config.profile if session.config else None
    at = time.time() if now is None else now
    with History.open(session.settings.resolved_data_dir()) as history:
        verifier = webhook_verifier(
            profile,
            scheme=scheme,
            secret_envs=secret_envs,
            env=env,
            seen=lambda s, i, exp: history.seen_delivery(s, i, exp, at),
        )
        delivery = Delivery(
            _read_body(body_path),
            _parse_headers(headers),
            path or (profile.webhook.path if profile else "/"),
            source_ip,
        )
        cfg = profile.webhook if profile else None
        burst = BurstRule(cfg.burst_threshold, cfg.burst_window) if cfg else None
        verdict, alert = verify_delivery(
            session.settings, session.operator, verifier, delivery, at, history, burst
        )
        if alert is not None and profile is not None:
            from opsdash.ops.alerts import send_event_alert

            send_event_alert(
                session.settings, session.operator, profile, history, history.alerts(alert["rule"])[-1]
            )
    if as_json:
        emit_json({**verdict.to_dict(), "alert": alert})
    else:
        label = (
            click.style("VERIFIED", fg="green", bold=True)
            if verdict.ok
            else click.style("REJECTED", fg="red", bold=True)
        )
        emit(f"{label}  [{verdict.outcome}] {verdict.scheme}: {verdict.message}")
        if verdict.delivery_id:
            emit(f"  delivery id: {verdict.delivery_id}")
        if verdict.skew_s is not None:
            emit(f"  clock skew: {verdict.skew_s:+.0f} s (now minus the delivery's timestamp)")
        if alert:
            emit(click.style(f"  ALERT: {alert['detail']}", fg="red"), err=True)
    sys.exit(0 if verdict.ok else 2)


@webhook.command("sign")
@click.option("--scheme", type=click.Choice(SCHEME_NAMES), help="Signature scheme. Default: the profile's.")
@click.option("--secret-env", "secret_env", metavar="VAR", help="Environment variable holding the secret.")
@click.option("--body", "body_path", required=True, metavar="FILE", help="The raw body ('-' for stdin).")
@click.option("--path", "path", default=None, help="Path the delivery will be posted to (iKhokha signs it).")
@click.option("--id", "delivery_id", help="Delivery id (Standard Webhooks, GitHub, Shopify).")
@click.option("--timestamp", type=int, help="UNIX timestamp to sign with (default: now).")
@env_options
@json_option
def webhook_sign(
    scheme: str | None,
    secret_env: str | None,
    body_path: str,
    path: str | None,
    delivery_id: str | None,
    timestamp: int | None,
    config: Path | None,
    env_files: tuple[Path, ...],
    from_env: bool | None,
    as_json: bool,
) -> None:
    """Print the signature headers for a body, to build test deliveries (curl -H ...).

    A header value the profile treats as a secret (iKhokha's application id, say) is printed as
    ${VAR}, for your shell to expand; a secret is never printed.
    """
    import secrets as random
    import time

    from opsdash.core.webhooks import Delivery, sign
    from opsdash.ops.services import webhook_verifier

    session, env = _webhook_profile(config, env_files, from_env)
    profile = session.config.profile if session.config else None
    verifier = webhook_verifier(
        profile, scheme=scheme, secret_envs=(secret_env,) if secret_env else (), env=env
    )
    delivery = Delivery(_read_body(body_path), {}, path or (profile.webhook.path if profile else "/"))
    stamp = int(time.time()) if timestamp is None else timestamp
    msg_id = delivery_id or f"msg_{random.token_hex(12)}"
    headers = sign(
        verifier.scheme, verifier.secrets[0], delivery, verifier.options, timestamp=stamp, delivery_id=msg_id
    )
    app_id_var = profile and (
        profile.webhook.app_id_variable or (profile.provider and profile.provider.app_id_variable)
    )
    if verifier.scheme == "ikhokha" and app_id_var and profile is not None and profile.is_secret(app_id_var):
        headers["IK-APPID"] = f"${{{app_id_var}}}"  # a secret in this profile: name it, never print it
    if as_json:
        emit_json(headers)
    else:
        for name, value in headers.items():
            emit(f"{name}: {value}")


# ---------------------------------------------------------------- runbooks


@cli.group()
def runbook() -> None:
    """Guided incident and deploy runbooks (Markdown files with check gates)."""


@runbook.command("list")
@config_option
@json_option
def runbook_list(config: Path | None, as_json: bool) -> None:
    """List the runbooks from the profile's runbook directories and the shipped ones."""
    from opsdash.ops.services import load_runbooks, runbook_dirs
    from opsdash.storage.history import History
    from opsdash.storage.runbooks import RunbookStore

    session = open_session(config, None, require=False)
    books, problems = load_runbooks(runbook_dirs(session.config.profile if session.config else None))
    with History.open(session.settings.resolved_data_dir()) as history:
        store = RunbookStore(history)
        last: dict[str, Any] = {b.id: next(iter(store.sessions(b.id, limit=1)), None) for b in books}
    if as_json:
        emit_json(
            [
                {
                    "id": b.id,
                    "title": b.title,
                    "severity": b.severity,
                    "steps": len(b.steps),
                    "path": str(b.path),
                    "last_session": last[b.id],
                }
                for b in books
            ]
        )
        return
    width = max((len(b.id) for b in books), default=2)
    emit(click.style(f"{'ID':{width}}  SEV   STEPS  LAST SESSION                         TITLE", bold=True))
    for b in books:
        s = last[b.id]
        when = f"{s['status']:9} {s['started_at'][:19]}" if s else "never"
        emit(f"{b.id:{width}}  {b.severity:5} {len(b.steps):5}  {when:35}  {b.title}")
    for problem in problems:
        emit(f"warning: {problem} (run 'opsdash runbook check')", err=True)


@runbook.command("show")
@click.argument("ref", metavar="ID|PATH")
@config_option
def runbook_show(ref: str, config: Path | None) -> None:
    """Show a runbook: parameters and every step with its command or check gate."""
    from opsdash.ops.services import find_runbook

    session = open_session(config, None, require=False)
    book = find_runbook(ref, session.config.profile if session.config else None)
    emit(click.style(f"{book.title}  ({book.id}, {book.severity})", bold=True))
    emit(f"  {book.summary}")
    emit(f"  file: {book.path}")
    for p in book.parameters:
        rules = (
            f" pattern {p.pattern}" if p.pattern else (f" one of {', '.join(p.choices)}" if p.choices else "")
        )
        emit(f"  parameter {p.name}: {p.prompt}{rules}" + (f" (default {p.default})" if p.default else ""))
    for step in book.steps:
        extra = "" if step.kind == "manual" else f"  on failure: {step.on_fail}"
        emit(
            f"\n{step.index + 1}. [{step.kind}] {step.title}  #{step.id}{extra}"
            + ("  (main path ends)" if step.end else "")
        )
        if step.action:
            emit("\n".join("     " + line for line in step.action.rstrip().splitlines()))


@runbook.command("check")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@config_option
def runbook_check(paths: tuple[Path, ...], config: Path | None) -> None:
    """Lint runbooks: front matter, check names (against the profile), gotos, unreachable steps,
    undeclared parameters. With no PATH, every runbook opsdash would offer. Exit 3 on errors."""
    from opsdash.cli.runbook_io import lint_paths
    from opsdash.ops.services import runbook_dirs

    session = open_session(config, None, require=False)
    profile = session.config.profile if session.config else None
    targets = list(paths) or runbook_dirs(profile)
    names = [c.name for c in profile.checks] if profile else None
    count, problems = lint_paths(targets, names)
    for problem in problems:
        emit(problem, err=True)
    if names is None:
        emit("note: no profile, so check names were not verified (pass --config)", err=True)
    if problems:
        emit(f"{len(problems)} problem(s) in {count} runbook(s)", err=True)
        sys.exit(EXIT_UNKNOWN)
    emit(f"{count} runbook(s) OK")


@runbook.command("run")
@click.argument("ref", metavar="ID|PATH")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A parameter (repeatable).")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show the plan with parameters filled in and run the checks; run no command.",
)
@click.option(
    "--resume", "resume", metavar="SESSION", help="Continue an interrupted session (an id, or 'latest')."
)
@env_options
@click.option("--operator", envvar="OPSDASH_OPERATOR", help="Who is running this. Default: OS user.")
def runbook_run(
    ref: str,
    params: tuple[str, ...],
    dry_run: bool,
    resume: str | None,
    config: Path | None,
    env_files: tuple[Path, ...],
    from_env: bool | None,
    operator: str | None,
) -> None:
    """Step through a runbook in the terminal.

    Manual steps are confirmed, commands run only after you say so (output is kept), check gates
    must pass before the runbook continues, and on failure a step's on_fail (abort, continue,
    goto:STEP) applies. Every transition is saved before it is acted on and written to the audit
    log: after a dropped SSH session, --resume continues at the right step, and a command that was
    running is reported as interrupted, never re-run silently.

    \b
    Exit codes: 0 completed, 1 completed with failed or skipped steps, 2 aborted, 3 paused or error.
    """
    from opsdash.cli.runbook_io import collect_params, guided, parse_params, session_for
    from opsdash.cli.runbook_io import dry_run as plan
    from opsdash.core.runbooks.executor import Executor
    from opsdash.ops.audit import audit_event
    from opsdash.ops.services import find_runbook, gate_runner, runbook_audit
    from opsdash.storage.history import History
    from opsdash.storage.runbooks import RunbookStore

    session = open_session(config, operator, require=False)
    profile = session.config.profile if session.config else None
    book = find_runbook(ref, profile)
    runner = gate_runner(
        session.config,
        session.settings,
        session.operator,
        env_files=list(env_files) or None,
        from_env=from_env,
    )
    audit = runbook_audit(session.settings, session.operator)
    if dry_run:
        values = collect_params(book, parse_params(params), interactive=sys.stdin.isatty())
        audit_event(session.settings, session.operator, "operator_action", "runbook-dry-run", subject=book.id)
        sys.exit(plan(book, values, runner))
    with History.open(session.settings.resolved_data_dir()) as history:
        store = RunbookStore(history)
        if resume:
            try:
                ex = Executor.resume(book, session_for(resume, store, book.id), store, runner, audit)
            except (LookupError, ValueError) as exc:
                raise InputError(str(exc)) from None
            emit(f"resuming session {ex.state.id} of {book.title}")
            from opsdash.cli.runbook_io import print_session

            print_session(ex.state, book)
        else:
            values = collect_params(book, parse_params(params), interactive=True)
            ex = Executor.start(book, values, session.operator, store, runner, audit)
            emit(click.style(f"{book.title} — session {ex.state.id}", bold=True))
            emit(f"  if this terminal goes away: opsdash runbook run {book.id} --resume {ex.state.id}")
            if book.intro:
                emit("\n".join("  " + line for line in book.intro.splitlines()))
        sys.exit(guided(ex))


# ---------------------------------------------------------------- audit


@cli.group()
def audit() -> None:
    """The tamper-evident audit log of who did what (in OPSDASH_DATA_DIR)."""


@audit.command("tail")
@click.option(
    "-n",
    "--lines",
    "count",
    default=20,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="How many records to show.",
)
@click.option("-f", "--follow", is_flag=True, help="Keep printing records as they are appended.")
@click.option(
    "--kind",
    type=click.Choice(["operator_action", "security_event", "check_result", "system"]),
    help="Only records of this kind.",
)
@click.option("--operator", "who", help="Only records by this operator.")
@click.option("--grep", help="Only records containing this text (case-insensitive).")
@click.option("--since", help="Only records since a time: 2026-11-26T10:00, or 15m / 2h / 3d ago.")
@json_option
def audit_tail(
    count: int,
    follow: bool,
    kind: str | None,
    who: str | None,
    grep: str | None,
    since: str | None,
    as_json: bool,
) -> None:
    """Show the newest audit records; -f follows appends (survives truncation and rotation).

    Lines that are not JSON or not UTF-8 are shown marked, never skipped. Reading starts from the
    end of the file, so even a multi-gigabyte log shows its last page at once.
    """
    import json
    import time

    from opsdash.core.audit.log import LOG_NAME
    from opsdash.core.audit.tail import Entry, Follower, RecordFilter, parse_since, tail

    try:
        flt = RecordFilter(kind, who, grep, parse_since(since) if since else None)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    path = open_session(None, None, require=False).settings.resolved_data_dir() / LOG_NAME

    def show(entry: Entry) -> None:
        if as_json:
            emit(
                json.dumps(
                    entry.record
                    if entry.record is not None
                    else {"unparseable": entry.problem, "line": entry.text()}
                )
            )
        else:
            emit(entry.summary())

    if not path.exists() and not follow:
        emit(f"no audit log yet at {path}", err=True)
        return
    follower = Follower.at_end(path)
    for entry in tail(path, count, flt):
        show(entry)
    if not follow:
        return
    try:
        while True:
            lines, event = follower.poll()
            if event:
                emit(f"-- log {event}; reading it from the start --", err=True)
            for raw in lines:
                entry = Entry.parse(raw)
                if flt.match(entry):
                    show(entry)
            sys.stdout.flush()
            time.sleep(0.25)
    except KeyboardInterrupt:
        return


@audit.command("verify")
@click.option("--anchor", help="SEQ:MAC the log must still contain (default: the latest anchor in history).")
@json_option
def audit_verify(anchor: str | None, as_json: bool) -> None:
    """Check the whole chain: MACs, sequence, links, and that nothing was cut after the anchor.

    Reports OK, or the first bad record and why (MAC mismatch, gap, broken link, reordering,
    truncated before the anchor, unparseable line). Exit 0 when intact, 2 when not.
    """
    from opsdash.core.audit.log import Head, parse_anchor, verify
    from opsdash.ops.audit import audit_key
    from opsdash.storage.history import History

    settings = open_session(None, None, require=False).settings
    data_dir = settings.resolved_data_dir()
    wanted: Head | None = None
    source = "none"
    if anchor:
        try:
            wanted = parse_anchor(anchor)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        source = "--anchor"
    elif (data_dir / "history.db").exists():
        with History.open(data_dir) as history:
            latest = history.latest_anchor()
        if latest:
            wanted, source = (
                Head(latest["log_id"], latest["seq"], latest["mac"]),
                f"history run {latest['run_id']}",
            )
    result = verify(data_dir, audit_key(settings), wanted)
    if as_json:
        emit_json({**result.to_dict(), "anchor_source": source})
    else:
        if result.ok:
            head = result.head
            emit(
                click.style("OK", fg="green", bold=True)
                + f"  {result.records} records in {len(result.files)} "
                f"file(s) verify" + (f"; head seq {head.seq}" if head else "") + f"; anchor: {source}"
            )
        else:
            emit(click.style("TAMPERED", fg="red", bold=True) + f"  {result.problem}")
            emit(f"  {result.records} records verified before it; anchor: {source}")
        for note in result.notes:
            emit(f"  note: {note}")
    sys.exit(0 if result.ok else 2)


# ---------------------------------------------------------------- config and init


@cli.group("config")
def config_group() -> None:
    """Inspect and check opsdash's configuration and the target profile."""


@config_group.command("show")
@config_option
@json_option
def config_show(config: Path | None, as_json: bool) -> None:
    """Every setting and profile value with where it came from (secrets masked)."""
    from opsdash.ops.config_report import config_rows

    session = open_session(config, None)
    rows = config_rows(session.require_config(), session.settings)
    if as_json:
        emit_json([{"key": k, "value": v, "source": s} for k, v, s in rows])
        return
    width = max(len(k) for k, _, _ in rows)
    emit(f"config file: {session.require_config().path}")
    for key, value, source in rows:
        emit(f"{key:{width}}  {value}  " + click.style(f"[{source}]", dim=True))


@config_group.command("validate")
@config_option
@json_option
def config_validate(config: Path | None, as_json: bool) -> None:
    """Check the config file; list every problem with file and line. Exit 0 valid, 3 invalid."""
    from opsdash.ops.config import parse_config, read_config_text

    path = find_config(config)
    parsed, problems = parse_config(path, read_config_text(path))
    if as_json:
        emit_json({"path": str(path), "valid": not problems, "problems": problems})
    elif problems:
        for problem in problems:
            emit(problem, err=True)
    else:
        assert parsed is not None
        emit(
            f"{path}: valid profile for {parsed.target.name} ({parsed.target.environment}): "
            f"{len(parsed.env.required)} required variables, {len(parsed.policy)} policies"
        )
        missing = [str(f) for f in load_config(path).profile.env.files if not f.exists()]
        if missing:
            emit(f"note: env file(s) not found here: {', '.join(missing)} (use --env-file or --from-env)")
    sys.exit(EXIT_UNKNOWN if problems else 0)


@config_group.command("schema")
def config_schema_cmd() -> None:
    """Print the JSON Schema of opsdash.toml (for editors and CI linting)."""
    from opsdash.ops.config import config_schema

    emit_json(config_schema())


@cli.command()
@click.option("--force", is_flag=True, help="Overwrite an existing opsdash.toml.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    help="Project directory to inspect and write into.",
)
def init(force: bool, directory: Path) -> None:
    """Write a starter opsdash.toml for the project in the current directory.

    Detects env files (.env.production, .env, .env.example, .env.development), VITE_-style
    client-exposed variables, secrets, URL variables and an iKhokha provider. Only variable names are
    read into the profile, never values. Review the file, then run 'opsdash validate'.
    """
    from opsdash.ops.audit import audit_event
    from opsdash.ops.init import write_profile

    path = write_profile(directory, force=force)
    session = open_session(None, None, require=False)
    audit_event(
        session.settings,
        session.operator,
        "operator_action",
        "config-init",
        subject=str(path),
        outcome="written",
    )
    emit(f"wrote {path}")
    emit("next: review it, then run 'opsdash config validate' and 'opsdash validate'")


# ---------------------------------------------------------------- demo


@cli.group(invoke_without_command=True)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    type=click.Choice(sorted(FAULTS)),
    help="Start with this fault on (repeatable).",
)
@click.option(
    "--no-tui",
    is_flag=True,
    help="Only run the simulated target: print its profile path and serve until interrupted.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Workspace for the demo profile and env file. Default: a new temp directory.",
)
@click.pass_context
def demo(ctx: click.Context, faults: tuple[str, ...], no_tui: bool, directory: Path | None) -> None:
    """Try opsdash on a simulated BetaSkill deployment (nothing leaves this machine).

    Starts a BetaSkill app and an iKhokha API on 127.0.0.1 (HTTPS, with a CA made at start-up),
    writes a matching profile and env file with fake credentials, and opens the dashboard on it.
    """
    if ctx.invoked_subcommand is not None:
        return
    import asyncio
    import tempfile

    from opsdash.demo.control import BackgroundDemo, serve

    session = open_session(None, None, require=False)
    data_dir = session.settings.resolved_data_dir()
    workdir = directory or Path(tempfile.mkdtemp(prefix="opsdash-demo-"))
    if no_tui:

        def ready(profile: Path, target: Any, _loop: Any, _stop: Any) -> None:
            click.echo(str(profile))
            sys.stdout.flush()
            emit(
                f"demo running: app {target.app.base_url}, iKhokha API {target.api.base_url}; "
                f"faults on: {', '.join(sorted(target.faults)) or 'none'}",
                err=True,
            )
            emit(f"try: opsdash check --config {profile}   |   Ctrl-C stops the demo", err=True)

        asyncio.run(serve(workdir, data_dir, faults, ready))
        return
    from opsdash.tui.app import run_dashboard

    background = BackgroundDemo(workdir, data_dir, faults)
    try:
        assert background.profile is not None
        run_dashboard(background.profile, demo=True)
    finally:
        background.stop()


demo.help = (
    inspect.cleandoc(demo.help or "")
    + "\n\n\b\nFaults (switch them while it runs with 'opsdash demo fault NAME on|off'):\n"
    + "\n".join(f"  {name:22} {text}" for name, text in FAULTS.items())
)


@demo.command("fault")
@click.argument("name", required=False, type=click.Choice(sorted(FAULTS)))
@click.argument("state", required=False, type=click.Choice(["on", "off"]))
def demo_fault(name: str | None, state: str | None) -> None:
    """Switch a fault of the running demo on or off; with no arguments, list the faults."""
    from opsdash.demo.control import list_faults, set_fault
    from opsdash.ops.audit import audit_event

    data_dir = open_session(None, None, require=False).settings.resolved_data_dir()
    if name is None:
        active = set(list_faults(data_dir))
        for fault, text in FAULTS.items():
            emit(f"{'on ' if fault in active else 'off'}  {fault:22} {text}")
        return
    if state is None:
        raise click.UsageError("say 'on' or 'off' after the fault name")
    now_on = set_fault(data_dir, name, state == "on")
    session = open_session(None, None, require=False)
    audit_event(
        session.settings, session.operator, "operator_action", "demo-fault", subject=name, outcome=state
    )
    emit(f"{name} is {state}; faults on: {', '.join(sorted(now_on)) or 'none'}")


# ---------------------------------------------------------------- entry point


def _fail(message: str) -> None:
    emit(f"opsdash: error: {message}", err=True)
    sys.exit(EXIT_UNKNOWN)


def main(argv: list[str] | None = None) -> None:
    """Entry point: maps every failure to one clear line and exit code 3."""
    try:
        rv = cli.main(args=argv, prog_name="opsdash", standalone_mode=False)
    except OpsdashError as exc:
        _fail(str(exc))
    except click.UsageError as exc:
        hint = f"\nTry '{exc.ctx.command_path} --help' for help." if exc.ctx else ""
        emit(f"opsdash: error: {exc.format_message()}{hint}", err=True)
        sys.exit(EXIT_UNKNOWN)
    except click.ClickException as exc:
        _fail(exc.format_message())
    except click.exceptions.Abort:
        emit("aborted", err=True)
        sys.exit(130)
    except (BrokenPipeError, KeyboardInterrupt):
        sys.exit(130)
    except Exception as exc:
        detail = redactor.redact(f"{type(exc).__name__}: {exc}")
        if os.environ.get("OPSDASH_DEBUG"):
            emit(redactor.redact(traceback.format_exc()), err=True)
        _fail(f"internal error ({detail}); set OPSDASH_DEBUG=1 for the traceback and report it")
    sys.exit(rv if isinstance(rv, int) else 0)
