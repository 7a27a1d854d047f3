"""Webhook verification: providers' published vectors, property tests, malformed input, rotation,
replay, clocks, source allowlists, and the burst alert."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsdash.core.webhooks import (
    SCHEMES,
    UNREADABLE,
    BurstRule,
    Delivery,
    Outcome,
    SchemeOptions,
    Verifier,
    sign,
    validate_message_template,
    validate_path,
    validate_template,
)

NOW = 1_764_150_000  # 2025-11-26


# ---------------------------------------------------------------- published vectors


def test_github_docs_vector() -> None:
    # docs.github.com, "Validating webhook deliveries" -> "Testing the webhook payload validation"
    verifier = Verifier("github", ["It's a Secret to Everybody"])
    sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert verifier.verify(Delivery(b"Hello, World!", {"X-Hub-Signature-256": sig}), NOW).ok


def test_slack_docs_vector() -> None:
    # api.slack.com, "Verifying requests from Slack": the worked example
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmib"
        b"IGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    headers = {
        "X-Slack-Request-Timestamp": "1531420618",
        "X-Slack-Signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
    }
    verifier = Verifier("slack", ["8f742231b10e8888abcd99yyyzzz85a5"])
    assert verifier.verify(Delivery(body, headers), 1531420618 + 10).ok
    assert verifier.verify(Delivery(body, headers), NOW).outcome is Outcome.STALE


def test_standard_webhooks_vector() -> None:
    # the Standard Webhooks reference libraries' test vector (svix)
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    delivery = Delivery(b'{"test": 2432232314}', headers)
    verifier = Verifier("standard", ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])
    verdict = verifier.verify(delivery, 1614265330)
    assert verdict.ok and verdict.delivery_id == "msg_p5jXN8AQM9LWM0D4loKWxJek"
    several = {
        **headers,
        "webhook-signature": "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= "
        "v2,abc v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    assert verifier.verify(Delivery(delivery.body, several), 1614265330).ok


def test_stripe_sdk_style_cases() -> None:
    # stripe-python's webhook tests: whsec_ secret used as-is, t=/v1= header, several v1 entries (junk
    # ones skipped), a v0 entry ignored, and "no signatures with expected scheme" when only v0 is present
    secret, payload = "whsec_test_secret", b'{\n  "id": "evt_test_webhook",\n  "object": "event"\n}'
    digest = hmac.new(secret.encode(), f"{NOW}.".encode() + payload, hashlib.sha256).hexdigest()
    verifier = Verifier("stripe", [secret])
    ok = verifier.verify(Delivery(payload, {"Stripe-Signature": f"t={NOW},v1=bad0,v1={digest},v0=ff"}), NOW)
    assert ok.ok  # "bad0" cannot match, and stripe-python accepts the valid v1 beside it
    good = verifier.verify(Delivery(payload, {"Stripe-Signature": f"t={NOW},v1={'0' * 64},v1={digest}"}), NOW)
    assert good.ok and good.delivery_id == "evt_test_webhook"
    only_v0 = verifier.verify(Delivery(payload, {"Stripe-Signature": f"t={NOW},v0={digest}"}), NOW)
    assert only_v0.outcome is Outcome.MALFORMED_HEADER and "v1" in only_v0.message
    assert (
        verifier.verify(Delivery(payload, {"Stripe-Signature": f"t={NOW},v1={digest}"}), NOW + 301).outcome
        is Outcome.STALE
    )


def test_shopify_base64_vector() -> None:
    # an independently published vector (sqlpage's Shopify example); Shopify documents the algorithm only
    body = b'{"id":1234567890,"email":"customer@example.com","total_price":"123.45"}'
    verifier = Verifier("shopify", ["test-webhook-secret"])
    headers = {"X-Shopify-Hmac-Sha256": "QNyObTlKbMx2qDlPF/ZOZcBqg5OgPg+2oky3zldc0Gw="}
    assert verifier.verify(Delivery(body, headers), NOW).ok


def test_ikhokha_escaping_and_app_id() -> None:
    secret, app_id = "fake-ik-secret-0123456789abcdef", "IKFAKEAPPID0001"
    body = b'{"paylinkID":"pl_1","note":"O\'Brien said \\"hi\\"\\\\"}'
    path = "/api/payments/ikhokha/webhook"
    raw = path + body.decode()
    escaped = raw.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'")
    expected = hmac.new(secret.encode(), escaped.encode(), hashlib.sha256).hexdigest()
    options = SchemeOptions(app_id=app_id)
    verifier = Verifier("ikhokha", [secret], options)
    delivery = Delivery(body, {"IK-APPID": app_id, "IK-SIGN": expected}, path + "?ignored=query")
    assert verifier.verify(delivery, NOW).ok and verifier.verify(delivery, NOW).delivery_id == "pl_1"
    wrong_app = Delivery(body, {"IK-APPID": "IKSOMEONEELSE", "IK-SIGN": expected}, path)
    assert verifier.verify(wrong_app, NOW).outcome is Outcome.APP_ID_MISMATCH
    unescaped = Verifier("ikhokha", [secret], SchemeOptions(app_id=app_id, escape=False))
    assert unescaped.verify(delivery, NOW).outcome is Outcome.BAD_SIGNATURE


def test_ikhokha_without_an_app_id_says_ik_appid_was_not_checked() -> None:
    secret, body, path = "fake-ik-secret-0123456789abcdef", b'{"paylinkID":"pl_1"}', "/hook"
    signed = sign("ikhokha", secret, Delivery(body, {}, path))["IK-SIGN"]
    delivery = Delivery(body, {"IK-APPID": "IKSOMEBODY-ELSE", "IK-SIGN": signed}, path)
    unchecked = Verifier("ikhokha", [secret]).verify(delivery, NOW)
    assert unchecked.ok and len(unchecked.warnings) == 1  # verified: the signature is right
    assert unchecked.warnings[0].startswith("IK-APPID was not checked: no application id is configured")
    assert unchecked.to_dict()["warnings"] == list(unchecked.warnings)
    forged = Verifier("ikhokha", [secret]).verify(
        Delivery(body, {**delivery.headers, "IK-SIGN": "0" * 64}, path), NOW
    )
    assert (
        forged.outcome is Outcome.BAD_SIGNATURE and forged.warnings == unchecked.warnings
    )  # on failures too
    checked = Verifier("ikhokha", [secret], SchemeOptions(app_id="IKSOMEBODY-ELSE")).verify(delivery, NOW)
    assert checked.ok and checked.warnings == () and checked.to_dict()["warnings"] == []
    other_scheme = Verifier("github", [secret]).verify(Delivery(body, {}), NOW)
    assert other_scheme.warnings == ()  # IK-APPID means nothing to GitHub


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@pytest.mark.parametrize("secret", ["", " ", "\t\n"])
def test_an_empty_secret_is_refused(scheme: str, secret: str) -> None:
    # an HMAC with an empty key is one anybody can compute: nothing signed with it proves anything
    with pytest.raises(ValueError, match="the webhook secret is empty"):
        Verifier(scheme, [secret])
    with pytest.raises(ValueError, match="webhook secret #2 is empty"):
        Verifier(scheme, [SECRET, secret])  # one blank among rotating secrets is refused too
    with pytest.raises(ValueError, match="the webhook secret is empty"):
        sign(scheme, secret, Delivery(b"{}", {}), timestamp=NOW, delivery_id="msg_1")


def test_standard_webhooks_junk_beside_a_valid_entry_is_skipped_and_said_on_a_mismatch() -> None:
    verifier = Verifier("standard", [SECRET])
    good = sign("standard", SECRET, Delivery(b"{}", {}), timestamp=NOW, delivery_id="msg_1")
    sig = good["webhook-signature"]
    for value in (f"junk {sig}", f"{sig} v1a,xyz", f"v1,a,b  {sig}"):
        assert verifier.verify(Delivery(b"{}", {**good, "webhook-signature": value}), NOW).ok, value
    digest = sig.removeprefix("v1,")
    for value in (f"v1,{digest}=", f"v1,!{digest}", f"v1,{digest[:5]}-{digest[5:]}", f"junk v1,{digest}!"):
        verdict = verifier.verify(Delivery(b"{}", {**good, "webhook-signature": value}), NOW)
        assert verdict.outcome is Outcome.BAD_SIGNATURE, value  # the right bytes, not as a signer writes them
        assert "not v1,<canonical base64 of 32 bytes> skipped" in verdict.message


# ---------------------------------------------------------------- properties

SECRET = "whsec_" + base64.b64encode(b"k" * 24).decode()


def _signed(scheme: str, body: bytes, ts: int = NOW, msg_id: str = "msg_1") -> Delivery:
    options = SchemeOptions(app_id="IKAPP", timestamp_header="X-Ts", template="{timestamp}.{body}")
    blank = Delivery(body, {}, "/hook")
    headers = sign(scheme, SECRET, blank, options, timestamp=ts, delivery_id=msg_id)
    return Delivery(body, headers, "/hook")


def _verifier(scheme: str, tolerance: int = 300) -> Verifier:
    return Verifier(
        scheme,
        [SECRET],
        SchemeOptions(
            app_id="IKAPP", timestamp_header="X-Ts", template="{timestamp}.{body}", tolerance=tolerance
        ),
    )


bodies = st.binary(min_size=0, max_size=300)


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@given(body=bodies)
@settings(max_examples=25, deadline=None)
def test_sign_then_verify(scheme: str, body: bytes) -> None:
    if scheme == "ikhokha":
        body = body.decode("utf-8", "replace").encode()
    assert _verifier(scheme).verify(_signed(scheme, body), NOW).ok


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@given(body=bodies.filter(bool), position=st.integers(min_value=0), flip=st.integers(1, 255))
@settings(max_examples=25, deadline=None)
def test_any_changed_body_byte_fails(scheme: str, body: bytes, position: int, flip: int) -> None:
    if scheme == "ikhokha":
        body = body.decode("utf-8", "replace").encode()
    delivery = _signed(scheme, body)
    i = position % len(body)
    tampered = body[:i] + bytes([body[i] ^ flip]) + body[i + 1 :]
    verdict = _verifier(scheme).verify(Delivery(tampered, delivery.headers, delivery.path), NOW)
    assert not verdict.ok


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
@given(data=st.data())
@settings(max_examples=25, deadline=None)
def test_any_changed_signature_character_fails(scheme: str, data: st.DataObject) -> None:
    delivery = _signed(scheme, b'{"paylinkID":"p"}')
    sig_headers = [
        k
        for k in delivery.headers
        if k.lower()
        not in (
            "ik-appid",
            "webhook-id",
            "webhook-timestamp",
            "x-ts",
            "x-slack-request-timestamp",
            "x-github-delivery",
            "x-shopify-webhook-id",
        )
    ]
    name = data.draw(st.sampled_from(sig_headers))
    value = delivery.headers[name]
    i = data.draw(st.integers(0, len(value) - 1))
    replacement = data.draw(st.sampled_from(string.ascii_letters + string.digits + "+/=,"))
    if replacement == value[i] or (
        scheme in ("ikhokha", "generic") and replacement.lower() == value[i].lower()
    ):
        return  # the same signature: iKhokha and the generic scheme read hex in either case
    changed_value = value[:i] + replacement + value[i + 1 :]
    if scheme == "standard" and _b64_lenient(changed_value) == _b64_lenient(value):
        return  # the library ignores the unused low bits of the last base64 digit: the same signature
    changed = {**delivery.headers, name: changed_value}
    assert not _verifier(scheme).verify(Delivery(delivery.body, changed, delivery.path), NOW).ok


def _b64_lenient(value: str) -> bytes | None:
    try:
        return base64.b64decode(value.removeprefix("v1,"))
    except ValueError:
        return None


@pytest.mark.parametrize("scheme", ["stripe", "standard", "slack", "generic"])
@given(offset=st.integers(min_value=301, max_value=10**7), future=st.booleans())
@settings(max_examples=25, deadline=None)
def test_out_of_tolerance_timestamps_fail(scheme: str, offset: int, future: bool) -> None:
    ts = NOW + offset if future else NOW - offset
    verdict = _verifier(scheme).verify(_signed(scheme, b"{}", ts=ts), NOW)
    assert verdict.outcome is (Outcome.FUTURE if future else Outcome.STALE)
    assert verdict.skew_s == NOW - ts


def test_changed_id_or_timestamp_fails() -> None:
    delivery = _signed("standard", b"{}")
    for name, value in (("webhook-id", "msg_2"), ("webhook-timestamp", str(NOW + 1))):
        changed = Delivery(delivery.body, {**delivery.headers, name: value})
        assert _verifier("standard").verify(changed, NOW).outcome is Outcome.BAD_SIGNATURE


def test_bad_signature_reports_clock_skew_separately() -> None:
    delivery = _signed("stripe", b"{}", ts=NOW - 5000)
    verdict = Verifier("stripe", ["whsec_other"]).verify(delivery, NOW)
    assert verdict.outcome is Outcome.BAD_SIGNATURE and verdict.skew_s == 5000
    assert "clock skew +5000 s, not the cause" in verdict.message


# ---------------------------------------------------------------- malformed input

MALFORMED = {
    "github": [
        ("X-Hub-Signature-256", ""),
        ("X-Hub-Signature-256", "sha1=abcd"),
        ("X-Hub-Signature-256", "sha256=not-hex"),
        ("X-Hub-Signature-256", "sha256=abcd"),
        ("X-Hub-Signature-256", "sha256=" + "a" * 9000),
    ],
    "stripe": [
        ("Stripe-Signature", "garbage"),
        ("Stripe-Signature", "t=now,v1=ab"),
        ("Stripe-Signature", "v1=" + "a" * 64),
        ("Stripe-Signature", f"t={NOW}"),
    ],
    "shopify": [("X-Shopify-Hmac-Sha256", "***"), ("X-Shopify-Hmac-Sha256", "YWJj")],
    "slack": [("X-Slack-Signature", "v1=abc")],
    "ikhokha": [("IK-SIGN", "zz"), ("IK-SIGN", "ab" * 10)],
}


@pytest.mark.parametrize(
    ("scheme", "header", "value"), [(s, h, v) for s, cases in MALFORMED.items() for h, v in cases]
)
def test_malformed_headers_get_a_verdict_not_an_exception(scheme: str, header: str, value: str) -> None:
    delivery = _signed(scheme, b"{}")
    headers = {**delivery.headers, header: value}
    verdict = _verifier(scheme).verify(Delivery(b"{}", headers, "/hook"), NOW)
    assert verdict.outcome is Outcome.MALFORMED_HEADER, verdict
    assert verdict.message.startswith("malformed signature header")


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_missing_headers(scheme: str) -> None:
    verdict = _verifier(scheme).verify(Delivery(b"{}", {}, "/hook"), NOW)
    assert verdict.outcome is Outcome.MISSING_HEADER and verdict.message.startswith("unsigned delivery")


def test_standard_webhooks_secret_must_be_base64() -> None:
    with pytest.raises(ValueError, match="whsec_ followed by base64"):
        Verifier("standard", ["whsec_***"])


# ---------------------------------------------------------------- rotation, replay, sources


def test_rotation_accepts_old_and_new_secret_and_says_which() -> None:
    body = b'{"x":1}'
    old = Delivery(body, sign("github", "old-secret", Delivery(body, {})))
    new = Delivery(body, sign("github", "new-secret", Delivery(body, {})))
    verifier = Verifier("github", ["new-secret", "old-secret"])
    assert verifier.verify(new, NOW).secret_index == 0
    verdict = verifier.verify(old, NOW)
    assert verdict.ok and verdict.secret_index == 1 and "secret #2" in verdict.message


def test_replay_store_rejects_a_second_delivery(tmp_path: Path) -> None:
    from opsdash.storage.history import History

    with History.open(tmp_path) as history:
        verifier = _verifier("standard")
        verifier.seen = lambda s, i, exp: history.webhooks.seen(s, i, exp, NOW)
        delivery = _signed("standard", b"{}")
        assert verifier.verify(delivery, NOW).ok
        again = verifier.verify(delivery, NOW)
        assert again.outcome is Outcome.REPLAYED and "msg_1" in again.message
        assert history.webhooks.seen("standard", "msg_1", 600, NOW + 10_000) is False  # expired, forgotten


@pytest.mark.parametrize(
    ("ip", "ok"),
    [
        ("203.0.113.7", True),
        ("198.51.100.1", False),
        ("2001:db8::1", True),
        ("2001:db9::1", False),
        ("not-an-ip", False),
    ],
)
def test_source_allowlist_ipv4_and_ipv6(ip: str, ok: bool) -> None:
    verifier = Verifier("github", ["s"], allowed_sources=["203.0.113.0/24", "2001:db8::/32"])
    body = b"{}"
    delivery = Delivery(body, sign("github", "s", Delivery(body, {})), "/", ip)
    verdict = verifier.verify(delivery, NOW)
    assert verdict.ok is ok
    if not ok:
        assert verdict.outcome is Outcome.SOURCE_NOT_ALLOWED


def test_burst_rule_one_alert_per_window() -> None:
    rule = BurstRule(threshold=3, window_s=60)
    assert not rule.should_alert([0, 10], None, 10)
    assert rule.should_alert([0, 10, 20], None, 20)
    assert not rule.should_alert([0, 10, 20, 30], 20, 30)  # already alerted in this window
    assert rule.should_alert([100, 110, 120], 20, 120)  # a new burst after the window


def test_verdict_json_shape() -> None:
    verdict = _verifier("stripe").verify(_signed("stripe", b"{}"), NOW)
    assert json.loads(json.dumps(verdict.to_dict()))["outcome"] == "verified"


def test_every_scheme_option_can_be_set_from_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    """verifier_for copies [webhook] fields onto SchemeOptions by name: a renamed field would
    otherwise be dropped silently."""
    import dataclasses

    from opsdash.core.profile import Profile
    from opsdash.ops.webhooks import verifier_for

    profile = Profile.model_validate(
        {
            "target": {"name": "t", "base_url": "https://a.example.com"},
            "webhook": {
                "scheme": "generic",
                "secret_variables": ["HOOK"],
                "header": "X-Sig",
                "algorithm": "sha512",
                "encoding": "base64",
                "prefix": "v=",
                "template": "{timestamp}:{body}",
                "tolerance": 60,
                "timestamp_header": "X-Ts",
                "id_header": "X-Id",
            },
        }
    )
    monkeypatch.setenv("HOOK", "generic-secret-0123456789")
    options = verifier_for(profile).options
    names = {f.name for f in dataclasses.fields(options)} - {"app_id"}
    from opsdash.core.profile import WebhookSection

    assert names <= set(WebhookSection.model_fields)
    assert (options.header, options.algorithm, options.encoding, options.prefix, options.tolerance) == (
        "X-Sig",
        "sha512",
        "base64",
        "v=",
        60,
    )
    body = b'{"a":1}'
    headers = sign(
        "generic", "generic-secret-0123456789", Delivery(body, {}), options, timestamp=NOW, delivery_id="m1"
    )
    assert set(headers) == {"X-Sig", "X-Ts", "X-Id"} and headers["X-Sig"].startswith("v=")
    assert verifier_for(profile).verify(Delivery(body, headers), NOW).ok


# ---------------------------------------------------------------- inputs that used to crash the verifier


@pytest.mark.parametrize(
    ("scheme", "header", "value"),
    [
        ("stripe", "Stripe-Signature", f"t=²,v1={'0' * 64}"),
        ("stripe", "Stripe-Signature", f"t={'9' * 5000},v1={'0' * 64}"),
        ("slack", "X-Slack-Request-Timestamp", "¹⁷⁶⁴¹⁵⁰⁰⁰⁰"),
        ("standard", "webhook-timestamp", "²"),
        ("standard", "webhook-timestamp", "nan"),
        ("standard", "webhook-timestamp", "1e999"),
        ("generic", "X-Ts", "١٧٦٤١٥٠٠٠٠"),
    ],
)
def test_timestamps_in_other_digits_are_malformed_not_a_crash(scheme: str, header: str, value: str) -> None:
    delivery = _signed(scheme, b"{}")
    verdict = _verifier(scheme).verify(Delivery(b"{}", {**delivery.headers, header: value}, "/hook"), NOW)
    assert verdict.outcome is Outcome.MALFORMED_HEADER and "not a UNIX timestamp" in verdict.message


def test_decimal_digits_of_other_scripts_are_read_as_the_libraries_read_them() -> None:
    # int() in stripe-python and slack_sdk reads Arabic-Indic digits as the number they spell
    delivery = _signed("stripe", b"{}")
    value = delivery.headers["Stripe-Signature"].replace(
        str(NOW), str(NOW).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    )
    assert _verifier("stripe").verify(Delivery(b"{}", {"Stripe-Signature": value}), NOW).ok


def test_a_non_ascii_app_id_is_a_mismatch() -> None:
    verdict = _verifier("ikhokha").verify(
        Delivery(b"{}", {**_signed("ikhokha", b"{}").headers, "IK-APPID": "ÏKAPP"}), NOW
    )
    assert verdict.outcome is Outcome.APP_ID_MISMATCH and "ÏKAPP" in verdict.message


def test_a_non_ascii_app_id_can_be_the_configured_one() -> None:
    options = SchemeOptions(app_id="ÏKAPP")
    headers = sign("ikhokha", SECRET, Delivery(b"{}", {}, "/hook"), options)
    assert Verifier("ikhokha", [SECRET], options).verify(Delivery(b"{}", headers, "/hook"), NOW).ok


def test_ids_with_control_characters_or_lone_surrogates_can_be_stored_and_shown() -> None:
    # the id goes to the replay store, the audit log and the terminal: escaped, never acted on
    delivery = _signed("standard", b"{}", msg_id="msg_\x1b]52;c;é")
    verdict = _verifier("standard").verify(delivery, NOW)
    assert verdict.ok and verdict.delivery_id == "msg_\\x1b]52;c;é"
    github = _signed("github", b"{}", msg_id="gh_\udcff")  # a header read with surrogateescape
    verdict = _verifier("github").verify(github, NOW)
    assert verdict.ok and verdict.delivery_id == "gh_\\udcff"
    json.dumps(verdict.to_dict(), ensure_ascii=False).encode("utf-8")  # what the audit log writes
    surrogate_id = {**delivery.headers, "webhook-id": "msg_\udcff"}  # no sender can sign this as text
    verdict = _verifier("standard").verify(Delivery(b"{}", surrogate_id), NOW)
    assert verdict.outcome is Outcome.MALFORMED_HEADER and "webhook-id" in verdict.message


def test_verifying_as_of_nan_is_refused() -> None:
    # NaN compares false with every tolerance: a stale delivery would pass
    with pytest.raises(ValueError, match="finite"):
        _verifier("stripe").verify(_signed("stripe", b"{}", ts=NOW - 10**6), float("nan"))


def test_the_last_of_duplicate_headers_counts_as_in_the_libraries() -> None:
    good = _signed("slack", b"{}").headers
    assert _verifier("slack").verify(Delivery(b"{}", {"x-slack-signature": "v0=" + "0" * 64, **good}), NOW).ok
    assert (
        not _verifier("slack")
        .verify(Delivery(b"{}", {**good, "x-slack-signature": "v0=" + "0" * 64}), NOW)
        .ok
    )


def test_an_unpadded_standard_webhooks_secret_works() -> None:
    unpadded = "whsec_" + base64.b64encode(b"k" * 23).decode().rstrip("=")
    padded = "whsec_" + base64.b64encode(b"k" * 23).decode()
    headers = sign("standard", padded, Delivery(b"{}", {}), timestamp=NOW, delivery_id="m")
    assert Verifier("standard", [unpadded]).verify(Delivery(b"{}", headers), NOW).ok


@pytest.mark.parametrize(
    ("scheme", "timestamp", "delivery_id", "problem"),
    [
        ("stripe", None, None, "the stripe scheme signs a timestamp"),
        ("slack", None, None, "the slack scheme signs a timestamp"),
        ("standard", None, "m", "the standard scheme signs a timestamp"),
        ("standard", NOW, None, "the standard scheme signs a delivery id"),
        ("standard", NOW, "", "the standard scheme signs a delivery id"),
    ],
)
def test_signing_without_what_the_scheme_signs_is_a_clear_error(
    scheme: str, timestamp: int | None, delivery_id: str | None, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        sign(
            scheme,
            "whsec_" + base64.b64encode(b"k" * 24).decode(),
            Delivery(b"{}", {}),
            timestamp=timestamp,
            delivery_id=delivery_id,
        )


def test_a_delivery_that_trips_a_bug_is_rejected_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(delivery: Delivery, options: SchemeOptions) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(SCHEMES["github"], "parse", broken)
    verdict = Verifier("github", ["s"]).verify(Delivery(b"{}", {}), NOW)
    assert verdict.outcome is Outcome.MALFORMED_HEADER and verdict.message.startswith(UNREADABLE)


# ---------------------------------------------------------------- templates and paths, at config load


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{url}{body}", "{url} is not a field; the fields are {path} {body}"),
        ("{path}{body", "expected '}' before end of string"),
        ("{path}{body}{", "single '{' encountered"),
        ("{path}", "has no {body}"),
        ("{path!r}{body}", "{path!r} is not a field"),
        ("{body:>10}", "{body:>10} is not a field"),
    ],
)
def test_bad_message_templates_are_config_errors(template: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        validate_message_template(template)
    with pytest.raises(ValueError, match=re.escape(problem)):
        Verifier("ikhokha", ["s"], SchemeOptions(message_template=template))


def test_generic_template_fields_and_literal_braces() -> None:
    with pytest.raises(ValueError, match=re.escape("{url} is not a field")):
        validate_template("{url}.{body}")
    options = SchemeOptions(template="{{{timestamp}}}.{body}", timestamp_header="X-Ts")
    headers = sign("generic", "s", Delivery(b"{}", {}), options, timestamp=NOW)
    expected = hmac.new(b"s", f"{{{NOW}}}.{{}}".encode(), hashlib.sha256).hexdigest()
    assert headers["X-Signature"] == expected
    assert Verifier("generic", ["s"], options).verify(Delivery(b"{}", headers), NOW).ok


@pytest.mark.parametrize(
    "path", ["https://app.betaskill.com/api/payments/ikhokha/webhook", "api/webhook", "//host/path", "/a b"]
)
def test_a_path_that_is_not_a_path_is_a_config_error(path: str) -> None:
    with pytest.raises(ValueError, match=r"webhook\.path .* (is not a path|contains spaces)"):
        validate_path(path)


def test_a_path_with_a_query_is_a_path() -> None:
    validate_path("/api/payments/ikhokha/webhook?source=ikhokha")
