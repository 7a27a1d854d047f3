"""Operations shared by the CLI and the dashboard: core work plus recording it in history."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from opsdash.config import LoadedConfig, OpsdashSettings
from opsdash.core.validators import ValidationRun, validate
from opsdash.storage.history import History


def validate_and_record(
    loaded: LoadedConfig,
    settings: OpsdashSettings,
    operator: str,
    *,
    env_files: Sequence[Path] | None = None,
    from_env: bool | None = None,
    record: bool = True,
) -> ValidationRun:
    run = validate(loaded.profile, env_files=env_files, from_env=from_env)
    if record:
        with History.open(settings.resolved_data_dir()) as history:
            history.record(run.report, operator=operator, env=run.env, is_secret=loaded.profile.is_secret)
            history.purge(settings.history_retention_days)
    return run
