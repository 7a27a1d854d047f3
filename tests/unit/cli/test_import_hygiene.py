"""The layers hold at run time: the core imports no other opsdash layer, no settings, paths or
storage libraries; core and storage stay UI-free; the headless CLI never imports Textual, and a
`validate --no-history` loads neither the history database nor the audit or alert code.
(import-linter checks the same contracts statically in `make lint`.)"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from opsdash.demo import env_text
from tests.conftest import EXAMPLE_PROFILE, good_env

CORE_IMPORTS = """
import importlib, pkgutil, sys
import opsdash.core, opsdash.storage
for pkg in (opsdash.core, opsdash.storage):
    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        importlib.import_module(m.name)
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "rich"))
print(",".join(bad))
"""

CORE_ONLY = """
import importlib, pkgutil, sys
import opsdash.core
for m in pkgutil.walk_packages(opsdash.core.__path__, "opsdash.core."):
    importlib.import_module(m.name)
outside = ("opsdash.ops", "opsdash.storage", "opsdash.cli", "opsdash.tui", "opsdash.demo")
libs = ("textual", "rich", "pydantic_settings", "platformdirs", "sqlite_utils", "click")
bad = sorted(m for m in sys.modules if m.startswith(outside) or m.split(".")[0] in libs)
print(",".join(bad))
"""

CLI_RUN = """
import sys
from opsdash.cli import main
try:
    main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
forbidden = tuple(sys.argv[1].split(","))  # module names, or packages with their submodules
bad = sorted(m for m in sys.modules if m in forbidden or m.startswith(tuple(f + "." for f in forbidden)))
print("IMPORTED:" + ",".join(bad), file=sys.stderr)
sys.exit(code)
"""


def test_core_and_storage_never_import_ui() -> None:
    out = subprocess.run([sys.executable, "-c", CORE_IMPORTS], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_core_imports_no_other_layer_nor_settings_or_storage_libraries() -> None:
    out = subprocess.run([sys.executable, "-c", CORE_ONLY], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def imported(forbidden: str, *argv: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    """Run `opsdash ARGV` in a fresh interpreter; (its stdout, the forbidden modules it imported)."""
    proc = subprocess.run(
        [sys.executable, "-c", CLI_RUN, forbidden, *argv], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, proc.stderr.rstrip().rpartition("IMPORTED:")[2]


def good_env_file(tmp_path: Path) -> str:
    env_file = tmp_path / ".env.production"
    env_file.write_text(env_text(good_env()))
    return str(env_file)


def test_validate_no_history_loads_neither_history_nor_audit_nor_alerts(tmp_path: Path) -> None:
    forbidden = "textual,rich,sqlite_utils,opsdash.storage,opsdash.ops.audit,opsdash.ops.alerts"
    argv = [
        "validate",
        "--no-history",
        "--config",
        str(EXAMPLE_PROFILE),
        "--env-file",
        good_env_file(tmp_path),
    ]
    assert imported(forbidden, *argv)[1] == ""


def test_validate_no_history_loads_only_the_validation_path(tmp_path: Path) -> None:
    """`validate --no-history` is the gate CI runs on every push, and its time is mostly imports:
    it loads the profile models, the validators and its own command. No probe engine, HTTP, TLS
    or crypto library, no runbook, webhook-serving or alert code, no other command, no SQLite
    and no XML writer (only JUnit output needs it)."""
    forbidden = ",".join(
        [
            "httpx,httptools,aiohttp,cryptography,sqlite3,xml",
            "opsdash.core.health.probes,opsdash.core.health.runner,opsdash.core.runbooks,opsdash.core.audit",
            "opsdash.ops.checks,opsdash.ops.runbooks,opsdash.ops.serve,opsdash.ops.webhooks",
            "opsdash.cli.check,opsdash.cli.runbook,opsdash.cli.serve,opsdash.cli.history,opsdash.tui",
        ]
    )
    argv = [
        "validate",
        "--no-history",
        "--config",
        str(EXAMPLE_PROFILE),
        "--env-file",
        good_env_file(tmp_path),
    ]
    out, loaded = imported(forbidden, *argv)
    assert loaded == ""
    assert "no findings" in out  # it did validate


def test_validate_command_never_imports_textual(tmp_path: Path) -> None:
    """Recording a validation (and its one retention batch) writes through the connection: no
    Textual, and no sqlite-utils (about 60 ms to import) once the database exists."""
    env = {**os.environ, "OPSDASH_DATA_DIR": str(tmp_path / "data")}
    argv = ["validate", "--config", str(EXAMPLE_PROFILE), "--env-file", good_env_file(tmp_path)]
    imported("", *argv, env=env)  # creates the database
    _out, loaded = imported("textual,rich,sqlite_utils", *argv, env=env)
    assert loaded == ""
    with closing(sqlite3.connect(tmp_path / "data" / "history.db")) as db:
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone() == (2,)  # both were recorded


def test_installed_console_script_reports_errors_without_traceback(tmp_path: Path) -> None:
    opsdash = Path(sys.executable).with_name("opsdash")
    bad = tmp_path / "opsdash.toml"
    bad.write_text("[target]\nname = 1\n")
    proc = subprocess.run([str(opsdash), "validate", "--config", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 3
    assert proc.stderr.startswith(f"opsdash: error: {bad}:2:")
    assert "Traceback" not in proc.stderr


def test_reading_history_loads_only_what_it_needs(tmp_path: Path) -> None:
    """`opsdash history list` is what an operator types most: it loads click, its own command and
    the history code, not the other commands, the settings models or the schema library."""
    forbidden = (
        "textual,pydantic,pydantic_settings,sqlite_utils,opsdash.ops.config,opsdash.core.profile,"
        "opsdash.cli.validate,opsdash.cli.audit,opsdash.cli.runbook,opsdash.cli.serve"
    )
    env = {**os.environ, "OPSDASH_DATA_DIR": str(tmp_path / "data")}
    profile = str(EXAMPLE_PROFILE)
    imported("", "validate", "--config", profile, "--env-file", good_env_file(tmp_path), env=env)
    listed, loaded = imported(forbidden, "history", "list", "--config", profile, env=env)
    assert loaded == ""
    assert "validate" in listed and "BetaSkill" in listed
    # the documented set-up: the data directory named in the profile, no variable
    profile_only = tmp_path / "opsdash.toml"
    profile_only.write_text(f'[opsdash]\ndata_dir = "{tmp_path / "data"}"\n')
    without_variable = {k: v for k, v in env.items() if k != "OPSDASH_DATA_DIR"}
    listed, loaded = imported(
        forbidden, "history", "list", "--config", str(profile_only), env=without_variable
    )
    assert loaded == "" and "validate" in listed
    version, loaded = imported(forbidden, "--version", env=env)
    assert loaded == "" and version.startswith("opsdash, version ")
    # showing a recorded run (and any runbook session in it) loads no settings models nor the
    # runbook step driver
    shown, loaded = imported(forbidden + ",opsdash.ops.runbooks", "history", "show", "latest", env=env)
    assert loaded == "" and "BetaSkill" in shown
