"""Hold opsdash's webhook verification against the newest releases of the providers' libraries.

The parity tests (tests/unit/core/test_webhooks_parity.py) run in `make test` against the versions
the lock pins. This script, meant for a scheduled CI job or a release checklist, installs the newest
releases of standardwebhooks, svix, stripe and slack-sdk into a scratch virtualenv, runs the same
tests there, and prints per library the pinned and newest version and pass/fail:

    .venv/bin/python scripts/webhook_drift.py [--cases 300] [--venv DIR]

Only those four come from the index (`pip install --upgrade --no-deps`); opsdash (this checkout),
pytest and every other package come from the running virtualenv, through a .pth file in the scratch
one, so a failure is the libraries' doing. Exit codes: 0 no drift, 1 drift (a parity test fails or
cannot run against a newest release), 3 the scratch environment could not be built.

After drift: read the release's changes, decide each difference against the provider's docs (follow
the library where its spec agrees, else document why not in opsdash/core/webhooks/schemes.py), then
move the lock (`pip-compile --upgrade-package NAME`, the flags of `make lock`) and CHECKED_AGAINST in
the test module together.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import venv
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "dev.txt"
TESTS = "tests/unit/core/test_webhooks_parity.py"
# The library (as the lock names it), the module the tests import, and the word their names carry
LIBRARIES = {
    "standardwebhooks": ("standardwebhooks.webhooks", "standard"),
    "svix": ("svix.webhooks", "standard"),
    "stripe": ("stripe._webhook", "stripe"),
    "slack-sdk": ("slack_sdk.signature", "slack"),
}
SHARED = "empty_secret"  # tests that hold every library at once


@dataclass
class Result:
    passed: int = 0
    failed: list[str] = field(default_factory=list)  # "test: first line of the failure"


def pinned_versions() -> dict[str, str]:
    pins = dict(re.findall(r"^([a-z0-9-]+)==(\S+)", LOCK.read_text(), re.MULTILINE))
    return {name: pins.get(name, "not pinned") for name in LIBRARIES}


def build(scratch: Path) -> Path:
    """The scratch virtualenv: the newest four libraries, and this virtualenv's packages behind them."""
    python = scratch / "bin" / "python"
    if not python.exists():
        venv.create(scratch, with_pip=True)
    install = [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "--no-deps", *LIBRARIES]
    done = subprocess.run(install, capture_output=True, text=True)  # noqa: S603 - our own argv
    if done.returncode:
        raise OSError(f"pip install failed:\n{done.stderr.strip()}")
    purelib = subprocess.run(  # noqa: S603
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    # .pth lines go after the scratch site-packages: the newest libraries win, the rest is ours
    (Path(purelib) / "zz_opsdash_dev.pth").write_text("\n".join([str(ROOT), *sorted(ours)]) + "\n")
    return python


def newest_versions(python: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, sys\nfor name in sys.argv[1:]:\n    print(name, m.version(name))\n"
    )
    out = subprocess.run(  # noqa: S603
        [str(python), "-c", code, *LIBRARIES], check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def import_errors(python: Path) -> dict[str, str]:
    """A newest release that cannot be imported (a new dependency, say) would make the tests skip."""
    errors = {}
    for name, (module, _) in LIBRARIES.items():
        probe = subprocess.run(  # noqa: S603
            [str(python), "-c", f"import {module}"], capture_output=True, text=True, cwd=ROOT
        )
        if probe.returncode:
            errors[name] = (probe.stderr.strip().splitlines() or ["import failed"])[-1]
    return errors


def run_tests(python: Path, report: Path, cases: int) -> int:
    env = {**os.environ, "OPSDASH_WEBHOOK_PARITY_CASES": str(cases)}
    argv = [str(python), "-m", "pytest", "-n", "0", "-p", "no:randomly", "-p", "no:cacheprovider", "-q"]
    argv += [f"--junitxml={report}", TESTS]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True).returncode  # noqa: S603


def results(report: Path) -> dict[str, Result]:
    by_word: dict[str, Result] = {}
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314 - written by pytest just now
        name = case.get("name", "")
        words = {w for _, w in LIBRARIES.values() if w in name.lower()}
        if SHARED in name:
            words = {w for _, w in LIBRARIES.values()}
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is None:
            problem = case.find("skipped")  # a parity test that did not run has not passed
        for word in words or {"other"}:
            result = by_word.setdefault(word, Result())
            if problem is None:
                result.passed += 1
            else:
                first = (problem.get("message") or "").strip().splitlines()
                result.failed.append(f"{name}: {first[0][:150] if first else problem.tag}")
    return by_word


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=300, help="generated cases per scheme (default 300)")
    parser.add_argument("--venv", type=Path, help="keep the scratch virtualenv here (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="opsdash-webhook-drift-") as tmp:
        scratch = args.venv or Path(tmp) / "venv"
        try:
            python = build(scratch)
            newest = newest_versions(python)
        except (subprocess.CalledProcessError, OSError) as exc:
            print(f"webhook drift: could not build the scratch environment: {exc}", file=sys.stderr)
            return 3
        broken = import_errors(python)
        report = Path(tmp) / "parity.xml"
        code = run_tests(python, report, args.cases)
        if not report.exists():
            print(f"webhook drift: pytest wrote no report (exit {code})", file=sys.stderr)
            return 3
        by_word = results(report)
    pinned = pinned_versions()
    drift = False
    print(f"webhook parity ({TESTS}, {args.cases} cases per scheme) against the newest releases")
    print(f"{'library':<18}{'pinned':<10}{'newest':<10}result")
    for name, (_, word) in LIBRARIES.items():
        result = by_word.get(word, Result())
        ok = not result.failed and not broken.get(name) and result.passed > 0
        drift |= not ok
        moved = "" if newest.get(name) == pinned[name] else "  (newer than the lock)"
        total = result.passed + len(result.failed)
        verdict = f"pass ({total} tests)" if ok else f"FAIL ({len(result.failed)} of {total} tests)"
        print(f"{name:<18}{pinned[name]:<10}{newest.get(name, '?'):<10}{verdict}{moved}")
        if name in broken:
            print(f"    cannot import it: {broken[name]}")
        for line in result.failed[:5]:
            print(f"    {line}")
    other = by_word.get("other", Result())
    if other.failed:
        drift = True
        print(f"other parity tests: FAIL: {'; '.join(other.failed[:3])}")
    print("drift: opsdash and a newest release disagree" if drift else "no drift")
    return 1 if drift else 0


if __name__ == "__main__":
    sys.exit(main())
