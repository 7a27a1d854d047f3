"""`opsdash webhook verify|sign`: exit codes, the profile's scheme, audit events and burst alerts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Project, good_env

NOW = "1764150000"


@pytest.fixture
def body(tmp_path: Path) -> Path:
    path = tmp_path / "callback.json"
    path.write_bytes(b'{"paylinkID":"pl_123","status":"SUCCESS","externalTransactionID":"ord_9"}')
    return path


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HOOK_SECRET", "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHMtMDAwMDAwMDA=")
    return "HOOK_SECRET"


def headers_of(run, *args: str) -> list[str]:  # type: ignore[no-untyped-def]
    result = run("webhook", "sign", *args)
    assert result.code == 0, result.err
    return [f"--header={line}" for line in result.out.splitlines()]


def test_sign_then_verify_round_trip(run, body: Path, secret_env: str) -> None:
    common = ["--scheme", "standard", "--secret-env", secret_env, "--body", str(body)]
    headers = headers_of(run, *common, "--timestamp", NOW, "--id", "msg_42")
    result = run("webhook", "verify", *common, *headers, "--now", NOW, "--json")
    assert result.code == 0
    verdict = json.loads(result.out)
    assert verdict["verified"] and verdict["delivery_id"] == "msg_42" and verdict["clock_skew_s"] == 0
    replay = run("webhook", "verify", *common, *headers, "--now", NOW)
    assert replay.code == 2 and "[replayed]" in replay.out


def test_profile_scheme_for_betaskill(run, project: Project, body: Path) -> None:
    env = good_env()
    project.write_env(env)
    common = ["--config", str(project.profile), "--body", str(body)]
    printed = headers_of(run, *common)
    # the application id is a secret in this profile: sign names the variable instead of printing it
    assert "--header=IK-APPID: ${IKHOKHA_API_KEY}" in printed
    headers = [h.replace("${IKHOKHA_API_KEY}", env["IKHOKHA_API_KEY"]) for h in printed]
    assert run("webhook", "verify", *common, *headers).code == 0
    tampered = body.read_bytes().replace(b"SUCCESS", b"FAILURE")
    body.write_bytes(tampered)
    result = run("webhook", "verify", *common, *headers)
    assert result.code == 2 and "[bad-signature]" in result.out
    assert env["IKHOKHA_WEBHOOK_SECRET"] not in result.out + result.err


def test_stale_and_future_with_now(run, body: Path, secret_env: str) -> None:
    common = ["--scheme", "stripe", "--secret-env", secret_env, "--body", str(body)]
    headers = headers_of(run, *common, "--timestamp", NOW)
    stale = run("webhook", "verify", *common, *headers, "--now", str(int(NOW) + 900))
    assert stale.code == 2 and "[stale]" in stale.out and "clock skew: +900 s" in stale.out
    future = run("webhook", "verify", *common, *headers, "--now", str(int(NOW) - 900))
    assert future.code == 2 and "[from-the-future]" in future.out


def test_failures_are_audited_and_a_burst_alerts_once_per_window(run, body: Path, secret_env: str) -> None:
    args = [
        "webhook",
        "verify",
        "--scheme",
        "github",
        "--secret-env",
        secret_env,
        "--body",
        str(body),
        "--header",
        "X-Hub-Signature-256: sha256=" + "0" * 64,
        "--source-ip",
        "198.51.100.9",
    ]
    alerts = []
    for i in range(12):  # 12 bad deliveries within 110 s: one burst, one alert
        result = run(*args, "--now", str(int(NOW) + i * 10), "--json")
        assert result.code == 2
        alerts.append(json.loads(result.out)["alert"])
    raised = [a for a in alerts if a]
    assert len(raised) == 1 and raised[0]["source"] == "198.51.100.9" and alerts[4] == raised[0]
    second = [
        json.loads(run(*args, "--now", str(int(NOW) + 1000 + i), "--json").out)["alert"] for i in range(6)
    ]
    assert [bool(a) for a in second] == [False, False, False, False, True, False]  # a new burst, a new alert
    events = [
        json.loads(x)
        for x in run("audit", "tail", "-n", "100", "--json", "--kind", "security_event").out.splitlines()
    ]
    assert sum(1 for e in events if e["action"] == "webhook-verification-failed") == 18
    assert sum(1 for e in events if e["action"] == "alert") == 2


def test_usage_errors(run, body: Path, secret_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bad_header = run(
        "webhook",
        "verify",
        "--scheme",
        "github",
        "--secret-env",
        secret_env,
        "--body",
        str(body),
        "--header",
        "no colon here",
    )
    assert bad_header.code == 3 and "expected 'Name: value'" in bad_header.err
    unset = run(
        "webhook", "verify", "--scheme", "github", "--secret-env", "NOT_SET_ANYWHERE", "--body", str(body)
    )
    assert unset.code == 3 and "NOT_SET_ANYWHERE: not set" in unset.err
    missing = run("webhook", "verify", "--scheme", "github", "--secret-env", secret_env, "--body", "/nope")
    assert missing.code == 3 and "/nope: cannot read the body" in missing.err
    no_secret = run("webhook", "verify", "--scheme", "github", "--body", str(body))
    assert no_secret.code == 3 and "--secret-env" in no_secret.err


def test_no_option_takes_a_secret_value(run) -> None:
    for command in ("verify", "sign"):
        help_text = run("webhook", command, "--help").out
        assert "--secret-env" in help_text and "--secret " not in help_text
