"""`history list --since/--until/--kind/--verdict/--rule`, and `history diff` refusing two runs that
cannot be compared (as the History pane does, with the same words: core/diff.why_not_comparable)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from opsdash.core.findings import Finding, Report, Severity
from opsdash.storage.history import History
from tests.conftest import Project, Run
from tests.incident_record import T0, iso


def finding(rule: str, severity: Severity) -> Finding:
    return Finding(rule, severity, "env", "VITE_X", rule, "detail", "fix it", None, {})


@pytest.fixture
def runs() -> list[str]:
    made = [
        ("validate", 0, (finding("secret-reused", Severity.CRIT),)),
        ("validate", 86400, ()),
        ("preflight", 2 * 86400, (finding("check-failed", Severity.WARN),)),
        ("validate", 3 * 86400, (finding("secret-reused", Severity.CRIT),)),
    ]
    ids = []
    with History.open(Path(os.environ["OPSDASH_DATA_DIR"])) as history:
        for n, (kind, offset, findings) in enumerate(made):
            run_id = f"run-{n}"
            history.runs.record(
                Report(kind, "BetaSkill", run_id, iso(T0 + offset), 10, findings), operator="ana"
            )
            ids.append(run_id)
    return ids


def listed(run: Run, project: Project, *args: str) -> list[str]:
    out = run("history", "list", "--config", project.profile, "--json", *args)
    assert out.code == 0, out.err
    return [r["run_id"] for r in json.loads(out.out)]


def test_history_list_filters(run: Run, project: Project, runs: list[str]) -> None:
    assert listed(run, project) == runs[::-1]
    assert listed(run, project, "--kind", "preflight") == ["run-2"]
    assert listed(run, project, "--verdict", "crit") == ["run-3", "run-0"]
    assert listed(run, project, "--verdict", "ok") == ["run-1"]
    assert listed(run, project, "--rule", "secret-reused") == ["run-3", "run-0"]
    assert listed(run, project, "--rule", "check-failed", "--kind", "validate") == []
    assert listed(run, project, "--since", "2026-12-02", "--until", "2026-12-04") == ["run-2", "run-1"]
    assert listed(run, project, "--since", "2026-12-02T14:00:00.001") == ["run-3", "run-2"]
    assert listed(run, project, "--since", "30d", "--until", "1h") == runs[::-1]  # the record is older
    assert listed(run, project, "--since", "1h") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "last tuesday"], "is not a time"),
        (["--kind", "deploy"], "'deploy' is not one of"),
        (["--verdict", "fine"], "'fine' is not one of"),
    ],
)
def test_history_list_bad_filters_are_usage_errors(
    run: Run, project: Project, runs: list[str], args: list[str], message: str
) -> None:
    out = run("history", "list", "--config", project.profile, *args)
    assert out.code == 3 and message in out.err and "Traceback" not in out.err


def test_history_diff_refuses_runs_of_different_kinds(run: Run, project: Project, runs: list[str]) -> None:
    out = run("history", "diff", "run-2", "run-3", "--config", project.profile)
    assert out.code == 3
    assert "cannot diff run-2 and run-3: a preflight run and a validate run check different things" in out.err
    assert out.out == ""  # no findings listed as resolved
    same = run("history", "diff", "run-0", "run-1", "--config", project.profile, "--json")
    assert same.code == 1 and [f["rule"] for f in json.loads(same.out)["resolved"]] == ["secret-reused"]


def test_history_diff_kind_counts_runs_of_that_kind(run: Run, project: Project, runs: list[str]) -> None:
    out = run(
        "history", "diff", "latest~1", "latest", "--kind", "validate", "--config", project.profile, "--json"
    )
    assert out.code == 1  # run-1 (no findings) to run-3 (secret-reused): one new finding
    doc = json.loads(out.out)
    assert [f["rule"] for f in doc["new"]] == ["secret-reused"]
    missing = run(
        "history", "diff", "latest~1", "latest", "--kind", "verify-deploy", "--config", project.profile
    )
    assert missing.code == 3 and "history has 0 verify-deploy run(s)" in missing.err


@pytest.mark.parametrize(
    "args", [["--since", "999999w"], ["--since", "9999-12-31T23:59:59-05:00"], ["--until", "0001-01-01"]]
)
def test_history_list_out_of_range_dates(
    run: Run, project: Project, runs: list[str], args: list[str]
) -> None:
    out = run("history", "list", "--config", project.profile, "--json", *args)
    if args[1] == "999999w":  # further back than 1970: everything
        assert out.code == 0 and len(json.loads(out.out)) == len(runs)
    else:
        assert out.code == 3 and "out of range" in out.err and "internal error" not in out.err


def test_history_list_says_filters_matched_nothing_not_that_history_is_empty(
    run: Run, project: Project, runs: list[str]
) -> None:
    """Review of #33 (low): both said "no runs in history yet; run 'opsdash validate' first"."""
    out = run("history", "list", "--config", project.profile, "--rule", "nonexistent")
    assert out.code == 0 and "no runs match these filters" in out.out and "validate' first" not in out.out
    backwards = run("history", "list", "--config", project.profile, "--since", "2h", "--until", "3h")
    assert backwards.code == 3 and "--since is later than --until" in backwards.err


def test_history_list_on_an_empty_record_says_so(run: Run, project: Project) -> None:
    out = run("history", "list", "--config", project.profile)
    assert out.code == 0 and "no runs in history yet" in out.out
