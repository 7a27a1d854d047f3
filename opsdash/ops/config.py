"""opsdash's own settings and the target profile, loaded from one TOML file.

The file has an optional `[opsdash]` table (opsdash's settings; `OPSDASH_*` environment variables
override it) and the target profile: `[target]`, `[env]`, `[urls]`, `[[policy]]`, `[provider]`.
Errors name the file and line. No UI types live here.
"""

from __future__ import annotations

import contextvars
import getpass
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from opsdash.core.errors import ConfigError
from opsdash.core.profile import CHECK_KINDS, Profile, check_keymap, check_theme
from opsdash.core.secrets import redactor, secret_param, url_secrets
from opsdash.core.text import did_you_mean
from opsdash.ops import paths


class SettingsTable(BaseModel):
    """opsdash's own settings as written in the [opsdash] table of the config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path | None = Field(
        None,
        description="History database and audit log directory (relative to this file). "
        "Default: the platform's user data dir.",
    )
    operator: str | None = Field(None, description="Who is operating; recorded in history. Default: OS user.")
    history_retention_days: int = Field(90, ge=1, description="Runs older than this are purged from history.")
    theme: str = Field(
        "textual-dark", description="Dashboard theme; 'ansi-dark' uses the terminal's 16 colours."
    )
    keymap: dict[str, str] = Field(
        default_factory=dict, description='Key remapping by binding id, e.g. {"health.pause" = "space"}.'
    )
    audit_max_bytes: int = Field(
        100 * 1024 * 1024, ge=4096, description="The audit log rotates to a numbered file at this size."
    )
    database: SecretStr | None = Field(
        None,
        description="A team's shared history: postgresql://user:password@host:5432/dbname "
        "(or OPSDASH_DATABASE_URL; the password is a secret, masked everywhere). "
        "Default: an SQLite file in data_dir, this machine's alone.",
    )

    @field_validator("database")
    @classmethod
    def _postgresql_url(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else SecretStr(paths.check_database_url(value.get_secret_value()))

    _known_theme = field_validator("theme")(check_theme)
    _known_keymap = field_validator("keymap")(check_keymap)


class ConfigFile(Profile):
    """The whole opsdash.toml: opsdash's own settings plus the target profile."""

    opsdash: SettingsTable = Field(
        default_factory=SettingsTable,
        description="opsdash's own settings; OPSDASH_* variables override them.",
    )


# ---------------------------------------------------------------- opsdash's own settings

_file_table: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "opsdash_file_table", default=None
)


class _FileTableSource(PydanticBaseSettingsSource):
    """The `[opsdash]` table of the config file, below environment variables in priority."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return (_file_table.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        table = _file_table.get() or {}
        return {k: v for k, v in table.items() if k in self.settings_cls.model_fields}


class OpsdashSettings(BaseSettings, SettingsTable):
    """opsdash's own settings: flags, then OPSDASH_* variables, then [opsdash] in the config file."""

    model_config = SettingsConfigDict(env_prefix="OPSDASH_", extra="ignore", frozen=True)

    # Environment only, never the config file (which may be committed): see audit_key() in ops/audit.py.
    audit_key: SecretStr | None = Field(
        None,
        description="Audit-log HMAC key (OPSDASH_AUDIT_KEY). Default: 0600 file in the config dir.",
    )
    serve_token: SecretStr | None = Field(
        None,
        description="Token 'opsdash serve' asks of dashboards attaching to /events, and that "
        "'opsdash --server' sends (OPSDASH_SERVE_TOKEN).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileTableSource(settings_cls))

    def resolved_data_dir(self) -> Path:
        return (self.data_dir or paths.default_data_dir()).expanduser()

    def resolved_database(self) -> str | None:
        """The postgresql:// URL history lives in (OPSDASH_DATABASE_URL, then `database`), its
        credentials taught to the redactor; None: the data directory's SQLite file."""
        url = paths.database_from_env()
        if url is None and self.database is not None:
            url = self.database.get_secret_value()
        return None if url is None else paths.learn_database_url(paths.check_database_url(url))

    def resolved_operator(self) -> str:
        if self.operator:
            return self.operator
        for var in ("USER", "LOGNAME", "USERNAME"):
            if os.environ.get(var):
                return os.environ[var]
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "unknown"


def load_settings(file_table: Mapping[str, Any] | None = None, **overrides: Any) -> OpsdashSettings:
    token = _file_table.set(dict(file_table or {}))
    try:
        settings = OpsdashSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        env_name = "OPSDASH_" + field.upper()
        where = env_name if env_name in os.environ else f"[opsdash].{field}"
        raise ConfigError(f"{where}: {err['msg']}") from None
    finally:
        _file_table.reset(token)
    # opsdash's own secrets: a runbook command inherits the environment, and one that prints it
    # (a deploy script dumping its env on error) must not put the audit key in the record
    for secret in (settings.audit_key, settings.serve_token):
        if secret is not None:
            redactor.register(secret.get_secret_value())
    return settings


# ---------------------------------------------------------------- loading and locating errors


@dataclass(frozen=True)
class LoadedConfig:
    path: Path
    text: str
    profile: Profile
    file_table: Mapping[str, Any]


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+))*)\s*="""
)


def _split_key(key: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in key.split("."))


def locate(text: str, loc: tuple[str | int, ...], *, exact: bool = False) -> int | None:
    """Best-effort line number of a TOML location such as ('policy', 1, 'expected').

    Without `exact`, the line of the closest enclosing key or table is returned when the location
    itself is not written in the file."""
    aot_index: dict[tuple[str | int, ...], int] = {}
    current: tuple[str | int, ...] = ()
    best_line, best_len = None, 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            parts = _split_key(header.group(2))
            path: tuple[str | int, ...] = ()
            for part in parts:
                path = (*path, part)
                if path in aot_index and not (header.group(1) == "[[" and path == parts):
                    path = (*path, aot_index[path])
            if header.group(1) == "[[":
                index = aot_index.get(parts, -1) + 1
                aot_index[parts] = index
                path = (*parts, index)
            current = path
            full = current
        else:
            key = _KEY.match(line)
            if not key:
                continue
            full = (*current, *_split_key(key.group(1)))
        n = len(full)
        if n > best_len and tuple(loc[:n]) == full:
            best_line, best_len = lineno, n
    if exact and best_len != len(loc):
        return None
    return best_line


def _format_loc(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _strip_tags(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Drop pydantic's union tags (checks.0.http.url -> checks.0.url) so the path matches the file."""
    out: list[str | int] = []
    for part in loc:
        if part == "function-after" or (part in CHECK_KINDS and out and isinstance(out[-1], int)):
            continue
        out.append(part)
    return tuple(out)


def _key_names(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set[str]:
    """Every key a profile may use, in any table: what a misspelt one is held against."""
    seen = set() if seen is None else seen
    seen.add(model)
    names: set[str] = set()
    for name, info in model.model_fields.items():
        names.add(info.alias or name)
        pending = [info.annotation]
        while pending:
            kind = pending.pop()
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                if kind not in seen:
                    names |= _key_names(kind, seen)
            else:
                pending.extend(typing.get_args(kind))
    return names


def validation_messages(exc: ValidationError, path: Path, text: str) -> list[str]:
    messages = []
    # A misspelt key also makes the real key "missing": report the misspelling first.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    for err in errors:
        loc = _strip_tags(tuple(err["loc"]))
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, "kind")
        line = locate(text, loc) if loc else None
        where = f"{path}:{line}" if line else str(path)
        if err["type"] == "extra_forbidden":
            section = _format_loc(loc[:-1]) or "the top level"
            hint = did_you_mean(str(loc[-1]), _key_names(ConfigFile))
            messages.append(f"{where}: unknown key {loc[-1]!r} in {section}{hint}")
        elif err["type"] == "missing":
            messages.append(f"{where}: {_format_loc(loc)} is required but missing")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            messages.append(f"{where}: {_format_loc(loc) or 'config'}: {msg}")
    return messages


def read_config_text(path: Path) -> str:
    from opsdash.core.files import UnreadableFile, read_text

    try:
        return read_text(path, "config file")
    except UnreadableFile as exc:
        raise ConfigError(str(exc)) from None


_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def learn_profile_secrets(data: object, key: str = "") -> None:
    """Teach the masker every credential the profile itself holds, as written and before it is
    validated (an error message may quote a value): the userinfo and secret-named query values of
    every URL in it (checks, [deploy] version_url, alert channels, provider), and the values of
    secret-named headers. Env-file secrets are learnt where the env is read (core.validators)."""
    if isinstance(data, dict):
        for name, value in data.items():
            if (
                key == "headers"
                and isinstance(value, str)
                and (secret_param(name) or name.lower() in _HEADERS)
            ):
                redactor.register(value)
            learn_profile_secrets(value, name)
    elif isinstance(data, list):
        for item in data:
            learn_profile_secrets(item, key)
    elif isinstance(data, str):
        for credential in url_secrets(data):
            redactor.register(credential)


_HEADERS = ("authorization", "proxy-authorization", "cookie")


def parse_config(path: Path, text: str) -> tuple[ConfigFile | None, list[str]]:
    """Parse and validate; returns every problem as 'file:line: message'."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        pos = _TOML_POS.search(msg)
        if pos:
            where = f"{path}:{pos.group(1)}:{pos.group(2)}"
            msg = _TOML_POS.sub("", msg).strip()
        else:
            where = f"{path}:{text.count(chr(10)) + 1}"
        return None, [f"{where}: invalid TOML: {msg}"]
    learn_profile_secrets(data)
    try:
        return ConfigFile.model_validate(data), []
    except ValidationError as exc:
        return None, validation_messages(exc, path, text)


def load_config(path: Path) -> LoadedConfig:
    """Load a config file; raise ConfigError naming file and line on the first problem."""
    text = read_config_text(path)
    parsed, problems = parse_config(path, text)
    if parsed is None:
        more = (
            f" (+{len(problems) - 1} more; 'opsdash config validate' lists all)" if len(problems) > 1 else ""
        )
        raise ConfigError(problems[0] + more)
    base = path.resolve().parent
    target = parsed.target.model_copy(
        update={"bundle_dir": paths.relative_to_file(base, parsed.target.bundle_dir)}
    )
    env = parsed.env.model_copy(
        update={
            "files": [paths.relative_to_file(base, f) for f in parsed.env.files],
            "dir": paths.relative_to_file(base, parsed.env.dir),
            "example": paths.relative_to_file(base, parsed.env.example),
            "development": paths.relative_to_file(base, parsed.env.development),
        }
    )
    health = parsed.health.model_copy(update={"ca_file": paths.relative_to_file(base, parsed.health.ca_file)})
    runbooks = parsed.runbooks.model_copy(
        update={"dirs": [paths.relative_to_file(base, d) for d in parsed.runbooks.dirs]}
    )
    fields = {name: getattr(parsed, name) for name in Profile.model_fields}
    profile = Profile(**{**fields, "target": target, "env": env, "health": health, "runbooks": runbooks})
    file_table = parsed.opsdash.model_dump(exclude_unset=True)
    if file_table.get("data_dir") is not None:  # relative to the file, not to wherever opsdash runs
        file_table["data_dir"] = paths.relative_to_file(base, file_table["data_dir"])
    return LoadedConfig(path=path, text=text, profile=profile, file_table=file_table)


def config_schema() -> dict[str, Any]:
    schema = ConfigFile.model_json_schema(by_alias=True)
    schema["properties"]["opsdash"] = OpsdashSettings.model_json_schema()
    schema["properties"]["opsdash"]["title"] = (
        "opsdash settings ([opsdash] table; OPSDASH_* env vars override)"
    )
    return schema
