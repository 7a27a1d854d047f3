"""The audit trail: the one function every component writes through, and the key it signs with."""

from __future__ import annotations

import os
import secrets
import stat
import sys
from typing import Any

from opsdash.core.audit.log import AuditLog, Head
from opsdash.core.errors import InputError
from opsdash.core.findings import Report, Severity
from opsdash.ops import paths
from opsdash.ops.config import OpsdashSettings
from opsdash.storage.history import History

AUDIT_KEY_FILE = "audit.key"
EXPOSURE_RULES = {"secret-client-exposed", "secret-in-bundle", "url-secret-in-query"}


def audit_key(settings: OpsdashSettings) -> bytes:
    """OPSDASH_AUDIT_KEY, else a 0600 key file in the config dir (never the data dir, so whoever can
    edit the log cannot also re-sign it), created on first use."""
    if settings.audit_key is not None:
        return settings.audit_key.get_secret_value().encode()
    path = paths.config_dir() / AUDIT_KEY_FILE
    if not path.exists():
        paths.ensure_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(f"{path}: the audit key is readable by others (mode {mode & 0o777:o}); chmod 600 it")
    key = path.read_text().strip()
    if len(key) < 32:
        raise InputError(f"{path}: the audit key is too short; delete it to create a new one")
    return key.encode()


def audit_log(settings: OpsdashSettings, operator: str) -> AuditLog:
    return AuditLog(
        paths.ensure_dir(settings.resolved_data_dir()),
        audit_key(settings),
        operator=operator,
        max_bytes=settings.audit_max_bytes,
    )


def audit_event(
    settings: OpsdashSettings,
    operator: str,
    kind: str,
    action: str,
    *,
    subject: str = "",
    outcome: str = "",
    details: dict[str, Any] | None = None,
) -> Head | None:
    """The one way every component writes to the audit log. A failure to write is reported on
    stderr and never loses the operator's result; returns the new head."""
    try:
        record = audit_log(settings, operator).append(
            kind, action, subject=subject, outcome=outcome, details=details
        )
    except (OSError, InputError) as exc:
        print(f"opsdash: warning: audit log not written: {exc}", file=sys.stderr)
        return None
    return Head(record["log_id"], record["seq"], record["mac"])


def audit_report(settings: OpsdashSettings, operator: str, report: Report, history: History | None) -> None:
    for f in report.findings:
        if f.rule in EXPOSURE_RULES:
            audit_event(
                settings,
                operator,
                "security_event",
                "secret-exposure",
                subject=f.subject,
                outcome=f.severity.value,
                details={"rule": f.rule, "run_id": report.run_id},
            )
    crit = sorted({f.rule for f in report.findings if f.severity is Severity.CRIT})
    if crit:
        audit_event(
            settings,
            operator,
            "security_event",
            "crit-findings",
            subject=report.target,
            outcome="CRIT",
            details={"rules": crit, "run_id": report.run_id},
        )
    head = audit_event(
        settings,
        operator,
        "operator_action",
        report.kind,
        subject=report.target,
        outcome=report.verdict.value,
        details={"run_id": report.run_id, **report.counts()},
    )
    if head is not None and history is not None:
        history.record_anchor(report.run_id, head.log_id, head.seq, head.mac)
