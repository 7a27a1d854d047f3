"""Configuration: search order, settings precedence, `config show|validate|schema`, and `init`."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsdash.core.errors import ConfigError
from opsdash.ops.config import load_config, load_settings, locate
from tests.conftest import EXAMPLE_PROFILE, Project, Run


def test_example_profile_loads_with_betaskill_variables() -> None:
    profile = load_config(EXAMPLE_PROFILE).profile
    assert profile.target.production_domain == "betaskill.com"
    assert profile.env.mode_variable == "VITE_NODE_ENV"
    assert profile.env.test_mode_variable == "VITE_IKHOKHA_TEST_MODE"
    assert profile.is_secret("IKHOKHA_WEBHOOK_SECRET") and profile.is_secret("VITE_IKHOKHA_API_SECRET")
    assert not profile.is_secret("VITE_IKHOKHA_TEST_MODE")
    assert profile.env.files == [EXAMPLE_PROFILE.parent / ".env.production"]  # relative to the profile


def test_config_search_order(
    run: Run, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_config = tmp_path / "home" / "config" / "opsdash"
    user_config.mkdir(parents=True)
    (user_config / "opsdash.toml").write_text(project.profile.read_text().replace("BetaSkill", "FromUserDir"))

    def target_name() -> str:
        rows = json.loads(run("config", "show", "--json").out)
        value = next(r["value"] for r in rows if r["key"] == "target.name")
        assert isinstance(value, str)
        return value

    assert target_name() == "FromUserDir"
    monkeypatch.chdir(project.root)  # ./opsdash.toml wins over the user config dir
    assert target_name() == "BetaSkill"

    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text(project.profile.read_text().replace("BetaSkill", "FromEnvVar"))
    monkeypatch.setenv("OPSDASH_CONFIG", str(elsewhere))
    assert target_name() == "FromEnvVar"


def test_settings_precedence_flag_env_file_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSDASH_DATA_DIR")
    assert load_settings({}).history_retention_days == 90
    assert load_settings({"history_retention_days": 30}).history_retention_days == 30
    monkeypatch.setenv("OPSDASH_HISTORY_RETENTION_DAYS", "7")
    assert load_settings({"history_retention_days": 30}).history_retention_days == 7
    monkeypatch.setenv("OPSDASH_OPERATOR", "env-op")
    assert load_settings({}, operator="flag-op").resolved_operator() == "flag-op"
    assert load_settings({}).resolved_operator() == "env-op"


def test_bad_setting_from_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSDASH_HISTORY_RETENTION_DAYS", "forever")
    with pytest.raises(ConfigError, match="OPSDASH_HISTORY_RETENTION_DAYS"):
        load_settings({})


def test_config_show_names_sources_and_masks_the_audit_key(
    run: Run, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSDASH_AUDIT_KEY", "an-audit-key-that-must-not-show")
    rows = {r["key"]: r for r in json.loads(run("config", "show", "--config", project.profile, "--json").out)}
    assert rows["opsdash.history_retention_days"]["source"] == f"{project.profile}:11"
    assert rows["opsdash.audit_key"]["source"] == "env OPSDASH_AUDIT_KEY"
    assert rows["opsdash.audit_key"]["value"].startswith("••••")
    assert rows["opsdash.data_dir"]["source"] == "env OPSDASH_DATA_DIR"
    assert rows["target.name"]["source"] == f"{project.profile}:14"
    assert rows["env.min_secret_length"]["value"] == "24"
    assert rows["urls.other"]["source"] == "default"
    assert rows["policy[1].variable"]["value"] == "WEBHOOK_SIGNATURE_VALIDATION"
    text = run("config", "show", "--config", project.profile).out
    assert "an-audit-key" not in text


def test_config_validate_lists_every_problem(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "opsdash.toml"
    path.write_text(
        '[target]\nname = "x"\nbase_url = "https://a.example.com"\n[env]\nrequird = []\n'
        "min_secret_length = 0\n[opsdash]\nhistory_retention_days = 0\n"
    )
    result = run("config", "validate", "--config", path)
    assert result.code == 3
    lines = result.err.strip().splitlines()
    assert lines[0] == f"{path}:5: unknown key 'requird' in env (did you mean 'required'?)"
    assert any(f"{path}:6:" in line and "min_secret_length" in line for line in lines)
    assert any(f"{path}:8:" in line and "history_retention_days" in line for line in lines)


def test_config_validate_accepts_the_example(run: Run) -> None:
    result = run("config", "validate", "--config", EXAMPLE_PROFILE)
    assert result.code == 0
    assert "valid profile for BetaSkill" in result.out


def test_config_schema_is_json_schema_of_the_file(run: Run) -> None:
    schema = json.loads(run("config", "schema").out)
    from opsdash.ops.config import ConfigFile

    assert set(schema["properties"]) == set(ConfigFile.model_fields)
    assert {"opsdash", "target", "env", "checks", "webhook", "runbooks"} <= set(schema["properties"])
    assert "target" in schema["required"]
    assert "return" in json.dumps(schema["$defs"]["UrlsSection"])


def test_locate_finds_array_tables_and_dotted_keys() -> None:
    text = '[target]\nname = "x"\n[[policy]]\nvariable = "A"\n[[policy]]\nvariable = "B"\nenv.required = []\n'
    assert locate(text, ("policy", 1, "variable")) == 6
    assert locate(text, ("policy", 1, "env", "required")) == 7
    assert locate(text, ("target", "base_url")) == 1
    assert locate(text, ("target", "base_url"), exact=True) is None


def test_init_writes_a_valid_profile_from_a_vite_project(run: Run, tmp_path: Path) -> None:
    app = tmp_path / "betaskill-web"
    app.mkdir()
    (app / "vite.config.ts").write_text("export default {}\n")
    (app / ".env.production").write_text(
        "VITE_NODE_ENV=production\nVITE_IKHOKHA_TEST_MODE=false\nVITE_IKHOKHA_API_KEY=x\n"
        "VITE_IKHOKHA_API_SECRET=y\nIKHOKHA_WEBHOOK_SECRET=z\nVITE_APP_URL=https://app.betaskill.com/home\n"
        "PAYMENT_WEBHOOK_URL=https://app.betaskill.com/hook\nPAYMENT_CANCEL_URL=https://app.betaskill.com/c\n"
    )
    (app / ".env.example").write_text("VITE_NODE_ENV=\nEXTRA_FROM_EXAMPLE=\n")
    result = run("init", "--dir", app)
    assert result.code == 0, result.err
    written = tomllib.loads((app / "opsdash.toml").read_text())
    assert written["target"]["base_url"] == "https://app.betaskill.com"
    assert written["target"]["bundle_dir"] == "dist"
    assert written["env"]["mode_variable"] == "VITE_NODE_ENV"
    assert written["env"]["test_mode_variable"] == "VITE_IKHOKHA_TEST_MODE"
    assert written["env"]["example"] == ".env.example"
    assert "EXTRA_FROM_EXAMPLE" in written["env"]["required"]
    assert {"VITE_IKHOKHA_API_SECRET", "IKHOKHA_WEBHOOK_SECRET"} <= set(written["env"]["secrets"])
    assert written["urls"] == {
        "webhook": ["PAYMENT_WEBHOOK_URL"],
        "cancel": ["PAYMENT_CANCEL_URL"],
        "other": ["VITE_APP_URL"],
    }
    assert written["provider"]["kind"] == "ikhokha"
    assert run("config", "validate", "--config", app / "opsdash.toml").code == 0
    # and the starter profile already catches the plan's mistake
    assert "secret-client-exposed" in run("validate", "--config", app / "opsdash.toml").out


def test_init_refuses_to_overwrite(run: Run, tmp_path: Path) -> None:
    (tmp_path / "opsdash.toml").write_text("# mine\n")
    result = run("init", "--dir", tmp_path)
    assert result.code == 3
    assert "already exists" in result.err and "--force" in result.err
    assert (tmp_path / "opsdash.toml").read_text() == "# mine\n"
    assert run("init", "--dir", tmp_path, "--force").code == 0


def test_config_validate_rejects_conditions_gatus_would_not_understand(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "opsdash.toml"
    path.write_text(
        '[target]\nname = "x"\nbase_url = "https://a.example.com"\n'
        "[[checks]]\n"
        'name = "and"\nkind = "http"\nurl = "https://a.example.com/h"\n'
        'conditions = ["[STATUS] == 200 && [BODY].ok == true"]\n'
        "[[checks]]\n"
        'name = "func"\nkind = "http"\nurl = "https://a.example.com/h"\n'
        'conditions = ["[BODY].name == glob(*John*)"]\n'
        "[[checks]]\n"
        'name = "triple"\nkind = "http"\nurl = "https://a.example.com/h"\n'
        'conditions = ["[STATUS] === 200"]\n'
    )
    result = run("config", "validate", "--config", path)
    assert result.code == 3
    lines = result.err.strip().splitlines()
    assert len(lines) == 3, lines
    for number, (line, word) in enumerate(zip(lines, ("&&", "glob", "==="), strict=True)):
        assert line.startswith(f"{path}:{8 + 5 * number}:"), line
        assert word in line and "column" in line


def test_config_validate_rejects_webhook_templates_that_would_fail_every_delivery(
    run: Run, tmp_path: Path
) -> None:
    path = tmp_path / "opsdash.toml"
    path.write_text(
        '[target]\nname = "x"\nbase_url = "https://a.example.com"\n'
        '[webhook]\nscheme = "ikhokha"\nmessage_template = "{url}{body}"\npath = "https://a.example.com/hook"\n'
    )
    result = run("config", "validate", "--config", path)
    assert result.code == 3
    lines = result.err.strip().splitlines()
    assert any(line.startswith(f"{path}:6:") and "{url}" in line for line in lines), lines
    assert any(line.startswith(f"{path}:7:") and "path" in line for line in lines), lines


# ---------------------------------------------------------------- the quick data-dir lookup

_PATHS = st.sampled_from(["", ".", "data", "rel/dir", "~/opsdash-data", "~", "/srv/opsdash", "/srv/a b/ü"])
_ENV_NAMES = st.sampled_from(["OPSDASH_DATA_DIR", "opsdash_data_dir", "Opsdash_Data_Dir"])
# other lines of the [opsdash] table: settings it knows, and misspellings it must refuse
_OTHER_LINES = st.sampled_from(
    [
        "",
        "history_retention_days = 30\n",
        'operator = "alice"\n',
        'data-dir = "typo"\n',
        'Data_Dir = "typo"\n',
        "data_dir = 5\n",
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    flag=st.none() | _PATHS,
    env=st.lists(st.tuples(_ENV_NAMES, _PATHS), max_size=2, unique_by=lambda t: t[0]),
    in_file=st.none() | _PATHS,
    other=_OTHER_LINES,
    profile_state=st.sampled_from(["absent", "present", "missing"]),
)
def test_quick_data_dir_agrees_with_the_settings(
    flag: str | None, env: list[tuple[str, str]], in_file: str | None, other: str, profile_state: str
) -> None:
    """`history list` finds the data directory without the settings models; wherever the flag, the
    OPSDASH_DATA_DIR variable (any case, pydantic-settings matches it case-insensitively) and the
    profile's data_dir point, it must name the directory pydantic-settings resolves; and where the
    settings refuse the profile's [opsdash] table (a misspelt key, a data_dir that is not a string)
    or the profile named does not exist, it must give way (None), never guess."""
    import os
    import tempfile

    from opsdash.ops import paths
    from opsdash.ops.base import Ops

    saved = {k: v for k, v in os.environ.items() if k.lower() == "opsdash_data_dir"}
    for name in saved:
        del os.environ[name]
    try:
        os.environ.update(dict(env))
        with tempfile.TemporaryDirectory() as tmp:
            profile = None if profile_state == "absent" else Path(tmp) / "conf" / "opsdash.toml"
            if profile is not None and profile_state == "present":
                profile.parent.mkdir()
                lines = other if in_file is None else f"data_dir = {json.dumps(in_file)}\n{other}"
                if "data_dir" in other and in_file is not None:
                    lines = other  # one data_dir line at most
                profile.write_text(
                    EXAMPLE_PROFILE.read_text().replace("[opsdash]\n", f"[opsdash]\n{lines}", 1)
                )
            given_flag = Path(flag) if flag is not None else None
            quick = paths.quick_data_dir(profile, given_flag)
            try:
                full: Path | None = Ops.open(profile, data_dir=given_flag, require=False).data_dir
            except ConfigError:
                full = None
            assert quick == full
    finally:
        for name, _value in env:
            os.environ.pop(name, None)
        os.environ.update(saved)


def test_quick_data_dir_leaves_what_it_cannot_read_to_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A data_dir that is not a string, or a file that is not TOML: no guess; the settings load and
    name the problem."""
    from opsdash.ops import paths

    monkeypatch.delenv("OPSDASH_DATA_DIR")
    for text in ("[opsdash]\ndata_dir = 5\n", "[opsdash\n", "opsdash = 3\n", '[opsdash]\ndata-dir = "d"\n'):
        bad = tmp_path / "opsdash.toml"
        bad.write_text(text)
        assert paths.quick_data_dir(bad) is None
    assert paths.quick_data_dir(tmp_path / "no-such.toml") is None


def test_the_quick_lookup_knows_exactly_the_settings_keys() -> None:
    """A key the settings accept must not send the quick lookup to the full load, and a key they
    refuse must: the two lists are the same list."""
    from opsdash.ops.config import SettingsTable
    from opsdash.ops.paths import SETTINGS_KEYS

    assert set(SettingsTable.model_fields) == SETTINGS_KEYS
