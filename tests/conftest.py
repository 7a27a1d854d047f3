"""Shared fixtures: every test runs with its own config and data dirs and no OPSDASH_* variables."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
from hypothesis import settings as hypothesis_settings

from opsdash.cli import main
from opsdash.core.secrets import redactor
from opsdash.demo import betaskill_env, env_text
from opsdash.demo.target import CHECKS_MARKER
from tests.servers import closed_port
from tests.waits import read_line

LIVE_BASE_URL = "https://app.betaskill.com"  # the example profile's base_url

# CI explores the same examples every run (a failure there must be reproducible); locally,
# hypothesis keeps searching new ones.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_PROFILE = ROOT / "examples" / "betaskill" / "opsdash.toml"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No test reads the developer's config or writes their data; cwd is an empty temp dir."""
    import os

    for name in list(os.environ):
        if name.startswith("OPSDASH_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("OPSDASH_DATA_DIR", str(home / "data" / "opsdash"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    redactor.clear()
    yield work
    redactor.clear()


def not_none(value: T | None, what: str = "the value") -> T:
    """`value`, where the test expects it set (a session that was started, a step that is current):
    a clear failure if it is None, and a type without None for what the test reads next."""
    assert value is not None, f"{what} is None"
    return value


def json_object(text: str) -> dict[str, Any]:
    """`text` (a command's --json output, say) parsed, failing clearly if it is not one JSON object."""
    value = json.loads(text)
    assert isinstance(value, dict), f"not a JSON object: {text[:200]!r}"
    return value


def fake_secret(label: str = "") -> str:
    """A random, obviously generated value: high entropy, no placeholder words."""
    return f"{label}{secrets.token_hex(16)}"


def good_env() -> dict[str, str]:
    """A correct BetaSkill production environment (fresh random secrets each call)."""
    return betaskill_env()


def plan_shaped_env() -> dict[str, str]:
    """BetaSkill's plan as written: the five R1 variables, secrets under VITE_, webhook == API secret."""
    return betaskill_env(plan_shaped=True)


@dataclass
class Project:
    """A BetaSkill-like project directory: the example profile and a production env file."""

    root: Path
    profile: Path
    env_file: Path
    process_env: dict[str, str] | None = None  # set: validate --from-env reads these, not the file

    def write_env(self, values: Mapping[str, str] | str) -> Path:
        self.env_file.write_text(
            values if isinstance(values, str) else env_text(dict(values)), encoding="utf-8"
        )
        return self.env_file


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "betaskill"
    root.mkdir()
    # The example's [[checks]] probe the real BetaSkill: tests never do, so they are left out here;
    # and its base_url (which preflight's live-site trace fetches) is a closed port on 127.0.0.1.
    text = EXAMPLE_PROFILE.read_text()
    text = text.replace(LIVE_BASE_URL, f"http://127.0.0.1:{closed_port()}/", 1)
    (root / "opsdash.toml").write_text(text[: text.index(CHECKS_MARKER)])
    shutil.copy(EXAMPLE_PROFILE.with_name(".env.production.example"), root / ".env.production.example")
    proj = Project(root, root / "opsdash.toml", root / ".env.production")
    proj.write_env(good_env())
    return proj


@dataclass
class Result:
    code: int
    out: str
    err: str


class Run(Protocol):
    """The `run` fixture: `run("validate", path)` is `opsdash validate <path>` in-process."""

    def __call__(self, *args: str | Path) -> Result: ...


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run the real entry point (`opsdash ...`) in-process; returns exit code, stdout, stderr."""

    def _run(*args: str | Path) -> Result:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in args])
        captured = capsys.readouterr()
        code = exc.value.code
        return Result(
            code if isinstance(code, int) else (0 if code is None else 1), captured.out, captured.err
        )

    return _run


@dataclass
class Demo:
    profile: Path
    data_dir: Path
    proc: subprocess.Popen[str]

    @property
    def config_home(self) -> Path:
        """The demo's XDG_CONFIG_HOME: its audit key, which a command writing to the demo's data
        directory needs (a gate whose audit record cannot be written fails)."""
        return self.data_dir.parent / "config"


@pytest.fixture(scope="session")
def demo_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "OPSDASH_DATA_DIR": str(root / "data"), "XDG_CONFIG_HOME": str(root / "config")}
    opsdash = str(Path(sys.executable).with_name("opsdash"))
    proc = subprocess.Popen(
        [opsdash, "demo", "--no-tui", "--dir", str(root / "ws")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = read_line(proc.stdout).strip()
    assert line.endswith("opsdash.toml"), proc.stderr.read() if proc.stderr else line
    yield Demo(Path(line), root / "data", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert not (root / "data" / "demo.json").exists()  # the state file goes with the demo
