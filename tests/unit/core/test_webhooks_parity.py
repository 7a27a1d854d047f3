"""opsdash accepts a delivery exactly when the provider's official library accepts it.

Checked against (the lock, requirements/dev.txt, pins these; test_the_lock_pins_the_checked_versions
holds the two together, and scripts/webhook_drift.py runs this module against the newest releases):
standardwebhooks 1.3.0, svix 2.9.1, stripe 16.1.0, slack-sdk 3.48.0.

Each generated case is a correctly signed delivery, then changed the ways real senders, proxies and
attackers change them (junk entries, other digits, padding, brands, case, blanks, wrong secret,
another body, clock skew). The library's verdict is "accepted" when it returns normally (True for
slack_sdk) and "rejected" when it raises: its own verification error, or an error on junk it did not
expect, since a webhook handler that raises has not accepted the delivery. 300 cases per scheme.

Standard Webhooks since 1.3.0 (and svix, which wraps it): an entry matches when it is exactly "v1,"
and the canonical base64 of the digest; every other entry, junk or not, is passed over, as the spec
says ("try to verify each signature until one matches"). Up to 1.1.0 an entry without one comma,
or base64 the decoder failed on, ended the search, and non-canonical base64 (no padding, padding
bits set, stray characters b64decode drops) matched. opsdash follows 1.3.0.

Deliberate differences, asserted as such:
- stripe-python never rejects a timestamp from the future; opsdash does beyond the tolerance
  (from-the-future), as it does for every timestamped scheme.
- A body that is not UTF-8 makes stripe-python raise UnicodeDecodeError; opsdash verifies the raw
  bytes (test_a_stripe_body_that_is_not_utf8_is_verified_on_its_bytes), as standardwebhooks 1.3.0 does.

An empty or blank secret is refused by all three libraries and by opsdash
(test_an_empty_secret_is_refused_as_the_libraries_refuse_it).

GitHub and Shopify publish reference code rather than a Python library: opsdash is held to that code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import string
from collections.abc import Callable
from datetime import datetime, tzinfo
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from opsdash.core.webhooks import Delivery, Outcome, SchemeOptions, Verdict, Verifier

NOW = 1_764_150_000
# The versions this module was last checked against; the lock must pin exactly these
CHECKED_AGAINST = {"standardwebhooks": "1.3.0", "svix": "2.9.1", "stripe": "16.1.0", "slack-sdk": "3.48.0"}
LOCK = Path(__file__).resolve().parents[3] / "requirements" / "dev.txt"
CASES = int(os.environ.get("OPSDASH_WEBHOOK_PARITY_CASES", "300"))  # more for a deeper search by hand
TOLERANCE = 300  # the libraries' default (Standard Webhooks and Slack: fixed)

OFFSETS = [0, -1, 1, -60, 60, -299, 299, -300, 300, -301, 301, -5000, 5000, 10**6, -(10**6)]
offsets = st.one_of(st.just(0), st.sampled_from(OFFSETS))  # half the cases on time, half around the edges
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")

tokens = st.text(string.ascii_letters + string.digits, min_size=8, max_size=24)
plain_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
json_bodies = st.dictionaries(plain_text, st.one_of(st.integers(), plain_text), max_size=4).map(
    lambda d: json.dumps(d, ensure_ascii=False).encode()
)


def _library(name: str) -> Any:
    return pytest.importorskip(name, reason=f"{name} (the provider's official library) is not installed")


def _accepts(call: Callable[[], Any]) -> bool:
    try:
        result = call()
    except Exception:
        return False
    return result is not False


def _hex_hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _verdict(scheme: str, secret: str, body: bytes, headers: dict[str, str]) -> Verdict:
    verifier = Verifier(scheme, [secret], SchemeOptions(tolerance=TOLERANCE))
    return verifier.verify(Delivery(body, headers), NOW)


def _timestamp_text(draw: st.DrawFn, ts: int) -> str:
    """The timestamp as a sender or proxy might spell it."""
    text = str(ts)
    return draw(
        st.sampled_from(
            [
                text,
                text,
                text,
                "0" + text,
                "000" + text,
                "+" + text,
                " " + text,
                text + " ",
                text + ".0",
                text + ".9",
                f"{text[:4]}_{text[4:]}",
                text.translate(ARABIC_INDIC),
                text.translate(FULLWIDTH),
                text.translate(SUPERSCRIPT),
                f"{ts:e}",
                "",
                "nan",
                "inf",
            ]
        )
    )


def _junk(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(["junk", "", "0" * 64, "AAAA", "abc", "not-base64!", "é", "a b", "=", "=="]))


# ---------------------------------------------------------------- Stripe


@st.composite
def stripe_cases(draw: st.DrawFn) -> tuple[str, bytes, str]:
    secret = "whsec_" + draw(tokens)
    body = draw(json_bodies)
    ts = NOW + draw(offsets)
    signer = draw(st.sampled_from([secret, secret, secret, "whsec_other"]))
    sig = _hex_hmac(signer, f"{ts}.".encode() + body)
    items = [f"t={_timestamp_text(draw, ts) if draw(st.booleans()) else ts}", f"v1={sig}"]
    for _ in range(draw(st.integers(0, 3))):
        change = draw(st.integers(0, 11))
        at = draw(st.integers(0, len(items)))
        if change == 0:
            items.insert(at, "v1=" + _junk(draw))
        elif change == 1:
            items.insert(at, draw(st.sampled_from(["garbage", "", " ", "v1", "t", "v0=ff", "v2=" + sig])))
        elif change == 2:
            items.insert(at, f"t={NOW + draw(offsets)}")
        elif change == 3:
            items = [i.replace(sig, sig.upper()) for i in items]
        elif change == 4:
            cut = draw(st.integers(1, 63))
            items = [
                i.replace(sig, sig[:cut] + draw(st.sampled_from([" ", "\t", "-"])) + sig[cut:]) for i in items
            ]
        elif change == 5:
            items = [" " + i if i.startswith("v1") else i for i in items]
        elif change == 6:
            items = [i + "=extra" if i.startswith("v1=") else i for i in items]
        elif change == 7:
            items = draw(st.permutations(items))
        elif change == 8:
            items = [i.replace("t=", "t=" + draw(st.sampled_from(["0", "00", "-", "1"])), 1) for i in items]
        elif change == 9:
            body = body + b" "
        elif change == 10:
            items.insert(at, "v1=" + _hex_hmac(secret, f"{ts + 1}.".encode() + body))
        else:
            items.insert(at, "v1=" + draw(st.text(max_size=8)))
    return secret, body, ",".join(items)


def stripe_accepts(secret: str, body: bytes, header: str) -> bool:
    webhook = _library("stripe._webhook")  # WebhookSignature, and the clock it reads
    with mock.patch.object(webhook, "time", SimpleNamespace(time=lambda: NOW)):
        return _accepts(lambda: webhook.WebhookSignature.verify_header(body, header, secret, TOLERANCE))


@given(case=stripe_cases())
@settings(max_examples=CASES, deadline=None)
def test_stripe_matches_stripe_python(case: tuple[str, bytes, str]) -> None:
    secret, body, header = case
    library = stripe_accepts(secret, body, header)
    verdict = _verdict("stripe", secret, body, {"Stripe-Signature": header})
    event(f"stripe-python {'accepts' if library else 'rejects'}")
    if library and not verdict.ok and verdict.outcome is Outcome.FUTURE:
        assert verdict.timestamp is not None and verdict.timestamp - NOW > TOLERANCE  # the one difference
        return
    assert verdict.ok is library, (header, verdict)


# ---------------------------------------------------------------- Standard Webhooks (svix)


@st.composite
def standard_cases(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str]]:
    key = draw(st.binary(min_size=16, max_size=40))
    encoded = base64.b64encode(key).decode()
    secret = "whsec_" + (encoded.rstrip("=") if draw(st.booleans()) else encoded)
    body = draw(json_bodies)
    ts = NOW + draw(offsets)
    msg_id = draw(st.one_of(tokens.map("msg_".__add__), st.sampled_from([" ", "msg_é", "msg_1.2"])))
    signer = draw(st.sampled_from([key, key, key, b"other-key"]))
    sig = base64.b64encode(
        hmac.new(signer, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    entries = [f"v1,{sig}"]
    for _ in range(draw(st.integers(0, 3))):
        change = draw(st.integers(0, 6))
        at = draw(st.integers(0, len(entries)))
        if change == 0:
            entries.insert(at, draw(st.sampled_from(["v1,", "v2,", "v1a,", "V1,"])) + _junk(draw))
        elif change == 1:
            entries.insert(at, draw(st.sampled_from(["junk", "", "v1", "v1,a,b", "v1a,xyz"])))
        elif change == 2:
            entries = [
                e.replace(
                    sig,
                    draw(
                        st.sampled_from(
                            [
                                sig.rstrip("="),
                                sig + "!",
                                "!" + sig,
                                sig.lower(),
                                sig + "=",
                                _padding_bits(sig),
                            ]
                        )
                    ),
                )
                for e in entries
            ]
        elif change == 3:
            body = body + b" "
        elif change == 4:
            cut = draw(st.integers(0, len(sig)))
            entries = [
                e.replace(sig, sig[:cut] + draw(st.sampled_from(["\t", "-", "é"])) + sig[cut:])
                for e in entries
            ]
        else:
            entries.insert(at, f"v1,{base64.b64encode(b'x' * 32).decode()}")
    separator = draw(st.sampled_from([" ", " ", " ", "  ", "\t"]))
    values = {"id": msg_id, "timestamp": _timestamp_text(draw, ts), "signature": separator.join(entries)}
    headers: dict[str, str] = {}
    for part, value in values.items():
        brand = draw(st.sampled_from(["webhook", "webhook", "svix", "both"]))
        if brand == "both":  # svix- wins in the library, whatever the webhook- one says
            headers[f"webhook-{part}"] = draw(st.sampled_from([value, "", "other"]))
            headers[f"svix-{part}"] = value
        else:
            headers[f"{brand}-{part}"] = value
    if draw(st.booleans()):
        headers = {draw(st.sampled_from([k, k.upper(), k.title()])): v for k, v in headers.items()}
    if draw(st.integers(0, 9)) == 0:
        headers.pop(draw(st.sampled_from(sorted(headers))))
    return secret, body, headers


def _padding_bits(sig: str) -> str:
    """The same 32 bytes with the unused bits of the last character set: base64 no signer writes."""
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
    return sig[:-2] + alphabet[alphabet.index(sig[-2]) | 1] + sig[-1]


def standard_accepts(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    svix = _library("svix.webhooks")
    frozen = _frozen_datetime()
    with mock.patch("standardwebhooks.webhooks.datetime", frozen):
        library = _accepts(lambda: svix.Webhook(secret).verify(body, headers))
        if not any(k.lower().startswith("svix-") for k in headers):  # the plain library agrees
            standard = _library("standardwebhooks.webhooks")
            plain = _accepts(lambda: standard.Webhook(secret).verify(body, headers, json_parse=False))
            assert plain is library
    return library


def _frozen_datetime() -> type[datetime]:
    class Frozen(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Frozen:
            return cls.fromtimestamp(NOW, tz)

    return Frozen


@given(case=standard_cases())
@settings(max_examples=CASES, deadline=None)
def test_standard_webhooks_matches_svix(case: tuple[str, bytes, dict[str, str]]) -> None:
    secret, body, headers = case
    library = standard_accepts(secret, body, headers)
    verdict = _verdict("standard", secret, body, headers)
    event(f"svix {'accepts' if library else 'rejects'}")
    assert verdict.ok is library, (headers, verdict)


# ---------------------------------------------------------------- Slack


@st.composite
def slack_cases(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str]]:
    secret = draw(tokens)
    body = draw(st.one_of(json_bodies, plain_text.map(str.encode)))
    ts = NOW + draw(offsets)
    stamp = _timestamp_text(draw, ts) if draw(st.booleans()) else str(ts)
    signed_stamp = draw(st.sampled_from([stamp, stamp, stamp, str(ts)]))  # Slack signs the header's text
    signer = draw(st.sampled_from([secret, secret, secret, "other-secret"]))
    signature = "v0=" + _hex_hmac(signer, f"v0:{signed_stamp}:".encode() + body)
    change = draw(st.sampled_from([None, None, None, None, 0, 1, 2, 3, 4, 5]))
    if change == 0:
        signature = signature.upper()
    elif change == 1:
        signature = signature[:3] + signature[3:].upper()
    elif change == 2:
        cut = draw(st.integers(3, len(signature)))
        signature = signature[:cut] + draw(st.sampled_from([" ", "\t", "é"])) + signature[cut:]
    elif change == 3:
        signature = draw(st.sampled_from(["v1=", "", "V0="])) + signature[3:]
    elif change == 4:
        signature += draw(st.sampled_from([" ", "\n", "00"]))
    elif change == 5:
        body = body + b" "
    headers = {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}
    if draw(st.booleans()):
        headers = {draw(st.sampled_from([k, k.lower(), k.upper()])): v for k, v in headers.items()}
    if draw(st.integers(0, 9)) == 0:  # a second copy under another case: the last one counts
        headers["x-slack-signature"] = draw(st.sampled_from(["v0=" + "0" * 64, signature]))
    if draw(st.integers(0, 9)) == 0:
        headers.pop(draw(st.sampled_from(sorted(headers))))
    return secret, body, headers


def slack_accepts(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    signature = _library("slack_sdk.signature")

    frozen = SimpleNamespace(now=lambda: float(NOW))  # slack_sdk.signature.Clock's one method
    verifier = signature.SignatureVerifier(secret, clock=frozen)
    return _accepts(lambda: verifier.is_valid_request(body, headers))


@given(case=slack_cases())
@settings(max_examples=CASES, deadline=None)
def test_slack_matches_slack_sdk(case: tuple[str, bytes, dict[str, str]]) -> None:
    secret, body, headers = case
    library = slack_accepts(secret, body, headers)
    verdict = _verdict("slack", secret, body, headers)
    event(f"slack_sdk {'accepts' if library else 'rejects'}")
    assert verdict.ok is library, (headers, verdict)


# ---------------------------------------------------------------- the issue's cases, by name

STRIPE_SECRET = "whsec_test_secret"
BODY = b'{"id":"evt_1","object":"event"}'
STRIPE_SIG = _hex_hmac(STRIPE_SECRET, f"{NOW}.".encode() + BODY)
STD_KEY = b"0123456789abcdef0123456789abcdef"
STD_SECRET = "whsec_" + base64.b64encode(STD_KEY[:31]).decode()  # 31 bytes: the base64 ends in "="
STD_SIG = base64.b64encode(
    hmac.new(STD_KEY[:31], f"msg_1.{NOW}.".encode() + BODY, hashlib.sha256).digest()
).decode()
STD = {"webhook-id": "msg_1", "webhook-timestamp": str(NOW), "webhook-signature": f"v1,{STD_SIG}"}
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def _slack(stamp: str, *, signed: str | None = None, upper: bool = False) -> dict[str, str]:
    digest = _hex_hmac(SLACK_SECRET, f"v0:{signed or stamp}:".encode() + BODY)
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": "v0=" + (digest.upper() if upper else digest),
    }


ISSUE_CASES = [
    # (name, scheme, secret, headers, accepted by the library and by opsdash)
    ("stripe v1=<valid>,v1=junk", "stripe", STRIPE_SECRET, f"t={NOW},v1={STRIPE_SIG},v1=junk", True),
    ("stripe v1=junk,v1=<valid>", "stripe", STRIPE_SECRET, f"t={NOW},v1=junk,v1={STRIPE_SIG}", True),
    ("stripe ,garbage item", "stripe", STRIPE_SECRET, f"t={NOW},v1={STRIPE_SIG},garbage", True),
    ("stripe leading comma", "stripe", STRIPE_SECRET, f",t={NOW},v1={STRIPE_SIG}", True),
    ("stripe zero-padded t", "stripe", STRIPE_SECRET, f"t=0000000{NOW},v1={STRIPE_SIG}", True),
    (
        "stripe t in Arabic-Indic digits",
        "stripe",
        STRIPE_SECRET,
        f"t={str(NOW).translate(ARABIC_INDIC)},v1={STRIPE_SIG}",
        True,
    ),
    ("stripe t=² (superscript)", "stripe", STRIPE_SECRET, f"t=²,v1={STRIPE_SIG}", False),
    ("stripe uppercase hex", "stripe", STRIPE_SECRET, f"t={NOW},v1={STRIPE_SIG.upper()}", False),
    (
        "stripe blank inside hex",
        "stripe",
        STRIPE_SECRET,
        f"t={NOW},v1={STRIPE_SIG[:32]} {STRIPE_SIG[32:]}",
        False,
    ),
    ("stripe blank after comma", "stripe", STRIPE_SECRET, f"t={NOW}, v1={STRIPE_SIG}", False),
    (
        "stripe non-ASCII v1 before the valid one",
        "stripe",
        STRIPE_SECRET,
        f"t={NOW},v1=é,v1={STRIPE_SIG}",
        False,
    ),
    (
        "stripe non-ASCII v1 after the valid one",
        "stripe",
        STRIPE_SECRET,
        f"t={NOW},v1={STRIPE_SIG},v1=é",
        True,
    ),
    (
        "standard svix- headers",
        "standard",
        STD_SECRET,
        {k.replace("webhook", "svix"): v for k, v in STD.items()},
        True,
    ),
    ("standard whsec_ without padding", "standard", STD_SECRET.rstrip("="), STD, True),
    (
        "standard junk entry first",
        "standard",
        STD_SECRET,
        {**STD, "webhook-signature": f"v1,junk v2,x v1,{STD_SIG}"},
        True,
    ),
    # junk beside a valid entry is passed over wherever it stands (standardwebhooks 1.3.0, the spec)
    *[
        (f"standard {name}", "standard", STD_SECRET, {**STD, "webhook-signature": value}, True)
        for name, value in [
            ("entry with no comma first", f"junk v1,{STD_SIG}"),
            ("entry with two commas first", f"v1,a,b v1,{STD_SIG}"),
            ("v1a entry first (asymmetric)", f"v1a,{STD_SIG} v1,{STD_SIG}"),
            ("junk after the valid entry", f"v1,{STD_SIG} junk"),
            ("two spaces between entries", f"v1,junk  v1,{STD_SIG}"),
            ("non-ASCII entry first", f"v1,é v1,{STD_SIG}"),
        ]
    ],
    # the valid digest written in base64 no signer writes: all three libraries reject it
    *[
        (
            f"standard non-canonical base64: {name}",
            "standard",
            STD_SECRET,
            {**STD, "webhook-signature": value},
            False,
        )
        for name, value in [
            ("no padding", f"v1,{STD_SIG.rstrip('=')}"),
            ("extra padding", f"v1,{STD_SIG}="),
            ("two extra padding", f"v1,{STD_SIG}=="),
            ("padding bits set", f"v1,{_padding_bits(STD_SIG)}"),
            ("'!' after", f"v1,{STD_SIG}!"),
            ("'!' before", f"v1,!{STD_SIG}"),
            ("tab inside", f"v1,{STD_SIG[:10]}\t{STD_SIG[10:]}"),
            ("'-' inside", f"v1,{STD_SIG[:10]}-{STD_SIG[10:]}"),
            ("'_' inside", f"v1,{STD_SIG[:10]}_{STD_SIG[10:]}"),
            ("'=' inside", f"v1,{STD_SIG[:10]}={STD_SIG[10:]}"),
        ]
    ],
    (
        "standard uppercase version V1",
        "standard",
        STD_SECRET,
        {**STD, "webhook-signature": f"V1,{STD_SIG}"},
        False,
    ),
    (
        "standard tab between entries",
        "standard",
        STD_SECRET,
        {**STD, "webhook-signature": f"v1,x\tv1,{STD_SIG}"},
        False,
    ),
    ("standard timestamp T.0", "standard", STD_SECRET, {**STD, "webhook-timestamp": f"{NOW}.0"}, True),
    ("standard timestamp T.9", "standard", STD_SECRET, {**STD, "webhook-timestamp": f"{NOW}.9"}, True),
    ("standard timestamp ²", "standard", STD_SECRET, {**STD, "webhook-timestamp": "²"}, False),
    ("standard timestamp nan", "standard", STD_SECRET, {**STD, "webhook-timestamp": "nan"}, False),
    ("slack the literal timestamp is signed", "slack", SLACK_SECRET, _slack(f"0{NOW}"), True),
    ("slack a normalised timestamp is not", "slack", SLACK_SECRET, _slack(f"0{NOW}", signed=str(NOW)), False),
    ("slack timestamp in superscript", "slack", SLACK_SECRET, _slack(str(NOW).translate(SUPERSCRIPT)), False),
    ("slack uppercase hex", "slack", SLACK_SECRET, _slack(str(NOW), upper=True), False),
]


@pytest.mark.parametrize(
    ("scheme", "secret", "headers", "accepted"), [c[1:] for c in ISSUE_CASES], ids=[c[0] for c in ISSUE_CASES]
)
def test_the_issues_cases(scheme: str, secret: str, headers: str | dict[str, str], accepted: bool) -> None:
    if scheme == "stripe":
        assert isinstance(headers, str)
        library = stripe_accepts(secret, BODY, headers)
        headers = {"Stripe-Signature": headers}
    else:
        assert isinstance(headers, dict)
        library = (standard_accepts if scheme == "standard" else slack_accepts)(secret, BODY, headers)
    verdict = _verdict(scheme, secret, BODY, headers)
    assert (library, verdict.ok) == (accepted, accepted), verdict
    if not accepted:
        assert verdict.outcome in (Outcome.MALFORMED_HEADER, Outcome.BAD_SIGNATURE), verdict


def test_stripe_future_timestamps_are_the_one_deliberate_difference() -> None:
    ts = NOW + 3600
    header = f"t={ts},v1={_hex_hmac(STRIPE_SECRET, f'{ts}.'.encode() + BODY)}"
    assert stripe_accepts(STRIPE_SECRET, BODY, header)  # stripe-python checks only for old timestamps
    verdict = _verdict("stripe", STRIPE_SECRET, BODY, {"Stripe-Signature": header})
    assert verdict.outcome is Outcome.FUTURE and "in the future" in verdict.message


def test_a_stripe_body_that_is_not_utf8_is_verified_on_its_bytes() -> None:
    body = b'{"id":"evt_\xff"}'
    header = f"t={NOW},v1={_hex_hmac(STRIPE_SECRET, f'{NOW}.'.encode() + body)}"
    with pytest.raises(UnicodeDecodeError):  # stripe-python decodes the body before it checks anything
        _library("stripe._webhook").WebhookSignature.verify_header(body, header, STRIPE_SECRET)
    assert _verdict("stripe", STRIPE_SECRET, body, {"Stripe-Signature": header}).ok


def test_a_standard_body_that_is_not_utf8_is_verified_on_its_bytes_as_the_library_does() -> None:
    body = b'{"id":"evt_\xff"}'
    sig = base64.b64encode(hmac.new(STD_KEY[:31], f"msg_1.{NOW}.".encode() + body, hashlib.sha256).digest())
    headers = {**STD, "webhook-signature": f"v1,{sig.decode()}"}
    assert standard_accepts(STD_SECRET, body, headers)  # since 1.3.0: bytes are verified as sent
    assert _verdict("standard", STD_SECRET, body, headers).ok


@pytest.mark.parametrize("secret", ["", "   "])
def test_an_empty_secret_is_refused_as_the_libraries_refuse_it(secret: str) -> None:
    with pytest.raises(Exception, match="empty"):
        _library("slack_sdk.signature").SignatureVerifier(secret)
    with pytest.raises(_library("standardwebhooks.webhooks").EmptyWebhookSecretError):
        _library("svix.webhooks").Webhook(secret)
    header = f"t={NOW},v1={_hex_hmac(secret, f'{NOW}.'.encode() + BODY)}"
    assert not stripe_accepts(secret, BODY, header)  # "No webhook secret value was provided"
    for scheme in ("stripe", "standard", "slack", "github", "shopify", "ikhokha", "generic"):
        with pytest.raises(ValueError, match="empty"):
            Verifier(scheme, [secret])


def test_the_lock_pins_the_checked_versions() -> None:
    """Moving a library in the lock (make upgrade-deps) without re-checking this module fails here:
    run scripts/webhook_drift.py, decide the differences, then update CHECKED_AGAINST."""
    pins = dict(re.findall(r"^([a-z0-9-]+)==(\S+)", LOCK.read_text(), re.MULTILINE))
    assert {name: pins.get(name) for name in CHECKED_AGAINST} == CHECKED_AGAINST


# ---------------------------------------------------------------- GitHub and Shopify reference code


def github_reference(secret: str, body: bytes, header: str | None) -> bool:
    # docs.github.com, "Validating webhook deliveries", Python example
    if not header:
        return False
    expected = "sha256=" + hmac.new(secret.encode("utf-8"), msg=body, digestmod=hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def shopify_reference(secret: str, body: bytes, header: str) -> bool:
    # shopify.dev, "Verify webhooks", Python example
    digest = hmac.new(secret.encode("utf-8"), body, digestmod=hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(digest), header.encode("utf-8"))


@given(
    secret=tokens,
    body=json_bodies,
    cut=st.integers(0, 80),
    insert=st.sampled_from(["", "", " ", "\t", "A", "a", "=", "+", "0"]),
    upper=st.booleans(),
)
@settings(max_examples=CASES, deadline=None)
def test_github_and_shopify_match_their_reference_code(
    secret: str, body: bytes, cut: int, insert: str, upper: bool
) -> None:
    github = "sha256=" + _hex_hmac(secret, body)
    github = github[:cut] + insert + github[cut:]
    github = github[:7] + github[7:].upper() if upper else github
    assert _verdict("github", secret, body, {"X-Hub-Signature-256": github}).ok is github_reference(
        secret, body, github
    )
    shopify = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    shopify = shopify[:cut] + insert + shopify[cut:]
    shopify = shopify.swapcase() if upper else shopify
    assert _verdict("shopify", secret, body, {"X-Shopify-Hmac-Sha256": shopify}).ok is shopify_reference(
        secret, body, shopify
    )
