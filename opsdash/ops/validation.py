"""Environment validation: validate the profile's target, record the run, audit it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from opsdash.core.alerts import VALIDATION_NO_GO, validation_candidate
from opsdash.core.validators import ValidationRun, validate
from opsdash.ops import retention
from opsdash.ops.base import Ops


def run(
    ops: Ops,
    *,
    env_files: Sequence[Path] | None = None,
    from_env: bool | None = None,
    record: bool = True,
    alert: bool = False,
) -> ValidationRun:
    """Validate; with `record`, keep the run in history (fingerprints only) and the audit log; with
    `alert` (`opsdash serve`), a critical finding raises the `validation-no-go` alert through the
    profile's channels, and a clean validation resolves it."""
    profile = ops.profile
    result = validate(profile, env_files=env_files, from_env=from_env)
    if record:
        with ops.history() as history:
            history.runs.record(
                result.report, operator=ops.operator, env=result.env, is_secret=profile.is_secret
            )
            ops.audit.report(result.report, history)
            ops.alerts.settle_gate(history)  # a NO-GO preflight whose findings are gone resolves
            if alert:
                found = validation_candidate(result.report)
                scope = {(VALIDATION_NO_GO, result.report.target)}
                ops.alerts.process(history, [found] if found else [], scope)
            retention.step(ops, history)  # one small batch, after the run is recorded
    return result
