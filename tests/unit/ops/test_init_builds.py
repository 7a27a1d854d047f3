"""`opsdash init` reads what the build reads, held against real builds.

The trees in tests/fixtures/builds/ were built by the real bundlers (Vite 8, Next.js 15) with
scripts/build_matrix.py, which also wrote down, from the framework's own env loader and the built
files, which secret-named variables reached the browser bundle (expected.json). Here each tree gets
a profile from `opsdash init` alone, and `opsdash validate` must report exactly those variables as
shipped to the browser: every secret that reached the build, and no other.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Run

BUILDS = Path(__file__).resolve().parents[2] / "fixtures" / "builds"
TREES = sorted(p.name for p in BUILDS.iterdir() if (p / "expected.json").is_file())
SHIPPED_RULES = {"secret-in-bundle", "secret-client-exposed"}


def _tree(name: str, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    app = tmp_path / name
    shutil.copytree(BUILDS / name, app)
    return app, json.loads((app / "expected.json").read_text())


def _init(run: Run, app: Path, *extra: str) -> dict[str, Any]:
    result = run("init", "--dir", app, *extra)
    assert result.code == 0, result.err
    profile: dict[str, Any] = tomllib.loads((app / "opsdash.toml").read_text())
    return profile


def _validate(run: Run, app: Path) -> list[dict[str, Any]]:
    result = run("validate", "--config", app / "opsdash.toml", "--json", "--no-history")
    assert result.out, result.err
    found: list[dict[str, Any]] = json.loads(result.out)["findings"]
    return found


def test_the_matrix_covers_each_way_a_secret_reaches_a_build() -> None:
    records = {name: json.loads((BUILDS / name / "expected.json").read_text()) for name in TREES}
    assert {r["framework"] for r in records.values()} == {"vite", "next"}
    assert any(r["mode"] != "production" for r in records.values())  # a --mode staging build
    assert any(set(r["secrets"]) - set(r["shipped"]) for r in records.values())  # secrets left behind
    assert sum(len(r["shipped"]) for r in records.values()) >= 8


@pytest.mark.parametrize("name", TREES)
def test_init_profile_finds_every_secret_that_reached_the_build_and_no_other(
    run: Run, tmp_path: Path, name: str
) -> None:
    app, expected = _tree(name, tmp_path)
    profile = _init(run, app)
    assert profile["env"]["framework"] == expected["framework"]
    assert profile["env"]["mode"] == expected["mode"]
    assert profile["target"]["bundle_dir"] == expected["bundle"]
    findings = _validate(run, app)
    flagged = {f["subject"] for f in findings if f["rule"] in SHIPPED_RULES and f["severity"] == "CRIT"}
    assert flagged == set(expected["shipped"]), findings
    assert not [f for f in findings if f["rule"] == "secret-in-bundle" and f["severity"] == "UNKNOWN"]


def test_a_staging_build_is_read_in_staging_mode_and_said_so(run: Run, tmp_path: Path) -> None:
    app, _expected = _tree("vite-staging-mode", tmp_path)
    _init(run, app)
    text = (app / "opsdash.toml").read_text()
    assert "# NOTE: the build script runs 'vite build --mode staging'" in text
    assert 'mode = "staging"  # from: vite build --mode staging' in text


def test_a_custom_env_prefix_replaces_the_framework_default(run: Run, tmp_path: Path) -> None:
    app, _expected = _tree("vite-env-prefix", tmp_path)
    profile = _init(run, app)
    assert profile["target"]["client_prefixes"] == ["APP_"]
    rules = {(f["rule"], f["subject"]) for f in _validate(run, app)}
    assert ("secret-client-exposed", "VITE_IKHOKHA_API_SECRET") not in rules  # Vite emits undefined


def test_base_url_is_the_apps_host_even_when_every_url_variable_names_the_provider(
    run: Run, tmp_path: Path
) -> None:
    app, _expected = _tree("vite-out-dir", tmp_path)
    profile = _init(run, app)
    assert profile["target"]["base_url"] == "https://shop.betaskill.com"
    findings = _validate(run, app)
    assert not [f for f in findings if f["rule"] == "url-off-domain"], findings
    policy = [f for f in findings if f["rule"] == "policy-violation"]
    assert [f["subject"] for f in policy] == ["VITE_MONITORING_ENABLED"]  # the plan's monitoring=false


def test_without_any_app_url_init_writes_a_marked_placeholder_or_the_url_given(
    run: Run, tmp_path: Path
) -> None:
    app = tmp_path / "api-only"
    app.mkdir()
    (app / ".env.production").write_text("IKHOKHA_API_BASE=https://api.ikhokha.com/public-api/v1/api\n")
    profile = _init(run, app)
    assert profile["target"]["base_url"] == "https://app.example.com"
    assert "# TODO: your production URL" in (app / "opsdash.toml").read_text()
    assert "payment-return-page" in (app / "opsdash.toml").read_text()  # named as not written, in a NOTE
    assert "payment-return-page" not in {c["name"] for c in profile["checks"]}
    profile = _init(run, app, "--force", "--base-url", "https://pay.example.org/")
    assert profile["target"]["base_url"] == "https://pay.example.org"
    assert run("init", "--dir", app, "--force", "--base-url", "http://pay.example.org").code == 3


def test_an_init_profile_of_the_demo_tree_is_go_and_its_runbooks_name_only_its_checks(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opsdash.demo import betaskill_env, env_text

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    app = tmp_path / "betaskill"
    app.mkdir()
    (app / ".env.production").write_text(env_text(betaskill_env()))
    profile = _init(run, app)
    assert {c["name"] for c in profile["checks"]} >= {
        "app-health",
        "payment-return-page",
        "webhook-endpoint",
        "ikhokha-api",
    }
    assert {p["variable"] for p in profile["policy"]} == {
        "ENFORCE_HTTPS",
        "WEBHOOK_SIGNATURE_VALIDATION",
        "SECURITY_LOGGING",
        "MONITORING_ENABLED",
    }
    result = run("validate", "--config", app / "opsdash.toml", "--no-history")
    assert result.code == 0, result.out
    lint = run("runbook", "check", "--config", app / "opsdash.toml")
    assert lint.code == 0, lint.out + lint.err
    (app / ".env.production").write_text(
        env_text({**betaskill_env(), "MONITORING_ENABLED": "false", "ENFORCE_HTTPS": "false"})
    )
    found = {f["subject"]: f["severity"] for f in _validate(run, app) if f["rule"] == "policy-violation"}
    assert found == {"ENFORCE_HTTPS": "CRIT", "MONITORING_ENABLED": "WARN"}


def test_init_writes_no_secret_from_a_build_script_or_a_url_path(run: Run, tmp_path: Path) -> None:
    app, _expected = _tree("vite-staging-mode", tmp_path)
    package = json.loads((app / "package.json").read_text())
    package["scripts"]["build"] = (
        "SENTRY_AUTH_TOKEN=sntrys_supersecretvalue123 vite build --mode staging\n[alerts]"
    )
    (app / "package.json").write_text(json.dumps(package))
    env = (
        (app / ".env.production")
        .read_text()
        .replace(
            "https://app.betaskill.com/api/payments/ikhokha/webhook",
            "https://app.betaskill.com/api/hooks/whsec_PathSecretValue12345;jsessionid=SESSIONSECRET999",
        )
    )
    (app / ".env.production").write_text(env)
    profile = _init(run, app)
    text = (app / "opsdash.toml").read_text()
    assert profile["env"]["mode"] == "staging"
    assert 'mode = "staging"  # from: vite build --mode staging' in text
    for secret in ("sntrys_supersecretvalue123", "whsec_PathSecretValue12345", "SESSIONSECRET999"):
        assert secret not in text
    result = run(
        "init",
        "--dir",
        app,
        "--force",
        "--base-url",
        "http://deploy:ghp_SuperSecretToken12345@a.example.com/",
    )
    assert result.code == 3 and "ghp_SuperSecretToken12345" not in result.err + result.out


@pytest.mark.parametrize(
    "package",
    [
        {"dependencies": 5, "devDependencies": {"vite": "^8"}},
        {"scripts": [1], "devDependencies": {"vite": "^8"}},
        {"scripts": {"build": "vite build --mode ../../etc"}, "devDependencies": {"vite": "^8"}},
        [1, 2],
    ],
)
def test_odd_package_json_shapes_give_a_profile_not_a_traceback(
    run: Run, tmp_path: Path, package: object
) -> None:
    app = tmp_path / "odd"
    app.mkdir()
    (app / "package.json").write_text(json.dumps(package))
    (app / ".env.production").write_text("VITE_APP_URL=https://app.example.org\n")
    profile = _init(run, app)
    assert profile["env"].get("mode", "production") == "production"
    if "../../etc" in json.dumps(package):
        assert "is not a name opsdash can read: set [env] mode by hand" in (app / "opsdash.toml").read_text()
