"""The running and previous release, read from the profile's `[deploy] version_url` or
`version_command`: used by the deploy gates and by runbook parameter suggestions alike (its own
module, so `ops/deploys` and `ops/runbooks` need not import each other for it)."""

from __future__ import annotations

import shlex
import subprocess

from opsdash.core.health.probes.base import ProbeFailed
from opsdash.core.profile import Profile
from opsdash.core.readiness import Versions, versions_from
from opsdash.ops import outbound

VERSION_BODY_CAP = 1_000_000  # a version answer is a few hundred bytes


def read_versions(profile: Profile, timeout: float = 5.0) -> Versions | None:
    """The running and previous release, from the profile's version URL or command."""
    deploy = profile.deploy
    if deploy.version_url:
        ca = profile.health.ca_file
        try:
            answer = outbound.request(
                "GET",
                deploy.version_url,
                timeout=timeout,
                ca_file=str(ca) if ca else None,
                max_body_bytes=VERSION_BODY_CAP,
            )
            if answer.status >= 300:
                raise ValueError(f"HTTP {answer.status}")
            return versions_from(outbound.loads(answer.body), deploy, deploy.version_url)
        except ProbeFailed as exc:
            return Versions(None, None, deploy.version_url, exc.reason)
        except ValueError as exc:
            return Versions(None, None, deploy.version_url, f"{type(exc).__name__}: {exc}")
    if deploy.version_command:
        try:
            out = subprocess.run(  # noqa: S603 - the profile's own command, as its owner wrote it
                shlex.split(deploy.version_command),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=True,
            ).stdout
            return versions_from(outbound.loads(out), deploy, deploy.version_command)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            return Versions(None, None, deploy.version_command, f"{type(exc).__name__}: {exc}")
    return None
