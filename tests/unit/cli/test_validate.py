"""`opsdash validate`: the acceptance cases of the foundation issue, through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsdash.demo import env_text
from tests.conftest import EXAMPLE_PROFILE, Project, Run, good_env, plan_shaped_env


def test_plan_shaped_env_is_critical_and_prints_no_secret(run: Run, project: Project, tmp_path: Path) -> None:
    env = plan_shaped_env()
    env_file = tmp_path / "plan.env"
    env_file.write_text(env_text(env))
    result = run("validate", "--config", EXAMPLE_PROFILE, "--env-file", env_file, "--json")
    assert result.code == 2
    report = json.loads(result.out)  # nothing but JSON on stdout
    assert report["verdict"] == "CRIT"
    exposed = {f["subject"] for f in report["findings"] if f["rule"] == "secret-client-exposed"}
    assert {"VITE_IKHOKHA_API_SECRET", "VITE_IKHOKHA_WEBHOOK_SECRET"} <= exposed
    reused = [f for f in report["findings"] if f["rule"] == "secret-reused"]
    assert reused and reused[0]["subject"] == "VITE_IKHOKHA_API_SECRET, VITE_IKHOKHA_WEBHOOK_SECRET"
    for value in env.values():
        if len(value) > 12:
            assert value not in result.out + result.err


def test_correct_production_env_exits_zero(run: Run, project: Project) -> None:
    result = run("validate", "--config", project.profile, "--env-file", project.env_file)
    assert result.code == 0, result.out
    assert result.out.startswith("OK")
    assert "no findings" in result.out


def test_json_report_schema(run: Run, project: Project) -> None:
    project.write_env({**good_env(), "VITE_NODE_ENV": "staging"})
    result = run("validate", "--config", project.profile, "--json")
    assert result.code == 2
    report = json.loads(result.out)
    assert {"verdict", "findings", "started_at", "duration_ms", "target", "run_id"} <= set(report)
    (finding,) = report["findings"]
    assert set(finding) == {
        "rule",
        "severity",
        "category",
        "subject",
        "title",
        "detail",
        "remediation",
        "runbook",
        "evidence",
    }
    assert finding["rule"] == "env-not-production"
    assert finding["evidence"]["source"] == f"{project.env_file}:1"
    assert finding["runbook"] == "pre-deploy-checklist"


def test_human_output_groups_by_category_with_verdict_first(run: Run, project: Project) -> None:
    project.write_env(
        {**good_env(), "VITE_IKHOKHA_TEST_MODE": "true", "PAYMENT_CANCEL_URL": "http://x.test/"}
    )
    result = run("validate", "--config", project.profile)
    lines = result.out.splitlines()
    assert lines[0].startswith("CRIT") and "BetaSkill" in lines[0]
    assert "environment" in lines and "urls" in lines
    assert "test-mode-enabled" in result.out and "fix:" in result.out


def test_warn_exits_one_and_fail_on_crit_lets_it_pass(run: Run, project: Project) -> None:
    project.write_env({**good_env(), "MONITORING_ENABLED": "false"})
    assert run("validate", "--config", project.profile).code == 1
    assert run("validate", "--config", project.profile, "--fail-on", "crit").code == 0
    project.write_env({**good_env(), "ENFORCE_HTTPS": "false"})
    assert run("validate", "--config", project.profile, "--fail-on", "crit").code == 2


def test_from_env_reads_process_environment(
    run: Run, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = good_env()
    project.write_env({k: v for k, v in env.items() if k != "IKHOKHA_API_SECRET"})
    assert run("validate", "--config", project.profile).code == 2
    monkeypatch.setenv("IKHOKHA_API_SECRET", env["IKHOKHA_API_SECRET"])
    assert run("validate", "--config", project.profile).code == 2  # not mixed in unless asked
    assert run("validate", "--config", project.profile, "--from-env").code == 0


def test_config_found_in_current_directory(
    run: Run, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project.root)
    assert run("validate").code == 0


def test_no_config_anywhere_is_a_clear_error(run: Run) -> None:
    result = run("validate")
    assert result.code == 3
    assert "no configuration found" in result.err and "opsdash init" in result.err
    assert "Traceback" not in result.err


BAD_PROFILES = {
    "malformed TOML": ('[target\nname = "x"\n', "opsdash.toml:1", "invalid TOML"),
    "unknown key": (
        '[target]\nname = "x"\nbase_url = "https://a.example.com"\n\n[env]\nfiles = []\nrequird = ["A"]\n',
        "opsdash.toml:7",
        "unknown key 'requird' in env",
    ),
    "unknown key in second policy": (
        '[target]\nname = "x"\nbase_url = "https://a.example.com"\n'
        '[[policy]]\nvariable = "A"\nexpected = "1"\n[[policy]]\nvariable = "B"\nexpectd = "1"\n',
        "opsdash.toml:9",
        "unknown key 'expectd' in policy[1]",
    ),
    "invalid URL": (
        '[target]\nname = "x"\nbase_url = "not a url"\n',
        "opsdash.toml:3",
        "not a valid http(s) URL",
    ),
    "invalid provider URL": (
        '[target]\nname = "x"\nbase_url = "https://a.example.com"\n[provider]\napi_base = "ftp:/x"\n',
        "opsdash.toml:5",
        "provider.api_base",
    ),
    "missing target name": (
        '[target]\nbase_url = "https://a.example.com"\n',
        "opsdash.toml:1",
        "target.name",
    ),
    "wrong type": (
        '[target]\nname = "x"\nbase_url = "https://a.example.com"\n[env]\nrequired = "A"\n',
        "opsdash.toml:5",
        "env.required",
    ),
    "binary file": ("\0\1\2binary", "opsdash.toml", "binary content"),
}


@pytest.mark.parametrize("case", sorted(BAD_PROFILES))
def test_bad_profile_exits_3_with_file_and_line(run: Run, tmp_path: Path, case: str) -> None:
    text, where, words = BAD_PROFILES[case]
    path = tmp_path / "opsdash.toml"
    path.write_text(text)
    result = run("validate", "--config", path, "--env-file", path)
    assert result.code == 3
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert where in lines[0] and words in lines[0]
    assert "Traceback" not in result.err


def test_bad_env_files_exit_3_naming_the_file(run: Run, project: Project, tmp_path: Path) -> None:
    binary = tmp_path / "binary.env"
    binary.write_bytes(b"A=1\nB=\x00\x01\x02\n")
    latin1 = tmp_path / "latin1.env"
    latin1.write_bytes("A=1\nNAME=caf\xe9\n".encode("latin-1"))
    missing = tmp_path / "nope.env"
    for path, words in (
        (binary, "binary.env:2: binary content"),
        (latin1, "latin1.env:2: not valid UTF-8"),
        (missing, "nope.env: env file not found"),
        (tmp_path, "is a directory"),
    ):
        result = run("validate", "--config", project.profile, "--env-file", path)
        assert result.code == 3, path
        assert words in result.err
        assert "Traceback" not in result.err and result.out == ""


def test_usage_errors_exit_3(run: Run, project: Project) -> None:
    result = run("validate", "--config", project.profile, "--fail-on", "sometimes")
    assert result.code == 3
    assert "Invalid value for '--fail-on'" in result.err
    assert run("no-such-command").code == 3


def test_help_answers_questions(run: Run) -> None:
    result = run("validate", "--help")
    assert result.code == 0
    assert "--env-file" in result.out and "--from-env" in result.out and "Exit codes" in result.out
