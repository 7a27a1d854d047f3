"""Where opsdash keeps things. The one seam for locations: tests point these at a temp dir.

Nothing here creates a directory at import time; callers ask for `ensure_dir` when they write.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "opsdash"
CONFIG_NAME = "opsdash.toml"


def config_dir() -> Path:
    return platformdirs.user_config_path(APP, appauthor=False)


def default_data_dir() -> Path:
    return platformdirs.user_data_path(APP, appauthor=False)


def config_candidates(cwd: Path | None = None) -> list[Path]:
    """The config file search order after --config and OPSDASH_CONFIG."""
    return [(cwd or Path.cwd()) / CONFIG_NAME, config_dir() / CONFIG_NAME]


def ensure_dir(path: Path) -> Path:
    """Create `path` (owner-only) on first write."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None
