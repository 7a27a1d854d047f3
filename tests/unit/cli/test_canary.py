"""Canary secrets planted in every input must never reach any output opsdash writes."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from opsdash.core.findings import Finding
from opsdash.core.validators.context import Context
from tests.conftest import Project, Run, good_env
from tests.servers import closed_port


@pytest.fixture
def canaries(project: Project, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    values = [f"canary{secrets.token_hex(12)}{i}" for i in range(8)]
    env = good_env()
    env["IKHOKHA_API_SECRET"] = values[0]
    env["IKHOKHA_WEBHOOK_SECRET"] = values[0]  # reused: shows up in a finding about both
    env["VITE_IKHOKHA_API_SECRET"] = values[1]  # client-exposed
    env["IKHOKHA_API_KEY"] = "short" + values[2][:5]  # weak
    env["PAYMENT_RETURN_URL"] = f"https://app.betaskill.com/ok?api_key={values[3]}"
    env["DATABASE_URL"] = (
        f"postgres://betaskill:{values[6]}@db.internal:5432/betaskill"  # not a secret's name
    )
    env["REDIS_URL"] = f"redis://:{values[7]}@cache.internal:6379/0"
    text = "".join(f"{k}={v}\n" for k, v in env.items())
    text += f'BROKEN_SECRET="{values[4]}\n'  # an unparseable line holding a secret
    project.write_env(text)
    dev = project.root / ".env.development"
    dev.write_text(f"IKHOKHA_API_SECRET={values[1]}\n")
    profile = project.profile.read_text().replace("[env]\n", '[env]\ndevelopment = ".env.development"\n', 1)
    project.profile.write_text(profile)
    monkeypatch.setenv("OPSDASH_AUDIT_KEY", values[5])
    return values


def _assert_clean(text: str, values: list[str]) -> None:
    for value in values:
        assert value not in text
        assert value[:20] not in text  # not even a recognisable part


def test_no_canary_in_any_command_output(run: Run, project: Project, canaries: list[str]) -> None:
    outputs = []
    for args in (
        ["validate"],
        ["validate", "--json"],
        ["validate", "--verbose"],
        ["config", "show"],
        ["config", "show", "--json"],
        ["config", "validate"],
    ):
        result = run(*args, "--config", project.profile)
        outputs.append(result.out + result.err)
    first = run("validate", "--config", project.profile, "--json")
    assert first.code == 2
    for args in (
        ["history", "list"],
        ["history", "list", "--json"],
        ["history", "show", "latest"],
        ["history", "show", "latest", "--json"],
        ["history", "diff", "latest~1", "latest"],
        ["history", "diff", "latest~1", "latest", "--json"],
    ):
        result = run(*args)
        assert result.code in (0, 1), result.err
        outputs.append(result.out + result.err)
    joined = "\n".join(outputs)
    assert "secret-client-exposed" in joined and "secret-matches-dev" in joined
    assert "url-secret-in-query" in joined and "dotenv-parse-error" in joined
    url_rules = {
        f["subject"]: f["rule"] for f in json.loads(first.out)["findings"] if f["rule"].startswith("url-")
    }
    assert "DATABASE_URL" not in url_rules and "REDIS_URL" not in url_rules  # not http URLs: no http rule
    _assert_clean(joined, canaries)


def test_no_canary_in_history_database_files(
    run: Run, project: Project, canaries: list[str], tmp_path: Path
) -> None:
    assert run("validate", "--config", project.profile).code == 2
    data = tmp_path / "home" / "data" / "opsdash"
    files = sorted(data.glob("history.db*"))
    assert files, "history database was not written"
    blob = b"".join(f.read_bytes() for f in files)
    assert b"secret-client-exposed" in blob  # the findings are there ...
    for value in canaries:
        assert value.encode() not in blob  # ... the secrets are not


@pytest.mark.parametrize("debug", [False, True])
def test_no_canary_in_forced_error_or_traceback(
    run: Run, project: Project, canaries: list[str], monkeypatch: pytest.MonkeyPatch, debug: bool
) -> None:
    def explode(ctx: Context) -> Iterator[Finding]:
        raise RuntimeError(f"bug while comparing {ctx.env.get('IKHOKHA_API_SECRET')}")

    monkeypatch.setattr("opsdash.core.validators.ALL_CHECKS", (explode,))
    if debug:
        monkeypatch.setenv("OPSDASH_DEBUG", "1")
    result = run("validate", "--config", project.profile)
    assert result.code == 3
    assert "internal error" in result.err and "RuntimeError" in result.err
    assert ("Traceback" in result.err) is debug
    assert "sha256:" in result.err  # the secret was replaced by its fingerprint
    _assert_clean(result.out + result.err, canaries)


def test_init_reads_names_never_values(run: Run, tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    canary = f"canary{secrets.token_hex(12)}"
    (app / ".env.production").write_text(f"VITE_NODE_ENV=production\nIKHOKHA_APP_SECRET={canary}\n")
    result = run("init", "--dir", app)
    assert result.code == 0
    assert canary not in (app / "opsdash.toml").read_text() + result.out + result.err


RUNBOOK = """+++
id = "leaky"
title = "Leaky drill"

[[parameters]]
name = "reason"
prompt = "Why"
+++

## Print things {#print}
```command timeout=10
echo "reason: {{reason}}"; grep IKHOKHA_API_SECRET .env.production
```
"""


def test_no_canary_from_a_runbook_command_or_parameter(run: Run, project: Project, tmp_path: Path) -> None:
    """A command that prints the API secret, and the secret typed as a parameter, are masked on the
    terminal, in the session, in history and in the audit log: runbook runs learn the target's
    secrets from its env files first."""
    secret = f"canary{secrets.token_hex(12)}"
    project.write_env({**good_env(), "IKHOKHA_API_SECRET": secret})
    book = project.root / "leaky.md"
    book.write_text(RUNBOOK)
    import subprocess
    import sys

    opsdash = str(Path(sys.executable).with_name("opsdash"))
    result = subprocess.run(
        [
            opsdash,
            "runbook",
            "run",
            str(book),
            "--config",
            str(project.profile),
            "--param",
            f"reason={secret}",
        ],
        input="c\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "IKHOKHA_API_SECRET=" in result.stdout  # the command did print the line
    shown = run("history", "show", "latest", "--config", project.profile, "--json").out
    assert "IKHOKHA_API_SECRET=" in shown
    data = Path(os.environ["OPSDASH_DATA_DIR"])
    for text in (result.stdout, result.stderr, shown):
        _assert_clean(text, [secret])
    for path in data.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


OWN_SECRETS = """+++
id = "env-dump"
title = "Env dump"
+++

## A deploy script that dumps its environment on error {#dump}
```command timeout=10
echo "key=$OPSDASH_AUDIT_KEY token=$OPSDASH_SERVE_TOKEN"; cat "$XDG_CONFIG_HOME/opsdash/audit.key" 2>/dev/null || true
```
"""


@pytest.mark.parametrize("key_from", ["environment", "file"])
def test_a_runbook_command_printing_opsdashs_own_secrets_is_masked(
    run: Run, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key_from: str
) -> None:
    """A runbook command inherits opsdash's environment: the audit key (from OPSDASH_AUDIT_KEY or
    its file) and the serve token it prints are masked on the terminal, in history (which a team
    shares with every database user) and in the audit log, never stored in clear."""
    key, token = f"auditkey{secrets.token_hex(16)}", f"servetoken{secrets.token_hex(12)}"
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    if key_from == "environment":
        monkeypatch.setenv("OPSDASH_AUDIT_KEY", key)
    else:
        monkeypatch.delenv("OPSDASH_AUDIT_KEY", raising=False)
        (config / "opsdash").mkdir(parents=True)
        (config / "opsdash" / "audit.key").write_text(key)
        (config / "opsdash" / "audit.key").chmod(0o600)
    monkeypatch.setenv("OPSDASH_SERVE_TOKEN", token)
    book = project.root / "env-dump.md"
    book.write_text(OWN_SECRETS)
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("opsdash")),
            "runbook",
            "run",
            str(book),
            "--config",
            str(project.profile),
        ],
        input="c\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "key=" in result.stdout and "token=" in result.stdout  # the command did print them
    shown = run("history", "show", "latest", "--config", project.profile, "--json").out
    assert "token=" in shown
    for text in (result.stdout, result.stderr, shown):
        _assert_clean(text, [key, token])
    for path in Path(os.environ["OPSDASH_DATA_DIR"]).rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path
            assert token.encode() not in path.read_bytes(), path


# ---------------------------------------------------------------- secrets wherever they travel

PROFILE_URLS = """
[[alerts.channels]]
name = "hook"
kind = "webhook"
url = "http://hook:{hook_password}@127.0.0.1:{port}/hook?token={hook_token}"

[deploy]
version_url = "http://deploy:{deploy_password}@127.0.0.1:{port}/version?api_key={deploy_key}"

[[checks]]
name = "app-health"
kind = "http"
url = "http://checker:{check_password}@127.0.0.1:{port}/health?api_key={check_key}"
failure_threshold = 1
retries = 0

[[checks]]
name = "ikhokha-api"
kind = "provider"
base_url = "http://api:{provider_password}@127.0.0.1:{port}/public-api/v1/api?api_key={provider_key}"
retries = 0
"""

LEAKIER = """+++
id = "leakier"
title = "Leakier drill"

[[parameters]]
name = "reason"
prompt = "Why"

[[parameters]]
name = "new_token"
prompt = "The new token"
+++

## Note what you saw {#note}

Write it down.

## Print things {#print}
```command timeout=60
echo "reason: {{reason}} token: {{new_token}}"
grep IKHOKHA_API_SECRET .env.production
echo "process: $IKHOKHA_WEBHOOK_SECRET"
cat old.log >&2
echo END-OF-OUTPUT
f="$OPSDASH_DATA_DIR/runbook-output/$OPSDASH_RUNBOOK_SESSION-1.out"
i=0; until grep -q END-OF-OUTPUT "$f" || [ $i -ge 1200 ]; do sleep 0.05; i=$((i+1)); done
cp "$f" on-disk.out
```
"""


@dataclass
class Planted:
    values: list[str]  # every canary: none may appear anywhere
    typed: dict[str, str]  # what the operator types into the runbook: parameters and a note
    book: Path


def _canary(label: str) -> str:
    return f"canary{secrets.token_hex(12)}{label}"


@pytest.fixture
def planted(run: Run, project: Project, canaries: list[str], monkeypatch: pytest.MonkeyPatch) -> Planted:
    """The canaries, and more: a secret in the process environment, the userinfo password and
    `?api_key=` of every URL the profile holds, runbook parameters and a note that look like
    secrets, and a previous value of the API secret that history saw before it was rotated away."""
    from opsdash.core.secrets import redactor

    urls = {
        name: _canary(name)
        for name in (
            "hook_password",
            "hook_token",
            "deploy_password",
            "deploy_key",
            "check_password",
            "check_key",
            "provider_password",
            "provider_key",
        )
    }
    with project.profile.open("a") as profile:
        profile.write(PROFILE_URLS.format(port=closed_port(), **urls))
    process = _canary("process")
    monkeypatch.setenv("IKHOKHA_WEBHOOK_SECRET", process)  # read with --from-env
    current = project.env_file.read_text()
    previous = _canary("previous")
    project.write_env(current.replace(canaries[0], previous))
    assert run("validate", "--config", project.profile).code == 2  # history keeps its fingerprint
    project.write_env(current)
    redactor.clear()  # a new process: it knows the previous value by its fingerprint only
    (project.root / "old.log").write_text(f"an old build still says IKHOKHA_API_SECRET={previous}\n")
    typed = {
        "reason": f"rotation after {_canary('reason')} leaked",
        "new_token": _canary("token"),
        "note": f"paged; api_key={_canary('note')} and {_canary('pasted')}",
    }
    book = project.root / "leakier.md"
    book.write_text(LEAKIER)
    values = [*canaries, *urls.values(), process, previous]
    values += [typed["new_token"], *(w for t in typed.values() for w in t.split() if "canary" in w)]
    return Planted([v.removeprefix("api_key=") for v in values], typed, book)


def _run_leakier(project: Project, planted: Planted) -> subprocess.CompletedProcess[str]:
    opsdash = str(Path(sys.executable).with_name("opsdash"))
    params = [f"reason={planted.typed['reason']}", f"new_token={planted.typed['new_token']}"]
    result = subprocess.run(
        [opsdash, "runbook", "run", str(planted.book), "--config", str(project.profile), "--from-env"]
        + [arg for p in params for arg in ("--param", p)],
        input=f"c\n{planted.typed['note']}\nc\n",
        capture_output=True,
        text=True,
        timeout=120,
        cwd=project.root,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_no_secret_anywhere_opsdash_writes(run: Run, project: Project, planted: Planted) -> None:
    """Every command in every format, the history database, the audit log and a runbook command's
    output file as it was on disk while the command ran: not one planted secret."""
    book = _run_leakier(project, planted)
    on_disk = (project.root / "on-disk.out").read_text()
    assert "IKHOKHA_API_SECRET=" in on_disk and "END-OF-OUTPUT" in on_disk  # the command printed ...
    assert on_disk.count("••••") >= 5  # ... reason, token, the secret, the process env, the old value
    outputs = [book.stdout, book.stderr, on_disk]
    config: tuple[str | Path, ...] = ("--config", project.profile)
    commands: list[tuple[str | Path, ...]] = [
        *(("validate", *config, *f) for f in ([], ["--json"], ["--verbose"], ["--format", "sarif"])),
        ("validate", *config, "--from-env", "--format", "github"),
        *(("check", *config, *f) for f in ([], ["--json"], *(["--format", f] for f in ("junit", "github")))),
        ("check", *config, "--format", "nagios"),
        *(("preflight", *config, *f) for f in ([], ["--json"], ["--format", "sarif"], ["--format", "junit"])),
        *(("verify-deploy", *config, "--window", "1", "--interval", "0.5", *f) for f in ([], ["--json"])),
        *(("config", c, *config, *f) for c in ("show", "validate") for f in ([], ["--json"])),
        *(("history", "list", *f) for f in ([], ["--json"])),
        *(("history", "show", r, *f) for r in ("latest", "latest~1") for f in ([], ["--json"])),
        *(("history", "diff", "latest~1", "latest", "--kind", "validate", *f) for f in ([], ["--json"])),
        ("audit", "tail", "-n", "1000"),
        ("audit", "tail", "-n", "1000", "--json"),
        ("audit", "verify"),
        ("runbook", "show", planted.book, *config),
    ]
    for args in commands:
        result = run(*args)
        assert result.code in (0, 1, 2), (args, result.err)
        outputs.append(result.out + result.err)
    joined = "\n".join(str(o) for o in outputs)
    assert "app-health" in joined and "127.0.0.1" in joined and "version_url" in joined
    assert "runbook-command-finished" in joined and "leakier" in joined
    _assert_clean(joined, planted.values)
    data = Path(os.environ["OPSDASH_DATA_DIR"])
    with contextlib.closing(sqlite3.connect(data / "history.db")) as db:
        dump = "\n".join(db.iterdump())
    assert "http://checker:" in dump and "paged; api_key=" in dump  # the rows are there ...
    _assert_clean(dump, planted.values)  # ... the secrets are not
    files = [p for p in data.rglob("*") if p.is_file()]
    assert any(p.name.startswith("audit.log") for p in files)
    for path in files:  # history.db and its WAL, audit.log, what is left in runbook-output/
        blob = path.read_bytes()
        for value in planted.values:
            assert value.encode() not in blob, path


async def test_no_secret_on_the_dashboard(run: Run, project: Project, planted: Planted) -> None:
    """The dashboard, live on the same profile after the runbook ran: every pane's screen."""
    from opsdash.tui.app import OpsdashApp
    from opsdash.tui.panes.health import HealthPane
    from opsdash.tui.sample import settle
    from tests.waits import until_async

    _run_leakier(project, planted)
    app = OpsdashApp.on_profile(project.profile, record=False)
    screens = []
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        for key in "123456":
            await pilot.press(key)
            await settle(pilot)
            if key == "3":  # the health pane: wait for both checks' results, then show each one's detail
                pane = app.query_one(HealthPane)
                await until_async(lambda: len(pane.results) == 2, "health results", pause=pilot.pause)  # noqa: B023
                await pilot.press("down")
                await settle(pilot)
                screens.append(app.export_screenshot())
                await pilot.press("up")
                await settle(pilot)
            screens.append(app.export_screenshot())
    joined = "\n".join(screens)
    assert "app-health" in joined and "leakier" in joined.lower()
    _assert_clean(joined, planted.values)
