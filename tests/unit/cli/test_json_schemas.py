"""Every --json output validates against its published schema in docs/schemas (the files, not the
models), the files are what scripts/gen_schemas.py writes, and the validator does reject a bad
document."""

from __future__ import annotations

import copy
import functools
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from opsdash.cli.schemas import render, schemas
from opsdash.demo import FAULTS
from opsdash.demo.control import set_fault
from tests.conftest import ROOT, Demo, Project, Run, good_env, json_object
from tests.runbook_drill import PLAIN

SCHEMAS = ROOT / "docs" / "schemas"
STEMS = {
    "report",
    "gate-report",
    "check-watch",
    "history-list",
    "history-show",
    "history-diff",
    "webhook-verify",
    "webhook-sign",
    "runbook-list",
    "audit-tail",
    "audit-verify",
    "config-show",
    "config-validate",
    "incident-list",
    "incident-show",
}
HOOK_NOW = 1764150000
DRILL = PLAIN


@functools.cache
def validator(stem: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{stem}.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def problems(stem: str, doc: Any) -> list[str]:
    errors = sorted(validator(stem).iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]


def valid(stem: str, text: str) -> Any:
    """The command's stdout parsed, after checking it against docs/schemas/<stem>.schema.json."""
    doc = json.loads(text)
    found = problems(stem, doc)
    assert not found, f"{stem}:\n" + "\n".join(found)
    return doc


def valid_lines(stem: str, text: str) -> list[Any]:
    lines = text.splitlines()
    assert lines, "no JSON lines printed"
    return [valid(stem, line) for line in lines]


@pytest.fixture
def demo(demo_process: Demo) -> Iterator[Demo]:
    """The shared demo; history and the audit log stay the test's own (OPSDASH_DATA_DIR)."""
    yield demo_process
    for fault in FAULTS:
        set_fault(demo_process.data_dir, fault, False)


# ---------------------------------------------------------------- the published files


def test_every_output_has_a_valid_published_schema() -> None:
    assert {p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json")} == STEMS
    for stem in STEMS:
        schema = validator(stem).schema
        assert isinstance(schema, dict)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"urn:opsdash:schema:v1:{stem}"
        assert "opsdash" in schema["description"] and schema["title"].startswith("opsdash")
    assert (SCHEMAS / "README.md").exists()


def test_published_schemas_are_current() -> None:
    generated = schemas()
    assert set(generated) == STEMS
    for stem, schema in generated.items():
        assert (SCHEMAS / f"{stem}.schema.json").read_text(encoding="utf-8") == render(schema), (
            f"docs/schemas/{stem}.schema.json is stale; run .venv/bin/python scripts/gen_schemas.py"
        )
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_schemas.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr


def test_schemas_module_imports_no_ui_or_storage_library() -> None:
    code = (
        "import sys, opsdash.cli.schemas\n"
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules} & {'textual', 'rich', 'sqlite_utils'})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_validator_rejects_wrong_types_missing_keys_and_strays(run: Run, project: Project) -> None:
    project.write_env({**good_env(), "ENFORCE_HTTPS": "false"})
    report = json_object(run("validate", "--config", project.profile, "--json", "--no-history").out)
    assert not problems("report", report)

    def broken(change: Any) -> dict[str, Any]:
        doc = copy.deepcopy(report)
        change(doc)
        return doc

    cases = {
        "duration_ms": broken(lambda d: d.update(duration_ms="fast")),  # wrong type
        "'verdict' is a required property": broken(lambda d: d.pop("verdict")),
        "'bogus' is not one of": broken(lambda d: d["findings"][0].update(severity="bogus")),
        "'gate' was unexpected": broken(lambda d: d.update(gate="GO")),  # a report has no gate
        "1 was expected": broken(lambda d: d.update(schema_version=2)),
        "'remediation' is a required property": broken(lambda d: d["findings"][0].pop("remediation")),
        "'CRIT' is a required property": broken(lambda d: d["counts"].pop("CRIT")),
    }
    for expected, doc in cases.items():
        found = problems("report", doc)
        assert any(expected in p for p in found), (expected, found)
    assert problems("gate-report", report) == ["(root): 'gate' is a required property"]


# ---------------------------------------------------------------- validate, config


def test_validate_report(run: Run, project: Project) -> None:
    project.write_env({**good_env(), "ENFORCE_HTTPS": "false"})
    result = run("validate", "--config", project.profile, "--json")
    report = valid("report", result.out)
    assert result.code == 2 and report["verdict"] == "CRIT" and report["counts"]["CRIT"] == 1
    assert [(f["rule"], f["subject"]) for f in report["findings"]] == [("policy-violation", "ENFORCE_HTTPS")]
    assert report["summary"]["variables"] > 0 and "checks" not in report["summary"]


def test_config_show_and_validate(run: Run, project: Project, tmp_path: Path) -> None:
    rows = valid("config-show", run("config", "show", "--config", project.profile, "--json").out)
    assert {"key": "target.name", "value": "BetaSkill"}.items() <= next(
        r for r in rows if r["key"] == "target.name"
    ).items()
    ok = run("config", "validate", "--config", project.profile, "--json")
    assert ok.code == 0 and valid("config-validate", ok.out) | {"path": ""} == {
        "schema_version": 1,
        "path": "",
        "valid": True,
        "problems": [],
    }
    bad_file = tmp_path / "bad.toml"
    bad_file.write_text('[target]\nname = 3\n[opsdash]\nbogus = "x"\n')
    bad = run("config", "validate", "--config", bad_file, "--json")
    doc = valid("config-validate", bad.out)
    assert bad.code == 3 and not doc["valid"]
    assert any("target.name" in p for p in doc["problems"]) and len(doc["problems"]) >= 2


# ---------------------------------------------------------------- history


def test_history_list_show_and_diff(run: Run, project: Project) -> None:
    env = good_env()
    project.write_env(env)
    run("validate", "--config", project.profile)
    project.write_env({**env, "ENFORCE_HTTPS": "false", "EXTRA_SETTING": "1"})
    second = valid("report", run("validate", "--config", project.profile, "--json").out)
    runs = valid("history-list", run("history", "list", "--json").out)
    assert [r["run_id"] for r in runs] == [second["run_id"], runs[1]["run_id"]]
    assert runs[0]["verdict"] == "CRIT" and runs[0]["counts"]["CRIT"] == 1
    shown = valid("history-show", run("history", "show", "latest", "--json").out)
    assert shown == second
    diff = run("history", "diff", "latest~1", "latest", "--json")
    changes = valid("history-diff", diff.out)
    assert diff.code == 1 and changes["after"] == second["run_id"]
    assert {(f["rule"], f["subject"]) for f in changes["new"]} == {
        ("policy-violation", "ENFORCE_HTTPS"),
        ("example-drift", "EXTRA_SETTING"),
    }
    assert (changes["env_changed"], changes["env_added"], changes["resolved"]) == (
        ["ENFORCE_HTTPS"],
        ["EXTRA_SETTING"],
        [],
    )
    same = run("history", "diff", "latest", "latest", "--json")
    assert same.code == 0 and valid("history-diff", same.out)["new"] == []


def test_runbook_session_in_history_and_runbook_list(
    run: Run, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    books = project.root / "runbooks"
    books.mkdir()
    (books / "drill.md").write_text(DRILL)
    listed = valid("runbook-list", run("runbook", "list", "--config", project.profile, "--json").out)
    assert next(b for b in listed if b["id"] == "drill")["last_session"] is None
    assert {b["id"] for b in listed} >= {"drill", "rollback"}

    monkeypatch.setattr("sys.stdin", io.StringIO("c\nnoted\nc\nc\n\n"))
    done = run("runbook", "run", "drill", "--config", project.profile, "--param", "message=hi")
    assert done.code == 0, done.out + done.err
    session = valid(
        "history-show", run("history", "show", "latest", "--config", project.profile, "--json").out
    )
    assert session["status"] == "completed" and session["current"] is None
    assert [s["status"] for s in session["steps"]] == ["done", "done", "done"]
    assert session["steps"][0]["note"] == "noted"
    assert session["steps"][1]["exit_code"] == 0 and session["steps"][1]["output"] == "wrote\n"
    assert session["events"][-1]["event"] == "completed"

    runs = valid("history-list", run("history", "list", "--config", project.profile, "--json").out)
    assert runs[0]["kind"] == "runbook" and runs[0]["counts"] == {"steps": 3, "done": 3, "failed": 0}
    listed = valid("runbook-list", run("runbook", "list", "--config", project.profile, "--json").out)
    last = next(b for b in listed if b["id"] == "drill")["last_session"]
    assert last["id"] == session["id"] and last["status"] == "completed"
    assert json.loads(last["params"]) == {"message": "hi"}  # a JSON-encoded string, as stored


# ---------------------------------------------------------------- webhooks


def test_webhook_sign_and_verify(run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHMtMDAwMDAwMDA=")
    body = tmp_path / "callback.json"
    body.write_bytes(b'{"paylinkID":"pl_123","status":"SUCCESS"}')
    common = ["--scheme", "standard", "--secret-env", "HOOK_SECRET", "--body", str(body)]
    signed = run("webhook", "sign", *common, "--timestamp", str(HOOK_NOW), "--id", "msg_42", "--json")
    headers = valid("webhook-sign", signed.out)
    assert signed.code == 0 and headers["webhook-id"] == "msg_42" and "schema_version" not in headers
    options = [f"--header={name}: {value}" for name, value in headers.items()]
    ok = run("webhook", "verify", *common, *options, "--now", str(HOOK_NOW + 5), "--json")
    verdict = valid("webhook-verify", ok.out)
    assert ok.code == 0 and verdict["verified"] and verdict["outcome"] == "verified"
    assert verdict["delivery_id"] == "msg_42" and verdict["clock_skew_s"] == 5 and verdict["alert"] is None

    bad = [*common, "--header", "webhook-id: x", "--source-ip", "198.51.100.9"]
    outcomes = []
    for i in range(5):  # the fifth failure from one source within the window raises an alert
        result = run("webhook", "verify", *bad, "--now", str(HOOK_NOW + i), "--json")
        outcomes.append(valid("webhook-verify", result.out))
        assert result.code == 2
    assert all(not v["verified"] and v["outcome"] == "missing-header" for v in outcomes)
    alert = outcomes[-1]["alert"]
    assert [v["alert"] is None for v in outcomes] == [True, True, True, True, False]
    assert alert["source"] == "198.51.100.9" and alert["id"] >= 1


# ---------------------------------------------------------------- audit


def test_audit_tail_and_verify(run: Run, project: Project) -> None:
    run("validate", "--config", project.profile, "--operator", "carol")
    records = valid_lines("audit-tail", run("audit", "tail", "--json").out)
    assert [r["action"] for r in records] == ["genesis", "validate"]
    assert records[-1]["operator"] == "carol" and records[-1]["prev"] == records[0]["mac"]
    intact = run("audit", "verify", "--json")
    report = valid("audit-verify", intact.out)
    assert intact.code == 0 and report["ok"] and report["records"] == 2 and report["problem"] is None
    assert report["head"]["seq"] == 1 and report["anchor_source"].startswith("history run ")

    log = Path(report["directory"]) / "audit.log"
    with log.open("ab") as handle:
        handle.write(b"garbage\n\xff\xfe\n[1, 2]\n")
    lines = valid_lines("audit-tail", run("audit", "tail", "--json").out)
    assert [x.get("unparseable") for x in lines[-3:]] == ["not JSON", "not UTF-8", "not a record"]
    tampered = run("audit", "verify", "--json")
    report = valid("audit-verify", tampered.out)
    assert tampered.code == 2 and not report["ok"]
    assert report["problem"]["line"] == 3 and "unparseable" in report["problem"]["reason"]


# ---------------------------------------------------------------- against the demo


def test_check_report_and_watch_lines(run: Run, demo: Demo) -> None:
    set_fault(demo.data_dir, "app-down", True)
    result = run("check", "--config", demo.profile, "--json")
    report = valid("report", result.out)
    checks = {c["name"]: c for c in report["summary"]["checks"]}
    assert result.code == 2 and report["verdict"] == "CRIT" and len(checks) == 7
    assert checks["app-health"]["error_class"] == "http-5xx" and checks["app-port"]["error_class"] is None
    assert report["counts"] == {"OK": 6, "INFO": 0, "WARN": 0, "UNKNOWN": 0, "CRIT": 1}

    watched = run(
        "check", "app-health", "app-port", "--config", demo.profile, "--watch", "1", "--count", "2", "--json"
    )
    lines = valid_lines("check-watch", watched.out)
    assert len(lines) == 4 and {x["name"] for x in lines} == {"app-health", "app-port"}
    health = [x for x in lines if x["name"] == "app-health"]
    assert all(x["severity"] == "CRIT" and x["error_class"] == "http-5xx" for x in health)
    assert all(x["sustained"] == "OK" for x in lines if x["name"] == "app-port")


def test_preflight_and_verify_deploy(run: Run, demo: Demo) -> None:
    run("preflight", "--config", demo.profile)  # warns (no green run yet): not a baseline
    go = run("preflight", "--config", demo.profile, "--json")
    green = valid("gate-report", go.out)
    assert green["gate"] == "GO" and go.code in (0, 1) and len(green["summary"]["checks"]) == 7
    assert green["summary"]["versions"]["previous"] == "2026.11.2"

    set_fault(demo.data_dir, "app-down", True)
    args = ["--window", "2", "--interval", "0.5", "--stable", "2", "--expect-version", "2026.11.9"]
    result = run("verify-deploy", "--config", demo.profile, *args, "--json")
    report = valid("gate-report", result.out)
    assert result.code == 2 and report["gate"] == "NO-GO" and report["verdict"] == "CRIT"
    rules = {f["rule"] for f in report["findings"] if f["severity"] == "CRIT"}
    assert {"deploy-unstable", "version-mismatch"} <= rules
    assert report["summary"]["baseline"] == green["run_id"]

    shown = valid("history-show", run("history", "show", report["run_id"], "--json").out)
    assert "gate" not in shown and shown["kind"] == "verify-deploy"  # history keeps the report only
    assert valid("report", json.dumps(shown))["run_id"] == report["run_id"]
