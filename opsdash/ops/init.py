"""`opsdash init`: a starter profile from what is in a project directory (variable names only)."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

from opsdash.core.envfiles import read_env_file
from opsdash.core.errors import ConfigError, OpsdashError
from opsdash.core.files import write_file
from opsdash.core.profile import CLIENT_PREFIXES, SECRET_PATTERNS
from opsdash.ops.config import parse_config

ENV_CANDIDATES = (".env.production", ".env.production.local", ".env")
MODE_CANDIDATES = ("VITE_NODE_ENV", "NODE_ENV", "VITE_APP_ENV", "APP_ENV", "VITE_MODE", "NEXT_PUBLIC_ENV")
_IKHOKHA = re.compile("IKHOKHA", re.IGNORECASE)


def _q(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _list(values: list[str]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def _bare(name: str) -> str:
    for prefix in CLIENT_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _is_secret(name: str) -> bool:
    return any(fnmatch.fnmatchcase(_bare(name).upper(), p) for p in SECRET_PATTERNS)


def _url_role(name: str) -> str | None:
    upper = name.upper()
    if not upper.endswith(("_URL", "_URI", "_ENDPOINT")):
        return None
    if "WEBHOOK" in upper or "CALLBACK" in upper or "NOTIFY" in upper:
        return "webhook"
    if "CANCEL" in upper:
        return "cancel"
    if "RETURN" in upper or "SUCCESS" in upper:
        return "return"
    if "API" in upper and ("BASE" in upper or _IKHOKHA.search(upper)):
        return "api_base"
    return "other"


def build_profile(directory: Path) -> str:
    env_files = [name for name in ENV_CANDIDATES if (directory / name).is_file()][:1]
    example = ".env.example" if (directory / ".env.example").is_file() else None
    development = ".env.development" if (directory / ".env.development").is_file() else None
    keys: dict[str, str] = {}
    for name in [*env_files, *([example] if example else [])]:
        for item in read_env_file(directory / name)[0]:
            keys.setdefault(item.key, item.value)
    names = sorted(keys)
    base_url = "https://app.example.com"
    for key in names:
        if (
            any(w in key.upper() for w in ("APP_URL", "SITE_URL", "BASE_URL", "PUBLIC_URL"))
            and "API" not in key.upper()
        ):
            parts = urlsplit(keys[key])
            if parts.scheme == "https" and parts.hostname:
                base_url = f"https://{parts.hostname}"
                break
    mode = next((m for m in MODE_CANDIDATES if m in keys), None)
    test_mode = next((k for k in names if "TEST_MODE" in k.upper() or "SANDBOX" in k.upper()), None)
    secrets = [k for k in names if _is_secret(k)]
    roles: dict[str, list[str]] = {}
    for key in names:
        role = _url_role(key)
        if role:
            roles.setdefault(role, []).append(key)
    bundle = (
        "dist"
        if (directory / "dist").is_dir()
        or (directory / "vite.config.ts").is_file()
        or (directory / "vite.config.js").is_file()
        else None
    )
    name = directory.resolve().name or "app"
    lines = [
        "# opsdash profile written by 'opsdash init'. Review every value, then run 'opsdash validate'.",
        "# Only variable names were read from your env files; no value is stored here.",
        "",
        "[target]",
        f"name = {_q(name)}",
        'environment = "production"',
        f"base_url = {_q(base_url)}" + ("  # TODO: your production URL" if "example.com" in base_url else ""),
        f"client_prefixes = {_list(CLIENT_PREFIXES)}",
    ]
    if bundle:
        lines.append(f"bundle_dir = {_q(bundle)}  # built front end, scanned for leaked secrets")
    lines += ["", "[env]", f"files = {_list(env_files)}"]
    if example:
        lines.append(f"example = {_q(example)}")
    if development:
        lines.append(f"development = {_q(development)}")
    if mode:
        lines += [f"mode_variable = {_q(mode)}", 'mode_expected = "production"']
    if test_mode:
        lines.append(f"test_mode_variable = {_q(test_mode)}")
    lines.append(f"required = {_list(names)}")
    lines.append(f"secrets = {_list(secrets)}")
    if roles:
        lines += ["", "[urls]"]
        for role in ("webhook", "return", "cancel", "api_base", "other"):
            if role in roles:
                lines.append(f"{role} = {_list(roles[role])}")
    if any(_IKHOKHA.search(k) for k in names):
        ik = [k for k in names if _IKHOKHA.search(k)]
        app_id = next((k for k in ik if "APP_ID" in k.upper() or "API_KEY" in k.upper()), None)
        secret = next((k for k in ik if "SECRET" in k.upper() and "WEBHOOK" not in k.upper()), None)
        webhook = next((k for k in ik if "WEBHOOK" in k.upper() and "SECRET" in k.upper()), None)
        lines += [
            "",
            "[provider]",
            'kind = "ikhokha"',
            'api_base = "https://api.ikhokha.com/public-api/v1/api"',
        ]
        for field, var in (
            ("app_id_variable", app_id),
            ("secret_variable", secret),
            ("webhook_secret_variable", webhook),
        ):
            if var:
                lines.append(f"{field} = {_q(var)}")
    return "\n".join(lines) + "\n"


def write_profile(directory: Path, *, force: bool = False) -> Path:
    if not directory.is_dir():
        raise ConfigError(f"{directory}: not a directory")
    path = directory / "opsdash.toml"
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists; pass --force to overwrite it")
    text = build_profile(directory)
    _parsed, problems = parse_config(path, text)
    if problems:  # pragma: no cover - a bug in build_profile, not user input
        raise ConfigError(f"generated profile is invalid: {problems[0]}")
    write_file(path, text, 0o644)
    return path


def init_project(directory: Path, *, force: bool = False) -> Path:
    """Write the starter profile and audit it where that profile keeps its data."""
    from opsdash.ops.base import Ops

    path = write_profile(directory, force=force)
    try:
        ops = Ops.open(path)
    except OpsdashError:  # settings from the environment may still be broken: record where we can
        ops = Ops.bare()
    ops.audit.event("operator_action", "config-init", subject=str(path), outcome="written")
    return path
