"""The wheel a user installs carries what the package promises: `py.typed` (so a project that
imports opsdash type-checks against its annotations, PEP 561), the demo profile and the shipped
runbooks."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_built_wheel_ships_py_typed_and_the_package_data(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("opsdash-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "opsdash/py.typed" in names
    assert "opsdash/demo/betaskill.toml" in names
    assert any(n.startswith("opsdash/runbooks/") and n.endswith(".md") for n in names)
    assert "opsdash/tui/app.tcss" in names  # the dashboard's styles, read at run time
