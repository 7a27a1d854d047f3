"""The runbook that the executor and step-driver tests drive (one copy), the scripted gates they
hand it, and the fixtures that give them a runbook file and a session store on real SQLite."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from opsdash.core.runbooks.executor import Executor, GateResult
from opsdash.core.runbooks.gates import Gate
from opsdash.core.runbooks.parser import parse
from opsdash.storage.history import History
from opsdash.storage.sessions import RunbookSessions

BOOK = """+++
id = "drill"
title = "Drill"

[[parameters]]
name = "message"
prompt = "Message"
+++

## Announce {#announce}
Say {{message}}.

## Write a file {#write}
```command timeout=10
printf '%s' {{message}} > out.txt && echo wrote
```

## Gate {#gate}
```check on_fail=goto:recover
app-health
```

## Finish {#finish end}
Done.

## Recover {#recover}
Roll back.
"""

# the drill without its gate and branch, for runs with no profile's checks to gate on
PLAIN = BOOK[: BOOK.index("## Gate")] + "## Finish {#finish end}\nDone.\n"


class Gates:
    def __init__(self, *outcomes: bool) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[list[str]] = []

    def __call__(self, gates: Sequence[Gate]) -> list[GateResult]:
        self.calls.append([g.label() for g in gates])
        ok = self.outcomes.pop(0)
        evidence = ("✓ [STATUS] == 200  (actual: 200)" if ok else "✗ [STATUS] == 200  (actual: 503)",)
        return [GateResult(g.label(), ok, "fine" if ok else "down", evidence) for g in gates]


@pytest.fixture
def book_path(tmp_path: Path) -> Path:
    path = tmp_path / "drill.md"
    path.write_text(BOOK)
    return path


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunbookSessions]:
    with History.open(tmp_path / "data") as history:
        yield history.sessions


def start(book_path: Path, store: RunbookSessions, gates: Gates, message: str = "hello") -> Executor:
    book, problems = parse(book_path)
    assert book is not None, problems
    return Executor.start(book, {"message": message}, "alice", store, gates)
