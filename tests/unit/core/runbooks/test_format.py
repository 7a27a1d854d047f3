"""The runbook format and its linter: good runbooks parse, broken ones say where and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsdash.core.health.errors import ERROR_INFO
from opsdash.core.rules import RULES
from opsdash.core.runbooks.lint import lint
from opsdash.core.runbooks.parser import parse
from opsdash.ops.config import load_config
from tests.conftest import EXAMPLE_PROFILE, ROOT, Run, not_none

SHIPPED = ROOT / "runbooks"
GOOD = """+++
id = "sample"
title = "Sample"
severity = "warn"

[[parameters]]
name = "release"
prompt = "Release"
pattern = '^[0-9.]+$'
default = "1.2.3"
+++

# Sample

Intro text.

## Tell people {#tell}
Say that {{release}} is going out.

## Run it {#run skippable}
```command timeout=5 on_fail=goto:recover
echo deploying {{release}}
```

## Check it
```check on_fail=continue
app-health
validate
http https://127.0.0.1:9/version
  [STATUS] == 200
  [BODY].version == {{release}}
```

## Finish {#finish end}
Done.

## Recover {#recover}
Roll back.
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "book.md"
    path.write_text(text)
    return path


def test_good_runbook_parses_into_steps(tmp_path: Path) -> None:
    book, problems = parse(write(tmp_path, GOOD))
    assert problems == [] and book is not None
    assert [(s.id, s.kind) for s in book.steps] == [
        ("tell", "manual"),
        ("run", "command"),
        ("check-it", "check"),
        ("finish", "manual"),
        ("recover", "manual"),
    ]
    run = book.steps[1]
    assert (run.timeout, run.goto, run.skippable, run.line, run.action_line) == (5.0, "recover", True, 20, 21)
    assert book.steps[3].end and book.intro == "Intro text."
    assert lint(book, ["app-health"]) == []


BROKEN = {
    "no front matter": ("# Title\n\n## Step\n", 1, "no front matter"),
    "unclosed front matter": ('+++\nid = "x"\n', 1, "not closed"),
    "bad toml": ('+++\nid = "x\n+++\n## S\n', 2, "front matter:"),
    "unknown key": ('+++\nid = "x"\ntitle = "t"\nowner = "me"\n+++\n## S\n', 2, "unknown key 'owner'"),
    "missing title": ('+++\nid = "x"\n+++\n## S\n', 2, "title is required"),
    "bad severity": ('+++\nid = "x"\ntitle = "t"\nseverity = "high"\n+++\n## S\n', 2, "severity must be"),
    "bad pattern": (
        '+++\nid="x"\ntitle="t"\n[[parameters]]\nname="p"\npattern="(["\n+++\n## S\n',
        2,
        "not a valid regex",
    ),
    "default breaks pattern": (
        '+++\nid="x"\ntitle="t"\n[[parameters]]\nname="p"\npattern="^a$"\ndefault="b"\n+++\n## S\n',
        2,
        "default 'b' is not acceptable",
    ),
    "no steps": ('+++\nid = "x"\ntitle = "t"\n+++\n# Only a title\n', 5, "no steps"),
    "two blocks": (
        '+++\nid="x"\ntitle="t"\n+++\n## S\n```command\na\n```\n```check\nb\n```\n',
        9,
        "2 command/check blocks",
    ),
    "unknown attribute": (
        '+++\nid="x"\ntitle="t"\n+++\n## S\n```command retries=3\na\n```\n',
        6,
        "unknown attribute 'retries'",
    ),
    "bad timeout": (
        '+++\nid="x"\ntitle="t"\n+++\n## S\n```command timeout=soon\na\n```\n',
        6,
        "timeout must be",
    ),
    "bad on_fail": (
        '+++\nid="x"\ntitle="t"\n+++\n## S\n```command on_fail=panic\na\n```\n',
        6,
        "on_fail must be abort, continue or goto",
    ),
    "duplicate ids": ('+++\nid="x"\ntitle="t"\n+++\n## A {#same}\n## B {#same}\n', 6, "used twice"),
    # an unclosed fence swallows the steps after it: "## B" would silently become part of A's command
    "unclosed fence": (
        '+++\nid="x"\ntitle="t"\n+++\n## A\n```command\necho hi\n\n## B\nok\n',
        6,
        "never closed",
    ),
    "unclosed fence in prose": ('+++\nid="x"\ntitle="t"\n+++\n## A\n~~~\nsample\n', 6, "never closed"),
    "too many steps": (
        '+++\nid="x"\ntitle="t"\n+++\n' + "".join(f"## S{i}\n" for i in range(201)),
        5,
        "201 steps (at most 200)",
    ),
    "absurdly many steps": (
        '+++\nid="x"\ntitle="t"\n+++\n' + "".join(f"## S{i}\n" for i in range(10_000)),
        5,
        "10000 steps",
    ),
    "too many parameters": (
        '+++\nid="x"\ntitle="t"\n'
        + "".join(f'[[parameters]]\nname="p{i}"\n' for i in range(51))
        + "+++\n## S\n",
        2,
        "51 parameters",
    ),
    "huge command block": (
        '+++\nid="x"\ntitle="t"\n+++\n## S\n```command\n' + "echo x\n" * 10_000 + "```\n",
        6,
        "larger than 64 KiB",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_runbooks_name_file_and_line(tmp_path: Path, case: str) -> None:
    text, line, words = BROKEN[case]
    path = write(tmp_path, text)
    book, problems = parse(path)
    assert book is None and problems
    assert any(p.line == line and words in p.message for p in problems), [str(p) for p in problems]
    assert str(problems[0]).startswith(f"{path}:")


LINT = {
    "unknown check": ("app-health", "nope-check", "unknown check 'nope-check'"),
    "bad goto": ("on_fail=goto:recover", "on_fail=goto:nowhere", "which is not a step id"),
    "goto itself": ("on_fail=goto:recover", "on_fail=goto:run", "on_fail goes to the step itself"),
    "unreachable": ("## Finish {#finish end}", "## Finish {#finish end}\n## Orphan {#orphan}", "unreachable"),
    "undeclared parameter": ("echo deploying {{release}}", "echo {{version}}", "does not declare"),
    "condition without http": ("http https://127.0.0.1:9/version\n", "", "must follow an 'http URL' line"),
    "bad condition": ("[STATUS] == 200", "[STATUS] = 200", "use == to compare"),
}


@pytest.mark.parametrize("case", sorted(LINT))
def test_lint_finds_what_would_break_mid_incident(tmp_path: Path, case: str) -> None:
    old, new, words = LINT[case]
    book, problems = parse(write(tmp_path, GOOD.replace(old, new, 1)))
    assert book is not None, problems
    found = lint(book, ["app-health"])
    assert any(words in p.message for p in found), [str(p) for p in found]


def test_a_closed_fence_in_a_blockquote_or_list_is_not_reported(tmp_path: Path) -> None:
    text = GOOD.replace("Roll back.", "> ```\n> quoted\n> ```\n\n- item\n\n  ```\n  listed\n  ```\n")
    book, problems = parse(write(tmp_path, text))
    assert problems == [] and book is not None


def test_an_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "\n" + "x" * 600_000)
    book, problems = parse(path)
    assert book is None and "too large for a runbook" in problems[0].message


def test_binary_and_missing_files(tmp_path: Path) -> None:
    binary = tmp_path / "b.md"
    binary.write_bytes(b"+++\x00\x01")
    assert "binary content" in parse(binary)[1][0].message
    assert "runbook not found" in parse(tmp_path / "missing.md")[1][0].message


def test_every_shipped_runbook_is_lint_clean(run: Run) -> None:
    result = run("runbook", "check", "--config", EXAMPLE_PROFILE)
    assert result.code == 0, result.err
    assert result.out.strip() == "7 runbook(s) OK"


def test_broken_runbook_check_exits_3(run: Run, tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("app-health", "app-healht"))
    result = run("runbook", "check", "--config", EXAMPLE_PROFILE, path)
    assert result.code == 3
    assert f"{path}:27: step 'check-it': unknown check 'app-healht'" in result.err


def test_every_runbook_a_finding_or_error_class_names_exists() -> None:
    shipped = {not_none(parse(p)[0], str(p)).id for p in SHIPPED.glob("*.md")}
    named = {r.runbook for r in RULES.values() if r.runbook} | {
        i.runbook for i in ERROR_INFO.values() if i.runbook
    }
    assert named <= shipped, named - shipped


def test_shipped_runbooks_have_checkpoints() -> None:
    names = {c.name for c in load_config(EXAMPLE_PROFILE).profile.checks}
    for path in SHIPPED.glob("*.md"):
        book, _ = parse(path)
        assert book is not None
        assert any(s.kind == "check" for s in book.steps), f"{path.name} has no check gate"
        assert lint(book, names) == []


def test_check_block_comments_are_not_part_of_conditions() -> None:
    from opsdash.core.runbooks.gates import parse_gates

    gates, problems = parse_gates(
        "http https://app.example.com/version   # the release endpoint\n"
        "  [STATUS] == 200                      # must answer\n"
        '  [BODY].note == "a # b"\n'
    )
    assert problems == []
    assert gates[0].target == "https://app.example.com/version"
    assert gates[0].conditions == ("[STATUS] == 200", '[BODY].note == "a # b"')
