"""Webhook verification never raises: every header set, however malformed, gets a verdict, and that
verdict can be audited and counted toward the burst alert.

How many header sets: the committed tests draw 500 per scheme so that the suite stays fast. The
acceptance run draws 20,000 per scheme, by hand:

    OPSDASH_WEBHOOK_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest -q -p no:cacheprovider \\
        tests/unit/core/test_webhooks_props.py -k never_raises
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsdash.core.webhooks import (
    SCHEMES,
    UNREADABLE,
    Delivery,
    Outcome,
    SchemeOptions,
    Verdict,
    Verifier,
    sign,
)

EXAMPLES = int(os.environ.get("OPSDASH_WEBHOOK_FUZZ_EXAMPLES", "500"))
NOW = 1_764_150_000
SECRET = "whsec_" + base64.b64encode(b"k" * 24).decode()
OPTIONS = SchemeOptions(
    app_id="IKAPP", timestamp_header="X-Ts", id_header="X-Id", template="{timestamp}.{id}.{path}.{body}"
)

# Each scheme's own headers, and their neighbours (Svix's brand, GitHub's other signature header)
NAMES = {
    "ikhokha": ["IK-APPID", "IK-SIGN"],
    "github": ["X-Hub-Signature-256", "X-Hub-Signature", "X-GitHub-Delivery"],
    "stripe": ["Stripe-Signature"],
    "standard": [
        f"{brand}-{part}" for brand in ("webhook", "svix") for part in ("id", "timestamp", "signature")
    ],
    "slack": ["X-Slack-Request-Timestamp", "X-Slack-Signature"],
    "shopify": ["X-Shopify-Hmac-Sha256", "X-Shopify-Webhook-Id"],
    "generic": ["X-Signature", "X-Ts", "X-Id"],
}

# Text the issue and a fuzzer found to crash verifiers: other digits, number words, separators, huge
TRICKY = [
    "",
    " ",
    "\t",
    "²",
    "¹⁷⁶⁴¹⁵⁰⁰⁰⁰",
    "١٧٦٤١٥٠٠٠٠",
    "１７６４１５００００",
    "½",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e999",
    "-1e999",
    "1e-999",
    "9" * 5000,
    "-" + "9" * 30,
    "0x10",
    "1_764_150_000",
    "+1764150000",
    f"{NOW}.0",
    f"{NOW}.9999999",
    "t",
    "t=",
    "t=,v1=",
    "v1",
    "v1=",
    "v1,",
    ",",
    "=",
    "==",
    ",,,",
    "v0=",
    "sha256=",
    "whsec_",
    "é",
    "\x00",
    "\udcff",
    "\ud800",
    "\u202e",
    "\r\n",
    "{",
    "}",
    "%s",
    "{body}",
]


def _text(max_size: int = 60) -> st.SearchStrategy[str]:
    return st.one_of(
        st.binary(max_size=max_size).map(lambda b: b.decode("latin-1")),  # what an HTTP server hands over
        st.binary(max_size=max_size).map(lambda b: b.decode("utf-8", "surrogateescape")),  # a CLI argument
        st.text(max_size=max_size),  # any code point, lone surrogates too
        st.sampled_from(TRICKY),
    )


@st.composite
def header_sets(draw: st.DrawFn, scheme: str) -> Delivery:
    """A correctly signed delivery, then changed: values replaced, spliced into, dropped, renamed to
    another case or duplicated; unknown headers added."""
    body = draw(st.one_of(st.binary(max_size=200), st.sampled_from([b"{}", b'{"id":"evt_1"}', b"[" * 3000])))
    stamp = draw(st.one_of(st.just(NOW), st.integers(-(10**12), 10**12)))
    path = draw(st.one_of(st.just("/hook"), _text(30)))
    signed = sign(scheme, SECRET, Delivery(body, {}, path), OPTIONS, timestamp=stamp, delivery_id="msg_1")
    headers: dict[str, str] = dict(signed)
    names = sorted(set(headers) | set(NAMES[scheme]))
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(names))
        value = headers.get(name, "")
        change = draw(st.sampled_from(["replace", "splice", "drop", "case", "duplicate"]))
        if change == "replace":
            headers[name] = draw(_text())
        elif change == "splice":
            start = draw(st.integers(0, len(value)))
            end = draw(st.integers(start, len(value)))
            headers[name] = value[:start] + draw(_text(12)) + value[end:]
        elif change == "drop":
            headers.pop(name, None)
        elif change == "case":
            headers[draw(st.sampled_from([name.lower(), name.upper(), name.swapcase()]))] = headers.pop(
                name, value
            )
        else:
            headers[name.lower() if name != name.lower() else name.upper()] = draw(_text())
    headers.update(draw(st.dictionaries(_text(20), _text(), max_size=2)))
    source = draw(st.one_of(st.none(), st.just("203.0.113.7"), _text(40)))
    return Delivery(body, headers, path, source)


def assert_a_verdict_the_audit_can_write(verdict: Verdict) -> None:
    assert isinstance(verdict, Verdict) and isinstance(verdict.outcome, Outcome)
    assert not verdict.message.startswith(UNREADABLE), verdict.message
    # the audit log and `--json` write the verdict as UTF-8 JSON: nothing in it may stop that
    json.dumps(verdict.to_dict(), ensure_ascii=False).encode("utf-8")


VERIFIERS = {
    scheme: (
        Verifier(scheme, [SECRET, "whsec_b2xkLXNlY3JldA"], OPTIONS),
        Verifier(scheme, [SECRET], OPTIONS, allowed_sources=["203.0.113.0/24", "2001:db8::/32"]),
    )
    for scheme in SCHEMES
}


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@given(data=st.data())
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_verification_never_raises(scheme: str, data: st.DataObject) -> None:
    delivery = data.draw(header_sets(scheme))
    now = data.draw(
        st.one_of(st.just(float(NOW)), st.floats(-1e18, 1e18, allow_nan=False, allow_infinity=False))
    )
    for verifier in VERIFIERS[scheme]:
        assert_a_verdict_the_audit_can_write(verifier.verify(delivery, now))


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@given(data=st.data())
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_rejection_is_audited_and_counted(
    scheme: str, data: st.DataObject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the operation the CLI runs: a failed verification lands in the audit log as a security
    event and in the failure counts the burst alert reads, whatever the headers were."""
    from opsdash.ops.base import Ops
    from opsdash.ops.webhooks import verify

    monkeypatch.setenv("FUZZ_HOOK_SECRET", SECRET)
    ops = Ops.bare(data_dir=Path(tempfile.mkdtemp(dir=tmp_path)))  # a fresh log and history per example
    delivery = data.draw(header_sets(scheme))
    checked = verify(
        ops, delivery.body, delivery.headers, source_ip=delivery.source_ip, now=NOW, scheme=scheme,
        secret_envs=("FUZZ_HOOK_SECRET",),
    )  # fmt: skip
    assert_a_verdict_the_audit_can_write(checked.verdict)
    if checked.verdict.ok:
        return
    last = json.loads(ops.audit.log().path.read_bytes().splitlines()[-1])
    assert (last["kind"], last["action"]) == ("security_event", "webhook-verification-failed")
    assert last["outcome"] == checked.verdict.outcome.value
    with ops.history() as history:  # this delivery's failure, then one more: two toward the burst
        assert history.webhooks.record_failure(last["subject"], "probe", NOW) == [NOW, NOW]
