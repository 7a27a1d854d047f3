"""Near misses get the name meant: a command, a check, a profile key. A far miss gets none."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Project, Run


def test_a_misspelt_command_names_the_one_meant(run: Run) -> None:
    result = run("valdate")
    assert result.code == 3 and "No such command 'valdate'. Did you mean 'validate'?" in result.err
    result = run("histroy", "list")
    assert "Did you mean 'history'?" in result.err
    assert "Did you mean" not in run("xyzzy").err


def test_a_misspelt_check_names_the_check_meant(run: Run, tmp_path: Path) -> None:
    profile = tmp_path / "opsdash.toml"
    profile.write_text(
        '[target]\nname = "t"\nbase_url = "https://app.example.com"\n\n'
        '[[checks]]\nname = "app-health"\nkind = "tcp"\nhost = "127.0.0.1"\nport = 9\n'
    )
    result = run("check", "--config", profile, "app-helth")
    assert result.code == 3
    assert "no check named app-helth (did you mean 'app-health'?); the profile has: app-health" in result.err
    assert "did you mean" not in run("check", "--config", profile, "database").err


def test_a_misspelt_profile_key_names_the_key_meant(run: Run, project: Project) -> None:
    text = project.profile.read_text().replace("reminder_interval = ", "reminder_intervall = ", 1)
    project.profile.write_text(text)
    result = run("config", "validate", "--config", project.profile)
    assert result.code == 3
    assert (
        "unknown key 'reminder_intervall' in alerts (did you mean 'reminder_interval'?)"
        in result.out + result.err
    )


def test_a_misspelt_runbook_names_the_runbook_meant(run: Run) -> None:
    result = run("runbook", "show", "rollbak")
    assert result.code == 3 and "no runbook 'rollbak' (did you mean 'rollback'?)" in result.err
    assert "did you mean" not in run("runbook", "show", "database-failover").err
