"""`opsdash secrets trace` over a real repository's full history, against a floor and a peer.

Every figure is a fresh process, the sides run in rotated order round by round, and the script
prints medians, ranges and same-run ratios with the goal beside each:

  - floor: `git cat-file --batch-all-objects --batch | grep -F -c VALUE` (git inflating every
    object, grep searching one value: what reading the whole object database costs at least);
  - opsdash core: the git scanner for that one value (`trace_repository`, no history database);
    goal: throughput >= 0.5x the floor's;
  - opsdash secrets trace --full: the command as an operator runs it (the BetaSkill example's 3
    secret values, every encoding, the cache written), wall time and peak RSS (goal <= 200 MiB);
  - incremental: a throwaway clone gains one commit, then `opsdash secrets trace` reads only the new
    objects (goal <= 0.3 s; the scan itself, as the JSON summary reports it, and the whole process);
  - trufflehog3 (PyPI, in its own venv, never an opsdash dependency) scanning the same history:
    goal opsdash >= 10x faster. Give --trufflehog PATH to its executable; without it the peer is
    skipped and the script says how to install it:
        python3 -m venv /tmp/th3 && /tmp/th3/bin/pip install trufflehog3

Get a repository with a few thousand commits (never commit it here):
    git clone --mirror https://github.com/pallets/click /tmp/click.git

Usage: .venv/bin/python benchmarks/secrets_trace.py --repo /tmp/click.git [--runs 5]
           [--trufflehog /tmp/th3/bin/trufflehog3] [--trufflehog-runs 1]
The machine is usually shared: quote figures as measured under whatever load there was.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bytecode import compile_installed

from opsdash.demo import betaskill_env, env_text

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "examples" / "betaskill" / "opsdash.toml"

CORE = """
import sys, json
from pathlib import Path
from opsdash.core.trace.git import trace_repository
from opsdash.core.trace.match import Matcher, Needle
t = trace_repository(Path(sys.argv[1]), Matcher([Needle("V", sys.argv[2])]))
print(json.dumps({"bytes": t.bytes, "objects": t.objects, "found": len(t.found)}))
"""


def timed(
    cmd: list[str], env: dict[str, str] | None = None, shell: bool = False
) -> tuple[float, int, int, str]:
    """Wall seconds, peak RSS (KiB) of the process (its largest child for a shell pipeline), exit
    code and stdout of one fresh process."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd if not shell else ["bash", "-c", cmd[0]],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    out = proc.stdout.read() if proc.stdout else b""
    _pid, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status), out.decode()


def objects_bytes(repo: Path) -> tuple[int, int]:
    out = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "--batch-all-objects", "--batch-check=%(objectsize)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return len(out), sum(int(n) for n in out)


def add_commit(clone: Path, n: int) -> None:
    """One new commit on HEAD in a bare clone, made with plumbing (no work tree to check out)."""
    git = ["git", "-C", str(clone)]
    env = {**os.environ, "GIT_INDEX_FILE": str(clone / "bench-index")}
    blob = subprocess.run(
        [*git, "hash-object", "-w", "--stdin"],
        input=f"bench {n} {secrets.token_hex(8)}\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run([*git, "read-tree", "HEAD"], env=env, check=True)
    subprocess.run(
        [*git, "update-index", "--add", "--cacheinfo", f"100644,{blob},bench-{n}.txt"], env=env, check=True
    )
    tree = subprocess.run(
        [*git, "write-tree"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    ident = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@x.invalid",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@x.invalid",
    }
    commit = subprocess.run(
        [*git, "commit-tree", tree, "-p", "HEAD", "-m", f"bench {n}"],
        env=ident,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run([*git, "update-ref", "HEAD", commit], check=True)


def summary(label: str, values: list[float], unit: str = "s", fmt: str = "{:.3f}") -> str:
    if not values:
        return f"{label:44} (not run)"
    med, low, high = (fmt.format(v) for v in (statistics.median(values), min(values), max(values)))
    return f"{label:44} median {med} {unit}  range {low}–{high} {unit}  (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, help="a git repository (bare or not) with a long history")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--trufflehog", type=Path, help="the trufflehog3 executable (its own venv)")
    parser.add_argument("--trufflehog-runs", type=int, default=1)
    args = parser.parse_args()
    if args.repo is None or not args.repo.exists():
        raise SystemExit(
            "give --repo PATH: a repository with a few thousand commits, e.g.\n"
            "    git clone --mirror https://github.com/pallets/click /tmp/click.git\n"
            "    .venv/bin/python benchmarks/secrets_trace.py --repo /tmp/click.git"
        )
    compile_installed()
    repo = args.repo.resolve()
    count, size = objects_bytes(repo)
    commits = int(
        subprocess.run(
            ["git", "-C", str(repo), "rev-list", "--all", "--count"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    print(
        f"repository {repo}: {commits:,} commits, {count:,} objects, {size / 1e6:,.1f} MB of object content"
    )
    value = "ik_" + secrets.token_urlsafe(24)  # in no repository: every side reads everything
    python = sys.executable
    opsdash = str(Path(python).with_name("opsdash"))

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / ".env.production").write_text(env_text(betaskill_env()))
        text = PROFILE.read_text()
        (work / "opsdash.toml").write_text(text[: text.index("# ---- health checks")])
        shutil.copy(PROFILE.with_name(".env.production.example"), work / ".env.production.example")
        env = {**os.environ, "OPSDASH_DATA_DIR": str(work / "data")}
        cli = [opsdash, "secrets", "trace", "--config", str(work / "opsdash.toml"), "--quiet", "--no-history"]

        sides: dict[str, Callable[[], tuple[float, int, int, str]]] = {
            "floor": lambda: timed(
                [f"git -C '{repo}' cat-file --batch-all-objects --batch | grep -F -c '{value}'"], shell=True
            ),
            "core": lambda: timed([python, "-c", CORE, str(repo), value], env),
            "cli": lambda: timed([*cli, "--repo", str(repo), "--full", "--json"], env),
        }
        results: dict[str, list[tuple[float, int]]] = {k: [] for k in sides}
        order = list(sides)
        for round_ in range(args.runs):
            for name in order[round_ % len(order) :] + order[: round_ % len(order)]:
                seconds, rss, code, out = sides[name]()
                if name == "floor" and code not in (0, 1):
                    raise SystemExit(f"floor exited {code}")
                if name != "floor" and code not in (0, 1, 2):
                    raise SystemExit(f"{name} exited {code}: {out[:300]}")
                results[name].append((seconds, rss))

        # incremental: a throwaway bare clone, a full trace to fill the cache, then one commit a run
        clone = work / "clone.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(clone)], check=True)
        subprocess.run(
            [*cli[:-1], "--repo", str(clone), "--json"], env=env, capture_output=True
        )  # records cache
        incremental_wall, incremental_scan = [], []
        for n in range(args.runs):
            add_commit(clone, n)
            seconds, _rss, code, out = timed([*cli, "--repo", str(clone), "--json"], env)
            if code not in (0, 1, 2):
                raise SystemExit(f"incremental trace exited {code}")
            git = json.loads(out)["summary"]["git"]
            assert git["objects_read"] <= 10, git  # only the new commit's objects (and any that hit)
            incremental_wall.append(seconds)
            incremental_scan.append(float(git["seconds"]))

        peer: list[float] = []
        if args.trufflehog is not None:
            checkout = work / "checkout"
            subprocess.run(["git", "clone", "-q", str(repo), str(checkout)], check=True)
            for _ in range(args.trufflehog_runs):
                seconds, _rss, code, _out = timed(  # its defaults: patterns and entropy, 2 processes
                    [str(args.trufflehog), "-z", "-f", "JSON", "-o", str(work / "th3.json"), str(checkout)]
                )
                if code not in (0, 1, 2):
                    raise SystemExit(f"trufflehog3 exited {code}")
                peer.append(seconds)

    floor_s = [s for s, _ in results["floor"]]
    core_s = [s for s, _ in results["core"]]
    cli_s = [s for s, _ in results["cli"]]
    mb = size / 1e6
    print(
        f"runs: {args.runs} per side, fresh processes, rotated order (medians; a shared machine: under load)"
    )
    print(
        summary("floor  cat-file --batch | grep -F -c", floor_s)
        + f"  {mb / statistics.median(floor_s):,.0f} MB/s"
    )
    print(
        summary("opsdash core, 1 value, every encoding", core_s)
        + f"  {mb / statistics.median(core_s):,.0f} MB/s"
    )
    ratios = [f / c for f, c in zip(floor_s, core_s, strict=True)]
    print(
        f"  throughput vs floor: median {statistics.median(ratios):.2f}x  "
        f"range {min(ratios):.2f}–{max(ratios):.2f}x  (same round; goal >= 0.5x)"
    )
    print(
        summary("opsdash secrets trace --full (3 values)", cli_s)
        + f"  {mb / statistics.median(cli_s):,.0f} MB/s"
    )
    rss = [r / 1024 for _, r in results["cli"]]
    print(summary("  peak RSS of secrets trace --full", rss, "MiB", "{:.1f}") + "  (goal <= 200 MiB)")
    print(summary("incremental after 1 new commit: the scan", incremental_scan) + "  (goal <= 0.3 s)")
    print(
        summary("incremental: the whole process", incremental_wall) + "  (interpreter and imports included)"
    )
    if peer:
        print(summary("trufflehog3 (defaults), same history", peer))
        print(
            "  opsdash secrets trace --full vs trufflehog3: "
            f"{statistics.median(peer) / statistics.median(cli_s):.1f}x faster  (goal >= 10x)"
        )
    else:
        print(
            "trufflehog3: not run (python3 -m venv /tmp/th3 && /tmp/th3/bin/pip install trufflehog3; "
            "then --trufflehog /tmp/th3/bin/trufflehog3)"
        )


if __name__ == "__main__":
    main()
