"""Text output fits the terminal: a finding's subject and evidence (long paths, several variable
names) and audit verify's anchors wrap at COLUMNS, with continuation lines indented."""

from __future__ import annotations

import pytest

from opsdash.demo import betaskill_env
from tests.conftest import Project, Run

WIDTH = 60


@pytest.mark.parametrize(
    "command",
    [
        ("validate",),
        ("history", "show", "latest"),
        ("audit", "verify"),
    ],
)
def test_text_output_fits_a_narrow_terminal(
    run: Run, project: Project, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    project.write_env(betaskill_env(plan_shaped=True))  # long findings: reused secrets, exposed ones
    run("validate", "--config", project.profile)
    result = run(*command, "--config", project.profile)
    assert result.out, result.err
    long = [line for line in result.out.splitlines() if len(line) > WIDTH]
    assert not long, long
