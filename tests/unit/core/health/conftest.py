"""Helpers for the health tests: checks built from plain dicts, a probe context, shared certificates."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from opsdash.core.envfiles import EnvSnapshot, EnvValue
from opsdash.core.findings import Severity
from opsdash.core.health.model import CheckResult
from opsdash.core.health.probes import ProbeContext, make_ssl_context, probe
from opsdash.core.profile import Check, Profile
from tests.servers import Certs

CHECK = TypeAdapter(Check)
HANG_GUARD = 30  # seconds: a probe that hangs fails the test instead of hanging it (not a timing assertion)
# Each server certificate of `Certs` that a days-left threshold tells apart, and the severity it earns
CERT_THRESHOLDS = [("valid", Severity.OK), ("expiring_20d", Severity.WARN), ("expiring_3d", Severity.CRIT)]
HEALTH = {"status": "UP", "payments": {"success_rate": 0.99, "pending": 2}}  # a healthy /health body


def make_check(**fields: Any) -> Any:
    return CHECK.validate_python({"name": "probe", "timeout": 2, "retries": 0, **fields})


async def run(check: Any, ctx: ProbeContext) -> CheckResult:
    """One probe of `check`, as the runner makes it."""
    return await asyncio.wait_for(probe(check, ctx), HANG_GUARD)


def make_profile(**provider: Any) -> Profile:
    return Profile.model_validate(
        {
            "target": {"name": "T", "base_url": "https://app.betaskill.com"},
            "provider": {
                "kind": "ikhokha",
                "app_id_variable": "IKHOKHA_API_KEY",
                "secret_variable": "IKHOKHA_API_SECRET",
                "webhook_secret_variable": "IKHOKHA_WEBHOOK_SECRET",
                **provider,
            },
        }
    )


def env_snapshot(values: dict[str, str]) -> EnvSnapshot:
    return EnvSnapshot(
        {k: EnvValue(k, v, f"test.env:{i}") for i, (k, v) in enumerate(values.items(), 1)},
        sources=("test.env",),
    )


@pytest.fixture(scope="session")
def certs() -> Certs:
    return Certs()


@pytest.fixture
def ctx(certs: Certs, tmp_path: Path) -> Iterator[ProbeContext]:
    yield ProbeContext(profile=make_profile(), ssl_context=make_ssl_context(certs.ca_file(str(tmp_path))))
