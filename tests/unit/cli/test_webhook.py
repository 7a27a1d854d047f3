"""`opsdash webhook verify|sign`: exit codes, the profile's scheme, audit events and burst alerts."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path

import pytest

from opsdash.ops.base import Ops
from opsdash.storage.history import History
from tests.conftest import Project, Run, good_env

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


def headers_of(run: Run, *args: str) -> list[str]:
    result = run("webhook", "sign", *args)
    assert result.code == 0, result.err
    return [f"--header={line}" for line in result.out.splitlines()]


def test_sign_then_verify_round_trip(run: Run, body: Path, secret_env: str) -> None:
    common = ["--scheme", "standard", "--secret-env", secret_env, "--body", str(body)]
    headers = headers_of(run, *common, "--timestamp", NOW, "--id", "msg_42")
    result = run("webhook", "verify", *common, *headers, "--now", NOW, "--json")
    assert result.code == 0
    verdict = json.loads(result.out)
    assert verdict["verified"] and verdict["delivery_id"] == "msg_42" and verdict["clock_skew_s"] == 0
    replay = run("webhook", "verify", *common, *headers, "--now", NOW)
    assert replay.code == 2 and "[replayed]" in replay.out


def test_profile_scheme_for_betaskill(run: Run, project: Project, body: Path) -> None:
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


def test_stale_and_future_with_now(run: Run, body: Path, secret_env: str) -> None:
    common = ["--scheme", "stripe", "--secret-env", secret_env, "--body", str(body)]
    headers = headers_of(run, *common, "--timestamp", NOW)
    stale = run("webhook", "verify", *common, *headers, "--now", str(int(NOW) + 900))
    assert stale.code == 2 and "[stale]" in stale.out and "clock skew: +900 s" in stale.out
    future = run("webhook", "verify", *common, *headers, "--now", str(int(NOW) - 900))
    assert future.code == 2 and "[from-the-future]" in future.out


def test_failures_are_audited_and_a_burst_alerts_once_per_window(
    run: Run, body: Path, secret_env: str
) -> None:
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


def test_usage_errors(run: Run, body: Path, secret_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
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


def test_no_option_takes_a_secret_value(run: Run) -> None:
    for command in ("verify", "sign"):
        help_text = run("webhook", command, "--help").out
        assert "--secret-env" in help_text and "--secret " not in help_text


def _security_events(run: Run) -> list[dict[str, object]]:
    out = run("audit", "tail", "-n", "100", "--json", "--kind", "security_event").out
    return [json.loads(line) for line in out.splitlines()]


def test_malformed_timestamps_are_rejected_audited_and_counted(run: Run, body: Path, secret_env: str) -> None:
    # t=² used to end in "internal error": unaudited, uncounted, so a sender could stay out of the log
    args = ["webhook", "verify", "--scheme", "stripe", "--secret-env", secret_env, "--body", str(body)]
    args += ["--header", "Stripe-Signature: t=²,v1=" + "0" * 64, "--source-ip", "198.51.100.7"]
    results = [run(*args, "--now", str(int(NOW) + i), "--json") for i in range(5)]
    assert [r.code for r in results] == [2] * 5
    verdicts = [json.loads(r.out) for r in results]
    assert (
        verdicts[0]["outcome"] == "malformed-header"
        and "'²' is not a UNIX timestamp" in verdicts[0]["message"]
    )
    assert [bool(v["alert"]) for v in verdicts] == [False, False, False, False, True]  # the 5th: a burst
    failed = [e for e in _security_events(run) if e["action"] == "webhook-verification-failed"]
    assert len(failed) == 5 and {e["subject"] for e in failed} == {"198.51.100.7"}


def test_a_non_ascii_app_id_is_rejected_and_audited(run: Run, project: Project, body: Path) -> None:
    common = ["--config", str(project.profile), "--body", str(body)]
    result = run(
        "webhook", "verify", *common, "--header", "IK-APPID: ÏKHOKHA", "--header", "IK-SIGN: " + "0" * 64
    )
    assert result.code == 2 and "[app-id-mismatch]" in result.out
    assert [e["outcome"] for e in _security_events(run)] == ["app-id-mismatch"]


def test_now_nan_is_refused_and_later_rejections_still_work(run: Run, body: Path, secret_env: str) -> None:
    args = ["webhook", "verify", "--scheme", "github", "--secret-env", secret_env, "--body", str(body)]
    args += ["--header", "X-Hub-Signature-256: sha256=" + "0" * 64, "--source-ip", "198.51.100.9"]
    for value in ("nan", "inf", "-inf"):
        refused = run(*args, "--now", value)
        assert refused.code == 3 and f"--now {value}: not a UNIX time" in refused.err
        assert "internal error" not in refused.err
    later = run(*args, "--now", NOW)  # a NaN once stored as NULL broke every later rejection
    assert later.code == 2 and "[bad-signature]" in later.out
    assert len(_security_events(run)) == 1


def test_an_app_id_variable_named_but_unset_is_a_config_error(
    run: Run, project: Project, body: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = good_env()
    del env["IKHOKHA_API_KEY"]
    project.write_env(env)
    monkeypatch.delenv("IKHOKHA_API_KEY", raising=False)
    common = ["--config", str(project.profile), "--body", str(body)]
    headers = ["--header", "IK-APPID: anyone at all", "--header", "IK-SIGN: " + "0" * 64]
    for result in (run("webhook", "verify", *common, *headers), run("webhook", "sign", *common)):
        assert result.code == 3, result.out  # not a silent accept of any IK-APPID
        assert "IKHOKHA_API_KEY (webhook.app_id_variable) is not set" in result.err


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('message_template = "{url}{body}"', "{url} is not a field"),
        ('message_template = "{path}{body"', "before end of string"),
        ('path = "https://app.betaskill.com/api/payments/ikhokha/webhook"', "is not a path"),
    ],
)
def test_a_template_or_path_mistake_is_a_config_error_not_a_failure_per_delivery(
    run: Run, project: Project, body: Path, line: str, problem: str
) -> None:
    text = project.profile.read_text()
    text = text.replace('path = "/api/payments/ikhokha/webhook"\n', "") if line.startswith("path") else text
    project.profile.write_text(
        text.replace('[webhook]\nscheme = "ikhokha"\n', f'[webhook]\nscheme = "ikhokha"\n{line}\n')
    )
    common = ["--config", str(project.profile), "--body", str(body)]
    result = run("webhook", "verify", *common, "--header", "IK-APPID: x", "--header", "IK-SIGN: " + "0" * 64)
    assert result.code == 3 and problem in result.err and "internal error" not in result.err


def test_a_url_for_path_is_refused(run: Run, body: Path, secret_env: str) -> None:
    args = ["webhook", "verify", "--scheme", "ikhokha", "--secret-env", secret_env, "--body", str(body)]
    result = run(*args, "--path", "https://app.betaskill.com/api/payments/ikhokha/webhook")
    assert (
        result.code == 3
        and "--path 'https://app.betaskill.com/api/" in result.err
        and "not a path" in result.err
    )


def test_a_verdict_the_audit_log_cannot_record_is_not_returned(
    run: Run, project: Project, body: Path
) -> None:
    """A rejection nobody can audit was returned as if recorded: now the verification fails (exit
    3) and says why, in every format, and a machine reader gets no verdict to act on."""
    data = Path(os.environ["OPSDASH_DATA_DIR"])
    data.mkdir(parents=True)
    (data / "audit.log").mkdir()  # the log cannot be opened for appending
    common = ["--config", str(project.profile), "--body", str(body)]
    headers = ["--header", "IK-APPID: x", "--header", "IK-SIGN: " + "0" * 64]
    for fmt in ([], ["--json"]):
        result = run("webhook", "verify", *common, *headers, *fmt)
        assert result.code == 3, result
        assert "audit log could not be written" in result.err
        assert "REJECTED" not in result.out and '"outcome"' not in result.out


@pytest.mark.parametrize("timestamp", ["100000000000000000000", "-1", "1e20"])
def test_sign_refuses_a_timestamp_no_receiver_reads(
    run: Run, body: Path, secret_env: str, timestamp: str
) -> None:
    result = run(
        "webhook",
        "sign",
        "--scheme",
        "stripe",
        "--secret-env",
        secret_env,
        "--body",
        body,
        "--timestamp",
        timestamp,
    )
    assert result.code == 3 and "--timestamp" in result.err and "Traceback" not in result.err
    assert "Stripe-Signature" not in result.out


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_secret_is_refused_by_verify_and_sign(
    run: Run, body: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("EMPTY_SECRET", value)
    common = ["--scheme", "github", "--secret-env", "EMPTY_SECRET", "--body", str(body)]
    header = ["--header", "X-Hub-Signature-256: sha256=" + hmac.new(b"", b"", hashlib.sha256).hexdigest()]
    for result in (run("webhook", "verify", *common, *header), run("webhook", "sign", *common)):
        assert result.code == 3, result.out  # a usage/config error, not a verdict
        assert "--secret-env EMPTY_SECRET: the secret is empty" in result.err
        assert "Traceback" not in result.err and "VERIFIED" not in result.out


def test_an_empty_profile_secret_is_refused(
    run: Run, project: Project, body: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = good_env()
    env["IKHOKHA_WEBHOOK_SECRET"] = ""
    project.write_env(env)
    monkeypatch.delenv("IKHOKHA_WEBHOOK_SECRET", raising=False)
    result = run("webhook", "verify", "--config", str(project.profile), "--body", str(body))
    assert result.code == 3 and "webhook secret IKHOKHA_WEBHOOK_SECRET: the secret is empty" in result.err
    assert "Traceback" not in result.err


def test_ikhokha_with_no_app_id_configured_warns_that_ik_appid_was_not_checked(
    run: Run, body: Path, secret_env: str
) -> None:
    common = ["--scheme", "ikhokha", "--secret-env", secret_env, "--body", str(body)]
    signed = headers_of(run, *common)
    assert "--header=IK-APPID: " in signed  # nothing to put there: no application id configured
    headers = [h if "IK-APPID" not in h else "--header=IK-APPID: IKSOMEBODY-ELSE" for h in signed]
    result = run("webhook", "verify", *common, *headers)
    assert result.code == 0 and "VERIFIED" in result.out
    assert "WARNING: IK-APPID was not checked: no application id is configured" in result.out
    as_json = json.loads(run("webhook", "verify", *common, *headers, "--json").out)
    assert [w.split(":")[0] for w in as_json["warnings"]] == ["IK-APPID was not checked"]
    events = run("audit", "tail", "-n", "10", "--json").out.splitlines()
    assert any("IK-APPID was not checked" in line for line in events)  # the audit record says it too


def test_ikhokha_with_its_app_id_configured_gives_no_warning(run: Run, project: Project, body: Path) -> None:
    env = good_env()
    project.write_env(env)
    common = ["--config", str(project.profile), "--body", str(body)]
    headers = [h.replace("${IKHOKHA_API_KEY}", env["IKHOKHA_API_KEY"]) for h in headers_of(run, *common)]
    result = run("webhook", "verify", *common, *headers, "--json")
    assert result.code == 0 and json.loads(result.out)["warnings"] == []


def test_each_target_counts_and_shows_its_own_failed_verifications(
    run: Run, project: Project, body: Path, secret_env: str
) -> None:
    """Two profiles in one data directory (targets Alpha and Beta) verify deliveries from one
    source: each failure names its target, a burst counts that target's failures alone, and each
    target's incident timeline shows its own failures (and those of no profile), not the other's."""
    base = project.profile.read_text()
    profiles = {}
    for target in ("Alpha", "Beta"):
        profiles[target] = project.root / f"{target.lower()}.toml"
        profiles[target].write_text(base.replace('name = "BetaSkill"', f'name = "{target}"', 1))

    def verify(target: str | None, at: int) -> dict[str, object] | None:
        config = ["--config", str(profiles[target])] if target else []
        result = run(
            "webhook",
            "verify",
            *config,
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
            "--now",
            str(int(NOW) + at),
            "--json",
        )
        assert result.code == 2 and "bad-signature" in result.out, result.out + result.err
        alert: dict[str, object] | None = json.loads(result.out)["alert"]
        return alert

    # eight failures from one source within the burst window, four against each target: five of
    # them are no one's burst (the threshold is five per target)
    raised = [verify(target, n) for n in range(4) for target in ("Alpha", "Beta")]
    assert raised == [None] * 8
    fifth = verify("Alpha", 10)  # Alpha's fifth: Alpha's burst, and Alpha's alone
    assert fifth is not None and fifth["source"] == "198.51.100.9"
    assert verify(None, 11) is None  # no profile: counted for every target, its own burst not yet
    data = Ops.open(profiles["Alpha"], operator="dana").data_dir
    with History.open(data, write=False) as history:
        failures = history.conn.execute(
            "SELECT target, COUNT(*) FROM webhook_failures GROUP BY target ORDER BY target"
        ).fetchall()
        bursts = history.conn.execute("SELECT key, target FROM alerts").fetchall()
        seen = {
            target: [e.title for e in history.timeline.webhook_failures(0, float(NOW) + 60, target)]
            for target in ("Alpha", "Beta")
        }
    assert [tuple(r) for r in failures] == [(None, 1), ("Alpha", 5), ("Beta", 4)]
    assert [tuple(r) for r in bursts] == [("198.51.100.9", "Alpha")]
    assert seen == {
        "Alpha": ["6 failed webhook verification(s) from 198.51.100.9"],
        "Beta": ["5 failed webhook verification(s) from 198.51.100.9"],
    }
