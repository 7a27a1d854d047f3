"""Every command that reads or writes data takes --config and uses that profile's data directory,
wherever it is run from; a relative [opsdash] data_dir is relative to the profile, not the cwd."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Demo, Project, Run


@pytest.fixture
def elsewhere(project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project keeps its data in ./ops-data beside its profile; the operator stands elsewhere."""
    monkeypatch.delenv("OPSDASH_DATA_DIR")
    text = project.profile.read_text().replace("[opsdash]\n", '[opsdash]\ndata_dir = "ops-data"\n', 1)
    project.profile.write_text(text)
    monkeypatch.chdir(project.root)
    other = tmp_path / "somewhere-else"
    other.mkdir()
    return other


def test_data_commands_follow_the_profile_from_another_directory(
    run: Run, project: Project, elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = json.loads(run("validate", "--config", "opsdash.toml", "--json").out)
    data = project.root / "ops-data"
    assert (data / "history.db").is_file() and (data / "audit.log").is_file()

    monkeypatch.chdir(elsewhere)
    profile = project.profile
    verified = run("audit", "verify", "--config", profile, "--json")
    assert verified.code == 0
    body = json.loads(verified.out)
    assert body["directory"] == str(data) and body["anchor_source"] == f"history run {report['run_id']}"
    tail = [json.loads(line) for line in run("audit", "tail", "--config", profile, "--json").out.splitlines()]
    assert tail[-1]["action"] == "validate" and tail[-1]["details"]["run_id"] == report["run_id"]
    listed = json.loads(run("history", "list", "--config", profile, "--json").out)
    assert [r["run_id"] for r in listed] == [report["run_id"]]
    assert run("history", "show", "latest", "--config", profile).code == 0
    runbooks = json.loads(run("runbook", "list", "--config", profile, "--json").out)
    assert runbooks and all(r["last_session"] is None for r in runbooks)

    # without --config, the same commands do not silently read the project's data
    assert run("history", "list", "--json").out.strip() == "[]"
    assert "no audit log yet" in run("audit", "tail").err
    assert not (elsewhere / "ops-data").exists()


def test_demo_fault_reaches_the_demo_through_its_profile(
    run: Run, demo_process: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo writes its data directory into its profile, so `demo fault --config` finds it from
    any directory and any shell (one without the demo's OPSDASH_DATA_DIR)."""
    demo = demo_process
    monkeypatch.delenv("OPSDASH_DATA_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(demo.config_home))
    monkeypatch.chdir(tmp_path)
    assert f'data_dir = "{demo.data_dir}"' in demo.profile.read_text()
    listed = run("demo", "fault", "--config", demo.profile)
    assert listed.code == 0 and "app-down" in listed.out
    try:
        switched = run("demo", "fault", "app-down", "on", "--config", demo.profile)
        assert switched.code == 0 and "faults on: app-down" in switched.out
        checked = run("check", "--config", demo.profile, "app-health")
        assert checked.code == 2
    finally:
        run("demo", "fault", "app-down", "off", "--config", demo.profile)
    tail = run("audit", "tail", "--config", demo.profile, "--json").out.splitlines()
    assert any(json.loads(x)["action"] == "demo-fault" for x in tail)


def test_demo_fault_without_the_demos_data_dir_says_where_it_looked(run: Run, tmp_path: Path) -> None:
    result = run("demo", "fault", "app-down", "on")
    assert result.code == 3 and "opsdash demo" in result.err


def test_the_top_level_config_reaches_the_command(
    run: Run, project: Project, elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(elsewhere)
    result = run("--config", project.profile, "validate", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["target"] == "BetaSkill"
    assert (project.root / "ops-data" / "history.db").is_file()  # and its data directory with it


def test_a_reader_that_stops_reading_does_not_change_the_verdict(demo_process: Demo, tmp_path: Path) -> None:
    """`opsdash check | head -1` still exits with the check's verdict (it used to become 1 or 130)."""
    import os
    import subprocess
    import sys

    from opsdash.demo.control import set_fault

    opsdash = str(Path(sys.executable).with_name("opsdash"))
    env = {**os.environ, "OPSDASH_DATA_DIR": str(tmp_path / "data")}
    set_fault(demo_process.data_dir, "app-down", True)
    try:
        proc = subprocess.Popen(
            [opsdash, "check", "--config", str(demo_process.profile), "--no-history"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None
        proc.stdout.close()  # the reader is gone before opsdash writes a line
        _out, err = proc.communicate(timeout=60)
    finally:
        set_fault(demo_process.data_dir, "app-down", False)
    assert proc.returncode == 2, err
    assert b"Traceback" not in err and b"Exception ignored" not in err


def test_history_reads_through_a_profile_broken_elsewhere(
    run: Run, project: Project, elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """During an incident someone breaks the target section of the profile: the history must still
    be readable (it needs only [opsdash] data_dir), while the commands that use the target still
    refuse it with file and line."""
    report = json.loads(run("validate", "--config", "opsdash.toml", "--json").out)
    profile = project.profile
    profile.write_text(profile.read_text().replace('name = "BetaSkill"', "name = 1", 1))
    monkeypatch.chdir(elsewhere)

    listed = json.loads(run("history", "list", "--config", profile, "--json").out)
    assert [r["run_id"] for r in listed] == [report["run_id"]]
    assert run("history", "show", "latest", "--config", profile, "--json").code == 0
    refused = run("validate", "--config", profile)
    assert refused.code == 3 and refused.err.startswith(f"opsdash: error: {profile}:")


def test_history_with_an_unreadable_data_dir_setting_names_the_file(
    run: Run, project: Project, elsewhere: Path
) -> None:
    profile = project.profile
    profile.write_text(profile.read_text().replace('data_dir = "ops-data"', "data_dir = 5", 1))
    result = run("history", "list", "--config", profile)
    assert result.code == 3
    assert result.err.startswith(f"opsdash: error: {profile}:") and "data_dir" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    "url", ["postgres://opsdash:SECRETPW5678@[::1/opsdash", "postgresql://opsdash:SECRETPW5678@db:port/x"]
)
def test_a_malformed_database_url_is_a_clear_error_with_its_password_masked(
    run: Run, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("OPSDASH_DATABASE_URL", url)
    result = run("history", "list")
    assert result.code == 3 and "not a valid URL" in result.err, result.err
    assert "SECRETPW5678" not in result.out + result.err and "internal error" not in result.err
