"""Reading a target's environment: env files and the process environment, as the app will see them.

A plain profile reads its files with python-dotenv and never interpolates: `${OTHER}` stays literal.
A profile for a front-end framework (`[env] framework = "vite" | "next" | "cra"`) resolves the env
files the way that framework does — which files, in which order, `.local` and mode files — and reads
each value the way its loader does (the Node `dotenv` parser, then `dotenv-expand`), so fingerprints
and the bundle scan use the value the build really inlines. Where that differs from what the file
seems to say (an unquoted `#` cuts the value, a `$` expands), the value is a problem of its own.
Every value keeps its source (`path:line` or `environment`); duplicate keys and unparseable lines are
reported as problems instead of being silently resolved.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv.parser import parse_stream

from opsdash.core.errors import InputError
from opsdash.core.files import UnreadableFile, read_text

MAX_ENV_FILE_BYTES = 1_000_000
PROCESS_SOURCE = "environment"
FRAMEWORKS = ("plain", "vite", "next", "cra")

# Lowest precedence first. Vite: vite/src/node/env.ts (getEnvFilesForMode). Next.js (@next/env) and
# Create React App (react-scripts/config/env.js) put `.env.local` above the mode file, and skip it
# in test mode.
_FRAMEWORK_FILES = {
    "vite": (".env", ".env.local", ".env.{mode}", ".env.{mode}.local"),
    "next": (".env", ".env.{mode}", ".env.local", ".env.{mode}.local"),
    "cra": (".env", ".env.{mode}", ".env.local", ".env.{mode}.local"),
}
FRAMEWORK_NAMES = {"vite": "Vite", "next": "Next.js", "cra": "Create React App"}


def framework_files(framework: str, mode: str, directory: Path) -> list[Path]:
    """The env files `framework` would read in `mode`, lowest precedence first (all of them,
    present or not: the caller skips the absent ones)."""
    names = [n.format(mode=mode) for n in _FRAMEWORK_FILES.get(framework, ())]
    if mode == "test" and framework in ("next", "cra"):
        names.remove(".env.local")
    return [directory / n for n in names]


@dataclass(frozen=True)
class EnvValue:
    key: str
    value: str
    source: str  # "path:line" or "environment"


@dataclass(frozen=True)
class EnvProblem:
    kind: str  # "parse-error" | "duplicate" | "reads-differently"
    path: str
    line: int
    key: str | None
    message: str

    @property
    def source(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class EnvSnapshot:
    """The effective environment of a target: later files override earlier ones, the process wins."""

    values: Mapping[str, EnvValue]
    problems: tuple[EnvProblem, ...] = ()
    sources: tuple[str, ...] = ()
    shadowed: tuple[EnvValue, ...] = field(default=())

    def get(self, key: str) -> str | None:
        item = self.values.get(key)
        return None if item is None else item.value

    def source_of(self, key: str) -> str:
        item = self.values.get(key)
        return "not set" if item is None else item.source


def _decode(path: Path) -> str:
    try:
        return read_text(path, "env file", max_bytes=MAX_ENV_FILE_BYTES)
    except UnreadableFile as exc:
        raise InputError(str(exc)) from None


def _describe_unparseable(text: str) -> str:
    """Name the key of a broken line if there is one, without echoing a value that may be a secret."""
    head = text.strip().split("=", 1)[0].strip()
    if head.startswith("export "):
        head = head[len("export ") :].strip()
    if "=" in text and head and head.replace("_", "").replace(".", "").isalnum():
        return f"cannot parse the value of {head} (unbalanced quote or stray characters?)"
    return "cannot parse this line (expected KEY=value)"


def read_env_file(path: Path, *, node: bool = False) -> tuple[list[EnvValue], list[EnvProblem]]:
    """Parse one env file. Missing, binary and non-UTF-8 files raise InputError. With `node`, each
    value is the one the Node `dotenv` parser returns (what Vite, Next.js and CRA read)."""
    text = _decode(path)
    values: list[EnvValue] = []
    problems: list[EnvProblem] = []
    first_seen: dict[str, int] = {}
    shown = str(path)
    node_values = node_dotenv(text) if node else {}
    for binding in parse_stream(io.StringIO(text)):
        line = binding.original.line
        if binding.error:
            problems.append(
                EnvProblem("parse-error", shown, line, None, _describe_unparseable(binding.original.string))
            )
            continue
        if binding.key is None:
            continue  # blank line or comment
        if binding.key in first_seen:
            problems.append(
                EnvProblem(
                    "duplicate",
                    shown,
                    line,
                    binding.key,
                    f"{binding.key} is set again (first at line {first_seen[binding.key]}); "
                    "the later value silently wins",
                )
            )
        else:
            first_seen[binding.key] = line
        # `KEY` with no `=` parses as value None: the variable exists and is empty.
        value = binding.value or ""
        if node and binding.key in node_values:
            value = node_values[binding.key]
        values.append(EnvValue(binding.key, value, f"{shown}:{line}"))
    return values, problems


# The Node `dotenv` parser (v16, lib/main.js `parse`), which Vite, Next.js and CRA use. Unlike
# python-dotenv, an unquoted value ends at the first `#` even without a blank before it.
_NODE_LINE = re.compile(
    r"(?:^|^)\s*(?:export\s+)?([\w.-]+)(?:\s*=\s*?|:\s+?)(\s*'(?:\\'|[^'])*'|\s*\"(?:\\\"|[^\"])*\""
    r"|\s*`(?:\\`|[^`])*`|[^#\r\n]+)?\s*(?:#.*)?(?:$|$)",
    re.M,
)
_NODE_QUOTED = re.compile(r"^(['\"`])([\s\S]*)\1$", re.M)


def node_dotenv(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for match in _NODE_LINE.finditer(text.replace("\r\n", "\n").replace("\r", "\n")):
        value = (match.group(2) or "").strip()
        quote = value[:1]
        value = _NODE_QUOTED.sub(r"\2", value)
        if quote == '"':
            value = value.replace("\\n", "\n").replace("\\r", "\r")
        out[match.group(1)] = value
    return out


# dotenv-expand (v11/v12, lib/main.js), which Vite, Next.js and CRA apply after parsing.
_EXPAND = re.compile(r"(?<!\\)\${([^{}]+)}|(?<!\\)\$([A-Za-z_][A-Za-z0-9_]*)")
_EXPAND_OP = re.compile(r"(:\+|\+|:-|-)")


def _expand_value(value: str, env: Mapping[str, str], running: Mapping[str, str]) -> str:
    result, seen = value, set()
    for _ in range(100):  # dotenv-expand loops until nothing expands; a bound keeps cycles finite
        match = _EXPAND.search(result)
        if match is None:
            break
        seen.add(result)
        template, expression = match.group(0), match.group(1) or match.group(2)
        op = _EXPAND_OP.search(expression)
        splitter = op.group(0) if op else None
        parts = expression.split(splitter) if splitter else [expression]
        key, rest = parts[0], (splitter or "").join(parts[1:])
        if splitter in (":+", "+"):
            default, found = (rest if env.get(key) else ""), None
        else:
            default, found = rest, env.get(key)
        replacement = (default if found in seen else found) if found else default
        result = result.replace(template, replacement, 1)
        if result == running.get(key):
            break
    return result


def node_expand(values: Mapping[str, str], process_env: Mapping[str, str]) -> dict[str, str]:
    """dotenv-expand over values merged from every file (later files already won), in file order.
    A variable already set in the process keeps its process value, as dotenv-expand does."""
    running: dict[str, str] = {}
    for key, value in values.items():
        if process_env.get(key) and process_env[key] != value:
            expanded = process_env[key]
        else:
            expanded = _expand_value(value, {**running, **process_env}, running)
        running[key] = expanded.replace("\\$", "$")
    return running


def load_environment(
    files: Iterable[Path],
    *,
    process_env: Mapping[str, str] | None = None,
    process_keys: Iterable[str] = (),
    process_prefixes: Iterable[str] = (),
    framework: str = "plain",
) -> EnvSnapshot:
    """Read env files in order (later overrides earlier, as Vite and dotenv loaders do).

    With `process_env`, variables named in `process_keys` or starting with `process_prefixes` are
    taken from the process environment and override the files, the way a deployed app sees them.
    Unrelated process variables (PATH, HOME ...) are never pulled in. With a `framework`, values are
    read and expanded as that framework's loader does (see the module docstring)."""
    node = framework != "plain"
    effective: dict[str, EnvValue] = {}
    written: dict[str, str] = {}  # what python-dotenv reads: the value as it looks in the file
    shadowed: list[EnvValue] = []
    problems: list[EnvProblem] = []
    sources: list[str] = []
    for path in files:
        values, file_problems = read_env_file(path, node=node)
        sources.append(str(path))
        problems.extend(file_problems)
        looks = {v.key: v.value for v in read_env_file(path)[0]} if node else {}
        for item in values:
            if item.key in effective:
                shadowed.append(effective[item.key])
            effective[item.key] = item
            written[item.key] = looks.get(item.key, item.value)
    if node:
        expanded = node_expand({k: v.value for k, v in effective.items()}, process_env or {})
        for key, item in list(effective.items()):
            effective[key] = EnvValue(key, expanded[key], item.source)
            if expanded[key] != written[key]:
                where, _, line = item.source.rpartition(":")
                problems.append(_reads_differently(framework, key, written[key], expanded[key], where, line))
    if process_env is not None:
        sources.append(PROCESS_SOURCE)
        wanted = set(process_keys)
        prefixes = tuple(process_prefixes)
        for key, value in process_env.items():
            if key in wanted or (prefixes and key.startswith(prefixes)):
                if key in effective:
                    shadowed.append(effective[key])
                effective[key] = EnvValue(key, value, PROCESS_SOURCE)
    return EnvSnapshot(effective, tuple(problems), tuple(sources), tuple(shadowed))


def _reads_differently(framework: str, key: str, written: str, read: str, path: str, line: str) -> EnvProblem:
    """Lengths and the reason only: the value may be a secret."""
    if "#" in written and read == written.split("#", 1)[0].rstrip():
        why = "an unquoted # starts a comment there; quote the value"
    elif "$" in written:
        why = "a $ is expanded as a variable there; write \\$ or quote differently"
    else:
        why = "quote or escape the value"
    return EnvProblem(
        "reads-differently",
        path,
        int(line) if line.isdigit() else 0,
        key,
        f"{FRAMEWORK_NAMES.get(framework, framework)} reads {key} as {len(read)} characters, not the "
        f"{len(written)} written: {why}",
    )
