"""The core and storage stay UI-free, and the headless CLI never imports Textual."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import EXAMPLE_PROFILE, env_text, good_env

CORE_IMPORTS = """
import importlib, pkgutil, sys
import opsdash.core, opsdash.storage
for pkg in (opsdash.core, opsdash.storage):
    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        importlib.import_module(m.name)
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "rich"))
print(",".join(bad))
"""

CLI_RUN = """
import sys
from opsdash.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "rich"))
print("IMPORTED:" + ",".join(bad), file=sys.stderr)
sys.exit(code)
"""


def test_core_and_storage_never_import_ui() -> None:
    out = subprocess.run([sys.executable, "-c", CORE_IMPORTS], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_validate_command_never_imports_textual(tmp_path: Path) -> None:
    env_file = tmp_path / ".env.production"
    env_file.write_text(env_text(good_env()))
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CLI_RUN,
            "validate",
            "--config",
            str(EXAMPLE_PROFILE),
            "--env-file",
            str(env_file),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "IMPORTED:\n" in proc.stderr or proc.stderr.rstrip().endswith("IMPORTED:")


def test_installed_console_script_reports_errors_without_traceback(tmp_path: Path) -> None:
    opsdash = Path(sys.executable).with_name("opsdash")
    bad = tmp_path / "opsdash.toml"
    bad.write_text("[target]\nname = 1\n")
    proc = subprocess.run([str(opsdash), "validate", "--config", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 3
    assert proc.stderr.startswith(f"opsdash: error: {bad}:2:")
    assert "Traceback" not in proc.stderr
