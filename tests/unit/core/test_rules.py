"""Every validator rule id: one case that makes it fire, one near miss that keeps it quiet.

Each case starts from a correct BetaSkill production environment (which has no findings at all)
and changes one thing, the way an operator's env file goes wrong in practice.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from opsdash.core.findings import Finding, Severity
from opsdash.core.rules import RULES
from opsdash.core.validators import validate
from opsdash.demo import env_text
from opsdash.ops.config import load_config
from tests.conftest import Project, fake_secret, good_env

Setup = Callable[[Project, dict[str, str]], str | dict[str, str]]
EnvSetup = Callable[[Project, dict[str, str]], dict[str, str]]  # a Setup that edits the variables only


def _set(**changes: str) -> EnvSetup:
    def setup(_project: Project, env: dict[str, str]) -> dict[str, str]:
        return {**env, **changes}

    return setup


def _drop(*keys: str) -> EnvSetup:
    def setup(_project: Project, env: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in env.items() if k not in keys}

    return setup


def _append(text: str) -> Setup:
    def setup(_project: Project, env: dict[str, str]) -> str:
        return env_text(env) + text

    return setup


def _profile_line(project: Project, section: str, line: str) -> None:
    text = project.profile.read_text()
    project.profile.write_text(text.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1))


def _vite(then: Setup) -> Setup:
    """The same env, read as Vite reads it (Node's dotenv, then dotenv-expand)."""

    def setup(project: Project, env: dict[str, str]) -> str | dict[str, str]:
        _profile_line(project, "env", 'framework = "vite"')
        return then(project, env)

    return setup


def _bundle(contains_secret: bool) -> Setup:
    def setup(project: Project, env: dict[str, str]) -> dict[str, str]:
        dist = project.root / "dist" / "assets"
        dist.mkdir(parents=True)
        leaked = env["IKHOKHA_API_SECRET"] if contains_secret else "nothing-to-see"
        (dist / "index-4f3a.js").write_text(f'const k="{leaked}";fetch("/api")')
        (dist.parent / "index.html").write_text("<script src=assets/index-4f3a.js></script>")
        _profile_line(project, "target", 'bundle_dir = "dist"')
        return env

    return setup


def _development(same: bool) -> Setup:
    def setup(project: Project, env: dict[str, str]) -> dict[str, str]:
        secret = env["IKHOKHA_API_SECRET"] if same else fake_secret()
        (project.root / ".env.development").write_text(
            f"IKHOKHA_API_SECRET={secret}\nVITE_NODE_ENV=development\n"
        )
        _profile_line(project, "env", 'development = ".env.development"')
        return env

    return setup


def _process_env_supplies(key: str) -> Setup:
    def setup(project: Project, env: dict[str, str]) -> dict[str, str]:
        project.process_env = {key: env[key], "PATH": "/usr/bin"}
        return {k: v for k, v in env.items() if k != key}

    return setup


def _second_file_overrides(key: str) -> Setup:
    def setup(project: Project, env: dict[str, str]) -> dict[str, str]:
        local = project.root / ".env.production.local"
        local.write_text(f"{key}={env[key]}\n")
        _profile_line(project, "env", 'files = [".env.production", ".env.production.local"]')
        text = project.profile.read_text().replace('files = [".env.production"]\n', "", 1)
        project.profile.write_text(text)
        return env

    return setup


CASES: dict[str, tuple[Setup, Setup]] = {
    "env-not-production": (_set(VITE_NODE_ENV="development"), _set(VITE_NODE_ENV="production")),
    "test-mode-enabled": (_set(VITE_IKHOKHA_TEST_MODE="true"), _set(VITE_IKHOKHA_TEST_MODE="OFF")),
    "required-missing": (_drop("IKHOKHA_API_SECRET"), _process_env_supplies("IKHOKHA_API_SECRET")),
    "required-empty": (_set(IKHOKHA_WEBHOOK_SECRET=""), _set(IKHOKHA_WEBHOOK_SECRET=fake_secret())),
    "dotenv-parse-error": (
        _append('FEATURE_FLAGS="beta,new-checkout\nthis line is not an assignment\n'),
        _append('export FEATURE_FLAGS="beta # not a comment"  # a comment\n'),
    ),
    "dotenv-duplicate-key": (_append("ENFORCE_HTTPS=false\n"), _second_file_overrides("ENFORCE_HTTPS")),
    "env-value-altered": (
        _vite(_append("VITE_SITE_TITLE=BetaSkill#1\n")),
        _vite(_append('VITE_SITE_TITLE="BetaSkill#1"\n')),
    ),
    "example-drift": (_drop("USE_FALLBACK_CREDENTIALS"), _set()),
    "secret-client-exposed": (
        _set(VITE_IKHOKHA_API_SECRET=fake_secret()),
        _set(VITE_ANALYTICS_SITE="betaskill-prod"),
    ),
    "secret-in-bundle": (_bundle(contains_secret=True), _bundle(contains_secret=False)),
    "secret-reused": (
        lambda p, env: {**env, "IKHOKHA_WEBHOOK_SECRET": env["IKHOKHA_API_SECRET"]},
        _set(ENFORCE_HTTPS="true", SECURITY_LOGGING="true"),
    ),
    "secret-placeholder": (
        _set(IKHOKHA_API_SECRET="your_ikhokha_secret_goes_here_1234"),
        _set(IKHOKHA_API_SECRET="9f8Qz2LkWm4Rt7Yp1Xc6Vb3Nd5Gh0Js8"),
    ),
    "secret-matches-dev": (_development(same=True), _development(same=False)),
    "secret-weak": (_set(IKHOKHA_WEBHOOK_SECRET="Qx7!pLm2"), _set(IKHOKHA_WEBHOOK_SECRET=fake_secret())),
    "fallback-credentials-enabled": (
        _set(USE_FALLBACK_CREDENTIALS="yes"),
        _set(USE_FALLBACK_CREDENTIALS="0"),
    ),
    "url-malformed": (
        _set(PAYMENT_RETURN_URL="app.betaskill.com/payments/success"),
        _set(PAYMENT_RETURN_URL="https://app.betaskill.com:8443/payments/success"),
    ),
    "url-not-https": (
        _set(PAYMENT_WEBHOOK_URL="http://app.betaskill.com/api/payments/ikhokha/webhook"),
        _set(PAYMENT_WEBHOOK_URL="HTTPS://app.betaskill.com/api/payments/ikhokha/webhook"),
    ),
    "url-off-domain": (
        _set(PAYMENT_RETURN_URL="https://betaskill-payments.example.net/success"),
        _set(PAYMENT_RETURN_URL="https://pay.betaskill.com/success"),
    ),
    "url-local-or-private": (
        _set(PAYMENT_WEBHOOK_URL="https://10.1.2.3/api/payments/ikhokha/webhook"),
        _set(PAYMENT_WEBHOOK_URL="https://app.betaskill.com/local/webhook"),
    ),
    "url-secret-in-query": (
        _set(PAYMENT_RETURN_URL="https://app.betaskill.com/payments/success?token=c2VjcmV0LXRva2Vu"),
        _set(PAYMENT_RETURN_URL="https://app.betaskill.com/payments/success?utm_source=ikhokha"),
    ),
    "api-base-not-production": (
        _set(IKHOKHA_API_BASE="https://api.ikhokha.com/public-api/v2/api"),
        _set(IKHOKHA_API_BASE="https://api.ikhokha.com/public-api/v1/api/"),
    ),
    "dev-host-in-production": (
        _set(IKHOKHA_API_BASE="https://sandbox.ikhokha.com/public-api/v1/api"),
        _set(PAYMENT_RETURN_URL="https://latest.betaskill.com/payments/success"),
    ),
    "policy-violation": (_set(ENFORCE_HTTPS="false"), _set(ENFORCE_HTTPS="YES")),
}

VALIDATOR_RULES = sorted(CASES)


def test_every_environment_rule_has_cases() -> None:
    """A rule added to the registry for env validation must get a fire and a quiet case here."""
    live_check_rules = {
        r
        for r, v in RULES.items()
        if r.startswith(("tls-", "webhook-")) or r == "check-failed" or v.category in ("deploy", "trace")
    }  # tested in tests/unit/core/health, test_deploy.py and test_trace*.py
    assert set(RULES) - live_check_rules == set(CASES)


def _run_case(project: Project, setup: Setup) -> list[Finding]:
    env = setup(project, good_env())
    project.write_env(env)
    profile = load_config(project.profile).profile
    run = validate(profile, from_env=project.process_env is not None, process_env=project.process_env)
    return list(run.report.findings)


def test_correct_production_env_has_no_findings(project: Project) -> None:
    findings = _run_case(project, _set())
    assert findings == []


@pytest.mark.parametrize("rule_id", VALIDATOR_RULES)
def test_rule_fires(project: Project, rule_id: str) -> None:
    findings = _run_case(project, CASES[rule_id][0])
    fired = [f for f in findings if f.rule == rule_id]
    assert fired, f"{rule_id} did not fire; got {[f.rule for f in findings]}"
    for f in fired:
        assert f.severity in (Severity.CRIT, Severity.WARN)
        assert f.remediation and f.detail and f.subject


@pytest.mark.parametrize("rule_id", VALIDATOR_RULES)
def test_rule_stays_quiet_on_near_miss(project: Project, rule_id: str) -> None:
    findings = _run_case(project, CASES[rule_id][1])
    assert [f for f in findings if f.rule == rule_id and f.severity.rank >= Severity.WARN.rank] == []


def test_secret_in_bundle_names_the_file(project: Project) -> None:
    findings = _run_case(project, _bundle(contains_secret=True))
    (hit,) = [f for f in findings if f.rule == "secret-in-bundle"]
    assert "assets/index-4f3a.js" in hit.detail
    assert hit.subject == "IKHOKHA_API_SECRET"


def test_missing_bundle_dir_is_unknown_not_ok(project: Project) -> None:
    _profile_line(project, "target", 'bundle_dir = "dist"')
    findings = _run_case(project, _set())
    (f,) = findings
    assert (f.rule, f.severity) == ("secret-in-bundle", Severity.UNKNOWN)


def test_dotenv_parse_error_names_line_without_the_value(project: Project) -> None:
    secret = fake_secret("canary")
    findings = _run_case(project, _append(f'IKHOKHA_EXTRA_SECRET="{secret}\n'))
    (f,) = [f for f in findings if f.rule == "dotenv-parse-error"]
    assert f"{project.env_file}:15" in f.detail
    assert "IKHOKHA_EXTRA_SECRET" in f.detail
    assert secret not in repr(f)


def test_test_mode_not_boolean_is_critical(project: Project) -> None:
    (f,) = _run_case(project, _set(VITE_IKHOKHA_TEST_MODE="disabled"))
    assert (f.rule, f.severity) == ("test-mode-enabled", Severity.CRIT)
    assert "not a boolean" in f.detail


def test_fallback_flag_not_boolean_warns_and_empty_is_off(project: Project) -> None:
    (f,) = _run_case(project, _set(USE_FALLBACK_CREDENTIALS="sometimes"))
    assert (f.rule, f.severity) == ("fallback-credentials-enabled", Severity.WARN)
    assert "not a boolean" in f.detail
    empty = _run_case(project, _set(USE_FALLBACK_CREDENTIALS=" "))
    assert not [g for g in empty if g.rule == "fallback-credentials-enabled"]


def test_required_missing_points_at_client_prefixed_variant(project: Project) -> None:
    findings = _run_case(
        project,
        lambda p, env: {**_drop("IKHOKHA_API_SECRET")(p, env), "VITE_IKHOKHA_API_SECRET": fake_secret()},
    )
    (missing,) = [f for f in findings if f.rule == "required-missing"]
    assert "VITE_IKHOKHA_API_SECRET is set instead" in missing.detail


def test_url_secret_in_query_masks_the_value(project: Project) -> None:
    findings = _run_case(project, CASES["url-secret-in-query"][0])
    (f,) = [f for f in findings if f.rule == "url-secret-in-query"]
    assert "c2VjcmV0LXRva2Vu" not in repr(f)
    assert "token=" in f.evidence["value"]


def test_policy_severity_comes_from_profile(project: Project) -> None:
    (f,) = _run_case(project, _set(MONITORING_ENABLED="false"))
    assert (f.rule, f.severity) == ("policy-violation", Severity.WARN)


def test_process_env_ignores_unrelated_variables(project: Project, tmp_path: Path) -> None:
    project.write_env(good_env())
    profile = load_config(project.profile).profile
    run = validate(profile, from_env=True, process_env={"PATH": "/bin", "HOME": "/root", "VITE_X": "1"})
    assert "PATH" not in run.env.values and "HOME" not in run.env.values
    assert run.env.values["VITE_X"].source == "environment"
