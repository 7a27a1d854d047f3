"""The last known verdict of a profile's target, for the dashboard's first frame, and keeping the
verdict the dashboard settles on for the next start.

`last_known` runs before the profile is loaded: it reads the target's name and the data directory
from the profile with `tomllib` (as `paths.quick_data_dir` does), never the settings models, so the
header can paint it while they are still importing. Whatever it cannot read simply (no profile, a
name that is not a plain string, an unknown `[opsdash]` key) gives None: the header then says
UNKNOWN, never another target's verdict (a target is its name and environment)."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from opsdash.ops import paths
from opsdash.storage.glance import DEFAULT_ENVIRONMENT, LastVerdict, read_last_verdict

if TYPE_CHECKING:
    from opsdash.ops.base import Ops

__all__ = ["LastVerdict", "age", "last_known", "quick_target", "remember"]


def quick_target(config: Path) -> tuple[str, str] | None:
    """The profile's `[target] name` and `environment`, read without validating the profile; None
    when unclear."""
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    target = data.get("target")
    if not isinstance(target, dict):
        return None
    name, environment = target.get("name"), target.get("environment", DEFAULT_ENVIRONMENT)
    if not (isinstance(name, str) and name.strip() and isinstance(environment, str) and environment.strip()):
        return None
    return name, environment


def last_known(config: Path | None, data_dir: Path | None = None) -> LastVerdict | None:
    """The newest verdict recorded for the profile's target in its environment (None: none, or
    not read simply)."""
    if config is None:
        return None
    target = quick_target(config)
    where = paths.quick_data_dir(config, data_dir)
    if target is None or where is None:
        return None
    return read_last_verdict(where, *target, database=paths.quick_database(config))


def age(at: str, now: datetime | None = None) -> str:
    """How long ago `at` (ISO 8601) was, as an operator says it: "just now", "3 min ago", "2 h
    ago", "4 days ago"."""
    try:
        then = datetime.fromisoformat(at)
    except ValueError:
        return "at an unknown time"
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - then).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} days ago"


def remember(ops: Ops, label: str, reason: str) -> None:
    """Keep the verdict the dashboard settled on (a worker thread calls this)."""
    from opsdash.storage.glance import remember as keep

    target = ops.profile.target
    at = ops.now().isoformat(timespec="milliseconds")
    with ops.history() as history:
        keep(history, target.name, label, reason, at, target.environment)
