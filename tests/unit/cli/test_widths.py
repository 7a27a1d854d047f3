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


@pytest.mark.parametrize("columns", range(40, 72, 3))
def test_wrapping_never_cuts_a_secret_into_pieces_the_masker_cannot_see(
    monkeypatch: pytest.MonkeyPatch, columns: int
) -> None:
    """The redactor recognises whole values: text is masked first and wrapped after, so no width
    leaves a fragment of a secret on either side of a line break."""
    from opsdash.cli.render import finding_block
    from opsdash.core.findings import Finding, Severity
    from opsdash.core.secrets import redactor

    secret = "canaryf0c62da02dd27c293c0587e0de"
    redactor.register(secret)
    monkeypatch.setenv("COLUMNS", str(columns))
    finding = Finding(
        "rollback-no-target",
        Severity.WARN,
        "deploy",
        f"https://app.example.com/version?api_key={secret}",
        "No rollback target",
        f"The version URL https://app.example.com/version?api_key={secret} did not answer.",
        "Check it.",
        evidence={"version_url": f"https://app.example.com/version?api_key={secret}"},
    )
    text = "\n".join(finding_block(finding))
    for piece in (secret[:8], secret[8:16], secret[16:24], secret[24:]):
        assert piece not in text, (columns, text)
