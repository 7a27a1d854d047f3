"""Env validation that sees what the bundler ships: Vite-, Next- and CRA-shaped project trees (env
files in the framework's layering, and a built bundle with the secrets inlined as the bundler would
inline them), profiles made by `opsdash init`, and the CI path with only environment variables.
No Node is needed: the trees are written as `vite build` / `next build` leave them."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from opsdash.core.envfiles import framework_files, load_environment
from tests.conftest import Run

KEY = "IKAPPIDFAKE0001"
SECRET = "fake-app-secret-0f9e8d7c6b5a4f3e"
HOOK = "fake-hook-secret-1a2b3c4d5e6f7a8b"
OVERRIDE = "fake-app-secret-override-99aa88bb"

REST = (
    "VITE_NODE_ENV=production\n"
    "VITE_IKHOKHA_TEST_MODE=false\n"
    "VITE_APP_URL=https://app.betaskill.com\n"
    "PAYMENT_RETURN_URL=https://app.betaskill.com/payment/success\n"
    "PAYMENT_CANCEL_URL=https://app.betaskill.com/payment/cancel\n"
    "PAYMENT_WEBHOOK_URL=https://app.betaskill.com/api/webhooks/ikhokha\n"
    "IKHOKHA_API_BASE=https://api.ikhokha.com/public-api/v1/api\n"
    f"IKHOKHA_WEBHOOK_SECRET={HOOK}\n"
)


def vite_tree(root: Path, *, local_override: bool = False, sandbox: bool = False) -> Path:
    """Secrets in `.env`, the rest in `.env.production`, and dist/ as `vite build` would leave it."""
    app = root / "betaskill-web"
    (app / "dist" / "assets").mkdir(parents=True)
    (app / "vite.config.ts").write_text(
        "import { defineConfig } from 'vite'\nexport default defineConfig({})\n"
    )
    (app / "package.json").write_text(json.dumps({"devDependencies": {"vite": "^8.0.0"}}))
    (app / ".env").write_text(f"VITE_IKHOKHA_API_KEY={KEY}\nVITE_IKHOKHA_API_SECRET={SECRET}\n")
    rest = REST.replace("api.ikhokha.com", "sandbox.ikhokha.com") if sandbox else REST
    (app / ".env.production").write_text(rest)
    shipped = SECRET
    if local_override:
        (app / ".env.production.local").write_text(f"VITE_IKHOKHA_API_SECRET={OVERRIDE}\n")
        shipped = OVERRIDE
    (app / "dist" / "index.html").write_text(
        '<script type="module" src="/assets/index-4f2a9c1b.js"></script>'
    )
    (app / "dist" / "assets" / "index-4f2a9c1b.js").write_text(
        f'const e={{VITE_IKHOKHA_API_KEY:"{KEY}",VITE_IKHOKHA_API_SECRET:"{shipped}"}};'
        "fetch(e.VITE_APP_URL);\n"
    )
    return app


def init(run: Run, app: Path) -> dict[str, Any]:
    result = run("init", "--dir", app)
    assert result.code == 0, result.err
    return tomllib.loads((app / "opsdash.toml").read_text())


def findings(run: Run, app: Path) -> tuple[int, list[dict[str, Any]]]:
    result = run("validate", "--config", app / "opsdash.toml", "--json", "--no-history")
    assert result.out, result.err
    return result.code, json.loads(result.out)["findings"]


def test_init_profile_sees_secrets_that_vite_takes_from_dot_env(run: Run, tmp_path: Path) -> None:
    app = vite_tree(tmp_path)
    profile = init(run, app)
    assert profile["env"]["framework"] == "vite" and "files" not in profile["env"]
    assert profile["target"]["base_url"] == "https://app.betaskill.com"
    assert profile["target"]["bundle_dir"] == "dist"
    assert profile["urls"]["api_base"] == ["IKHOKHA_API_BASE"]
    checks = {c["name"]: c["kind"] for c in profile["checks"]}
    assert (
        checks["app-health"] == "http" and checks["app-tls"] == "tls" and checks["ikhokha-api"] == "provider"
    )
    code, found = findings(run, app)
    assert code == 2
    rules = {(f["rule"], f["subject"]) for f in found}
    assert ("secret-client-exposed", "VITE_IKHOKHA_API_SECRET") in rules
    assert any(r == "secret-in-bundle" for r, _ in rules)
    exposed = next(
        f for f in found if f["rule"] == "secret-client-exposed" and f["subject"] == "VITE_IKHOKHA_API_SECRET"
    )
    assert exposed["evidence"]["source"].endswith("/.env:2")  # the file that won, and its line


def test_a_local_override_is_the_value_scanned_for(run: Run, tmp_path: Path) -> None:
    app = vite_tree(tmp_path, local_override=True)
    init(run, app)
    code, found = findings(run, app)
    in_bundle = [f for f in found if f["rule"] == "secret-in-bundle"]
    assert code == 2 and in_bundle
    assert not [f for f in found if f["rule"] == "secret-reused"]  # the stale .env value is not "reused"
    assert any(f["evidence"].get("source", "").endswith(".env.production.local:1") for f in found)


def test_init_on_a_sandbox_api_base_gives_a_profile_that_reports_it(run: Run, tmp_path: Path) -> None:
    app = vite_tree(tmp_path, sandbox=True)
    init(run, app)
    code, found = findings(run, app)
    assert code == 2
    crit = {f["rule"] for f in found if f["subject"] == "IKHOKHA_API_BASE" and f["severity"] == "CRIT"}
    assert crit & {"api-base-not-production", "dev-host-in-production"}, found


@pytest.mark.parametrize(
    ("framework", "expected"),
    [
        ("vite", [".env", ".env.local", ".env.production", ".env.production.local"]),
        ("next", [".env", ".env.production", ".env.local", ".env.production.local"]),
        ("cra", [".env", ".env.production", ".env.local", ".env.production.local"]),
    ],
)
def test_each_framework_layers_its_files_in_its_own_order(
    tmp_path: Path, framework: str, expected: list[str]
) -> None:
    assert [p.name for p in framework_files(framework, "production", tmp_path)] == expected
    for rank, name in enumerate(expected):
        (tmp_path / name).write_text(f"X=from{rank}\nONLY_{rank}=yes\n")
    env = load_environment(framework_files(framework, "production", tmp_path), framework=framework)
    assert env.get("X") == f"from{len(expected) - 1}"  # the last in the order wins
    assert env.source_of("X").endswith(f"{expected[-1]}:1")
    assert all(env.get(f"ONLY_{rank}") == "yes" for rank in range(len(expected)))


def test_values_are_read_as_nodes_dotenv_and_dotenv_expand_read_them(run: Run, tmp_path: Path) -> None:
    """An unquoted # ends the value for Node's dotenv; $NAME expands. The fingerprint, the bundle
    scan and a finding must use what the build inlines, and say that it differs."""
    app = vite_tree(tmp_path)
    (app / ".env.production").write_text(
        REST + "VITE_SITE_TITLE=BetaSkill#1\nVITE_GREETING=Save $DISCOUNT today\nVITE_PLAIN='quoted # kept'\n"
    )
    files = [p for p in framework_files("vite", "production", app) if p.is_file()]
    env = load_environment(files, framework="vite")
    assert env.get("VITE_SITE_TITLE") == "BetaSkill"
    assert env.get("VITE_GREETING") == "Save  today"  # $5 would stay: not a name
    assert env.get("VITE_PLAIN") == "quoted # kept"
    altered = {p.key: p.message for p in env.problems if p.kind == "reads-differently"}
    assert set(altered) == {"VITE_SITE_TITLE", "VITE_GREETING"}
    assert "Vite reads VITE_SITE_TITLE as 9 characters, not the 11 written" in altered["VITE_SITE_TITLE"]
    init(run, app)
    _code, found = findings(run, app)
    assert {f["subject"] for f in found if f["rule"] == "env-value-altered"} == set(altered)


def test_secret_cut_by_a_hash_is_crit_and_the_shipped_part_is_what_is_scanned(
    run: Run, tmp_path: Path
) -> None:
    app = vite_tree(tmp_path)
    (app / ".env").write_text(
        f"VITE_IKHOKHA_API_KEY={KEY}\nVITE_IKHOKHA_API_SECRET=fake-secret-aa#bb-cc-dd-ee\n"
    )
    (app / "dist" / "assets" / "index-4f2a9c1b.js").write_text('const e={s:"fake-secret-aa"};\n')
    init(run, app)
    _code, found = findings(run, app)
    altered = [f for f in found if f["rule"] == "env-value-altered"]
    assert altered and altered[0]["severity"] == "CRIT"
    assert any(f["rule"] == "secret-in-bundle" for f in found)  # the 14 characters Vite ships


def test_ci_path_with_only_environment_variables_gives_a_verdict(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pipeline keeps its configuration in variables: the profile's env files do not exist there."""
    app = vite_tree(tmp_path)
    init(run, app)
    for name in (".env", ".env.production"):
        (app / name).unlink()
    for line in REST.splitlines():
        key, _, value = line.partition("=")
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("IKHOKHA_API_KEY", KEY)
    monkeypatch.setenv("IKHOKHA_API_SECRET", SECRET)
    result = run("validate", "--config", app / "opsdash.toml", "--from-env", "--json", "--no-history")
    assert result.code in (0, 1, 2), result.err
    report = json.loads(result.out)
    assert report["summary"]["sources"] == ["environment"]
    assert report["verdict"] in ("OK", "WARN", "CRIT")


def test_vite_and_next_expand_as_their_own_loaders_do(tmp_path: Path) -> None:
    """Cases where the real loaders (scripts/env_reference.py: vite 8 loadEnv, @next/env) differ from
    a naive reading; each expected value is what they returned on the same tree."""
    (tmp_path / ".env").write_text("A=$LATER\nLATER=late\nQ='q'abc\n")
    env = load_environment([tmp_path / ".env"], framework="vite")
    assert env.get("A") == "late"  # Node's parseEnv sorts keys: LATER is expanded first
    assert env.get("Q") == "q"  # a quoted value ends at its quote
    (tmp_path / ".env.production").write_text("X=prod\nSELF=${SELF}x\n")
    (tmp_path / ".env.local").write_text("X=local\n")
    files = [tmp_path / ".env", tmp_path / ".env.production", tmp_path / ".env.local"]
    env = load_environment(files, framework="next")
    assert env.get("X") == "local"
    assert env.get("SELF") is None  # @next/env drops a file whose expansion never ends ...
    dropped = [p for p in env.problems if p.key == "SELF"]
    assert dropped and "drops the whole file" in dropped[0].message  # ... and opsdash says so


def test_next_expands_a_files_keys_in_file_order_even_past_a_line_python_dotenv_refuses(
    tmp_path: Path,
) -> None:
    """scripts/env_reference.py's one Next.js difference: `BASE='q' spaced \\$5` is a line python-dotenv
    refuses and @next/env reads; it comes first in the file, so it is expanded (to `'q' spaced $5`)
    before SECRET refers to it, and the `$5` then expands again, to nothing (what @next/env 15 gave)."""
    (tmp_path / ".env.local").write_text("BASE='q' spaced \\$5\nC=\"abc\"\nSECRET='a=b${BASE}'\n")
    env = load_environment([tmp_path / ".env.local"], framework="next")
    assert env.get("BASE") == "'q' spaced $5"
    assert env.get("SECRET") == "a=b'q' spaced "
