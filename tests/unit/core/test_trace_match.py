"""The matcher finds a known value in every encoding it travels in, and a previous value by its
fingerprint, and nothing else. A property test holds it against a brute-force reference that encodes
the value each way with the standard library and asks `in`."""

from __future__ import annotations

import base64
import json
import secrets
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsdash.core.secrets import fingerprint
from opsdash.core.trace.match import Hit, Matcher, Needle, PreviousPrint, encoded_forms

SECRET = "ikSEC_" + "Q3xv9LmP2rT8wZ4kN7bY1cH6dF0gJ5sA"  # made up for the test
NEEDLES = [Needle("IKHOKHA_API_SECRET", SECRET)]


def _found(
    data: bytes, needles: list[Needle] = NEEDLES, previous: list[PreviousPrint] | None = None
) -> list[Hit]:
    return Matcher(needles, previous or []).scan(data)


def _b64_embedded(value: bytes, align: int, url: bool = False) -> bytes:
    text = base64.b64encode(b"p" * align + value + b"tail")
    return base64.urlsafe_b64encode(b"p" * align + value + b"tail") if url else text


@pytest.mark.parametrize("align", [0, 1, 2])
@pytest.mark.parametrize("url", [False, True])
def test_base64_is_found_at_every_alignment(align: int, url: bool) -> None:
    value = SECRET + "+/?>"  # characters whose base64 differs between the two alphabets
    data = b"const blob = '" + _b64_embedded(value.encode(), align, url) + b"';\n"
    (hit,) = _found(data, [Needle("S", value)])
    # where the value's characters encode alike in both alphabets the form is one, named base64
    assert (hit.name, hit.encoding in ("base64url", "base64") if url else hit.encoding) == (
        "S",
        True if url else "base64",
    )


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        (SECRET, "raw"),
        (SECRET.encode().hex(), "hex"),
        (SECRET.encode().hex().upper(), "hex"),
        ("".join(f"\\u{ord(c):04x}" for c in SECRET), "js-escape"),
        ("".join(f"\\u{ord(c):04X}" for c in SECRET), "js-escape"),
        ("".join(f"\\x{ord(c):02x}" for c in SECRET), "js-escape"),
        ("".join(f"%{b:02X}" for b in SECRET.encode()), "url"),
        ("".join(f"%{b:02x}" for b in SECRET.encode()), "url"),
    ],
)
def test_each_encoding_is_found_and_named(text: str, encoding: str) -> None:
    data = b"line one\nline two\nvalue = '" + text.encode() + b"'\n"
    (hit,) = _found(data)
    assert (hit.name, hit.encoding, hit.line, hit.previous) == ("IKHOKHA_API_SECRET", encoding, 3, False)
    assert hit.offset == data.index(text.encode())


def test_url_and_json_escapes_of_special_characters() -> None:
    value = 'ab"cd/ef\\gh ij&kl=mn+op'
    for text, encoding in [
        (quote(value, safe=""), "url"),
        (json.dumps(value)[1:-1], "js-escape"),
        (json.dumps(value)[1:-1].replace("/", "\\/"), "js-escape"),
    ]:
        hits = _found(b"x=" + text.encode() + b";", [Needle("S", value)])
        assert [(h.encoding) for h in hits] == [encoding], text


def test_concatenated_literals_in_a_minified_bundle_are_joined() -> None:
    bundle = (
        b'!function(){var e="pk_"+"other";const t={secret:"'
        + SECRET[:9].encode()
        + b'"+"'
        + SECRET[9:20].encode()
        + b"' + '"
        + SECRET[20:].encode()
        + b'",k:1};fetch("/x")}();\n'
    )
    (hit,) = _found(b"// bundle\n" + bundle)
    assert (hit.encoding, hit.line) == ("concat", 2)
    assert hit.offset == len(b"// bundle\n") + bundle.index(SECRET[:9].encode())


def test_a_whole_value_beside_a_join_is_found_once_as_raw() -> None:
    data = b'x="' + SECRET.encode() + b'"+"suffix"'
    assert [h.encoding for h in _found(data)] == ["raw"]


def test_previous_value_is_found_by_fingerprint_and_kept_in_memory_only() -> None:
    old = "ikSEC_" + "Z9yX8wV7uT6sR5qP4oN3mL2kJ1iH0gFe"
    prints = [PreviousPrint("IKHOKHA_API_SECRET", fingerprint(old), len(old))]
    data = b"IKHOKHA_API_SECRET=" + old.encode() + b"\nOTHER=" + old[:-1].encode() + b"x\n"
    (hit,) = _found(data, previous=prints)
    assert (hit.previous, hit.encoding, hit.line, hit.offset) == (True, "raw", 1, data.index(old.encode()))
    assert hit.value == old
    assert old not in repr(hit)


def test_previous_length_comes_from_the_current_value_when_unknown() -> None:
    old = "ikSEC_" + "A" * 32
    prints = [PreviousPrint("IKHOKHA_API_SECRET", fingerprint(old), None)]
    assert [h.previous for h in _found(b'"' + old.encode() + b'"', previous=prints)] == [True]


def test_previous_value_inside_a_longer_token_is_not_a_candidate() -> None:
    old = "ikSEC_" + "B" * 32
    prints = [PreviousPrint("IKHOKHA_API_SECRET", fingerprint(old), len(old))]
    assert _found(b"x" + old.encode() + b"y", previous=prints) == []
    assert len(_found(b"=" + old.encode() + b"\n", previous=prints)) == 1


def test_a_print_of_the_current_value_is_not_reported_as_previous() -> None:
    prints = [PreviousPrint("IKHOKHA_API_SECRET", fingerprint(SECRET), len(SECRET))]
    assert [h.previous for h in _found(SECRET.encode(), previous=prints)] == [False]


def test_nothing_is_found_in_text_without_the_value() -> None:
    data = ("\n".join(secrets.token_urlsafe(40) for _ in range(2000))).encode()
    prints = [PreviousPrint("IKHOKHA_API_SECRET", "sha256:00000000", 38)]
    assert _found(data, previous=prints) == []


def test_key_changes_with_the_needle_set_and_never_holds_the_value() -> None:
    one = Matcher(NEEDLES).key
    assert Matcher(NEEDLES).key == one
    assert Matcher([Needle("IKHOKHA_API_SECRET", SECRET + "x")]).key != one
    assert Matcher(NEEDLES, [PreviousPrint("IKHOKHA_API_SECRET", "sha256:12345678", 38)]).key != one
    assert SECRET not in one


def test_forms_are_distinct_and_not_shorter_than_eight_bytes() -> None:
    forms = encoded_forms("abcdefgh")
    assert len({f for _, f in forms}) == len(forms)
    assert all(len(f) >= 8 for _, f in forms)


def test_spans_respect_the_region() -> None:
    data = SECRET.encode() + b"\n" + SECRET.encode()
    spans = Matcher(NEEDLES).spans(data, 1, len(data))
    assert [s.start for s in spans] == [len(SECRET) + 1]


# --- the property: the matcher agrees with a brute-force reference ---------------------------------

ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+/=.~!*'() \"\\"
values = st.text(alphabet=ALPHABET, min_size=8, max_size=40)
filler = st.binary(max_size=200)


def _reference(value: str, align: int, suffix: bytes) -> dict[str, bytes]:
    """Each encoding written the obvious way, the value inside a longer encoded text."""
    raw = value.encode()
    return {
        "raw": raw,
        "base64": base64.b64encode(b"\xff" * align + raw + suffix),
        "base64url": base64.urlsafe_b64encode(b"\xff" * align + raw + suffix),
        "url": quote(value, safe="").encode(),
        "hex": raw.hex().encode(),
        "js-escape": "".join(f"\\u{ord(c):04x}" for c in value).encode(),
    }


@settings(max_examples=300, deadline=None)
@given(
    value=values,
    encoding=st.sampled_from(["raw", "base64", "base64url", "url", "hex", "js-escape"]),
    align=st.integers(0, 2),
    suffix=st.binary(min_size=0, max_size=4),
    before=filler,
    after=filler,
)
def test_matcher_agrees_with_brute_force(
    value: str, encoding: str, align: int, suffix: bytes, before: bytes, after: bytes
) -> None:
    planted = _reference(value, align, suffix)[encoding]
    data = before + planted + after
    hits = Matcher([Needle("V", value)]).scan(data)
    assert hits, f"{encoding} not found"
    assert all(h.name == "V" and not h.previous for h in hits)
    # every raw occurrence, and only those, is a raw hit (brute force: `find` at every offset)
    raw = value.encode()
    expected = {i for i in range(len(data)) if data.startswith(raw, i)}
    assert {h.offset for h in hits if h.encoding == "raw"} == expected
    # each hit's line is the line of its offset
    assert all(h.line == data.count(b"\n", 0, h.offset) + 1 for h in hits)


@settings(max_examples=200, deadline=None)
@given(value=values, before=filler, after=filler)
def test_no_hit_without_a_form_of_the_value(value: str, before: bytes, after: bytes) -> None:
    data = before + after
    forms = [f for _, f in encoded_forms(value)]
    hits = Matcher([Needle("V", value)]).scan(data)
    if not any(f in data for f in forms) and b"+" not in data:
        assert hits == []


@pytest.mark.parametrize("padding", ["", "=", "=="])
@pytest.mark.parametrize("has_current", [True, False])
def test_a_previous_value_in_env_form_is_found_when_its_alphabet_has_equals(
    padding: str, has_current: bool
) -> None:
    """Review #32 item 4: with '=' in the shape's alphabet (base64 secrets, or the generic alphabet
    of a variable with no current value), `KEY=value` was one run of the wrong length."""
    old = base64.b64encode(secrets.token_bytes(30 - len(padding))).decode()
    assert old.endswith(padding) and (not padding or not old.endswith(padding + "="))
    current = base64.b64encode(secrets.token_bytes(31)).decode() + "+/="
    needles = [Needle("IKHOKHA_API_SECRET", current)] if has_current else [Needle("OTHER_SECRET", SECRET)]
    prints = [PreviousPrint("IKHOKHA_API_SECRET", fingerprint(old), len(old))]
    matcher = Matcher(needles, prints)
    for text in (f"IKHOKHA_API_SECRET={old}\n", f"export IKHOKHA_API_SECRET={old}", f'S="{old}"'):
        hits = [h for h in matcher.scan(text.encode()) if h.previous]
        assert [(h.value, h.offset) for h in hits] == [(old, text.index(old))], text
    # a longer run is still not a candidate: the shape must fit
    assert [h for h in matcher.scan(f"x{old}y".replace("=", "").encode() + b"\n") if h.previous] == []
