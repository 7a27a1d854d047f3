"""Credential findings an operator acts on: placeholders recognised by the shape of the whole value
(never a strong random password), and the bundle scan that says where and how a secret ships.

Project trees are written as `vite build` and `next build` leave them; no Node is needed. Every
secret is generated here, fresh or from a fixed seed: none is real.
"""

from __future__ import annotations

import base64
import json
import os
import random
import secrets
import string
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from opsdash.core.envfiles import EnvSnapshot, EnvValue
from opsdash.core.findings import Finding, Severity
from opsdash.core.profile import Profile
from opsdash.core.secrets import entropy_bits_per_char
from opsdash.core.validators import bundle, credentials, validate
from opsdash.core.validators.context import Context
from opsdash.ops.config import load_config
from tests.conftest import EXAMPLE_PROFILE, Run

PROFILE = Profile.model_validate({"target": {"name": "ShopFront", "base_url": "https://shop.example.com"}})


def placeholder_findings(values: Iterable[str]) -> dict[str, Finding]:
    """secret-placeholder findings for each value, set as a secret variable, by value."""
    named = {f"FAKE_{i:05d}_SECRET": v for i, v in enumerate(values)}
    env = EnvSnapshot({k: EnvValue(k, v, "fake.env:1") for k, v in named.items()})
    found = credentials.check_placeholders_and_strength(Context(profile=PROFILE, env=env))
    return {named[f.subject]: f for f in found if f.rule == "secret-placeholder"}


# --- placeholders --------------------------------------------------------------------------------------

PRINTABLE = string.ascii_letters + string.digits + string.punctuation
GENERATORS: dict[str, Callable[[random.Random, int], str]] = {
    "printable": lambda rng, n: "".join(rng.choice(PRINTABLE) for _ in range(n)),
    "printable with spaces": lambda rng, n: "".join(rng.choice(PRINTABLE + " ") for _ in range(n)),
    "hex": lambda rng, n: rng.randbytes(n).hex()[:n],
    "base64": lambda rng, n: base64.b64encode(rng.randbytes(n)).decode(),
    "base64url": lambda rng, n: base64.urlsafe_b64encode(rng.randbytes(n)).decode().rstrip("="),
    "alphanumeric": lambda rng, n: "".join(
        rng.choice(string.ascii_letters + string.digits) for _ in range(n)
    ),
}


def test_ten_thousand_strong_random_passwords_are_never_placeholders() -> None:
    """The issue: `<`, `>` or `${` anywhere made half of all 32-character printable passwords a CRIT."""
    rng = random.Random(20_240_611)
    passwords = [
        GENERATORS[kind](rng, rng.randint(16, 64))
        for _ in range(10_000 // len(GENERATORS) + 1)
        for kind in GENERATORS
    ]
    assert len(passwords) >= 10_000
    assert sum(any(c in p for c in "<>") or "${" in p for p in passwords) >= 1_500  # the old trigger
    flagged = placeholder_findings(passwords)
    assert flagged == {}, f"{len(flagged)} flagged, e.g. {next(iter(flagged.values())).detail}"


ENCODERS: dict[str, Callable[[bytes], str]] = {
    "hex": bytes.hex,
    "base64": lambda b: base64.b64encode(b).decode(),
    "base64url": lambda b: base64.urlsafe_b64encode(b).decode().rstrip("="),
}


@settings(max_examples=300, suppress_health_check=[HealthCheck.filter_too_much])
@given(raw=st.binary(min_size=12, max_size=48), encoding=st.sampled_from(sorted(ENCODERS)))
def test_encoded_random_bytes_are_never_placeholders(raw: bytes, encoding: str) -> None:
    value = ENCODERS[encoding](raw)
    assume(len(set(value)) >= 8 and entropy_bits_per_char(value) >= 3.0)  # what secret-weak lets through
    assert credentials.placeholder_reason(value) is None


def test_strong_passwords_holding_template_characters_are_not_placeholders() -> None:
    values = [
        "Zq7<hT2>w9${Lm4}pX8!rB3^kD6&sF1*",
        "<k9Rz2mT!vP8#xL4&nB7^cD1eF5gH3j",
        "9f8Qz2Lk>Wm4Rt7Yp1Xc6Vb3Nd5Gh0<",
    ]
    assert placeholder_findings(values) == {}


PLACEHOLDERS = {
    "<your-ikhokha-api-secret>": "template marker",
    "<API SECRET>": "template marker",
    "${IKHOKHA_API_SECRET}": "unexpanded ${...} reference",
    "${IKHOKHA_API_SECRET:-changeme}": "unexpanded ${...} reference",
    "{{ ikhokha_api_secret }}": "template marker",
    "changeme": "well-known placeholder word",
    "CHANGE_ME": "well-known placeholder word",
    "TODO": "well-known placeholder word",
    "placeholder123": "well-known placeholder word",
    "your-api-secret-here": "starts with 'your'",
    "your_ikhokha_secret_goes_here_1234": "starts with 'your'",
    "put-your-key-here": "starts with 'put'",
    "the-webhook-secret-goes-here": "ends with 'here'",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx": "one character repeated",
    "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx": "filled in with x",
    "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx": "filled in with x",
    "sk_live_51Habc...": "ellipsis",
    "aaaaaaaaaaaaaaaaaaaaaaaa": "one character repeated",
    "abcabcabcabcabcabcabc": "short sequence repeated",
    "1234567890": "counting or keyboard sequence",
    "qwertyuiop": "counting or keyboard sequence",
}


@pytest.mark.parametrize("value", sorted(PLACEHOLDERS))
def test_whole_value_placeholder_shapes_are_reported(value: str) -> None:
    (finding,) = placeholder_findings([value]).values()
    assert finding.severity == Severity.CRIT
    assert PLACEHOLDERS[value] in finding.detail
    assert value not in json.dumps(finding.to_dict())  # the reason names the shape, not the value


def test_a_test_mode_key_is_reported_whatever_follows_its_prefix() -> None:
    value = "sk_test_" + secrets.token_hex(16)
    (finding,) = placeholder_findings([value]).values()
    assert "marked as a test, sandbox or dev credential" in finding.detail


def test_copying_the_example_env_file_untouched_reports_every_secret() -> None:
    example = EXAMPLE_PROFILE.with_name(".env.production.example").read_text()
    values = dict(
        line.split("=", 1) for line in example.splitlines() if "=" in line and not line.startswith("#")
    )
    shipped = [values[k] for k in ("IKHOKHA_API_KEY", "IKHOKHA_API_SECRET", "IKHOKHA_WEBHOOK_SECRET")]
    assert set(placeholder_findings(shipped)) == set(shipped)


# --- bundle scan -----------------------------------------------------------------------------------------


def write_project(
    root: Path, env: dict[str, str], bundle: dict[str, str | bytes], bundle_dir: str | None
) -> Path:
    """A project with a production env file and a built front end; returns the profile path."""
    root.mkdir(parents=True, exist_ok=True)
    (root / ".env.production").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    for name, content in bundle.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    target = f'bundle_dir = "{bundle_dir}"\n' if bundle_dir else ""
    profile = root / "opsdash.toml"
    profile.write_text(
        f'[target]\nname = "ShopFront"\nbase_url = "https://shop.example.com"\n{target}'
        '\n[env]\nfiles = [".env.production"]\nsecrets = ["PAYMENT_SECRET"]\n'
    )
    return profile


def run_validate(
    profile: Path, *secret_values: str, process_env: dict[str, str] | None = None
) -> list[Finding]:
    """The findings of `opsdash validate`, checked to hold no secret in any form the scan looks for."""
    loaded = load_config(profile).profile
    findings = list(
        validate(loaded, from_env=process_env is not None, process_env=process_env).report.findings
    )
    text = json.dumps([f.to_dict() for f in findings], ensure_ascii=False)
    for value in secret_values:
        raw = value.encode()
        forms = (json.dumps(value, ensure_ascii=False)[1:-1], raw.hex(), quote(value, safe=""))
        for shown in (*forms, base64.b64encode(raw).decode().rstrip("=")):
            assert shown not in text, "a secret (or an encoding of it) reached a finding"
    return findings


def by_rule(findings: list[Finding], rule_id: str) -> dict[str, Finding]:
    return {f.subject: f for f in findings if f.rule == rule_id}


def vite_bundle(js: str) -> dict[str, str | bytes]:
    return {
        "dist/index.html": '<script type="module" crossorigin src="/assets/index-abc123.js"></script>',
        "dist/assets/index-abc123.js": js,
        "dist/assets/vendor-9f8e7d.js": "export const n=1;" * 50,
    }


def test_vite_bundle_with_an_inlined_client_secret(tmp_path: Path) -> None:
    exposed, server = secrets.token_hex(16), secrets.token_urlsafe(24)
    env = {"VITE_IKHOKHA_API_SECRET": exposed, "IKHOKHA_WEBHOOK_SECRET": server}
    profile = write_project(tmp_path, env, vite_bundle(f'const k="{exposed}";fetch("/api/pay")'), "dist")
    findings = run_validate(profile, exposed, server)
    client = by_rule(findings, "secret-client-exposed")["VITE_IKHOKHA_API_SECRET"]
    assert client.severity == Severity.CRIT
    assert client.evidence["bundle"] == "found in the bundle"
    assert "assets/index-abc123.js (literal)" in client.detail
    in_bundle = by_rule(findings, "secret-in-bundle")
    assert set(in_bundle) == {"VITE_IKHOKHA_API_SECRET"}  # the server secret is not in the build
    assert in_bundle["VITE_IKHOKHA_API_SECRET"].evidence["encodings"] == "literal"


def test_a_secret_behind_atob_is_found_and_the_encoding_named(tmp_path: Path) -> None:
    server = secrets.token_urlsafe(30)
    encoded = base64.b64encode(server.encode()).decode()
    js = f'const s=atob("{encoded}");export function sign(m){{return hmac(s,m)}}'
    profile = write_project(tmp_path, {"IKHOKHA_API_SECRET": server}, vite_bundle(js), "dist")
    (finding,) = by_rule(run_validate(profile, server), "secret-in-bundle").values()
    assert (finding.subject, finding.severity) == ("IKHOKHA_API_SECRET", Severity.CRIT)
    assert "assets/index-abc123.js (base64)" in finding.detail
    assert finding.evidence["encodings"] == "base64"


@pytest.mark.parametrize("offset", [0, 1, 2, 3, 4, 5])
def test_a_secret_inside_a_longer_base64_string_is_found_at_any_alignment(
    tmp_path: Path, offset: int
) -> None:
    """`btoa(JSON.stringify(config))`: the secret's bytes start anywhere in the encoded stream."""
    server = secrets.token_hex(20)
    config = json.dumps({"appSecret": server, "retries": 3})
    blob = base64.b64encode(("x" * offset + config).encode()).decode()
    profile = write_project(
        tmp_path, {"IKHOKHA_API_SECRET": server}, vite_bundle(f'const c=JSON.parse(atob("{blob}"))'), "dist"
    )
    (finding,) = by_rule(run_validate(profile, server), "secret-in-bundle").values()
    assert finding.evidence["encodings"] == "base64"


def test_url_encoded_hex_and_js_escaped_forms_are_each_named(tmp_path: Path) -> None:
    rng = random.Random(7)
    odd = "".join(rng.choice(PRINTABLE) for _ in range(28)) + '"\\/ %'  # written differently in each form
    hexed = secrets.token_urlsafe(24)
    js = f'const q={json.dumps(odd)};const u="/cb?s={quote(odd, safe="")}";const h="{hexed.encode().hex()}";'
    profile = write_project(tmp_path, {"SIGNING_SECRET": hexed}, vite_bundle(js), "dist")
    findings = run_validate(profile, odd, hexed, process_env={"PAYMENT_SECRET": odd})
    in_bundle = by_rule(findings, "secret-in-bundle")
    assert in_bundle["PAYMENT_SECRET"].evidence["encodings"] == "JS string escapes, URL-encoded"
    assert in_bundle["SIGNING_SECRET"].evidence["encodings"] == "hex"


def test_client_secret_not_in_the_scanned_bundle_stays_critical_and_says_why(tmp_path: Path) -> None:
    exposed = secrets.token_hex(16)
    profile = write_project(
        tmp_path, {"VITE_IKHOKHA_API_SECRET": exposed}, vite_bundle('fetch("/api")'), "dist"
    )
    findings = run_validate(profile, exposed)
    (finding,) = by_rule(findings, "secret-client-exposed").values()
    assert finding.severity == Severity.CRIT
    assert finding.evidence["bundle"] == "not found in the scanned bundle"
    assert "not found in the scanned bundle" in finding.detail and "3 file(s)" in finding.detail
    assert "It stays critical" in finding.detail and "wherever the code reads it" in finding.detail
    assert "inlines it" not in finding.title.lower() and "prefix" in finding.title
    assert by_rule(findings, "secret-in-bundle") == {}


def test_client_secret_with_no_bundle_configured_says_no_bundle_was_scanned(tmp_path: Path) -> None:
    exposed = secrets.token_hex(16)
    profile = write_project(tmp_path, {"VITE_IKHOKHA_API_SECRET": exposed}, {}, None)
    (finding,) = run_validate(profile, exposed)
    assert (finding.rule, finding.severity) == ("secret-client-exposed", Severity.CRIT)
    assert finding.evidence["bundle"] == "no bundle scanned"
    assert "No bundle was scanned" in finding.detail and "target.bundle_dir" in finding.detail


def test_client_secret_with_a_missing_bundle_dir_says_so_and_the_scan_is_unknown(tmp_path: Path) -> None:
    exposed = secrets.token_hex(16)
    profile = write_project(tmp_path, {"VITE_IKHOKHA_API_SECRET": exposed}, {}, "dist")
    findings = run_validate(profile, exposed)
    client = by_rule(findings, "secret-client-exposed")["VITE_IKHOKHA_API_SECRET"]
    assert client.evidence["bundle"] == "no bundle scanned" and "does not exist" in client.detail
    assert [f.severity for f in findings if f.rule == "secret-in-bundle"] == [Severity.UNKNOWN]


@pytest.mark.parametrize("bundle_dir", [".next", ".next/static"])
def test_next_build_only_the_browser_half_counts(tmp_path: Path, bundle_dir: str) -> None:
    """A Next.js build keeps server code in .next/server: a server secret there is not exposed."""
    public, server = secrets.token_hex(16), secrets.token_hex(16)
    tree: dict[str, str | bytes] = {
        ".next/BUILD_ID": "k3Yx9Qp2",
        ".next/static/chunks/pages/_app-3f2a1b.js": f'(self.webpackChunk=self.webpackChunk||[]).push([[888],{{1:function(e){{e.k="{public}"}}}}])',
        ".next/static/chunks/webpack-7c1d.js": "!function(){}();",
        ".next/server/pages/api/pay.js": f'module.exports={{s:process.env.X||"{server}"}}',
    }
    env = {"NEXT_PUBLIC_IKHOKHA_API_SECRET": public, "IKHOKHA_API_SECRET": server}
    findings = run_validate(write_project(tmp_path, env, tree, bundle_dir), public, server)
    assert set(by_rule(findings, "secret-in-bundle")) == {"NEXT_PUBLIC_IKHOKHA_API_SECRET"}
    client = by_rule(findings, "secret-client-exposed")["NEXT_PUBLIC_IKHOKHA_API_SECRET"]
    assert client.evidence["bundle"] == "found in the bundle"
    assert "chunks/pages/_app-3f2a1b.js (literal)" in client.detail


def test_a_secret_across_a_read_boundary_of_a_large_bundle_is_found(tmp_path: Path) -> None:
    server = secrets.token_hex(24)
    head = b"/*" + b"a" * (bundle.CHUNK - 22) + b'*/const s="'
    big = head + server.encode() + b'";' + b"b" * 1000
    assert len(head) < bundle.CHUNK < len(head) + len(server)  # the value straddles two reads
    profile = write_project(
        tmp_path, {"IKHOKHA_API_SECRET": server}, {"dist/assets/vendor-1a2b.js": big}, "dist"
    )
    (finding,) = by_rule(run_validate(profile, server), "secret-in-bundle").values()
    assert "assets/vendor-1a2b.js (literal)" in finding.detail


def test_a_file_too_large_to_scan_is_reported_not_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bundle, "MAX_BUNDLE_FILE", 10_000)
    exposed = secrets.token_hex(16)
    tree: dict[str, str | bytes] = {
        **vite_bundle("fetch('/api')"),
        "dist/assets/huge-0c0c.js": "//" + "z" * 20_000,
    }
    findings = run_validate(
        write_project(tmp_path, {"VITE_IKHOKHA_API_SECRET": exposed}, tree, "dist"), exposed
    )
    (partial,) = by_rule(findings, "secret-in-bundle").values()
    assert partial.severity == Severity.UNKNOWN and "assets/huge-0c0c.js" in partial.detail
    client = by_rule(findings, "secret-client-exposed")["VITE_IKHOKHA_API_SECRET"]
    assert "1 file(s) could not be scanned" in client.detail


def test_a_fifo_named_like_a_script_does_not_hang_the_scan(tmp_path: Path) -> None:
    exposed = secrets.token_hex(16)
    profile = write_project(
        tmp_path, {"VITE_IKHOKHA_API_SECRET": exposed}, vite_bundle(f'k="{exposed}"'), "dist"
    )
    os.mkfifo(tmp_path / "dist" / "assets" / "stream-5e5e.js")
    client = by_rule(run_validate(profile, exposed), "secret-client-exposed")["VITE_IKHOKHA_API_SECRET"]
    assert client.evidence["bundle"] == "found in the bundle"


def test_validate_cli_names_file_and_encoding_and_prints_no_secret(run: Run, tmp_path: Path) -> None:
    exposed = secrets.token_urlsafe(24)
    encoded = base64.b64encode(exposed.encode()).decode()
    profile = write_project(
        tmp_path, {"VITE_IKHOKHA_API_SECRET": exposed}, vite_bundle(f'atob("{encoded}")'), "dist"
    )
    result = run("validate", "--config", profile, "--json", "--no-history")
    assert result.code == 2
    findings = {(f["rule"], f["subject"]): f for f in json.loads(result.out)["findings"]}
    client = findings[("secret-client-exposed", "VITE_IKHOKHA_API_SECRET")]
    assert client["evidence"]["bundle"] == "found in the bundle"
    assert findings[("secret-in-bundle", "VITE_IKHOKHA_API_SECRET")]["evidence"]["encodings"] == "base64"
    assert "assets/index-abc123.js (base64)" in client["detail"]
    assert exposed not in result.out + result.err and encoded.rstrip("=") not in result.out + result.err
