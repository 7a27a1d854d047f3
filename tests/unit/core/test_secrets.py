"""The one masker: what it recognises as a secret, and the filter process a command's output goes
through on its way to disk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from opsdash.core.secrets import Redactor, fingerprint, mask_url, secret_like, url_secrets
from tests.conftest import fake_secret


def test_url_secrets_are_the_userinfo_and_the_secret_named_query_values() -> None:
    url = "https://ops:pa55word-x@host.test/health?api_key=k3y-value&region=eu&X-Amz-Signature=s1g&page=2"
    assert url_secrets(url) == ["pa55word-x", "k3y-value", "s1g"]
    assert url_secrets("https://host.test/health?region=eu") == []
    assert url_secrets("not a url") == []


def test_a_malformed_url_still_has_its_password_found_and_masked() -> None:
    """urlsplit refuses an unbalanced bracket; the error that names such a URL must still mask its
    password (the reviewer's case: "internal error (ValueError: Invalid IPv6 URL)")."""
    url = "postgres://opsdash:SECRETPW5678@[::1/opsdash?api_key=x"
    assert url_secrets(url) == ["SECRETPW5678"]
    shown = mask_url(url)
    assert "SECRETPW5678" not in shown and shown.startswith("postgres://opsdash:") and "[::1/opsdash" in shown
    assert url_secrets("https://tok-abcdef123456@[::1") == ["tok-abcdef123456"]


def test_typed_text_that_looks_like_a_secret() -> None:
    token = fake_secret("tok")
    named = "hunter2-but-longer"
    text = f"paged at 03:10 (see https://status.example.com/incidents/12345); api_key={named}; token {token}"
    assert secret_like(text) == [named, token]
    # prose, a URL, a release and a short id are not secrets
    assert secret_like("rolled back to 2026.11.2, see https://github.com/org/repo/pull/1234 for a1b2c3") == []


def test_a_previous_value_is_masked_by_its_fingerprint() -> None:
    old = fake_secret("old")
    redactor = Redactor()
    redactor.register_fingerprints([fingerprint(old)])
    shown = redactor.redact(f"SECRET={old}\n/var/builds/{old}/app.js and {old}.")
    assert old not in shown
    assert shown.count(f"({len(old)} chars, {fingerprint(old)})") == 3
    assert redactor.redact("nothing 0123456789abcdef here") == "nothing 0123456789abcdef here"


# as the executor's wrapper runs it: the secrets on fd 3 (here the shell's stdin), output on stdin
FILTER = 'exec "$1" -P -m opsdash.core.runbooks.maskfilter 3<&0 <"$2"'


def _filter(data: bytes, values: list[str], tmp_path: Path) -> bytes:
    (tmp_path / "output").write_bytes(data)
    done = subprocess.run(
        ["/bin/sh", "-c", FILTER, "sh", sys.executable, str(tmp_path / "output")],
        input=json.dumps({"values": values, "fingerprints": []}).encode(),
        capture_output=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_the_filter_masks_a_secret_cut_by_a_long_line(tmp_path: Path) -> None:
    secret = fake_secret("cut")
    # no newline for far longer than the filter holds (the secret across the end of its second read):
    # it writes in pieces, and a secret is never split between two
    data = (
        b"x" * (128 * 1024 - 10)
        + secret.encode()
        + b"y" * 100_000
        + b"\n\xff\xfe raw bytes "
        + secret.encode()
    )
    out = _filter(data, [secret], tmp_path)
    assert secret.encode() not in out
    assert out.count(fingerprint(secret).encode()) == 2
    assert b"\xff\xfe raw bytes " in out  # what is not UTF-8 goes through as it came
    assert out.startswith(b"x" * 1000) and len(out) > len(data)


def test_the_filter_never_cuts_a_secret_in_a_line_too_long_to_hold() -> None:
    """A line longer than the filter holds is written in pieces: wherever a secret falls, no piece
    ends inside it."""
    from opsdash.core.runbooks.maskfilter import _LONG_LINE, _safe_cut

    secret = b"s3cr3t-" + b"x" * 40
    for offset in range(0, len(secret) + 2):
        data = b"a" * (_LONG_LINE - offset) + secret + b"b" * 300
        at = _LONG_LINE - 3
        cut = _safe_cut(data, at, [secret])
        start = data.find(secret)
        assert cut <= at and not (start < cut < start + len(secret)), (offset, cut, start)
