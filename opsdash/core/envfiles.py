"""Reading a target's environment: env files (python-dotenv's parser) and the process environment.

Values are never interpolated: `${OTHER}` is kept literally, so what is validated is what is written.
Every value keeps its source (`path:line` or `environment`); duplicate keys and unparseable lines are
reported as problems instead of being silently resolved.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv.parser import parse_stream

from opsdash.core.errors import InputError
from opsdash.core.files import UnreadableFile, read_text

MAX_ENV_FILE_BYTES = 1_000_000
PROCESS_SOURCE = "environment"


@dataclass(frozen=True)
class EnvValue:
    key: str
    value: str
    source: str  # "path:line" or "environment"


@dataclass(frozen=True)
class EnvProblem:
    kind: str  # "parse-error" | "duplicate"
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


def read_env_file(path: Path) -> tuple[list[EnvValue], list[EnvProblem]]:
    """Parse one env file. Missing, binary and non-UTF-8 files raise InputError."""
    text = _decode(path)
    values: list[EnvValue] = []
    problems: list[EnvProblem] = []
    first_seen: dict[str, int] = {}
    shown = str(path)
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
        values.append(EnvValue(binding.key, binding.value or "", f"{shown}:{line}"))
    return values, problems


def load_environment(
    files: Iterable[Path],
    *,
    process_env: Mapping[str, str] | None = None,
    process_keys: Iterable[str] = (),
    process_prefixes: Iterable[str] = (),
) -> EnvSnapshot:
    """Read env files in order (later overrides earlier, as Vite and dotenv loaders do).

    With `process_env`, variables named in `process_keys` or starting with `process_prefixes` are
    taken from the process environment and override the files, the way a deployed app sees them.
    Unrelated process variables (PATH, HOME ...) are never pulled in.
    """
    effective: dict[str, EnvValue] = {}
    shadowed: list[EnvValue] = []
    problems: list[EnvProblem] = []
    sources: list[str] = []
    for path in files:
        values, file_problems = read_env_file(path)
        sources.append(str(path))
        problems.extend(file_problems)
        for item in values:
            if item.key in effective:
                shadowed.append(effective[item.key])
            effective[item.key] = item
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
