"""How long `opsdash validate` takes on the BetaSkill example, and proof it never imports Textual.

Prints medians over several runs and the ratio to a floor measured in the same run:
  - floor: a bare `python -c pass` (interpreter start-up, which every CLI pays);
  - opsdash validate --no-history and with history (the SQLite write);
  - peak RSS of one validate process;
  - the modules a validate process imported: textual/rich must be absent;
  - with --against DIR: the same two commands from another checkout's source (say, the commit
    before a refactor), alternated run by run with this one, and the ratio between them.

Usage: .venv/bin/python benchmarks/validate.py [--runs N] [--against DIR]
       (this tree and the dependencies are byte-compiled first, as pip install leaves them;
        compile an --against tree yourself: python -m compileall -q opsdash)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bytecode import compile_installed

from opsdash.demo import betaskill_env, env_text

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "examples" / "betaskill" / "opsdash.toml"


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """Wall seconds, peak RSS in KiB and exit code of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    return elapsed, usage.ru_maxrss, os.waitstatus_to_exitcode(status)


def median_of(cmd: list[str], env: dict[str, str], runs: int) -> tuple[float, int]:
    times, rss = [], []
    for _ in range(runs):
        seconds, peak, code = timed(cmd, env)
        if code not in (0, 1, 2):
            raise SystemExit(f"{' '.join(cmd)} exited {code}")
        times.append(seconds)
        rss.append(peak)
    return statistics.median(times), int(statistics.median(rss))


def against(tree: Path, args: list[str], env: dict[str, str], runs: int) -> tuple[float, float, list[float]]:
    """Medians of this tree and `tree` running the same command, alternated; and each run's ratio."""
    ours_env = {**env, "PYTHONPATH": str(ROOT)}
    theirs_env = {**env, "PYTHONPATH": str(tree)}
    # the installed console script itself, importing each tree by PYTHONPATH: a `python -c` launch
    # differs from it at exit (by ~30 ms on this machine), so it would not time what operators run
    cmd = [str(Path(sys.executable).with_name("opsdash")), *args]
    ours, theirs = [], []
    for _ in range(runs):
        for times, run_env in ((ours, ours_env), (theirs, theirs_env)):
            seconds, _rss, code = timed(cmd, run_env)
            if code not in (0, 1, 2):
                raise SystemExit(f"{' '.join(args)} exited {code} with PYTHONPATH={run_env['PYTHONPATH']}")
            times.append(seconds)
    return (
        statistics.median(ours),
        statistics.median(theirs),
        [a / b for a, b in zip(ours, theirs, strict=True)],
    )


def imported_ui_modules(cmd: list[str], env: dict[str, str]) -> list[str]:
    code = (
        "import sys\nfrom opsdash.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "ui = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        "print(','.join(ui), file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code, *cmd], env=env, capture_output=True, text=True)
    last = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ""
    return [m for m in last.split(",") if m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--against", type=Path, metavar="DIR", help="another checkout to compare with")
    args = parser.parse_args()
    compile_installed()
    opsdash = str(Path(sys.executable).with_name("opsdash"))
    with tempfile.TemporaryDirectory() as tmp:
        env_file = Path(tmp) / ".env.production"
        env_file.write_text(env_text(betaskill_env()))
        env = {**os.environ, "OPSDASH_DATA_DIR": str(Path(tmp) / "data")}
        validate = ["validate", "--config", str(PROFILE), "--env-file", str(env_file)]

        floor, floor_rss = median_of([sys.executable, "-c", "pass"], env, args.runs)
        bare, bare_rss = median_of([opsdash, *validate, "--no-history"], env, args.runs)
        full, full_rss = median_of([opsdash, *validate], env, args.runs)
        ui = imported_ui_modules(validate, env)
        compared = []
        if args.against is not None:
            for label, extra in (("--no-history", ["--no-history"]), ("(records history)", [])):
                compared.append((label, *against(args.against, [*validate, *extra], env, args.runs)))

    print(f"runs per figure: {args.runs} (medians; 2-core noisy machine)")
    print(f"floor  python -c pass                   {floor * 1000:7.1f} ms  {floor_rss / 1024:6.1f} MiB")
    print(
        f"opsdash validate --no-history           {bare * 1000:7.1f} ms  {bare_rss / 1024:6.1f} MiB  "
        f"ratio {bare / floor:5.1f}x floor"
    )
    print(
        f"opsdash validate (records history)      {full * 1000:7.1f} ms  {full_rss / 1024:6.1f} MiB  "
        f"ratio {full / floor:5.1f}x floor"
    )
    for label, ours, theirs, ratios in compared:
        spread = sorted(ratios)
        print(
            f"validate {label:18} this tree {ours * 1000:6.1f} ms, {args.against} {theirs * 1000:6.1f} ms: "
            f"ratio {ours / theirs:4.2f} (per-run ratios {spread[0]:.2f}-{spread[-1]:.2f}, "
            f"median {statistics.median(spread):.2f})"
        )
    print(f"textual/rich imported by validate: {', '.join(ui) if ui else 'none'}")
    if ui:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
