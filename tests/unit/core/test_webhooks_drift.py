"""scripts/webhook_drift.py's reading of the parity run: which library a failure, an error or a skip
belongs to. (The script itself needs the package index; `make webhook-drift` runs it.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "webhook_drift.py"


@pytest.fixture(scope="module")
def drift() -> ModuleType:
    spec = importlib.util.spec_from_file_location("webhook_drift", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def _report(tmp_path: Path, cases: str) -> Path:
    path = tmp_path / "parity.xml"
    path.write_text(f'<testsuites><testsuite name="pytest">{cases}</testsuite></testsuites>')
    return path


def test_failures_skips_and_errors_count_against_their_library_only(
    drift: ModuleType, tmp_path: Path
) -> None:
    report = _report(
        tmp_path,
        '<testcase name="test_stripe_matches_stripe_python"/>'
        '<testcase name="test_the_issues_cases[stripe uppercase hex]"/>'
        '<testcase name="test_standard_webhooks_matches_svix"><failure message="AssertionError: x"/></testcase>'
        '<testcase name="test_the_issues_cases[standard junk]"><skipped message="svix is not installed"/></testcase>'
        '<testcase name="test_slack_matches_slack_sdk"><error message="ImportError: y"/></testcase>'
        '<testcase name="test_an_empty_secret_is_refused_as_the_libraries_refuse_it[]"/>'
        '<testcase name="test_github_and_shopify_match_their_reference_code"/>',
    )
    results = drift.results(report)
    assert (results["stripe"].passed, results["stripe"].failed) == (3, [])  # two of its own, one shared
    assert results["standard"].passed == 1 and [f.split(":")[0] for f in results["standard"].failed] == [
        "test_standard_webhooks_matches_svix",
        "test_the_issues_cases[standard junk]",  # a parity test that did not run has not passed
    ]
    assert results["slack"].failed == ["test_slack_matches_slack_sdk: ImportError: y"]
    assert (results["other"].passed, results["other"].failed) == (1, [])


def test_the_pinned_versions_are_read_from_the_lock(drift: ModuleType) -> None:
    pinned = drift.pinned_versions()
    assert set(pinned) == {"standardwebhooks", "svix", "stripe", "slack-sdk"}
    assert pinned["standardwebhooks"] == "1.3.0" and "not pinned" not in pinned.values()
