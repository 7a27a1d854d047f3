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
from collections.abc import Iterable, Mapping, Sequence
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


def read_env_file(path: Path, *, node: str | None = None) -> tuple[list[EnvValue], list[EnvProblem]]:
    """Parse one env file. Missing, binary and non-UTF-8 files raise InputError. With `node`
    ("builtin": Node's util.parseEnv, which Vite uses; "dotenv": the npm parser of Next.js and CRA),
    each value is the one that parser returns."""
    text = _decode(path)
    values: list[EnvValue] = []
    problems: list[EnvProblem] = []
    first_seen: dict[str, int] = {}
    shown = str(path)
    node_values = {"builtin": node_parse_env, "dotenv": node_dotenv}[node](text) if node else {}
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
    seen = {v.key for v in values}
    for key, value in node_values.items():  # lines python-dotenv refused but the framework reads
        if key not in seen:
            found = re.search(rf"(?m)^[ \t]*(?:export[ \t]+)?{re.escape(key)}[ \t]*=", text)
            line = text[: found.start()].count("\n") + 1 if found else 0
            values.append(EnvValue(key, value, f"{shown}:{line}"))
    if node:  # in file order: dotenv-expand expands a file's keys in the order its parser met them
        values.sort(key=lambda v: int(v.source.rpartition(":")[2]))
    return values, problems


# The Node `dotenv` parser (v16, lib/main.js `parse`), which Vite, Next.js and CRA use. Unlike
# python-dotenv, an unquoted value ends at the first `#` even without a blank before it.
_NODE_LINE = re.compile(
    r"(?:^|^)\s*(?:export\s+)?([\w.-]+)(?:\s*=\s*?|:\s+?)(\s*'(?:\\'|[^'])*'|\s*\"(?:\\\"|[^\"])*\""
    r"|\s*`(?:\\`|[^`])*`|[^#\r\n]+)?\s*(?:#.*)?(?:$|$)",
    re.M,
)
_NODE_QUOTED = re.compile(r"^(['\"`])([\s\S]*)\1$", re.M)


def node_parse_env(text: str) -> dict[str, str]:
    """Node's own `util.parseEnv` (src/node_dotenv.cc), which Vite 8 uses: a quoted value ends at its
    closing quote whatever follows on the line, an unquoted one at the first `#`; keys come out
    sorted (the parser keeps them in a std::map), and the last assignment of a key wins."""
    store: dict[str, str] = {}
    content = text.replace("\r\n", "\n").replace("\r", "\n")
    while content:
        if content[0] in "\n#" or not content.strip(" \t"):
            newline = content.find("\n")
            content = "" if newline < 0 else content[newline + 1 :]
            continue
        equal = content.find("=")
        newline = content.find("\n")
        if equal < 0 or (0 <= newline < equal):  # a line without '=' is skipped
            content = "" if newline < 0 else content[newline + 1 :]
            if equal < 0:
                break
            continue
        key = content[:equal].strip()
        content = content[equal + 1 :].lstrip(" \t")
        if key.startswith("export "):
            key = key[len("export ") :].strip()
        if not key:
            newline = content.find("\n")
            content = "" if newline < 0 else content[newline + 1 :]
            continue
        if content[:1] in ("'", '"', "`"):
            closing = content.find(content[0], 1)
            if closing >= 0:
                value = content[1:closing]
                if content[0] == '"':
                    value = value.replace("\\n", "\n")
                store[key] = value
                rest = content[closing + 1 :]
                newline = rest.find("\n")
                content = "" if newline < 0 else rest[newline + 1 :]
                continue
        newline = content.find("\n")
        value = content if newline < 0 else content[:newline]
        content = "" if newline < 0 else content[newline + 1 :]
        store[key] = value.split("#", 1)[0].strip()
    return dict(sorted(store.items()))


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


def _js_replace(text: str, pattern: str, replacement: str) -> str:
    """JavaScript's `text.replace(pattern, replacement)` for a string pattern: the first occurrence,
    with `$$`, `$&`, `` $` `` and `$'` in the replacement meaning what they mean there."""
    i = text.find(pattern)
    if i < 0:
        return text
    special = {"$": "$", "&": pattern, "`": text[:i], "'": text[i + len(pattern) :]}
    out, j = [], 0
    while j < len(replacement):
        if replacement[j] == "$" and j + 1 < len(replacement) and replacement[j + 1] in special:
            out.append(special[replacement[j + 1]])
            j += 2
        else:
            out.append(replacement[j])
            j += 1
    return text[:i] + "".join(out) + text[i + len(pattern) :]


def _unescape(value: str) -> str:
    return value.replace("\\$", "$")


# Vite: dotenv-expand 12 as bundled in vite (vite/dist/node/chunks/node.js), over the values merged
# from every file (later files win); a name may refer to any variable, earlier ones already expanded.
_EXPAND = re.compile(r"(?<!\\)\${([^{}]+)}|(?<!\\)\$([A-Za-z_][A-Za-z0-9_]*)")
_EXPAND_OP = re.compile(r"(:\+|\+|:-|-)")
_ROUNDS = 100  # the loaders loop (or recurse) until nothing expands; a bound keeps cycles finite


def _vite_value(value: str, env: Mapping[str, str], parsed: Mapping[str, str]) -> str:
    result, seen = value, set()
    for _ in range(_ROUNDS):
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
        result = _js_replace(result, template, replacement)
        if result == parsed.get(key):
            break
    return result


def vite_expand(merged: Mapping[str, str], process_env: Mapping[str, str]) -> dict[str, str]:
    parsed = dict(merged)
    for key in list(parsed):
        value = parsed[key]
        if process_env.get(key) and process_env[key] != value:
            value = process_env[key]
        else:
            value = _vite_value(value, {**parsed, **process_env}, parsed)
        parsed[key] = _unescape(value)
    return parsed


# Next.js (@next/env) and CRA (react-scripts): each file expanded on its own, highest precedence
# first, with the older dotenv-expand (`_interpolate`: right-most `$NAME` / `${NAME:-default}`
# first); what an earlier file set is in the environment of the later ones, and the first file wins.
_LAST_DOLLAR = re.compile(r"(?<!\\)\$")
_GROUP = re.compile(r"((?<!\\)\${?(\w+)(?::-([^}\\]*))?}?)", re.ASCII)


def _next_value(value: str, env: Mapping[str, str], parsed: Mapping[str, str]) -> str | None:
    """None when the expansion never ends (a value that refers to itself): @next/env's recursion
    overflows the stack there, and it drops the whole file."""
    for _ in range(_ROUNDS):
        dollars = [m.start() for m in _LAST_DOLLAR.finditer(value)]
        if not dollars:
            return value
        match = _GROUP.search(value[dollars[-1] :])
        if match is None:
            return value
        group, name, default = match.group(1), match.group(2), match.group(3)
        value = _js_replace(value, group, env.get(name) or default or parsed.get(name) or "")
    return None


def next_expand(files: Sequence[Mapping[str, str]], process_env: Mapping[str, str]) -> dict[str, str]:
    """`files`: each file's parsed values, lowest precedence first (as everywhere here)."""
    env = dict(process_env)
    out: dict[str, str] = {}
    for values in reversed(files):
        parsed = dict(values)
        for key in list(parsed):
            expanded = _next_value(env[key] if key in env else parsed[key], env, parsed)
            if expanded is None:
                break
            parsed[key] = _unescape(expanded)
        else:
            env.update(parsed)
            for key, value in parsed.items():
                if key not in out and key not in process_env:
                    out[key] = value
    return out


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
    parser = ("builtin" if framework == "vite" else "dotenv") if node else None
    effective: dict[str, EnvValue] = {}
    written: dict[str, str] = {}  # what python-dotenv reads: the value as it looks in the file
    shadowed: list[EnvValue] = []
    problems: list[EnvProblem] = []
    sources: list[str] = []
    per_file: list[dict[str, str]] = []
    for path in files:
        values, file_problems = read_env_file(path, node=parser)
        sources.append(str(path))
        problems.extend(file_problems)
        looks = {v.key: v.value for v in read_env_file(path)[0]} if node else {}
        per_file.append({v.key: v.value for v in values})
        for item in values:
            if item.key in effective:
                shadowed.append(effective[item.key])
            effective[item.key] = item
            written[item.key] = looks.get(item.key, item.value)
    if node:
        env = process_env or {}
        if framework == "vite":
            merged: dict[str, str] = {}
            for values_of_file in per_file:  # Node's parseEnv keeps a file's keys sorted (a std::map),
                for key in sorted(values_of_file):  # and expansion follows that order
                    merged[key] = values_of_file[key]
            expanded = vite_expand(merged, env)
        else:
            expanded = next_expand(per_file, env)
        for key, item in list(effective.items()):
            if key not in expanded:  # its file was dropped by the loader (a value referring to itself)
                del effective[key]
                where, _, line = item.source.rpartition(":")
                problems.append(
                    EnvProblem(
                        "reads-differently",
                        where,
                        int(line) if line.isdigit() else 0,
                        key,
                        f"{FRAMEWORK_NAMES.get(framework, framework)} reads no {key}: a value in this file "
                        "refers to itself, and the loader drops the whole file",
                    )
                )
                continue
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
