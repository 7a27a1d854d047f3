"""`opsdash secrets trace` end to end: a BetaSkill project whose secret was committed (and deleted),
rotated, hard-coded as a fallback; exit codes, what a finding names, the incremental second run, the
unhappy paths, and canary values searched for in every output and in the data directory."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Project, Run, good_env, json_object

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_DATE="2026-10-01T09:30:00+00:00", GIT_COMMITTER_DATE="2026-10-01T09:30:00+00:00")
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


def _app(root: Path, files: dict[str, str], *, then_delete: bool = False) -> tuple[Path, str]:
    app = root / "app"
    if not app.exists():
        app.mkdir()
        _git(app, "init", "-q", "-b", "main")
        _git(app, "config", "user.email", "dev@opsdash.invalid")
        _git(app, "config", "user.name", "dev")
        (app / "README.md").write_text("BetaSkill\n")
        _git(app, "add", "README.md")
        _git(app, "commit", "-q", "-m", "init")
    for name, text in files.items():
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_text(text)
        _git(app, "add", name)
    _git(app, "commit", "-q", "-m", "change")
    commit = _git(app, "rev-parse", "HEAD")
    if then_delete:
        for name in files:
            _git(app, "rm", "-q", name)
        _git(app, "commit", "-q", "-m", "remove")
    return app, commit


def _everything_written(project: Project, *outputs: str) -> str:
    data = Path(os.environ["OPSDASH_DATA_DIR"])
    files = [p.read_bytes().decode("latin-1") for p in data.rglob("*") if p.is_file()]
    return "\n".join([*outputs, *files])


def _assert_never_shown(text: str, value: str) -> None:
    for form in (value, value[:16], value[-16:], base64.b64encode(value.encode()).decode()[:16]):
        assert form not in text


def test_secret_committed_then_deleted_is_crit_and_named(run: Run, project: Project) -> None:
    secret = good_env()["IKHOKHA_API_SECRET"]
    env = {**good_env(), "IKHOKHA_API_SECRET": secret}
    project.write_env(env)
    app, commit = _app(project.root, {".env.production": f"IKHOKHA_API_SECRET={secret}\n"}, then_delete=True)
    result = run("secrets", "trace", "--config", project.profile, "--repo", app)
    assert result.code == 2, result.err
    out = " ".join(result.out.split())
    assert "secret-in-git-history" in out and "IKHOKHA_API_SECRET" in out
    assert f".env.production in commit {commit[:12]}" in out
    assert "2026-10-01T09:30:00+00:00" in out and "not pushed" in out
    assert "32 chars, sha256:" in out
    as_json = run("secrets", "trace", "--config", project.profile, "--repo", app, "--json")
    report = json_object(as_json.out)
    (finding,) = [f for f in report["findings"] if f["rule"] == "secret-in-git-history"]
    assert finding["severity"] == "CRIT" and finding["evidence"]["commit"] == commit
    assert finding["evidence"]["path"] == ".env.production" and finding["evidence"]["line"] == "1"
    assert report["summary"]["git"]["objects_known_clean"] > 0  # the second run read only what hit
    _assert_never_shown(
        _everything_written(project, result.out, result.err, as_json.out, as_json.err), secret
    )


def test_clean_repository_exits_0_and_says_what_was_searched(run: Run, project: Project) -> None:
    app, _ = _app(project.root, {"src/main.ts": "console.log('hello')\n"})
    result = run("secrets", "trace", "--config", project.profile, "--repo", app)
    assert result.code == 0, result.out + result.err
    assert "Traced IKHOKHA_API_KEY, IKHOKHA_API_SECRET, IKHOKHA_WEBHOOK_SECRET" in result.out
    assert "objects read" in result.out


def test_rotated_previous_value_is_info_and_never_shown(run: Run, project: Project) -> None:
    old_env = good_env()
    old = old_env["IKHOKHA_API_SECRET"]
    project.write_env(old_env)
    assert run("validate", "--config", project.profile).code in (0, 1)  # keeps the fingerprints
    project.write_env({**old_env, "IKHOKHA_API_SECRET": good_env()["IKHOKHA_API_SECRET"]})  # rotated
    app, commit = _app(project.root, {"src/config/ikhokha.ts": f"export const fallback = '{old}';\n"})
    result = run("secrets", "trace", "--config", project.profile, "--repo", app, "--json")
    assert result.code == 0, result.err
    (finding,) = [f for f in json_object(result.out)["findings"] if f["rule"] == "previous-secret-in-history"]
    assert finding["severity"] == "INFO" and finding["subject"] == "IKHOKHA_API_SECRET"
    assert finding["evidence"]["commit"] == commit and "32 chars" in finding["evidence"]["value"]
    verbose = run("secrets", "trace", "--config", project.profile, "--repo", app, "--verbose")
    assert "previous-secret-in-history" in verbose.out
    _assert_never_shown(_everything_written(project, result.out, result.err, verbose.out, verbose.err), old)


def test_working_tree_fallback_without_git(run: Run, project: Project) -> None:
    secret = good_env()["IKHOKHA_WEBHOOK_SECRET"]
    project.write_env({**good_env(), "IKHOKHA_WEBHOOK_SECRET": secret})
    src = project.root / "src" / "config"
    src.mkdir(parents=True)
    (src / "ikhokha.ts").write_text(f"export const webhookSecret =\n  '{secret}';\n")
    result = run("secrets", "trace", "--config", project.profile, "--no-git", "--path", project.root / "src")
    assert result.code == 2
    out = " ".join(result.out.split())
    assert "secret-in-source" in out and "config/ikhokha.ts line 2 (raw)" in out
    _assert_never_shown(_everything_written(project, result.out, result.err), secret)


def test_paths_and_repo_from_the_profile(run: Run, project: Project) -> None:
    secret = good_env()["IKHOKHA_API_SECRET"]
    project.write_env({**good_env(), "IKHOKHA_API_SECRET": secret})
    _app(project.root, {"dist/app.js": f'var k="{secret}"'})
    text = project.profile.read_text().replace(
        "[env]\n", '[target.trace]\nrepo = "app"\npaths = ["app/dist"]\n\n[env]\n', 1
    )
    project.profile.write_text(text)
    report = json_object(run("secrets", "trace", "--config", project.profile, "--json").out)
    assert sorted(f["rule"] for f in report["findings"]) == ["secret-in-git-history", "secret-in-source"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--repo", "{root}"], "not a git repository"),
        (["--repo", "{root}/nope"], "no such directory"),
        (["--no-git", "--path", "{root}/dist"], "no such file or directory"),
        ([], "nothing to trace"),
    ],
)
def test_unhappy_paths_exit_3_with_one_line(
    run: Run, project: Project, args: list[str], message: str
) -> None:
    result = run(
        "secrets", "trace", "--config", project.profile, *[a.format(root=project.root) for a in args]
    )
    assert result.code == 3
    assert message in result.err and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_git_not_on_path_exits_3(run: Run, project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    app, _ = _app(project.root, {"a.txt": "a\n"})
    monkeypatch.setenv("PATH", str(project.root / "no-bin"))
    result = run("secrets", "trace", "--config", project.profile, "--repo", app)
    assert result.code == 3 and "git is not installed or not on PATH" in result.err


def test_no_secret_values_is_unknown_not_ok(run: Run, project: Project) -> None:
    env = {k: v for k, v in good_env().items() if "SECRET" not in k and "KEY" not in k}
    project.write_env(env)
    app, _ = _app(project.root, {"a.txt": "a\n"})
    result = run("secrets", "trace", "--config", project.profile, "--repo", app)
    assert result.code == 3 and "no secret values to trace" in result.err


def test_help_answers_the_questions(run: Run) -> None:
    result = run("secrets", "trace", "--help")
    text = " ".join(result.out.split())
    for words in ("reachable or not", "--full", "Exit codes", "base64", "fingerprint", "--no-git"):
        assert words in text
    # review #32 (Low): with --live an accepted previous value is CRIT, not INFO
    assert "CRIT while the provider still accepts it" in text and "a previous one is INFO." not in text


def test_a_secret_in_a_file_name_never_reaches_the_data_directory(run: Run, project: Project) -> None:
    """Review #32 item 3: the cache of places kept a path holding the secret in clear (history.db
    and its WAL); text, JSON and audit masked it."""
    secret = good_env()["IKHOKHA_API_SECRET"]
    project.write_env({**good_env(), "IKHOKHA_API_SECRET": secret})
    app, commit = _app(project.root, {f"cache/{secret}.json": f'{{"s": "{secret}"}}\n'})
    result = run("secrets", "trace", "--config", project.profile, "--repo", app, "--json")
    assert result.code == 2, result.err
    (finding,) = [f for f in json_object(result.out)["findings"] if f["rule"] == "secret-in-git-history"]
    assert finding["evidence"]["commit"] == commit
    assert finding["evidence"]["path"].startswith("cache/•••• (32 chars, sha256:")
    again = run("secrets", "trace", "--config", project.profile, "--repo", app)  # the path from the cache
    assert again.code == 2 and "cache/•••• (32 chars" in " ".join(again.out.split())
    _assert_never_shown(_everything_written(project, result.out, result.err, again.out, again.err), secret)


def test_a_symlink_named_is_followed_and_one_in_a_tree_is_listed(run: Run, project: Project) -> None:
    """Review #32 item 5: symlinks (and FIFOs) were skipped silently and zero files searched was OK."""
    secret = good_env()["IKHOKHA_API_SECRET"]
    project.write_env({**good_env(), "IKHOKHA_API_SECRET": secret})
    (project.root / "real.env").write_text(f"IKHOKHA_API_SECRET={secret}\n")
    tree = project.root / "tree"
    tree.mkdir()
    (tree / ".env").symlink_to("../real.env")
    named = run(
        "secrets", "trace", "--config", project.profile, "--no-git", "--path", tree / ".env", "--json"
    )
    assert named.code == 2, named.out + named.err  # the link named on the command line is read
    assert [f["rule"] for f in json_object(named.out)["findings"]] == ["secret-in-source"]
    whole = run("secrets", "trace", "--config", project.profile, "--no-git", "--path", tree, "--json")
    report = json_object(whole.out)
    assert report["verdict"] == "UNKNOWN" and whole.code == 3, whole.out
    details = " ".join(f["detail"] for f in report["findings"] if f["severity"] == "UNKNOWN")
    assert ".env (a symbolic link out of the searched tree" in details, details
    fifo = project.root / "pipe"
    os.mkfifo(fifo)
    special = run("secrets", "trace", "--config", project.profile, "--no-git", "--path", fifo, "--json")
    assert special.code == 3 and json_object(special.out)["verdict"] == "UNKNOWN"
    assert "not a regular file: a FIFO" in special.out


def test_zero_files_searched_is_unknown_not_ok(run: Run, project: Project) -> None:
    empty = project.root / "empty"
    empty.mkdir()
    result = run("secrets", "trace", "--config", project.profile, "--no-git", "--path", empty, "--json")
    report = json_object(result.out)
    assert report["verdict"] == "UNKNOWN" and result.code == 3, result.out
    assert any("no file was searched" in f["detail"] for f in report["findings"])


def test_trace_runs_are_listed_and_diffed_in_history(run: Run, project: Project) -> None:
    """Review #32 item 12: `history list/diff --kind trace` were refused."""
    app, _ = _app(project.root, {"src/main.ts": "console.log('hello')\n"})
    assert run("secrets", "trace", "--config", project.profile, "--repo", app).code == 0
    assert run("secrets", "trace", "--config", project.profile, "--repo", app).code == 0
    listed = run("history", "list", "--config", project.profile, "--kind", "trace")
    assert listed.code == 0, listed.err
    assert "trace" in listed.out
    diffed = run("history", "diff", "latest~1", "latest", "--config", project.profile, "--kind", "trace")
    assert diffed.code == 0, diffed.err


def test_a_latin1_file_name_in_history_neither_crashes_trace_nor_preflight(
    run: Run, project: Project
) -> None:
    """Review #32 item 2, end to end: `secrets trace` and preflight (the profile's repository)."""
    secret = good_env()["IKHOKHA_API_SECRET"]
    project.write_env({**good_env(), "IKHOKHA_API_SECRET": secret})
    app, commit = _app(project.root, {"leak.ts": f'x="{secret}"\n'})
    (app / os.fsdecode(b"r\xe9sum\xe9.txt")).write_text("hi\n")
    _git(app, "add", "-A")
    _git(app, "commit", "-q", "-m", "cv")
    result = run("secrets", "trace", "--config", project.profile, "--repo", app, "--json")
    assert result.code == 2, result.err
    (finding,) = [f for f in json_object(result.out)["findings"] if f["rule"] == "secret-in-git-history"]
    assert (finding["evidence"]["path"], finding["evidence"]["commit"]) == ("leak.ts", commit)
    text = project.profile.read_text().replace("[env]\n", '[target.trace]\nrepo = "app"\n\n[env]\n', 1)
    project.profile.write_text(text)
    gate = run("preflight", "--config", project.profile, "--no-history", "--json")
    assert "internal error" not in gate.err, gate.err
    rules = {f["rule"] for f in json_object(gate.out)["findings"] if f["severity"] == "CRIT"}
    assert "secret-in-git-history" in rules, rules
