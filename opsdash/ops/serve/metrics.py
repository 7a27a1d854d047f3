"""`/metrics`: what `opsdash serve` knows, in Prometheus' text exposition format.

Every line is rendered by `prometheus_client`. Per-check lines are rendered when the check's result
arrives and kept; a scrape joins them under each family's HELP/TYPE header and renders the few
per-target and process families there and then. With 2,000 checks a scrape is then a join of
strings, not 15,000 samples formatted on the scrape's clock (prometheus_client spends ~10 µs on
each sample).

Names follow blackbox_exporter where they mean the same (`probe_success`, `probe_duration_seconds`,
`probe_http_status_code`, `probe_http_duration_seconds{phase}` with all five of its phases,
`probe_http_ssl`, `probe_http_version`, `probe_http_redirects`, `probe_http_content_length`,
`probe_http_uncompressed_body_length`, `probe_ip_protocol`, `probe_dns_lookup_time_seconds`,
`probe_failed_due_to_regex`, `probe_tls_version_info`, `probe_ssl_earliest_cert_expiry`,
`probe_ssl_last_chain_expiry_timestamp_seconds`); on /metrics each series carries `target` (the
profile's target name) and `check` (the check's name). `/probe?target=CHECK` answers one check's
series without those labels, as blackbox_exporter's /probe does, so its scrape config, alert rules
and Grafana dashboards work unchanged with the check as `instance`. No URL, header or body goes
into a label: a label never carries a secret.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from opsdash.core.findings import Report, Severity
from opsdash.core.health.model import CheckResult
from opsdash.core.health.state import SustainedState
from opsdash.core.readiness import dashboard_verdict

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HTTP_KINDS = frozenset({"http", "provider", "webhook"})  # the webhook self-test makes several requests
# opsdash's phases of an HTTP exchange → blackbox_exporter's phase names (it always reports all five)
BLACKBOX_PHASES = ("resolve", "connect", "tls", "processing", "transfer")
PHASES = {
    "dns": "resolve",
    "connect": "connect",
    "tls": "tls",
    "request": "processing",
    "first_byte": "processing",
    "body": "transfer",
}
VERDICTS = ("GO", "NO-GO", "UNKNOWN")
CHECK_FAMILIES: dict[str, str] = {
    "probe_success": "Whether the check's last probe succeeded (1) or failed (0).",
    "probe_duration_seconds": "How long the check's last probe took, in seconds.",
    "probe_http_status_code": "HTTP status of the last response (0: no response).",
    "probe_ssl_earliest_cert_expiry": "Earliest expiry of the presented certificate chain, in Unix time.",
    "probe_http_duration_seconds": "Duration of each phase of the last HTTP exchange, in seconds.",
    "probe_http_ssl": "Whether the last HTTP exchange was over TLS (1) or not (0).",
    "probe_http_redirects": "The number of redirects the last probe followed.",
    "probe_http_content_length": "Length of the last response as its Content-Length says (-1: none).",
    "probe_http_uncompressed_body_length": "Length of the last response body after decoding, in bytes.",
    "probe_http_version": "HTTP version of the last response.",
    "probe_ip_protocol": "IP protocol of the last probe's connection (4 or 6).",
    "probe_dns_lookup_time_seconds": "How long resolving the host took, in seconds.",
    "probe_failed_due_to_regex": "Whether a [BODY] condition failed in the last probe (1) or not (0).",
    "probe_tls_version_info": "The TLS version of the last handshake, in the version label.",
    "probe_ssl_last_chain_expiry_timestamp_seconds": "Earliest expiry of the verified chain, in Unix time.",
    "opsdash_check_state": "The check's sustained state, as exit codes: 0 OK, 1 WARN, 2 CRIT, 3 UNKNOWN.",
}


def probe_success(result: CheckResult) -> bool:
    """As blackbox_exporter means it: the probe worked. A certificate nearing expiry (WARN, no error
    class) is a working probe with a warning; a failed condition, an error or "could not evaluate"
    is not."""
    return result.error_class is None and result.severity not in (Severity.CRIT, Severity.UNKNOWN)


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def cert_expiry(result: CheckResult) -> float | None:
    return _timestamp(result.facts.get("chain_earliest_expiry") or result.facts.get("cert_not_after"))


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def _render(families: Iterable[Metric]) -> dict[str, str]:
    """prometheus_client's text for these families, split into {family: its sample lines}."""
    out: dict[str, list[str]] = {}
    current: list[str] = []
    for line in generate_latest(_Families(families)).decode("utf-8").splitlines(keepends=True):
        if line.startswith("# HELP "):
            current = out.setdefault(line.split(" ", 3)[2], [])
        elif not line.startswith("#"):
            current.append(line)
    return {name: "".join(lines) for name, lines in out.items()}


def _gauge(name: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, CHECK_FAMILIES.get(name, name), labels=labels)


def _count(text: str | None, default: float) -> float:
    return float(text) if text and text.isdigit() else default


def _families(result: CheckResult, state: SustainedState, labels: list[str], ids: list[str]) -> list[Metric]:
    """One check's latest result as blackbox_exporter's families (plus opsdash_check_state)."""

    def gauge(name: str, value: float, extra: Mapping[str, str] | None = None) -> GaugeMetricFamily:
        family = _gauge(name, [*labels, *(extra or {})])
        family.add_metric([*ids, *(extra or {}).values()], value)
        return family

    facts = result.facts
    families: list[Metric] = [
        gauge("probe_success", 1.0 if probe_success(result) else 0.0),
        gauge("probe_duration_seconds", result.duration_ms / 1000),
        gauge("opsdash_check_state", float(state.status.exit_code)),
    ]
    if result.kind in HTTP_KINDS and (result.kind != "webhook" or "status" in facts):
        try:
            status = float(int(facts.get("status", "0")))
        except ValueError:
            status = 0.0
        seconds = dict.fromkeys(BLACKBOX_PHASES, 0.0)
        for phase, ms in result.phases.items():
            if phase in PHASES:
                seconds[PHASES[phase]] += ms / 1000
        phases = _gauge("probe_http_duration_seconds", [*labels, "phase"])
        for phase, value in seconds.items():
            phases.add_metric([*ids, phase], value)
        version = facts.get("http_version", "").removeprefix("HTTP/")
        families += [
            gauge("probe_http_status_code", status),
            phases,
            gauge("probe_http_ssl", 1.0 if "tls_version" in facts else 0.0),
            gauge("probe_http_redirects", _count(facts.get("redirects"), 0.0)),
            gauge("probe_http_content_length", _count(facts.get("content_length"), -1.0)),
            gauge("probe_http_uncompressed_body_length", _count(facts.get("body_bytes"), 0.0)),
            gauge("probe_http_version", float(version) if version.replace(".", "", 1).isdigit() else 0.0),
            gauge("probe_dns_lookup_time_seconds", seconds["resolve"]),
            gauge(
                "probe_failed_due_to_regex",
                1.0 if any(not c.ok and "[BODY]" in c.text for c in result.conditions) else 0.0,
            ),
        ]
    if facts.get("ip"):
        families.append(gauge("probe_ip_protocol", 6.0 if ":" in facts["ip"] else 4.0))
    if facts.get("tls_version"):
        label = facts["tls_version"].replace("TLSv", "TLS ")  # blackbox's "TLS 1.3"
        families.append(gauge("probe_tls_version_info", 1.0, {"version": label}))
    expiry = cert_expiry(result)
    if expiry is not None:
        families.append(gauge("probe_ssl_earliest_cert_expiry", expiry))
    verified = _timestamp(facts.get("verified_chain_expiry"))
    if verified is not None:
        families.append(gauge("probe_ssl_last_chain_expiry_timestamp_seconds", verified))
    return families


def check_lines(target: str, result: CheckResult, state: SustainedState) -> dict[str, str]:
    """The sample lines of one check's latest result, by family, as /metrics shows them."""
    return _render(_families(result, state, ["target", "check"], [target, result.name]))


def probe_body(result: CheckResult, state: SustainedState) -> bytes:
    """/probe?target=CHECK: the check's latest result with no labels of opsdash's, as
    blackbox_exporter's /probe answers, so a scrape's relabelling makes the check the `instance`."""
    return generate_latest(_Families(_families(result, state, [], [])))


@dataclass
class TargetStatus:
    """What a scrape reports about one target besides its checks; the service keeps it current."""

    name: str
    expected_checks: int
    states: Mapping[str, SustainedState] = field(default_factory=dict)
    validation: Report | None = None
    validated_at: float | None = None
    alerts_firing: int | None = None
    alerts: list[tuple[Severity, str]] = field(default_factory=list)  # open alerts, as the verdict reads them
    audit_verified: bool | None = None

    def gate(self) -> str:
        """The dashboard's own verdict function on the same inputs (validation, check states, open
        alerts), so a scrape and the header never disagree."""
        return dashboard_verdict(self.validation, self.states, self.expected_checks, self.alerts).label


class _TargetFamilies(Collector):
    def __init__(self, targets: Callable[[], Iterable[TargetStatus]]) -> None:
        self.targets = targets

    def collect(self) -> Iterator[Metric]:
        findings = GaugeMetricFamily(
            "opsdash_validation_findings",
            "Findings of the latest validation, by severity and rule.",
            labels=["target", "severity", "rule"],
        )
        gate = GaugeMetricFamily(
            "opsdash_gate",
            "The deploy gate from the latest validation and the checks' sustained states: 1 for the "
            "current verdict.",
            labels=["target", "verdict"],
        )
        validated = GaugeMetricFamily(
            "opsdash_validation_timestamp_seconds",
            "When the latest validation finished, in Unix time.",
            labels=["target"],
        )
        firing = GaugeMetricFamily(
            "opsdash_alerts_firing", "Alerts open (firing, not silenced) for the target.", labels=["target"]
        )
        audit = GaugeMetricFamily(
            "opsdash_audit_verified",
            "Whether the audit log verified intact at the latest verification (1) or not (0).",
            labels=["target"],
        )
        for t in self.targets():
            if t.validation is not None:
                counts: dict[tuple[str, str], int] = {}
                for f in t.validation.findings:
                    key = (f.severity.value, f.rule)
                    counts[key] = counts.get(key, 0) + 1
                for (severity, rule_id), n in sorted(counts.items()):
                    findings.add_metric([t.name, severity, rule_id], n)
            verdict = t.gate()
            for v in VERDICTS:
                gate.add_metric([t.name, v], 1.0 if v == verdict else 0.0)
            if t.validated_at is not None:
                validated.add_metric([t.name], t.validated_at)
            if t.alerts_firing is not None:
                firing.add_metric([t.name], t.alerts_firing)
            if t.audit_verified is not None:
                audit.add_metric([t.name], 1.0 if t.audit_verified else 0.0)
        yield from (findings, gate, validated, firing, audit)


class Exposition:
    """The body of /metrics. `update` as results arrive, `forget` what a reload removed, `render`
    for a scrape. Used from the service's event loop only."""

    def __init__(self, targets: Callable[[], Iterable[TargetStatus]], *, process: bool = True) -> None:
        self._checks: dict[tuple[str, str], dict[str, str]] = {}
        self._latest: dict[tuple[str, str], tuple[CheckResult, SustainedState]] = {}
        self._headers = _headers()
        self.registry = CollectorRegistry(auto_describe=False)
        if process:
            ProcessCollector(registry=self.registry)
        self.registry.register(_TargetFamilies(targets))

    def update(self, target: str, result: CheckResult, state: SustainedState) -> None:
        self._checks[(target, result.name)] = check_lines(target, result, state)
        self._latest[(target, result.name)] = (result, state)

    def forget(self, target: str, keep: Iterable[str] = ()) -> None:
        kept = set(keep)
        for key in [k for k in self._checks if k[0] == target and k[1] not in kept]:
            del self._checks[key]
            self._latest.pop(key, None)

    def latest(self, check: str) -> list[tuple[str, CheckResult, SustainedState]]:
        """The latest result of every check of that name (one per target serving it)."""
        return [(t, r, s) for (t, name), (r, s) in self._latest.items() if name == check]

    def check_names(self) -> list[str]:
        return sorted({name for _t, name in self._latest})

    def render(self) -> bytes:
        parts = [generate_latest(self.registry).decode("utf-8")]
        fragments = list(self._checks.values())
        for name in CHECK_FAMILIES:
            parts.append(self._headers[name])
            parts.extend(f.get(name, "") for f in fragments)
        return "".join(parts).encode("utf-8")


def _headers() -> dict[str, str]:
    """Each per-check family's HELP and TYPE lines, as prometheus_client writes them."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(GaugeMetricFamily(n, doc) for n, doc in CHECK_FAMILIES.items()))
    out: dict[str, str] = {}
    for line in generate_latest(registry).decode("utf-8").splitlines(keepends=True):
        name = line.split(" ", 3)[2]
        out[name] = out.get(name, "") + line
    return out
