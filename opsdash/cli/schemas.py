"""The JSON Schemas of every `--json` output, from pydantic models of what the commands print.

`scripts/gen_schemas.py` writes them to docs/schemas/<stem>.schema.json, and the tests validate the
real commands' output against those files. The models describe the output; nothing parses with
them. Objects whose keys are fixed forbid others; summaries, evidence, details, metrics and facts
are free-form maps. Every object document carries `schema_version` (SCHEMA_VERSION); arrays and
JSON-lines outputs carry none themselves: their version is the schema's.

Importing this module loads pydantic and the core's enums only (no textual, rich or sqlite_utils).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from opsdash.core.findings import SCHEMA_VERSION, Severity
from opsdash.core.health.errors import ErrorClass
from opsdash.core.runbooks.executor import SessionStatus, StepStatus
from opsdash.core.webhooks.model import Outcome

DIALECT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = f"urn:opsdash:schema:v{SCHEMA_VERSION}:"

SchemaVersion = Annotated[
    int,
    Field(
        json_schema_extra={"const": SCHEMA_VERSION},
        description="Version of this document's shape; changes only on a change a script could notice.",
    ),
]
Timestamp = Annotated[str, Field(description="ISO 8601 time with offset (UTC), milliseconds.")]


class _Fixed(BaseModel):
    """An object whose keys are all known: any other key is an error."""

    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    """An object with some known keys and any others (per kind, free-form)."""

    model_config = ConfigDict(extra="allow")


# ---------------------------------------------------------------- findings, checks, reports


class Finding(_Fixed):
    """One thing a validator or check noticed."""

    rule: str = Field(description="Rule id (docs/troubleshooting.md).")
    severity: Severity
    category: str
    subject: str = Field(description="What the finding is about: a variable, a check, a file ...")
    title: str
    detail: str
    remediation: str
    runbook: str | None = Field(description="Id of the runbook that handles it, if any.")
    evidence: dict[str, str] = Field(description="Masked or non-secret values that back the finding.")


class Counts(_Fixed):
    """How many things were evaluated at each severity: each check once, and each other finding."""

    OK: int
    INFO: int
    WARN: int
    UNKNOWN: int
    CRIT: int


class ConditionResult(_Fixed):
    condition: str
    ok: bool
    actual: str
    error: str | None


class CheckResult(_Fixed):
    """What one probe of one health check produced."""

    name: str
    kind: str = Field(description="http, tcp, dns, tls, provider or webhook.")
    target: str
    severity: Severity
    summary: str = Field(description="One line an operator reads first.")
    error_class: ErrorClass | None = Field(description="Why it failed; null when it did not.")
    hint: str | None
    runbook: str | None
    started_at: Timestamp
    duration_ms: float
    queue_ms: float = Field(
        0.0, description="Milliseconds the probe waited for a concurrency slot; not in duration_ms."
    )
    attempts: int
    phases: dict[str, float] = Field(description="Milliseconds per phase (connect, tls, first_byte ...).")
    conditions: list[ConditionResult]
    metrics: dict[str, float]
    facts: dict[str, str] = Field(description="What the probe observed: status, ip, certificate ...")
    findings: list[Finding]


class ReportSummary(_Open):
    """Free-form per kind (validate: sources, variables, secrets ...; verify-deploy: sweeps, baseline,
    versions, latency_ms ...). check, preflight and verify-deploy list their check results."""

    checks: list[CheckResult] = Field(default_factory=list)


class Report(_Fixed):
    """The result of one run (validate, check, preflight, verify-deploy)."""

    schema_version: SchemaVersion
    kind: str = Field(description="validate, check, preflight or verify-deploy.")
    verdict: Severity = Field(description="The worst finding's severity (OK when there are none).")
    target: str
    run_id: str = Field(description="Id in history: 20261126T040512-3fa9c1.")
    started_at: Timestamp
    duration_ms: int
    counts: Counts
    summary: ReportSummary
    findings: list[Finding] = Field(description="Worst first.")


class GateReport(Report):
    """A deploy gate's report: a Report and its go/no-go."""

    gate: Literal["GO", "NO-GO", "UNKNOWN"] = Field(
        description="NO-GO on any CRIT, UNKNOWN when something could not be evaluated, else GO."
    )


class CheckWatchLine(CheckResult):
    """A check result and the check's sustained state."""

    sustained: Severity = Field(
        description="The state after failure_threshold/success_threshold: what alerts follow."
    )


# ---------------------------------------------------------------- history


class HistoryRun(_Fixed):
    run_id: str
    kind: str = Field(description="validate, check, preflight, verify-deploy or runbook.")
    target: str = Field(description="The target's name, or a runbook's id.")
    operator: str
    started_at: Timestamp
    duration_ms: int
    verdict: Severity
    counts: dict[str, int] = Field(
        description="Per severity (OK, INFO, WARN, UNKNOWN, CRIT) for reports; "
        "steps, done and failed for runbook sessions."
    )
    summary: dict[str, Any] = Field(description="The report's summary; a session's title and status.")


class StepState(_Fixed):
    status: StepStatus
    started_at: Timestamp | None
    finished_at: Timestamp | None
    exit_code: int | None = Field(description="A command step's exit code.")
    output: str = Field(description="A command step's output (capped, secrets redacted).")
    note: str
    detail: str
    pid: int | None = Field(None, description="The process group of a command step that ran.")


class SessionEvent(_Fixed):
    id: int
    session_id: str
    at: Timestamp
    step_index: int | None = Field(description="0-based; null for session-wide events.")
    event: str
    detail: str
    operator: str


class RunbookSession(_Fixed):
    """A runbook session, as `history show SESSION --json` prints it."""

    schema_version: SchemaVersion
    id: str
    runbook_id: str
    runbook_path: str
    title: str
    params: dict[str, str]
    operator: str
    status: SessionStatus
    current: int | None = Field(description="0-based index of the current step; null when finished.")
    steps: list[StepState] = Field(description="One per step of the runbook, in order.")
    started_at: Timestamp
    updated_at: Timestamp
    events: list[SessionEvent]
    escalated: bool = Field(
        description="A failed step sent the session down its on_fail=goto branch (it ends 'escalated')."
    )
    exclusive: str | None = Field(
        None, description="The runbook's exclusive group: one active session per group and target."
    )
    target: str = Field("", description="The profile's target the session ran against (empty: none).")


class FindingChange(_Fixed):
    before: Finding
    after: Finding


class HistoryDiff(_Fixed):
    schema_version: SchemaVersion
    before: str = Field(description="Run id of RUN_A.")
    after: str = Field(description="Run id of RUN_B.")
    new: list[Finding]
    resolved: list[Finding]
    changed: list[FindingChange] = Field(description="Same rule and subject, another severity or detail.")
    env_changed: list[str] = Field(description="Env keys whose value's fingerprint changed.")
    env_added: list[str]
    env_removed: list[str]


class HistoryList(RootModel[list[HistoryRun]]):
    """Runs, newest first."""


class HistoryShow(RootModel[Report | RunbookSession]):
    """A run's report, or a runbook session."""


# ---------------------------------------------------------------- webhooks


class WebhookAlert(_Fixed):
    """The alert this failure raised (a burst of failures from one source)."""

    id: int
    rule: str
    source: str
    title: str
    detail: str


class WebhookVerify(_Fixed):
    schema_version: SchemaVersion
    verified: bool
    outcome: Outcome
    message: str
    scheme: str
    delivery_id: str | None
    timestamp: int | None = Field(description="The delivery's signed timestamp (UNIX seconds).")
    clock_skew_s: float | None = Field(description="Now minus the delivery's timestamp, in seconds.")
    secret_index: int | None = Field(description="Which active secret verified it (while rotating).")
    warnings: list[str] = Field(
        description="What was not checked: iKhokha's IK-APPID when no application id is configured."
    )
    alert: WebhookAlert | None = Field(description="An alert raised by this delivery, or null.")


class WebhookSign(RootModel[dict[str, str]]):
    """Header name to value; a secret header value is printed as ${VAR}, never in clear."""


# ---------------------------------------------------------------- runbooks


class SessionRow(_Fixed):
    """A runbook's latest session as stored."""

    id: str
    runbook_id: str
    runbook_path: str
    title: str
    params: str = Field(description="The parameters as a JSON-encoded object (a string).")
    operator: str
    status: SessionStatus
    current_step: int | None = Field(description="0-based index of the current step; null when finished.")
    started_at: Timestamp
    updated_at: Timestamp


class RunbookEntry(_Fixed):
    id: str
    title: str
    severity: Literal["info", "warn", "crit"]
    steps: int
    path: str
    last_session: SessionRow | None


class RunbookList(RootModel[list[RunbookEntry]]):
    """The runbooks opsdash offers: the profile's directories, then the shipped ones."""


# ---------------------------------------------------------------- audit


class AuditRecord(_Fixed):
    """One record of the hash-chained audit log, as written."""

    v: int | None = Field(
        None, description="Record format: 2 (MAC over the line's bytes as written); absent in format 1."
    )
    seq: int
    ts: Timestamp
    log_id: str
    operator: str
    host: str
    kind: Literal["operator_action", "security_event", "check_result", "system"]
    action: str
    subject: str
    outcome: str
    details: dict[str, Any]
    prev: str = Field(description="The previous record's MAC; empty for a new log's genesis.")
    mac: str = Field(
        description="HMAC-SHA256: format 2 over the line's bytes as written up to the mac field; "
        "format 1 over the record without its mac, sorted keys, no spaces."
    )


class AuditUnparseable(_Fixed):
    """A line of the log that is not a record, shown rather than skipped."""

    unparseable: Literal["not UTF-8", "not JSON", "not a record"]
    line: str


class AuditTailLine(RootModel[AuditRecord | AuditUnparseable]):
    """An audit record, or a line that is not one."""


class AuditHead(_Fixed):
    log_id: str
    seq: int
    mac: str


class AuditProblem(_Fixed):
    file: str
    line: int
    seq: int | None
    reason: str
    first_bad_seq: int | None = Field(
        description="The first seq that is not as written: changed, missing, out of order or cut."
    )
    message: str = Field(description="file:line (seq N): reason")


class AuditVerify(_Fixed):
    schema_version: SchemaVersion
    ok: bool = Field(description="The chain is intact and reaches every anchor.")
    status: Literal["OK", "WARN", "TAMPERED"] = Field(
        description="WARN: intact, but a repaired torn write is not acknowledged (`audit ack-repair`)."
    )
    records: int = Field(description="Records verified (before the problem, if any).")
    files: list[str]
    head: AuditHead | None
    problem: AuditProblem | None = Field(description="The first bad record and why; null when intact.")
    notes: list[str]
    warnings: list[str] = Field(description="Repaired torn writes not yet acknowledged, one line each.")
    unacknowledged_repairs: list[int] = Field(description="The seqs of those repair records.")
    anchor_source: str = Field(description="Where the anchor came from (history run ..., --anchor, none).")
    head_anchor: str | None = Field(
        description="The head anchor file beside the key that the log was checked against; null before one."
    )
    directory: str


# ---------------------------------------------------------------- config


class ConfigRow(_Fixed):
    key: str
    value: str = Field(description="The value as shown (secrets masked).")
    source: str = Field(description="default, env VAR, or file:line.")


class ConfigShow(RootModel[list[ConfigRow]]):
    """Every setting and profile value with where it came from."""


class ConfigValidate(_Fixed):
    schema_version: SchemaVersion
    path: str
    valid: bool
    problems: list[str] = Field(description="file:line: message, one per problem.")


# ---------------------------------------------------------------- the published schemas


# ---------------------------------------------------------------- incidents


class IncidentPhases(_Fixed):
    """Seconds each phase took; null when its milestone was not reached."""

    detect: float | None = Field(description="First failure to the first alert fired.")
    act: float | None = Field(description="The alert (or the failure) to the first runbook step.")
    mitigate: float | None = Field(description="To the start of the last stretch without a failing check.")
    recover: float | None = Field(description="To every check and alert of it having recovered.")


class IncidentSummary(_Fixed):
    id: str = Field(description="When it opened and what opened it: `show` and `export` take it.")
    target: str
    severity: Severity = Field(description="The worst sustained check state or alert in it.")
    status: Literal["ongoing", "recovered"]
    first_failure_at: Timestamp
    opened_at: Timestamp = Field(description="The first sustained failure or firing alert.")
    recovered_at: Timestamp | None
    duration_s: float = Field(description="First failure to recovery (to now while ongoing).")
    checks: list[str] = Field(description="The checks that went down in it.")
    alerts: list[str] = Field(description="The alerts (`rule:key`) that fired in it.")
    phases: IncidentPhases


class IncidentList(RootModel[list[IncidentSummary]]):
    """The incidents derived from the record, newest first."""


class IncidentEvent(_Fixed):
    at: Timestamp
    kind: Literal[
        "check",
        "alert-fired",
        "alert-resolved",
        "alert-delivery",
        "deploy",
        "run",
        "runbook-session",
        "runbook-step",
        "webhook-failures",
        "env-change",
        "audit-anchor",
    ]
    source: str = Field(description="A check's name, an alert's rule:key, a run's kind, a runbook's id.")
    title: str
    severity: Severity
    operator: str | None
    evidence: str | None = Field(description="Masked: a version, a step's detail, fingerprints.")
    ref: str | None = Field(description="A run id, an alert id or a runbook session id.")


class IncidentPhase(_Fixed):
    name: Literal["detect", "act", "mitigate", "recover"]
    start: Timestamp
    end: Timestamp | None
    seconds: float | None


class IncidentShow(_Fixed):
    """One incident with every event of its window, in time order."""

    schema_version: SchemaVersion
    id: str
    target: str
    severity: Severity
    status: Literal["ongoing", "recovered"]
    first_failure_at: Timestamp
    opened_at: Timestamp
    recovered_at: Timestamp | None
    duration_s: float
    checks: list[str]
    alerts: list[str]
    phases: list[IncidentPhase]
    cause: IncidentEvent | None = Field(description="The deploy in the hour before the first failure.")
    deploys: list[IncidentEvent]
    runbook_sessions: list[str]
    events: list[IncidentEvent]


def _printed(model: type[BaseModel], command: str, arguments: str = "") -> tuple[type[BaseModel], str, str]:
    """An output that `opsdash COMMAND [ARGUMENTS] --json` prints whole."""
    invocation = f"opsdash {command} {arguments}".rstrip()
    return model, f"opsdash {command}", f"Printed by `{invocation} --json`."


# stem -> (model, title, which commands print it)
OUTPUTS: dict[str, tuple[type[BaseModel], str, str]] = {
    "report": (
        Report,
        "opsdash report",
        "Printed by `opsdash validate --json` and `opsdash check --json`, and by "
        "`opsdash history show RUN --json` for a validate, check, preflight or verify-deploy run.",
    ),
    "gate-report": (
        GateReport,
        "opsdash deploy gate report",
        "Printed by `opsdash preflight --json` and `opsdash verify-deploy --json`.",
    ),
    "check-watch": (
        CheckWatchLine,
        "opsdash check --watch line",
        "Each line of `opsdash check --watch SECONDS --json` (JSON lines).",
    ),
    "history-list": _printed(HistoryList, "history list"),
    "history-show": _printed(HistoryShow, "history show", "RUN"),
    "history-diff": _printed(HistoryDiff, "history diff", "RUN_A RUN_B"),
    "webhook-verify": _printed(WebhookVerify, "webhook verify"),
    "webhook-sign": _printed(WebhookSign, "webhook sign"),
    "runbook-list": _printed(RunbookList, "runbook list"),
    "audit-tail": (
        AuditTailLine,
        "opsdash audit tail line",
        "Each line of `opsdash audit tail --json` (JSON lines).",
    ),
    "audit-verify": _printed(AuditVerify, "audit verify"),
    "config-show": _printed(ConfigShow, "config show"),
    "config-validate": _printed(ConfigValidate, "config validate"),
    "incident-list": _printed(IncidentList, "incident list"),
    "incident-show": (
        IncidentShow,
        "opsdash incident",
        "Printed by `opsdash incident show REF --json` and `opsdash incident export REF --format json`.",
    ),
}


def schema_of(stem: str) -> dict[str, Any]:
    model, title, printed_by = OUTPUTS[stem]
    body = model.model_json_schema()
    doc = (model.__doc__ or "").strip()  # a class's own docstring (__doc__ is not inherited)
    description = f"{printed_by} {doc}".strip()
    return {
        "$schema": DIALECT,
        "$id": f"{BASE_ID}{stem}",
        **body,
        "title": title,
        "description": " ".join(description.split()),
    }


def schemas() -> dict[str, dict[str, Any]]:
    """File stem -> the JSON Schema of that output (published as docs/schemas/<stem>.schema.json)."""
    return {stem: schema_of(stem) for stem in OUTPUTS}


def render(schema: Mapping[str, Any]) -> str:
    """How a schema is published: indent 2, sorted keys, a trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
