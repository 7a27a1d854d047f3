"""The planted-leak matrix: real repositories built with the git CLI, a value planted in each way a
credential ends up in history, and the trace must find every one, name where, and find nothing in
a clean repository of real code."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import zlib
from collections.abc import Mapping
from pathlib import Path

import pytest

from opsdash.core.errors import InputError
from opsdash.core.secrets import fingerprint, mask
from opsdash.core.trace import git as tracegit
from opsdash.core.trace.git import GitTrace, Place, trace_repository
from opsdash.core.trace.match import Matcher, Needle, PreviousPrint

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _value(label: str = "ik") -> str:
    return f"{label}_{secrets.token_urlsafe(24)}"


class Repo:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "dev@opsdash.invalid")
        self.git("config", "user.name", "dev")
        self.git("config", "gc.auto", "0")

    def git(self, *args: str, stdin: str | None = None) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(
            GIT_AUTHOR_DATE="2026-11-02T10:00:00+00:00", GIT_COMMITTER_DATE="2026-11-02T10:00:00+00:00"
        )
        done = subprocess.run(
            ["git", "-C", str(self.path), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        return done.stdout.strip()

    def commit(self, files: Mapping[str, str | bytes], message: str = "change") -> str:
        for name, content in files.items():
            path = self.path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
            self.git("add", name)
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def blob(self, content: str) -> str:
        return self.git("hash-object", "--stdin", stdin=content)


def _trace(repo: Repo, *values: str, previous: tuple[PreviousPrint, ...] = (), **kw: object) -> GitTrace:
    needles = [Needle(f"V{i}", v) for i, v in enumerate(values)]
    return trace_repository(repo.path, Matcher(needles, previous), **kw)  # type: ignore[arg-type]


def _one(trace: GitTrace) -> tracegit.ObjectHits:
    assert len(trace.found) == 1, [(o.oid, o.hits) for o in trace.found]
    return trace.found[0]


def test_committed_then_deleted(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "app")
    secret = _value()
    repo.commit({"README.md": "app\n"}, "init")
    leak = repo.commit({".env.production": f"A=1\nIKHOKHA_API_SECRET={secret}\n"}, "add env")
    repo.git("rm", "-q", ".env.production")
    repo.git("commit", "-q", "-m", "remove env")
    obj = _one(_trace(repo, secret))
    assert obj.kind == "blob"
    assert [(h.name, h.encoding, h.line) for h in obj.hits] == [("V0", "raw", 2)]
    (loc,) = obj.locations
    assert (loc.commit, loc.path, loc.reachable, loc.pushed) == (leak, ".env.production", True, False)
    assert loc.author_date.startswith("2026-11-02T10:00:00")


def test_deleted_branch_is_found_and_marked_unreachable(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "app")
    secret = _value()
    repo.commit({"README.md": "app\n"}, "init")
    repo.git("checkout", "-q", "-b", "experiment")
    leak = repo.commit({"src/config/ikhokha.ts": f"export const secret = '{secret}';\n"}, "try")
    repo.git("checkout", "-q", "main")
    repo.git("branch", "-q", "-D", "experiment")
    repo.git("reflog", "expire", "--expire-unreachable=now", "--all")  # not even a reflog holds it
    assert leak not in repo.git("rev-list", "--all", "--reflog")
    (loc,) = _one(_trace(repo, secret)).locations
    assert (loc.commit, loc.path, loc.reachable) == (leak, "src/config/ikhokha.ts", False)


def test_stash_and_dropped_stash(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "app")
    kept, dropped = _value("kept"), _value("dropped")
    repo.commit({"config.ts": "export {}\n"}, "init")
    (repo.path / "config.ts").write_text(f"export const k = '{kept}';\n")
    repo.git("stash", "-q")
    (repo.path / "config.ts").write_text(f"export const k = '{dropped}';\n")
    repo.git("stash", "-q")
    repo.git("stash", "drop", "-q", "stash@{0}")
    trace = _trace(repo, kept, dropped)
    by_name = {o.hits[0].name: o for o in trace.found}
    assert set(by_name) == {"V0", "V1"}
    assert all(loc.path == "config.ts" for o in trace.found for loc in o.locations)
    assert any(loc.reachable for loc in by_name["V0"].locations)  # refs/stash
    assert by_name["V1"].locations and not any(loc.reachable for loc in by_name["V1"].locations)


@pytest.mark.parametrize("packed", [False, True])
def test_packed_and_loose_objects(tmp_path: Path, packed: bool) -> None:
    repo = Repo(tmp_path / "app")
    secret = _value()
    repo.commit({"a.txt": "one\n"}, "init")
    repo.commit({"a.txt": f"one\n{secret}\n"}, "leak")
    repo.commit({"a.txt": "one\n"}, "fix")
    if packed:
        repo.git("gc", "-q", "--aggressive")
        assert not list((repo.path / ".git" / "objects").glob("[0-9a-f][0-9a-f]/*"))
    obj = _one(_trace(repo, secret))
    assert [h.line for h in obj.hits] == [2]


def test_renamed_file_names_both_paths(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "app")
    secret = _value()
    first = repo.commit({"src/old.ts": f"const s = '{secret}';\n"}, "add")
    repo.git("mv", "src/old.ts", "src/new.ts")
    repo.git("commit", "-q", "-m", "rename")
    second = repo.git("rev-parse", "HEAD")
    obj = _one(_trace(repo, secret))
    assert {(loc.commit, loc.path) for loc in obj.locations} == {
        (first, "src/old.ts"),
        (second, "src/new.ts"),
    }


def test_each_encoding_in_history(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "app")
    secret = _value()
    raw = secret.encode()
    planted = {
        "b64.txt": base64.b64encode(b'{"k":"' + raw + b'"}').decode(),
        "b64url.txt": base64.urlsafe_b64encode(b"xy" + raw + b"?>").decode(),
        "url.txt": "https://x.invalid/?s=" + "".join(f"%{b:02X}" for b in raw),
        "hex.txt": raw.hex().upper(),
        "esc.js": "const s = '" + "".join(f"\\u{ord(c):04x}" for c in secret) + "';",
        "bundle.min.js": '!function(){var e={a:"' + secret[:12] + '"+"' + secret[12:] + '"};window.k=e}();',
    }
    repo.commit(dict.fromkeys(planted, ""), "empty files")
    repo.commit(planted, "encoded")
    trace = _trace(repo, secret)
    found = {o.locations[-1].path: {h.encoding for h in o.hits} for o in trace.found}
    # where the value's own characters encode alike in both alphabets, the one form is named base64
    assert found.pop("b64url.txt") in ({"base64url"}, {"base64"})
    assert found == {
        "b64.txt": {"base64"},
        "url.txt": {"url"},
        "hex.txt": {"hex"},
        "esc.js": {"js-escape"},
        "bundle.min.js": {"concat"},
    }


def test_previous_value_known_only_by_fingerprint(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "app")
    current, old = _value(), _value()
    repo.commit({".env": f"IKHOKHA_API_SECRET={old}\n"}, "old secret")
    repo.commit({".env": f"IKHOKHA_API_SECRET={current}\n"}, "rotated")
    prints = (PreviousPrint("V0", fingerprint(old), len(old)),)
    trace = _trace(repo, current, previous=prints)
    (prev,) = [o for o in trace.found if o.hits[0].previous]
    assert prev.hits[0].value == old and prev.hits[0].name == "V0"
    assert old not in repr(prev)
    assert {o.hits[0].previous for o in trace.found} == {True, False}


def test_dangling_blob_and_commit_message(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "app")
    in_blob, in_message = _value(), _value()
    repo.commit({"a.txt": "a\n"}, "init")
    (repo.path / "scratch.txt").write_text(f"token={in_blob}\n")
    dangling = repo.git("hash-object", "-w", "scratch.txt")
    commit = repo.commit({"b.txt": "b\n"}, f"use key {in_message}")
    trace = _trace(repo, in_blob, in_message)
    by_oid = {o.oid: o for o in trace.found}
    assert by_oid[dangling].locations == []
    message = by_oid[commit]
    assert message.kind == "commit" and [loc.path for loc in message.locations] == ["(commit message)"]


def test_pushed_is_what_a_remote_tracking_ref_holds(tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    repo = Repo(tmp_path / "app")
    pushed_value, local_value = _value(), _value()
    repo.commit({"a.txt": pushed_value}, "pushed")
    repo.git("remote", "add", "origin", str(origin))
    repo.git("push", "-q", "origin", "main")
    repo.commit({"b.txt": local_value}, "local only")
    trace = _trace(repo, pushed_value, local_value)
    pushed = {o.hits[0].name: o.locations[0].pushed for o in trace.found}
    assert pushed == {"V0": True, "V1": False}


def test_big_and_binary_blobs(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "app")
    secret = _value()
    edge = tracegit.WINDOW - 5  # the value straddles the first window's edge
    big = bytearray(b"x" * (3 * tracegit.WINDOW))
    for i in range(0, len(big), 100):
        big[i] = 10  # newlines
    big[edge : edge + len(secret)] = secret.encode()
    binary = b"\0\1\2PNG" * 1000 + secret.encode() + b"\0" * 100
    repo.commit({"big.txt": bytes(big), "logo.png": binary}, "assets")
    trace = _trace(repo, secret)
    found = {o.locations[0].path: o.hits for o in trace.found}
    assert set(found) == {"big.txt", "logo.png"}
    (hit,) = found["big.txt"]
    assert hit.offset == edge and hit.line == bytes(big).count(b"\n", 0, edge) + 1
    assert found["logo.png"][0].offset == binary.index(secret.encode())


def test_incremental_reads_only_new_objects_and_keeps_old_places(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "app")
    secret = _value()
    repo.commit({"a.txt": "clean\n"}, "init")
    first_leak = repo.commit({"b.txt": secret}, "leak")
    matcher = Matcher([Needle("S", secret)])
    full = trace_repository(repo.path, matcher)
    known = {o.oid: [Place(loc.commit, loc.path) for loc in o.locations] for o in full.found}
    second_leak = repo.commit({"c.txt": f"again {secret}\n"}, "leak again")
    again = trace_repository(repo.path, matcher, known_clean=set(full.clean), known_places=known)
    assert again.skipped == len(full.clean)
    assert again.objects == 3 + len(full.found)  # commit, tree, blob, and the objects that held a value
    places = {(loc.commit, loc.path) for o in again.found for loc in o.locations}
    assert places == {(first_leak, "b.txt"), (second_leak, "c.txt")}


def test_clean_repository_of_real_code_has_no_findings(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "app")
    shutil.copytree(ROOT / "opsdash", repo.path / "opsdash", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "docs", repo.path / "docs")
    for package in ("click", "rich", "textual"):  # installed third-party code, minified CSS and all
        installed = Path(__import__(package).__file__ or "").parent
        shutil.copytree(
            installed, repo.path / "vendor" / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "real code")
    values = [
        _value(),
        secrets.token_hex(16),
        secrets.token_urlsafe(32),
        base64.b64encode(os.urandom(32)).decode(),
    ]
    # previous values of the shapes code is full of: identifiers and hex ids of common lengths, in
    # every alphabet (V3 base64 with '=' as padding, V4 has no current value: the generic one)
    prints = tuple(
        PreviousPrint(f"V{i % 5}", fingerprint(secrets.token_hex(8)), n) for i, n in enumerate(range(8, 48))
    )
    trace = _trace(repo, *values, previous=prints)
    assert trace.found == []
    assert trace.objects > 500 and trace.bytes > 5_000_000


# --- unhappy paths ----------------------------------------------------------------------------


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a git repository"):
        trace_repository(tmp_path, Matcher([Needle("S", _value())]))


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such directory"):
        trace_repository(tmp_path / "nope", Matcher([Needle("S", _value())]))


def test_git_not_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Repo(tmp_path / "app")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(InputError, match="git is not installed or not on PATH"):
        trace_repository(repo.path, Matcher([Needle("S", _value())]))


def test_corrupt_object_is_an_error_naming_the_repository(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "app")
    repo.commit({"a.txt": "hello\n"}, "init")
    oid = repo.git("rev-parse", "HEAD:a.txt")
    loose = repo.path / ".git" / "objects" / oid[:2] / oid[2:]
    loose.chmod(0o644)
    loose.write_bytes(zlib.compress(b"blob 99\0short")[:-3])  # truncated and lying about its size
    with pytest.raises(InputError, match="git could not"):
        trace_repository(repo.path, Matcher([Needle("S", _value())]))


def test_a_linked_worktree_is_traced_as_its_repository(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "app")
    secret = _value()
    repo.commit({"a.txt": secret}, "leak")
    repo.git("worktree", "add", "-q", str(tmp_path / "wt"), "-b", "other")
    from_worktree = trace_repository(tmp_path / "wt", Matcher([Needle("S", secret)]))
    assert from_worktree.repo == str((repo.path / ".git").resolve())
    assert len(from_worktree.found) == 1


def test_a_file_name_that_is_not_utf8_does_not_stop_the_trace(tmp_path: Path) -> None:
    """Review #32 item 2: a Latin-1 file name anywhere in history made git's -z output undecodable."""
    repo = Repo(tmp_path / "app")
    secret = _value()
    (repo.path / "leak.ts").write_text(f'x="{secret}"\n')
    (repo.path / os.fsdecode(b"r\xe9sum\xe9.txt")).write_text("hi\n")
    (repo.path / os.fsdecode(b"k\xe9y-" + secret.encode() + b".txt")).write_text(secret)
    repo.git("add", "-A")
    leak = repo.commit({"README.md": "x\n"}, "init")
    trace = _trace(repo, secret)
    paths = sorted(loc.path for obj in trace.found for loc in obj.locations)
    assert (leak, "leak.ts") in {(loc.commit, loc.path) for obj in trace.found for loc in obj.locations}
    # the undecodable byte is shown as an escape, never as a crash; the value in the name is masked
    assert f"k\\udce9y-{mask(secret)}.txt" in paths, paths


def test_a_sha256_repository_names_the_commit(tmp_path: Path) -> None:
    """Review #32 item 11: 64-digit object ids were never recognised as commits."""
    path = tmp_path / "app"
    path.mkdir()
    subprocess.run(["git", "init", "-q", "--object-format=sha256", "-b", "main", str(path)], check=True)
    repo = Repo.__new__(Repo)
    repo.path = path
    repo.git("config", "user.email", "dev@opsdash.invalid")
    repo.git("config", "user.name", "dev")
    secret = _value()
    leak = repo.commit({"leak.ts": f'x="{secret}"\n'}, "leak")
    assert len(leak) == 64
    repo.git("rm", "-q", "leak.ts")
    repo.git("commit", "-q", "-m", "remove")
    obj = _one(_trace(repo, secret))
    assert [(loc.commit, loc.path, loc.reachable) for loc in obj.locations] == [(leak, "leak.ts", True)]
