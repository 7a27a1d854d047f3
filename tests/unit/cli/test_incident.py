"""`opsdash incident list|show|export` over a record holding one incident (tests/incident_record.py):
the derived window, phases and events as an operator reads them, the filters, the exports (the
Markdown passes pymarkdownlnt, the JSON its schema), masking and sanitising, and the unhappy paths."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from opsdash.core.secrets import redactor
from opsdash.storage.history import History
from tests.conftest import Demo, Project, Run, fake_secret, json_object
from tests.incident_record import T0, Written, iso, write_incident
from tests.servers import closed_port
from tests.unit.cli.test_json_schemas import problems, valid


@pytest.fixture
def data_dir() -> Path:
    return Path(os.environ["OPSDASH_DATA_DIR"])


@pytest.fixture
def written(data_dir: Path) -> Written:
    with History.open(data_dir) as history:
        return write_incident(history)


def test_list_shows_the_incident_with_its_phases(
    run: Run, project: Project, written: Written, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = run("incident", "list", "--config", project.profile, "--json")
    assert out.code == 0  # recovered: nothing ongoing
    [one] = json.loads(out.out)
    assert one["first_failure_at"] == iso(written.first_failure)
    assert one["opened_at"] == iso(written.opened)
    assert one["recovered_at"] == iso(written.recovered)
    assert one["checks"] == ["payments-api"] and one["alerts"] == ["check-critical:payments-api"]
    assert one["severity"] == "CRIT" and one["status"] == "recovered"
    assert one["target"] == "BetaSkill"
    assert one["phases"] == {"detect": 31.0, "act": 139.0, "mitigate": 200.0, "recover": 31.0}
    assert not problems("incident-list", json.loads(out.out))
    for columns in ("80", "140"):  # two lines an incident on a narrow terminal, a table on a wide one
        monkeypatch.setenv("COLUMNS", columns)
        text = run("incident", "list", "--config", project.profile).out
        assert one["id"] in text and "payments-api" in text and "CRIT" in text and "31s" in text


def test_show_is_one_timeline_of_every_kind_in_order(run: Run, project: Project, written: Written) -> None:
    out = run("incident", "show", "latest", "--config", project.profile, "--json")
    assert out.code == 0
    doc = valid("incident-show", out.out)
    kinds = [e["kind"] for e in doc["events"]]
    assert kinds == [
        "check",  # failing 1 of 2
        "check",  # down
        "alert-fired",
        "alert-delivery",
        "check",
        "runbook-session",
        "runbook-step",
        "runbook-step",
        "runbook-session",
        "check",  # recovering
        "check",  # recovered
        "alert-resolved",
    ]
    assert [e["at"] for e in doc["events"]] == sorted(e["at"] for e in doc["events"])
    assert doc["cause"]["source"] == "verify-deploy" and doc["cause"]["evidence"] == "2026.12.1"
    assert doc["runbook_sessions"] == ["sess-watch"]
    assert {e["operator"] for e in doc["events"] if e["kind"].startswith("runbook")} == {"ana"}
    assert [(p["name"], p["end"]) for p in doc["phases"]] == [
        ("detect", iso(written.alert)),
        ("act", iso(written.step)),
        ("mitigate", iso(written.mitigated)),
        ("recover", iso(written.recovered)),
    ]
    text = run("incident", "show", "--config", project.profile).out
    assert "detect 31s" in text and "act 2m 19s" in text and "recover 31s" in text
    assert "verify-deploy of BetaSkill: OK (version 2026.12.1)" in text


def test_an_ongoing_incident_exits_with_its_severity(run: Run, project: Project, data_dir: Path) -> None:
    with History.open(data_dir) as history:
        write_incident(history)
        history.alerts.record("check-critical", "web", "CRIT", "web is failing", "x", T0 + 9000)
    listed = run("incident", "list", "--config", project.profile, "--json")
    assert listed.code == 2
    assert [i["status"] for i in json.loads(listed.out)] == ["ongoing", "recovered"]
    assert run("incident", "show", "latest", "--config", project.profile).code == 2
    assert run("incident", "show", "latest~1", "--config", project.profile).code == 0


def test_filters_by_time_target_and_severity(run: Run, project: Project, data_dir: Path) -> None:
    with History.open(data_dir) as history:
        write_incident(history)
        write_incident(history, T0 + 86400, run="watch-2")

    def ids(*args: str) -> int:
        out = run("incident", "list", "--config", project.profile, "--json", *args)
        assert out.code == 0, out.err
        return len(json.loads(out.out))

    assert ids() == 2
    assert ids("--since", "2026-12-02") == 1
    assert ids("--until", "2026-12-02") == 1
    assert ids("--since", "2026-12-01T13:00", "--until", "2026-12-01T15:00+00:00") == 1
    # one that began before --since is listed with its own start and id, which show finds
    [across] = json.loads(
        run(
            "incident",
            "list",
            "--config",
            project.profile,
            "--json",
            "--since",
            "2026-12-01T14:03",
            "--until",
            "2026-12-02",
        ).out
    )
    assert across["first_failure_at"] == iso(T0 + 30)
    assert run("incident", "show", across["id"], "--config", project.profile).code == 0
    assert ids("--since", "1h") == 0  # the record is from the past
    assert ids("--since", "3650d") == 2
    assert ids("--target", "betaskill") == 2
    assert ids("--target", "someone-else") == 0
    assert ids("--severity", "crit") == 2
    assert ids("-n", "1") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "--since", "yesterday"], "is not a time"),
        (["list", "--until", "2026-13-01"], "is not a time"),
        (["list", "--severity", "bad"], "'bad' is not one of"),
        (["show", "nope"], "incident 'nope' not found"),
        (["show", "latest~5"], "not found: the record has 1 incident"),
        (["export", "latest", "--format", "pdf"], "'pdf' is not one of"),
    ],
)
def test_bad_input_is_a_clear_error(
    run: Run, project: Project, written: Written, args: list[str], message: str
) -> None:
    out = run("incident", *args, "--config", project.profile)
    assert out.code == 3
    assert message in out.err and "Traceback" not in out.err


def test_an_empty_record_lists_nothing_and_shows_nothing(run: Run, project: Project) -> None:
    out = run("incident", "list", "--config", project.profile)
    assert out.code == 0 and "no incidents in the record" in out.out
    missing = run("incident", "show", "--config", project.profile)
    assert missing.code == 3 and "the record has 0 incident" in missing.err


def test_markdown_export_is_a_postmortem_draft_that_passes_the_linter(
    run: Run, project: Project, written: Written, tmp_path: Path
) -> None:
    target = tmp_path / "postmortem.md"
    out = run("incident", "export", "latest", "--config", project.profile, "--output", target)
    assert out.code == 0, out.err
    text = target.read_text(encoding="utf-8")
    flat = " ".join(text.split())  # list items are wrapped
    for heading in ("## Summary", "## Impact window", "## Timeline", "## What was done", "## Open questions"):
        assert f"\n{heading}\n" in text
    assert "Time to detect (first failure to alert): 31s" in flat
    assert "Rollback: step 1 command-started by ana" in flat
    assert "verify-deploy of BetaSkill: OK (version 2026.12.1)" in flat
    lint = subprocess.run(
        [sys.executable, "-m", "pymarkdown", "scan", str(target)], capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_linter_does_fail_a_bad_draft(tmp_path: Path) -> None:
    bad = tmp_path / "bad.md"
    bad.write_text("# one\n## two\ntext   \n", encoding="utf-8")
    lint = subprocess.run(
        [sys.executable, "-m", "pymarkdown", "scan", str(bad)], capture_output=True, check=False
    )
    assert lint.returncode != 0


def test_json_export_validates_and_equals_show(run: Run, project: Project, written: Written) -> None:
    exported = run("incident", "export", "--format", "json", "--config", project.profile)
    assert exported.code == 0
    assert valid("incident-show", exported.out) == json_object(
        run("incident", "show", "--json", "--config", project.profile).out
    )


def test_secrets_are_masked_and_terminal_text_sanitised(
    run: Run, project: Project, data_dir: Path, tmp_path: Path
) -> None:
    """A secret an older opsdash stored (before the redactor knew it) and an escape sequence in a
    command's output never reach the terminal or an export as they are."""
    canary = fake_secret("canary-")
    with History.open(data_dir) as history:
        write_incident(history)
        with history.conn:
            history.conn.execute(
                "UPDATE check_results SET summary = ? WHERE severity = 'CRIT'", [f"HTTP 503 key={canary}"]
            )
            history.conn.execute(
                "UPDATE runbook_events SET detail = ? WHERE event = 'done'", ["\x1b]0;pwned\x07\x1b[2J done"]
            )
    redactor.register(canary)
    outputs = [
        run("incident", "show", "--config", project.profile).out,
        run("incident", "show", "--json", "--config", project.profile).out,
        run("incident", "export", "--config", project.profile).out,
        run("incident", "export", "--format", "json", "--config", project.profile).out,
    ]
    for out in outputs:
        assert canary not in out
        assert "\x1b" not in out and "\x07" not in out
    assert "HTTP 503 key=••••" in outputs[1] and "••••" in outputs[0]
    md = tmp_path / "x.md"
    md.write_text(outputs[2], encoding="utf-8")
    lint = subprocess.run(
        [sys.executable, "-m", "pymarkdown", "scan", str(md)], capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout


def test_export_to_an_unwritable_place_is_a_clear_error(
    run: Run, project: Project, written: Written, tmp_path: Path
) -> None:
    out = run(
        "incident", "export", "--config", project.profile, "--output", tmp_path / "no" / "such" / "x.md"
    )
    assert out.code == 3 and "cannot write the export" in out.err


def test_demo_incident_plays_one_on_the_running_demo(
    run: Run, demo_process: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`opsdash demo incident`: provider outage, alert, rollback runbook, recovery, for real on the
    demo; the incident it leaves is the newest, its rollback in it, and the fault is off again."""
    demo = demo_process
    own = tmp_path / "data"  # the record of this test's own, the running demo reached through its state
    own.mkdir()
    shutil.copy(demo.data_dir / "demo.json", own / "demo.json")
    monkeypatch.setenv("OPSDASH_DATA_DIR", str(own))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(demo.config_home))
    monkeypatch.chdir(tmp_path)
    played = run("demo", "incident", "--config", demo.profile, "--interval", "1")
    assert played.code == 0, played.err
    doc = valid("incident-show", run("incident", "show", "--json", "--config", demo.profile).out)
    assert doc["checks"] == ["ikhokha-api"] and doc["status"] == "recovered"
    assert doc["alerts"] == ["check-critical:ikhokha-api"]
    assert len(doc["runbook_sessions"]) == 1 and doc["id"] in played.out
    assert all(p["end"] is not None for p in doc["phases"])
    listed = run("demo", "fault", "--config", demo.profile).out
    assert "off  provider-down" in listed


def test_demo_incident_without_a_running_demo_says_so(run: Run) -> None:
    out = run("demo", "incident")
    assert out.code == 3 and "no running demo" in out.err


def _profile(project: Project, where: Path, target: str, port: int) -> Path:
    """The project's profile under another target name, with one TCP check of a closed port that
    is down at its first failure (so a short watch opens an incident)."""
    where.mkdir()
    text = project.profile.read_text().replace('name = "BetaSkill"', f'name = "{target}"', 1)
    text += (
        f'\n[[checks]]\nname = "app-port"\nkind = "tcp"\nhost = "127.0.0.1"\nport = {port}\n'
        "interval = 1\ntimeout = 1\nretries = 0\nfailure_threshold = 1\n"
    )
    (where / "opsdash.toml").write_text(text)
    shutil.copy(project.env_file, where / ".env.production")
    return where / "opsdash.toml"


def test_two_profiles_sharing_a_data_directory_each_see_only_their_own_incidents(
    run: Run, project: Project, tmp_path: Path
) -> None:
    """Review of #33, item 1: Beta's watch against a closed port opened an incident that Alpha
    listed under its own name (exit 2), and `--target Beta` from Alpha found nothing. Both watch
    a check of the same name, as profiles copied from one example do."""
    alpha = _profile(project, tmp_path / "alpha", "Alpha", closed_port())
    beta = _profile(project, tmp_path / "beta", "Beta", closed_port())
    watched = run("check", "--config", beta, "--watch", "1", "--count", "2", "app-port")
    assert watched.code == 2, watched.err

    def listed(profile: Path, *args: str) -> tuple[int, list[dict[str, object]]]:
        out = run("incident", "list", "--config", profile, "--json", *args)
        return out.code, json.loads(out.out)

    code, betas = listed(beta)
    assert code == 2 and [i["target"] for i in betas] == ["Beta"] and betas[0]["checks"] == ["app-port"]
    assert listed(alpha) == (0, [])  # Beta's failure is not Alpha's incident
    assert "no incidents in the record" in run("incident", "list", "--config", alpha).out
    assert run("incident", "show", "--config", alpha).code == 3  # none of Alpha's to show
    code, seen_from_alpha = listed(alpha, "--target", "Beta")
    assert code == 2 and [i["id"] for i in seen_from_alpha] == [betas[0]["id"]]

    # Alpha's own failure a moment later is its own incident, not a continuation of Beta's
    assert run("check", "--config", alpha, "--watch", "1", "--count", "2", "app-port").code == 2
    code, alphas = listed(alpha)
    assert code == 2 and [i["target"] for i in alphas] == ["Alpha"]
    assert alphas[0]["id"] != betas[0]["id"]
    assert str(alphas[0]["first_failure_at"]) > str(betas[0]["first_failure_at"])  # ISO text, UTC
    assert [i["id"] for i in listed(beta)[1]] == [betas[0]["id"]]  # and Beta still sees only its own


def test_until_only_filters_an_incident_that_recovered_after_it_is_not_ongoing(
    run: Run, project: Project, written: Written
) -> None:
    """Review of #33, item 9: `--until` in the middle of an incident listed it as ongoing, its
    duration up to now, and exited 2; it recovered after --until, which only chooses the window."""
    out = run("incident", "list", "--config", project.profile, "--json", "--until", iso(written.opened + 10))
    assert out.code == 0, out.err
    [one] = json.loads(out.out)
    assert one["status"] == "recovered" and one["recovered_at"] == iso(written.recovered)
    assert one["duration_s"] == written.recovered - written.first_failure
    # one that began after --until is not in the window
    assert (
        json.loads(run("incident", "list", "--config", project.profile, "--json", "--until", iso(T0)).out)
        == []
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--until", "0001-01-01T00:00:00+05:00"],
        ["--since", "9999-12-31T23:59:59-05:00"],
        ["--since", "0001-01-01"],
    ],
)
def test_a_date_out_of_range_is_a_usage_error_not_an_internal_one(
    run: Run, project: Project, written: Written, args: list[str]
) -> None:
    out = run("incident", "list", "--config", project.profile, *args)
    assert out.code == 3 and "out of range" in out.err and "1970-01-01" in out.err
    assert "internal error" not in out.err and "Traceback" not in out.err


def test_a_time_back_further_than_1970_means_everything(run: Run, project: Project, written: Written) -> None:
    out = run("incident", "list", "--config", project.profile, "--json", "--since", "999999w")
    assert out.code == 0, out.err
    assert len(json.loads(out.out)) == 1


def test_the_empty_list_says_whether_filters_hid_anything(
    run: Run, project: Project, written: Written
) -> None:
    """Review of #33 (low): with no filter at all it said '... for these filters'."""
    with History.open(Path(os.environ["OPSDASH_DATA_DIR"])) as history:
        history.conn.execute("DELETE FROM check_results")
        history.conn.execute("DELETE FROM alerts")
        history.conn.commit()
    bare = run("incident", "list", "--config", project.profile)
    assert bare.code == 0 and bare.out.strip() == "no incidents in the record"
    filtered = run("incident", "list", "--config", project.profile, "--severity", "crit")
    assert filtered.out.strip() == "no incidents in the record for these filters"


def test_an_ongoing_incident_of_unknown_severity_is_not_read_as_a_usage_error(
    run: Run, project: Project, data_dir: Path
) -> None:
    """Exit 3 means the command failed (usage, config, unreadable history); an ongoing incident
    whose severity the record does not know is still ongoing: 2, as serious as it may be."""
    with History.open(data_dir) as history:
        history.alerts.record("check-critical", "web", "UNKNOWN", "web: state unknown", "x", T0)
    out = run("incident", "list", "--config", project.profile, "--json")
    assert [(i["severity"], i["status"]) for i in json.loads(out.out)] == [("UNKNOWN", "ongoing")]
    assert out.code == 2
    assert run("incident", "show", "latest", "--config", project.profile).code == 2
