"""Where opsdash keeps things. The one seam for locations: tests point these at a temp dir.

Nothing here creates a directory at import time; callers ask for `ensure_dir` when they write.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from opsdash.core.errors import ConfigError
from opsdash.core.secrets import mask_url, redactor, url_secrets

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


def find_config(explicit: Path | None = None, cwd: Path | None = None) -> Path:
    """The profile to use: --config, then OPSDASH_CONFIG, then the first of `config_candidates`."""
    if explicit is not None:
        return explicit
    from_env = env_path("OPSDASH_CONFIG")
    if from_env is not None:
        return from_env
    candidates = config_candidates(cwd)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise ConfigError(
        f"no configuration found (looked in {looked}); pass --config, set OPSDASH_CONFIG, "
        "or run 'opsdash init' to write one"
    )


def relative_to_file(base: Path, value: Path | None) -> Path | None:
    """A path written in the config file: relative to the file's directory, `~` expanded."""
    if value is None:
        return None
    value = value.expanduser()
    return value if value.is_absolute() else base / value


# The keys of the [opsdash] table (ops/config.py SettingsTable; a test keeps the two equal). A key
# outside them, such as a misspelt `data-dir`, makes the quick lookup give way to the settings.
SETTINGS_KEYS = frozenset(
    {"data_dir", "operator", "history_retention_days", "theme", "keymap", "audit_max_bytes", "database"}
)
DATABASE_ENV = ("opsdash_database_url", "opsdash_database")  # the first set wins


def database_from_env() -> str | None:
    """OPSDASH_DATABASE_URL (or OPSDASH_DATABASE), matched case-insensitively as pydantic-settings
    matches; None when neither is set (or set empty)."""
    for wanted in DATABASE_ENV:
        found = [value for name, value in os.environ.items() if name.lower() == wanted and value.strip()]
        if found:
            return found[-1]
    return None


def check_database_url(url: str) -> str:
    """`url` if it is a postgresql:// URL; else a ConfigError that shows it masked."""
    learn_database_url(url)
    scheme, sep, rest = url.strip().partition("://")
    try:
        urlsplit(url.strip()).port  # noqa: B018 - raises ValueError on a bad host or port
    except ValueError as exc:
        raise ConfigError(
            f"database {mask_url(url)!r}: not a valid URL ({exc}); expected "
            "postgresql://user:password@host:5432/dbname"
        ) from None
    if not sep or scheme.lower() not in ("postgresql", "postgres") or not rest:
        raise ConfigError(
            f"database {mask_url(url)!r}: expected a postgresql:// URL "
            "(postgresql://user:password@host:5432/dbname); leave it unset for the local SQLite file"
        )
    return url.strip()


def learn_database_url(url: str) -> str:
    for credential in url_secrets(url):
        redactor.register(credential)
    return url


def quick_database(config: Path | None) -> str | None:
    """The database URL found as quick_data_dir finds the directory (the environment, then the
    profile's `[opsdash] database`), without loading the settings; None: the SQLite file (or a
    profile the quick lookup gives way on: quick_data_dir is None for it too)."""
    from_env = database_from_env()
    if from_env is not None or config is None:
        return from_env
    try:
        table = tomllib.loads(config.read_text(encoding="utf-8")).get("opsdash", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    value = table.get("database") if isinstance(table, dict) else None
    return value if isinstance(value, str) and value.strip() else None


def quick_data_dir(config: Path | None, flag: Path | None = None) -> Path | None:
    """Where history and the audit log live, found the way the settings find it (the flag, then
    OPSDASH_DATA_DIR, then the profile's `[opsdash] data_dir`, then the platform's data dir) but
    without loading the settings models or validating the rest of the profile: reading history
    needs nothing else. None when the profile does not say simply (missing, unreadable, not TOML,
    an `[opsdash]` key the settings do not know, data_dir not a string): the caller then loads the
    settings, whose error names the file and line."""
    in_file: str | None = None
    if config is not None:
        try:
            table = tomllib.loads(config.read_text(encoding="utf-8")).get("opsdash", {})
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return None
        if not isinstance(table, dict) or not table.keys() <= SETTINGS_KEYS:
            return None
        in_file = table.get("data_dir")
        if in_file is not None and not isinstance(in_file, str):
            return None
    if flag is not None:
        return flag.expanduser()
    # pydantic-settings matches OPSDASH_* names case-insensitively; the last match wins, as there
    from_env = [value for name, value in os.environ.items() if name.lower() == "opsdash_data_dir"]
    if from_env:
        return Path(from_env[-1]).expanduser()
    if config is None or in_file is None:
        return default_data_dir()
    return relative_to_file(config.resolve().parent, Path(in_file))
