"""`opsdash runbook check`: everything that would surprise an operator mid-incident, found first."""

from __future__ import annotations

from collections.abc import Iterable

from opsdash.core.runbooks.gates import parse_gates
from opsdash.core.runbooks.model import PARAM, Runbook
from opsdash.core.runbooks.parser import Problem


def reachable(runbook: Runbook) -> set[int]:
    seen: set[int] = set()
    todo = [0] if runbook.steps else []
    while todo:
        index = todo.pop()
        if index in seen:
            continue
        seen.add(index)
        step = runbook.steps[index]
        after = runbook.next_index(index)
        if after is not None:
            todo.append(after)
        if step.goto:
            target = runbook.step(step.goto)
            if target is not None:
                todo.append(target.index)
    return seen


def lint(runbook: Runbook, known_checks: Iterable[str] | None = None) -> list[Problem]:
    path = str(runbook.path)
    problems: list[Problem] = []
    declared = {p.name for p in runbook.parameters}
    known = set(known_checks) if known_checks is not None else None
    for step in runbook.steps:
        for text, line in ((step.title, step.line), (step.body, step.line), (step.action, step.action_line)):
            for name in sorted({m.group(1) for m in PARAM.finditer(text)} - declared):
                problems.append(
                    Problem(
                        path,
                        line,
                        f"step {step.id!r} uses parameter {{{{{name}}}}}, which the "
                        "front matter does not declare",
                    )
                )
        if step.goto and runbook.step(step.goto) is None:
            problems.append(
                Problem(
                    path,
                    step.action_line or step.line,
                    f"step {step.id!r}: on_fail goes to {step.goto!r}, which is not a step id",
                )
            )
        elif step.goto and step.goto == step.id:
            problems.append(
                Problem(
                    path,
                    step.action_line or step.line,
                    f"step {step.id!r}: on_fail goes to the step itself; that is a retry, which "
                    "on_fail = abort already offers (the operator retries or aborts)",
                )
            )
        if step.kind == "command" and not step.action.strip():
            problems.append(Problem(path, step.action_line, f"step {step.id!r}: the command block is empty"))
        if step.kind == "check":
            gates, gate_problems = parse_gates(step.action)
            for offset, message in gate_problems:
                problems.append(Problem(path, step.action_line + offset, f"step {step.id!r}: {message}"))
            if known is not None:
                for gate in gates:
                    if gate.kind == "check" and gate.target not in known:
                        names = ", ".join(sorted(known)) or "none"
                        problems.append(
                            Problem(
                                path,
                                step.action_line + gate.line,
                                f"step {step.id!r}: unknown check {gate.target!r} (the profile has: {names})",
                            )
                        )
    live = reachable(runbook)
    for step in runbook.steps:
        if step.index not in live:
            problems.append(
                Problem(
                    path,
                    step.line,
                    f"step {step.id!r} is unreachable: no step leads to it (add "
                    "an on_fail=goto to it, or remove 'end' from the step before)",
                )
            )
    return problems
