"""Canary secrets planted in every input must never reach any output opsdash writes."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pytest

from tests.conftest import Project, good_env


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


def test_no_canary_in_any_command_output(run, project: Project, canaries: list[str]) -> None:
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
    run, project: Project, canaries: list[str], tmp_path: Path
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
    run, project: Project, canaries: list[str], monkeypatch: pytest.MonkeyPatch, debug: bool
) -> None:
    def explode(ctx):  # type: ignore[no-untyped-def]
        raise RuntimeError(f"bug while comparing {ctx.env.get('IKHOKHA_API_SECRET')}")
        yield  # pragma: no cover

    monkeypatch.setattr("opsdash.core.validators.ALL_CHECKS", (explode,))
    if debug:
        monkeypatch.setenv("OPSDASH_DEBUG", "1")
    result = run("validate", "--config", project.profile)
    assert result.code == 3
    assert "internal error" in result.err and "RuntimeError" in result.err
    assert ("Traceback" in result.err) is debug
    assert "sha256:" in result.err  # the secret was replaced by its fingerprint
    _assert_clean(result.out + result.err, canaries)


def test_init_reads_names_never_values(run, tmp_path: Path) -> None:
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


def test_no_canary_from_a_runbook_command_or_parameter(run, project: Project, tmp_path: Path) -> None:
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
