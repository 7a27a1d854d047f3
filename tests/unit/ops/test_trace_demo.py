"""The credential trace on the demo: the served-bundle fault turns preflight NO-GO naming the asset
URL; the demo's provider accepts the rotated-away secret until the rotation is completed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsdash.demo import FAULTS
from opsdash.demo.control import set_fault
from opsdash.demo.target import ENTRY
from tests.conftest import Demo, Run, json_object


@pytest.fixture
def demo(demo_process: Demo) -> Iterator[Demo]:
    yield demo_process
    for fault in FAULTS:
        set_fault(demo_process.data_dir, fault, False)


def app_url(demo: Demo) -> str:
    for line in demo.profile.read_text().splitlines():
        if line.startswith("base_url = "):
            return line.split('"')[1].rstrip("/")
    raise AssertionError("the demo profile has no base_url")


def preflight(run: Run, demo: Demo, *extra: str) -> tuple[int, dict[str, Any]]:
    result = run("preflight", "--config", demo.profile, "--no-history", "--json", *extra)
    assert result.out, result.err
    return result.code, json_object(result.out)


def test_the_healthy_demo_site_is_traced_and_clean(run: Run, demo: Demo) -> None:
    code, report = preflight(run, demo)
    assert report["gate"] == "GO", report["findings"]
    assets = report["summary"]["live_trace"]["assets"]
    kinds = {a["kind"] for a in assets}
    assert {"page", "script", "modulepreload", "stylesheet", "sourcemap"} <= kinds
    assert all(a["error"] is None for a in assets)
    assert not [f for f in report["findings"] if f["rule"] == "secret-served-live"]


def test_the_served_bundle_fault_turns_preflight_no_go_naming_the_asset(run: Run, demo: Demo) -> None:
    set_fault(demo.data_dir, "bundle-leak", True)
    code, report = preflight(run, demo)
    assert (code, report["gate"]) == (2, "NO-GO")
    crit = {(f["rule"], f["subject"]) for f in report["findings"] if f["severity"] == "CRIT"}
    url = app_url(demo)
    assert ("secret-served-live", url + ENTRY) in crit, crit
    assert ("secret-served-live", url + ENTRY + ".map") in crit, crit
    human = run("preflight", "--config", demo.profile, "--no-history")
    assert human.out.startswith("NO-GO") and url + ENTRY in human.out
    # --no-live leaves the site alone: the rest of the demo is healthy
    _code, without = preflight(run, demo, "--no-live")
    assert without["gate"] == "GO" and "live_trace" not in without["summary"]


def test_the_demo_repository_has_the_leaked_then_deleted_commit(demo: Demo) -> None:
    import shutil
    import subprocess

    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    repo = Path(demo.profile).parent / "app"
    log = subprocess.run(
        [git, "-C", str(repo), "log", "--format=%s", "-p"], capture_output=True, text=True, check=True
    ).stdout
    assert "Remove the hard-coded fallback secret" in log and "- " in log
    assert "VITE_IKHOKHA_API_SECRET || '" in log
    assert "||" not in (repo / "src" / "config" / "ikhokha.ts").read_text()
