"""`opsdash config show|validate|schema` and `opsdash init`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from opsdash.cli.common import EXIT_UNKNOWN, config_option, json_option
from opsdash.cli.render import emit, emit_json
from opsdash.core.findings import SCHEMA_VERSION
from opsdash.ops.base import Ops
from opsdash.ops.config import load_config
from opsdash.ops.paths import find_config


@click.group("config")
def config_group() -> None:
    """Inspect and check opsdash's configuration and the target profile."""


@config_group.command("show")
@config_option
@json_option
def config_show(config: Path | None, as_json: bool) -> None:
    """Every setting and profile value with where it came from (secrets masked).

    \b
    Exit codes: 0 shown, 3 no configuration or an invalid one.
    """
    from opsdash.ops.config_report import config_rows

    ops = Ops.open(config)
    assert ops.config is not None
    rows = config_rows(ops.config, ops.settings)
    if as_json:
        emit_json([{"key": k, "value": v, "source": s} for k, v, s in rows])
        return
    from opsdash.cli.render import cell, emit_table, table

    emit(f"config file: {ops.config.path}")
    t = table(("KEY", {"no_wrap": True}), ("VALUE", {"ratio": 1}), "SOURCE")
    for key, value, source in rows:
        t.add_row(cell(key), cell(value), cell(source, "dim"))
    emit_table(t)


@config_group.command("validate")
@config_option
@json_option
def config_validate(config: Path | None, as_json: bool) -> None:
    """Check the config file; list every problem with file and line.

    \b
    Exit codes: 0 valid, 3 invalid (or no config found).
    """
    from opsdash.ops.config import parse_config, read_config_text

    path = find_config(config)
    parsed, problems = parse_config(path, read_config_text(path))
    if as_json:
        emit_json(
            {"schema_version": SCHEMA_VERSION, "path": str(path), "valid": not problems, "problems": problems}
        )
    elif problems:
        for problem in problems:
            emit(problem, err=True)
    else:
        assert parsed is not None
        emit(
            f"{path}: valid profile for {parsed.target.name} ({parsed.target.environment}): "
            f"{len(parsed.env.required)} required variables, {len(parsed.policy)} policies"
        )
        missing = [str(f) for f in load_config(path).profile.env.env_files() if not f.exists()]
        if missing:
            emit(f"note: env file(s) not found here: {', '.join(missing)} (use --env-file or --from-env)")
    sys.exit(EXIT_UNKNOWN if problems else 0)


@config_group.command("schema")
def config_schema_cmd() -> None:
    """Print the JSON Schema of opsdash.toml (for editors and CI linting).

    \b
    Exit codes: 0 printed.
    """
    from opsdash.ops.config import config_schema

    emit_json(config_schema())


@click.command()
@click.option("--force", is_flag=True, help="Overwrite an existing opsdash.toml.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    help="Project directory to inspect and write into.",
)
@click.option(
    "--base-url",
    metavar="URL",
    help="The app's production URL (https). Default: the host most of the app's own URL variables "
    "use; asked for at a terminal when none does.",
)
def init(force: bool, directory: Path, base_url: str | None) -> None:
    """Write a starter opsdash.toml for the project in the current directory.

    Reads what the build reads. Recognises Vite, Next.js and CRA projects (their config file or
    package.json); takes the mode package.json's build script builds in (`vite build --mode
    staging` reads .env.staging), envPrefix and outDir/distDir where the framework config writes
    them literally, and every env file the framework loads for that mode (plain projects: .env,
    .env.production, .env.production.local), plus .env.example and .env.development.

    Writes secrets and URL variables by role (*_API_BASE, *_API_BASE_URL, *_API_ENDPOINT are
    API bases), base_url from the app's own https URLs (not the provider's), [[policy]] rules for
    security switches whose safe value follows from the name (ENFORCE_HTTPS=true, *DEBUG*=false,
    *MONITORING*=true ...), an iKhokha provider, and the [[checks]] the shipped runbooks gate on
    (app-health, payment-return-page, webhook-endpoint ...). Of values, only the app's URLs are
    written (no query, no credentials); never a secret. Review the file, then run 'opsdash
    validate'.

    \b
    Exit codes: 0 written, 3 the file exists (pass --force), the directory is not one, or
    --base-url is not an https URL.
    """
    from opsdash.ops.init import record_init, write_profile

    def ask() -> str | None:
        emit("No https URL of the app's own was found in its env files.")
        answer: str = click.prompt(
            "The app's production URL (empty: a placeholder)", default="", show_default=False
        )
        return answer.strip() or None

    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    path = write_profile(directory, force=force, base_url=base_url, ask=ask if interactive else None)
    record_init(path)
    emit(f"wrote {path}")
    emit("next: review it, then run 'opsdash config validate' and 'opsdash validate'")
