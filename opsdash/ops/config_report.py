"""`opsdash config show`: every effective value with the place it came from."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from pydantic import SecretStr

from opsdash.core.secrets import mask, mask_url
from opsdash.ops import paths
from opsdash.ops.config import ConfigFile, LoadedConfig, OpsdashSettings, locate


def _flatten(prefix: tuple[str | int, ...], value: Any) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _flatten((*prefix, key), item)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for index, item in enumerate(value):
            yield from _flatten((*prefix, index), item)
    else:
        yield prefix, value


def _show(value: Any) -> str:
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        # a URL keeps its host and database readable, its credentials masked
        return mask_url(secret) if "://" in secret and mask_url(secret) != secret else mask(secret)
    if value is None:
        return "(unset)"
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def config_rows(loaded: LoadedConfig, settings: OpsdashSettings) -> list[tuple[str, str, str]]:
    """(key, shown value, source) for opsdash's settings, then every profile value."""
    rows: list[tuple[str, str, str]] = []
    for name in OpsdashSettings.model_fields:
        env_name = f"OPSDASH_{name.upper()}"
        value = getattr(settings, name)
        if name == "database" and paths.database_from_env() is not None:  # OPSDASH_DATABASE_URL wins
            env_name = next(n for n in ("OPSDASH_DATABASE_URL", "OPSDASH_DATABASE") if os.environ.get(n))
            value = SecretStr(os.environ[env_name])
        if env_name in os.environ:
            source = f"env {env_name}"
        elif name in loaded.file_table:
            line = locate(loaded.text, ("opsdash", name), exact=True)
            source = f"{loaded.path}:{line}" if line else str(loaded.path)
        else:
            source = "default"
        rows.append((f"opsdash.{name}", _show(value), source))
    as_written = ConfigFile.model_validate(
        {**loaded.profile.model_dump(by_alias=True), "opsdash": {}}
    ).model_dump(mode="json", by_alias=True, exclude={"opsdash"})
    for loc, value in _flatten((), as_written):
        line = locate(loaded.text, loc, exact=True)
        key = ""
        for part in loc:
            key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
        rows.append((key, _show(value), f"{loaded.path}:{line}" if line else "default"))
    return rows
