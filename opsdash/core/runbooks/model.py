"""What a runbook is once parsed."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

StepKind = Literal["manual", "command", "check"]
PARAM = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Parameter:
    name: str
    prompt: str
    pattern: str | None = None
    choices: tuple[str, ...] = ()
    default: str | None = None
    help: str = ""  # what the value is for, in words (shown instead of the pattern)
    example: str = ""
    suggest: str | None = None  # a value opsdash can look up: previous-release | current-release

    def hint(self) -> str:
        """What an operator reads beside the prompt: the help, the choices or an example — never
        the raw pattern unless nothing else says what is wanted."""
        parts = [self.help] if self.help else []
        if self.choices:
            parts.append(f"one of {', '.join(self.choices)}")
        elif self.example:
            parts.append(f"e.g. {self.example}")
        elif self.pattern and not self.help:
            parts.append(f"format {self.pattern}")
        return "; ".join(parts)

    def problem(self, value: str) -> str | None:
        """Why `value` is not acceptable, or None."""
        if self.choices and value not in self.choices:
            return f"{self.name} must be one of {', '.join(self.choices)}"
        if self.pattern and not re.fullmatch(self.pattern, value):
            return f"{self.name} {value!r} does not match {self.pattern}"
        if not self.pattern and not self.choices and any(c in value for c in "\n\r\0"):
            return f"{self.name} may not contain line breaks or NUL"
        return None


@dataclass(frozen=True)
class Step:
    index: int
    id: str
    title: str
    kind: StepKind
    body: str  # the step's Markdown prose (without its action block)
    line: int  # 1-based line of the heading in the file
    action: str = ""  # the command script, or the check block
    action_line: int = 0
    timeout: float = 300.0
    on_fail: str = "abort"  # abort | continue | goto:<id>
    # a check block written `expect=fail` (a rollback's "confirm it is unhealthy"): the step is done
    # when a check fails, as expected, and fails when every check passes
    expect_failure: bool = False
    skippable: bool = False
    end: bool = False  # the main path ends after this step (later steps are branches)

    @property
    def goto(self) -> str | None:
        return self.on_fail.split(":", 1)[1] if self.on_fail.startswith("goto:") else None


@dataclass(frozen=True)
class Runbook:
    id: str
    title: str
    summary: str
    severity: str
    tags: tuple[str, ...]
    parameters: tuple[Parameter, ...]
    steps: tuple[Step, ...]
    path: Path
    intro: str = ""
    text: str = field(default="", repr=False)
    exclusive: str | None = None  # one active session per (group, target): see exclusive.py

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def next_index(self, index: int) -> int | None:
        """The step after `index` on the main path (None at the end)."""
        if self.steps[index].end or index + 1 >= len(self.steps):
            return None
        return index + 1


def fill_text(text: str, params: Mapping[str, str]) -> str:
    """Parameters into prose and check lines, as written (no shell involved)."""
    return PARAM.sub(lambda m: params.get(m.group(1), m.group(0)), text)


def fill_command(script: str, params: Mapping[str, str]) -> str:
    """Parameters into a shell script, each shell-quoted: a value can never become shell syntax."""
    return PARAM.sub(lambda m: shlex.quote(params[m.group(1)]), script)
