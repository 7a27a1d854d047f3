"""`opsdash init`: a starter profile from what is in a project directory (variable names only)."""

from __future__ import annotations

import contextlib
import fnmatch
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from opsdash.core.envfiles import framework_files, read_env_file
from opsdash.core.errors import ConfigError, OpsdashError
from opsdash.core.files import write_file
from opsdash.core.profile import CLIENT_PREFIXES, SECRET_PATTERNS
from opsdash.ops.config import parse_config

ENV_CANDIDATES = (".env", ".env.production", ".env.production.local")
MODE_CANDIDATES = ("VITE_NODE_ENV", "NODE_ENV", "VITE_APP_ENV", "APP_ENV", "VITE_MODE", "NEXT_PUBLIC_ENV")
_IKHOKHA = re.compile("IKHOKHA", re.IGNORECASE)
_CONFIGS = {
    "vite": ("vite.config.ts", "vite.config.mts", "vite.config.js", "vite.config.mjs", "vite.config.cjs"),
    "next": ("next.config.ts", "next.config.mjs", "next.config.js", "next.config.cjs"),
}
_PACKAGES = {"vite": "vite", "next": "next", "cra": "react-scripts"}
_DEFAULT_PREFIX = {"vite": ["VITE_"], "next": ["NEXT_PUBLIC_"], "cra": ["REACT_APP_"]}
_DEFAULT_BUNDLE = {"vite": "dist", "next": ".next/static", "cra": "build"}
_STRING = r"""(['"`])([^'"`\n]+)\1"""


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
    if not upper.endswith(("_URL", "_URI", "_ENDPOINT", "_API_BASE", "_BASE")):
        return None
    if "WEBHOOK" in upper or "CALLBACK" in upper or "NOTIFY" in upper:
        return "webhook"
    if "CANCEL" in upper:
        return "cancel"
    if "RETURN" in upper or "SUCCESS" in upper:
        return "return"
    if "API" in upper and ("BASE" in upper or "ENDPOINT" in upper or _IKHOKHA.search(upper)):
        return "api_base"
    return "other"


@dataclass
class Project:
    """What init reads of a front-end project: its framework, and what its config says literally."""

    framework: str = "plain"
    config: str | None = None
    prefixes: list[str] = field(default_factory=list)
    bundle: str | None = None
    notes: list[str] = field(default_factory=list)


def detect(directory: Path) -> Project:
    package: dict[str, object] = {}
    with contextlib.suppress(OSError, ValueError):
        data = json.loads((directory / "package.json").read_text(encoding="utf-8"))
        for table in ("dependencies", "devDependencies"):
            package.update(data.get(table) or {})
    project = Project()
    for framework in ("vite", "next", "cra"):
        config = next((n for n in _CONFIGS.get(framework, ()) if (directory / n).is_file()), None)
        if config or _PACKAGES[framework] in package:
            project = Project(framework, config)
            break
    if project.framework == "plain":
        return project
    text = ""
    if project.config:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            text = (directory / project.config).read_text(encoding="utf-8")[:200_000]
    project.prefixes = list(_DEFAULT_PREFIX[project.framework])
    project.bundle = _DEFAULT_BUNDLE[project.framework]
    if project.framework == "vite" and "envPrefix" in text:
        literal = re.search(r"envPrefix\s*:\s*" + _STRING, text)
        listed = re.search(r"envPrefix\s*:\s*\[([^\]]*)\]", text)
        if literal:
            project.prefixes = [literal.group(2)]
        elif listed and re.fullmatch(r"(\s*" + _STRING + r"\s*,?)*\s*", listed.group(1)):
            project.prefixes = [m.group(2) for m in re.finditer(_STRING, listed.group(1))]
        else:
            project.notes.append(f"envPrefix in {project.config} is computed: set client_prefixes by hand")
    out_key = "outDir" if project.framework == "vite" else "distDir"
    if out_key in text:
        literal = re.search(out_key + r"\s*:\s*" + _STRING, text)
        if literal:
            out = literal.group(2).rstrip("/")
            project.bundle = out if project.framework == "vite" else f"{out}/static"
        else:
            project.notes.append(f"{out_key} in {project.config} is computed: set bundle_dir by hand")
    return project


def _production_host(values: dict[str, str], skip: set[str]) -> str | None:
    """The most common host among the https URLs the app is configured with (not its API's)."""
    hosts: Counter[str] = Counter()
    for key, value in values.items():
        if key in skip:
            continue
        parts = urlsplit(value.strip())
        if parts.scheme == "https" and parts.hostname and "." in parts.hostname:
            hosts[parts.hostname.lower()] += 1
    return hosts.most_common(1)[0][0] if hosts else None


def build_profile(directory: Path) -> str:
    project = detect(directory)
    if project.framework == "plain":
        env_files = [name for name in ENV_CANDIDATES if (directory / name).is_file()]
    else:
        env_files = [
            p.name for p in framework_files(project.framework, "production", directory) if p.is_file()
        ]
    example = ".env.example" if (directory / ".env.example").is_file() else None
    development = ".env.development" if (directory / ".env.development").is_file() else None
    keys: dict[str, str] = {}
    for name in env_files:
        for item in read_env_file(directory / name)[0]:
            keys[item.key] = item.value  # later files win, as the loader does
    for item in read_env_file(directory / example)[0] if example else []:
        keys.setdefault(item.key, "")
    names = sorted(keys)
    roles: dict[str, list[str]] = {}
    for key in names:
        role = _url_role(key)
        if role:
            roles.setdefault(role, []).append(key)
    provider_vars = {k for k in names if _IKHOKHA.search(k)} | set(roles.get("api_base", []))
    host = _production_host(keys, provider_vars)
    base_url = f"https://{host}" if host else "https://app.example.com"
    mode = next((m for m in MODE_CANDIDATES if m in keys), None)
    test_mode = next((k for k in names if "TEST_MODE" in k.upper() or "SANDBOX" in k.upper()), None)
    secrets = [k for k in names if _is_secret(k)]
    bundle = project.bundle or ("dist" if (directory / "dist").is_dir() else None)
    prefixes = list(dict.fromkeys([*project.prefixes, *CLIENT_PREFIXES]))
    name = directory.resolve().name or "app"
    lines = [
        "# opsdash profile written by 'opsdash init'. Review every value, then run 'opsdash validate'.",
        "# Only variable names (and the host of your app's URLs) were read; no value is stored here.",
        *(f"# NOTE: {note}" for note in project.notes),
        "",
        "[target]",
        f"name = {_q(name)}",
        'environment = "production"',
        f"base_url = {_q(base_url)}" + ("  # TODO: your production URL" if not host else ""),
        f"client_prefixes = {_list(prefixes)}",
    ]
    if bundle:
        lines.append(f"bundle_dir = {_q(bundle)}  # built front end, scanned for leaked secrets")
    lines += ["", "[env]"]
    if project.framework == "plain":
        lines.append(f"files = {_list(env_files)}")
    else:
        lines += [
            f"framework = {_q(project.framework)}  # reads {', '.join(env_files) or 'its .env files'} "
            "as the build does",
            'mode = "production"',
        ]
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
    has_provider = any(_IKHOKHA.search(k) for k in names)
    if has_provider:
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
        for field_name, var in (
            ("app_id_variable", app_id),
            ("secret_variable", secret),
            ("webhook_secret_variable", webhook),
        ):
            if var:
                lines.append(f"{field_name} = {_q(var)}")
    lines += _starter_checks(base_url, host, has_provider)
    return "\n".join(lines) + "\n"


def _starter_checks(base_url: str, host: str | None, provider: bool) -> list[str]:
    """Live checks to start from: the app answers, its certificate, the provider (read-only)."""
    out = [
        "",
        "# Live checks: adjust the health path and conditions to what your app serves.",
        "[[checks]]",
        'name = "app"',
        'kind = "http"',
        f"url = {_q(base_url + '/')}",
        'conditions = ["[STATUS] == 200", "[RESPONSE_TIME] < 2000"]',
    ]
    if host:
        out += ["", "[[checks]]", 'name = "app-tls"', 'kind = "tls"', f"host = {_q(host)}"]
    if provider:
        out += ["", "[[checks]]", 'name = "ikhokha-api"', 'kind = "provider"', 'endpoint = "history"']
    return out


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
