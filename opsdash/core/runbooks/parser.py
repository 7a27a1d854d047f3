"""Reading a runbook: TOML front matter between `+++` lines, then Markdown (markdown-it-py).

Each `##` section is a step. A ```command fence makes it a command step (attributes: timeout=,
on_fail=), a ```check fence a check step (on_fail=, and expect=fail for a step that confirms a
failure); a section with neither is a manual step. A heading may end with an
attribute block: `## Restore the database {#restore skippable end}`.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from opsdash.core.files import UnreadableFile, read_text
from opsdash.core.runbooks.exclusive import GROUP
from opsdash.core.runbooks.model import Parameter, Runbook, Step, StepKind

FRONT = "+++"
SEVERITIES = ("info", "warn", "crit")
FRONT_KEYS = {"id", "title", "summary", "severity", "tags", "parameters", "exclusive"}
PARAM_KEYS = {"name", "prompt", "pattern", "choices", "default", "help", "example", "suggest"}
SUGGESTIONS = ("previous-release", "current-release")  # what [deploy] version_url/command can tell
_ATTRS = re.compile(r"\s*\{([^{}]*)\}\s*$")
_SLUG = re.compile(r"[^a-z0-9]+")
ACTIONS = ("command", "check")
# Sizes no runbook an operator follows by hand comes near; beyond them a file is refused, not parsed
# slowly into every `opsdash runbook` command.
MAX_BYTES = 512 * 1024
MAX_STEPS = 200
MAX_PARAMETERS = 50
MAX_ACTION_BYTES = 64 * 1024


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def _slug(text: str) -> str:
    return _SLUG.sub("-", text.lower()).strip("-") or "step"


def _attrs(text: str) -> tuple[str, dict[str, str], set[str]]:
    """Split '{#id key=value flag}' off a heading or fence info string."""
    values: dict[str, str] = {}
    flags: set[str] = set()
    match = _ATTRS.search(text)
    if match:
        for item in match.group(1).split():
            if item.startswith("#"):
                values["id"] = item[1:]
            elif "=" in item:
                key, _, value = item.partition("=")
                values[key] = value
            else:
                flags.add(item)
        text = text[: match.start()]
    return text.strip(), values, flags


def _fence_attrs(info: str) -> tuple[str, dict[str, str], set[str]]:
    kind, _, rest = info.strip().partition(" ")
    values: dict[str, str] = {}
    flags: set[str] = set()
    for item in rest.split():
        if "=" in item:
            key, _, value = item.partition("=")
            values[key] = value
        else:
            flags.add(item)
    return kind, values, flags


def split_front_matter(text: str) -> tuple[str | None, str, int]:
    """(front matter, body, body's first line number offset)."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != FRONT:
        return None, text, 0
    for i in range(1, len(lines)):
        if lines[i].strip() == FRONT:
            return "\n".join(lines[1:i]), "\n".join(lines[i + 1 :]), i + 1
    return "", "", len(lines)


def parse(path: Path, text: str | None = None) -> tuple[Runbook | None, list[Problem]]:
    """Parse one runbook file; every problem names the file and line."""
    shown = str(path)
    if text is None:
        try:
            text = read_text(path, "runbook", max_bytes=MAX_BYTES)
        except UnreadableFile as exc:
            return None, [Problem(shown, exc.line, exc.reason)]
    elif len(text.encode("utf-8", "replace")) > MAX_BYTES:  # text handed in: the same bound
        return None, [Problem(shown, 1, f"the file is larger than {MAX_BYTES // 1024} KiB: not a runbook")]
    problems: list[Problem] = []
    front_text, body, offset = split_front_matter(text)
    if front_text is None:
        return None, [
            Problem(shown, 1, f"no front matter: start the file with a {FRONT} line, TOML, and {FRONT}")
        ]
    if offset == len(text.split("\n")) and not body:
        return None, [Problem(shown, 1, f"front matter is not closed with a {FRONT} line")]
    try:
        front: dict[str, Any] = tomllib.loads(front_text)
    except tomllib.TOMLDecodeError as exc:
        pos = re.search(r"at line (\d+)", str(exc))
        line = int(pos.group(1)) + 1 if pos else 2
        return None, [Problem(shown, line, f"front matter: {re.sub(r' [(]at line.*', '', str(exc))}")]
    for key in sorted(set(front) - FRONT_KEYS):
        problems.append(
            Problem(shown, 2, f"front matter: unknown key {key!r} (known: {', '.join(sorted(FRONT_KEYS))})")
        )
    for key in ("id", "title"):
        if not isinstance(front.get(key), str) or not front.get(key):
            problems.append(Problem(shown, 2, f"front matter: {key} is required (a string)"))
    severity = str(front.get("severity", "warn"))
    if severity not in SEVERITIES:
        problems.append(Problem(shown, 2, f"front matter: severity must be one of {', '.join(SEVERITIES)}"))
    exclusive = front.get("exclusive")
    if exclusive is not None and not (isinstance(exclusive, str) and GROUP.fullmatch(exclusive)):
        problems.append(
            Problem(
                shown,
                2,
                "front matter: exclusive must be a group name of lowercase letters, digits and "
                'hyphens (e.g. "production-change")',
            )
        )
    parameters = _parameters(front.get("parameters", []), shown, problems)
    before = len(problems)
    steps, intro = _steps(body, offset, shown, problems)
    if not steps and len(problems) == before:
        problems.append(Problem(shown, offset + 1, "no steps: each '## ' section is a step"))
    if any(p for p in problems):
        return None, problems
    return Runbook(
        id=str(front["id"]),
        title=str(front["title"]),
        summary=str(front.get("summary", "")),
        severity=severity,
        tags=tuple(str(t) for t in front.get("tags", [])),
        parameters=parameters,
        steps=tuple(steps),
        path=path,
        intro=intro,
        text=text,
        exclusive=exclusive,
    ), []


def _parameters(raw: Any, shown: str, problems: list[Problem]) -> tuple[Parameter, ...]:
    if not isinstance(raw, list):
        problems.append(
            Problem(shown, 2, "front matter: parameters must be an array of tables ([[parameters]])")
        )
        return ()
    out: list[Parameter] = []
    if len(raw) > MAX_PARAMETERS:
        problems.append(Problem(shown, 2, f"front matter: {len(raw)} parameters (at most {MAX_PARAMETERS})"))
        return ()
    for i, item in enumerate(raw):
        where = f"front matter: parameters[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            problems.append(Problem(shown, 2, f"{where}: needs a name"))
            continue
        for key in sorted(set(item) - PARAM_KEYS):
            problems.append(Problem(shown, 2, f"{where}: unknown key {key!r}"))
        pattern = item.get("pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                problems.append(Problem(shown, 2, f"{where}: pattern is not a valid regex ({exc})"))
                pattern = None
        suggest = item.get("suggest")
        if suggest is not None and suggest not in SUGGESTIONS:
            problems.append(Problem(shown, 2, f"{where}: suggest must be one of {', '.join(SUGGESTIONS)}"))
            suggest = None
        param = Parameter(
            name=item["name"],
            prompt=str(item.get("prompt", item["name"])),
            pattern=pattern,
            choices=tuple(str(c) for c in item.get("choices", [])),
            default=None if item.get("default") is None else str(item["default"]),
            help=str(item.get("help", "")),
            example=str(item.get("example", "")),
            suggest=suggest,
        )
        if param.example and param.problem(param.example):
            problems.append(
                Problem(
                    shown,
                    2,
                    f"{where}: example {param.example!r} is not acceptable: {param.problem(param.example)}",
                )
            )
        if param.default is not None and param.problem(param.default):
            problems.append(
                Problem(
                    shown,
                    2,
                    f"{where}: default {param.default!r} is not acceptable: {param.problem(param.default)}",
                )
            )
        out.append(param)
    return tuple(out)


def _steps(body: str, offset: int, shown: str, problems: list[Problem]) -> tuple[list[Step], str]:
    headings = sum(line.startswith("## ") for line in body.split("\n"))
    if headings > 4 * MAX_STEPS:  # refused before the Markdown parse that would take seconds
        problems.append(Problem(shown, offset + 1, f"{headings} steps (at most {MAX_STEPS})"))
        return [], ""
    md = MarkdownIt("commonmark")
    tokens = md.parse(body)
    lines = body.split("\n")
    heads = [(i, t) for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h2" and t.map]
    _unclosed_fences(tokens, lines, offset, shown, problems)
    if len(heads) > MAX_STEPS:
        problems.append(Problem(shown, offset + 1, f"{len(heads)} steps (at most {MAX_STEPS})"))
        return [], ""
    intro_end = heads[0][1].map[0] if heads and heads[0][1].map else len(lines)
    intro = "\n".join(line for line in lines[:intro_end] if not line.startswith("# ")).strip()
    steps: list[Step] = []
    seen_ids: dict[str, int] = {}
    for n, (i, head) in enumerate(heads):
        assert head.map is not None
        start = head.map[0]
        end = heads[n + 1][1].map[0] if n + 1 < len(heads) and heads[n + 1][1].map else len(lines)  # type: ignore[index]
        title, attrs, flags = _attrs(tokens[i + 1].content)
        line = offset + start + 1
        step_id = attrs.pop("id", _slug(title))
        if step_id in seen_ids:
            problems.append(
                Problem(shown, line, f"step id {step_id!r} is used twice (first at line {seen_ids[step_id]})")
            )
        seen_ids[step_id] = line
        section = tokens[i + 1 : heads[n + 1][0] if n + 1 < len(heads) else len(tokens)]
        fences = [
            t for t in section if t.type == "fence" and t.info.strip().split(" ")[0] in ACTIONS and t.map
        ]
        spans = [(t.map[0], t.map[1]) for t in fences if t.map]
        kind: StepKind = "manual"
        action, action_line = "", 0
        fence_attrs: dict[str, str] = {}
        fence_flags: set[str] = set()
        if len(fences) > 1:
            problems.append(
                Problem(
                    shown,
                    offset + spans[1][0] + 1,
                    f"step {step_id!r} has {len(fences)} command/check blocks; one per step",
                )
            )
        if fences:
            fence = fences[0]
            fence_kind, fence_attrs, fence_flags = _fence_attrs(fence.info)
            kind = "command" if fence_kind == "command" else "check"
            action, action_line = fence.content, offset + spans[0][0] + 1
            if len(action.encode()) > MAX_ACTION_BYTES:
                problems.append(
                    Problem(shown, action_line, f"step {step_id!r}: the block is larger than 64 KiB")
                )
        values = {**attrs, **fence_attrs}
        flags |= fence_flags
        for key in sorted(set(values) - {"timeout", "on_fail", "expect"}):
            problems.append(
                Problem(shown, action_line or line, f"step {step_id!r}: unknown attribute {key!r}")
            )
        for flag in sorted(flags - {"skippable", "end"}):
            problems.append(Problem(shown, action_line or line, f"step {step_id!r}: unknown flag {flag!r}"))
        timeout = 300.0
        if "timeout" in values:
            try:
                timeout = float(values["timeout"])
                if timeout <= 0:
                    raise ValueError
            except ValueError:
                problems.append(
                    Problem(
                        shown,
                        action_line or line,
                        f"step {step_id!r}: timeout must be a positive number of seconds",
                    )
                )
        on_fail = values.get("on_fail", "abort")
        if on_fail not in ("abort", "continue") and not (on_fail.startswith("goto:") and len(on_fail) > 5):
            problems.append(
                Problem(
                    shown,
                    action_line or line,
                    f"step {step_id!r}: on_fail must be abort, continue or goto:<step-id>",
                )
            )
        expect = values.get("expect", "pass")
        if expect not in ("pass", "fail") or (kind != "check" and "expect" in values):
            problems.append(
                Problem(
                    shown,
                    action_line or line,
                    f"step {step_id!r}: expect must be pass or fail, on a check block",
                )
            )
        if kind == "manual" and "on_fail" in values:
            problems.append(Problem(shown, line, f"step {step_id!r}: on_fail needs a command or check block"))
        prose_lines = [
            ln
            for k, ln in enumerate(lines[start + 1 : end], start=start + 1)
            if not spans or not (spans[0][0] <= k < spans[0][1])
        ]
        steps.append(
            Step(
                index=len(steps),
                id=step_id,
                title=title,
                kind=kind,
                body="\n".join(prose_lines).strip(),
                line=line,
                action=action,
                action_line=action_line,
                timeout=timeout,
                on_fail=on_fail,
                expect_failure=kind == "check" and expect == "fail",
                skippable="skippable" in flags,
                end="end" in flags,
            )
        )
    return steps, intro


def _unclosed_fences(
    tokens: list[Any], lines: list[str], offset: int, shown: str, problems: list[Problem]
) -> None:
    """A code fence that is never closed swallows every step after it: named, not parsed around."""
    for token in tokens:
        if token.type != "fence" or not token.map:
            continue
        last = lines[token.map[1] - 1].strip().lstrip("> \t") if token.map[1] - 1 < len(lines) else ""
        mark = token.markup[:1]
        closed = token.map[1] - token.map[0] >= 2 and len(last) >= len(token.markup) and set(last) == {mark}
        if not closed:
            problems.append(
                Problem(
                    shown,
                    offset + token.map[0] + 1,
                    f"the code block opened here with {token.markup} is never closed "
                    "(everything after it, later steps included, would be read as its content)",
                )
            )
