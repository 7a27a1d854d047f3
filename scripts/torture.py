"""Many processes, one record: a torture test of the data directory.

Each round runs, at once and on one data directory: two `opsdash serve` on the demo target (one
check a second), a dashboard under Textual's pilot recording its own watch, loops of `check`,
`validate`, `preflight`, `history list`, `audit tail` and a runbook with a command step, and a
demo fault switched on and off so that alerts fire and resolve. Meanwhile random processes are
killed with SIGKILL. After each round every process is stopped and the record is examined:

- `PRAGMA integrity_check` of history.db is `ok`;
- `opsdash audit verify` finds no tampering (a record torn by a kill is repaired, and counted);
- every command that exited 0 has its rows: its run (and a check's results), a runbook's session;
- no process said anything about a database error, and no serve stopped with SIGTERM failed to
  record a result or an alert;
- each incident fired at most one alert at a time (two serves watching one target claim each
  notice in the record: never two open alerts for one check).

It prints each round's processes, kills and failures, and exits 1 if any round failed.

    python scripts/torture.py --rounds 200
    python scripts/torture.py --opsdash /path/to/other/.venv/bin/opsdash   # another checkout
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BOOK = """+++
id = "torture-drill"
title = "Torture drill"
+++

## Deploy {#deploy}
```command timeout=30
echo deploying; sleep 0.3; echo deployed
```

## Check {#check}
```check
app-port
```
"""

DASHBOARD = """
import asyncio, sys
from pathlib import Path
from opsdash.tui.app import OpsdashApp

async def main() -> None:
    app = OpsdashApp.on_profile(Path(sys.argv[1]), record=True)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("3")
        await asyncio.sleep(float(sys.argv[2]))
        await pilot.press("q")

asyncio.run(main())
"""

# What a process must never say: the record failed under it.
DB_ERRORS = re.compile(
    r"disk I/O error|malformed|not a database|database is locked|history database is (busy|corrupt)"
    r"|results not recorded|alerts not processed|cannot open history database|readonly database",
    re.IGNORECASE,
)


@dataclass
class Proc:
    kind: str
    argv: list[str]
    popen: subprocess.Popen[str]
    started: float
    killed: bool = False
    stdin: str | None = None
    out: str = ""
    err: str = ""
    ready: threading.Event = field(default_factory=threading.Event)  # a serve: it announced its URL


@dataclass
class Round:
    number: int
    procs: list[Proc] = field(default_factory=list)
    kills: int = 0
    failures: list[str] = field(default_factory=list)
    repaired: int = 0
    corrupt: bool = False


class Torture:
    def __init__(self, opsdash: Path, root: Path, seed: int, seconds: float, dashboard: bool) -> None:
        self.opsdash, self.root, self.seconds, self.dashboard = opsdash, root, seconds, dashboard
        self.python = opsdash.with_name("python")
        self.rng = random.Random(seed)
        self.data = root / "data"
        self.env = {
            **os.environ,
            "OPSDASH_DATA_DIR": str(self.data),
            "XDG_CONFIG_HOME": str(root / "config"),
            "OPSDASH_OPERATOR": "torture",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.env.pop("OPSDASH_CONFIG", None)
        self.demo: subprocess.Popen[str] | None = None
        self.profile = root / "opsdash.toml"
        self.book = root / "drill.md"
        self._lock = threading.Lock()
        self.completed_runbooks = 0

    # ------------------------------------------------------------------ set-up

    def start_demo(self) -> None:
        env = {**self.env, "OPSDASH_DATA_DIR": str(self.root / "demo-data")}
        self.demo = subprocess.Popen(
            [str(self.opsdash), "demo", "--no-tui", "--dir", str(self.root / "ws")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.demo.stdout is not None
        line = self.demo.stdout.readline().strip()
        if not line.endswith("opsdash.toml"):
            raise SystemExit(
                f"the demo did not start: {line} {self.demo.stderr.read() if self.demo.stderr else ''}"
            )
        demo_profile = Path(line)
        text = re.sub(r"(?m)^interval = \d+$", "interval = 1", demo_profile.read_text())
        text = text.replace('ca_file = "demo-ca.pem"', f'ca_file = "{demo_profile.parent / "demo-ca.pem"}"')
        text = text.replace(
            'files = [".env.production"]', f'files = ["{demo_profile.parent / ".env.production"}"]'
        )
        text = re.sub(r"(?m)^data_dir = .*$", "", text)  # OPSDASH_DATA_DIR says where the record is
        self.profile.write_text(text)
        self.book.write_text(BOOK)
        self.data.mkdir(mode=0o700)
        shutil.copy(self.root / "demo-data" / "demo.json", self.data / "demo.json")  # faults reach the demo

    def stop_demo(self) -> None:
        if self.demo is not None and self.demo.poll() is None:
            self.demo.send_signal(signal.SIGTERM)
            try:
                self.demo.wait(15)
            except subprocess.TimeoutExpired:
                self.demo.kill()

    # ------------------------------------------------------------------ processes

    def spawn(self, rnd: Round, kind: str, argv: list[str], stdin: str | None = None) -> Proc:
        popen = subprocess.Popen(
            argv,
            env=self.env,
            cwd=self.root,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        proc = Proc(kind, argv, popen, time.monotonic(), stdin=stdin)
        threading.Thread(target=self._collect, args=(proc,), daemon=True).start()
        with self._lock:
            rnd.procs.append(proc)
        return proc

    @staticmethod
    def _collect(proc: Proc) -> None:
        if proc.kind != "serve" or proc.popen.stdout is None or proc.popen.stderr is None:
            proc.out, proc.err = proc.popen.communicate(proc.stdin)
            proc.ready.set()
            return
        # a serve's first line is its URL, printed once its SIGTERM handler is in place: before
        # that a SIGTERM kills it (-15) however well it stops, so its last stop waits for this
        stderr = proc.popen.stderr
        reader = threading.Thread(target=lambda: setattr(proc, "err", stderr.read()), daemon=True)
        reader.start()
        lines = []
        for line in proc.popen.stdout:
            lines.append(line)
            proc.ready.set()
        proc.ready.set()
        reader.join()
        proc.out = "".join(lines)

    def command(self, kind: str) -> tuple[list[str], str | None]:
        o, cfg = str(self.opsdash), ["--config", str(self.profile)]
        return {
            "check": ([o, "check", *cfg, "--json"], None),
            "validate": ([o, "validate", *cfg, "--json"], None),
            "preflight": ([o, "preflight", *cfg, "--json"], None),
            "history": ([o, "history", "list", "--json", "-n", "5"], None),
            "audit-tail": ([o, "audit", "tail", "-n", "5"], None),
            "runbook": ([o, "runbook", "run", str(self.book), *cfg], "c\n"),
            "fault": ([o, "demo", "fault", "app-down", self.rng.choice(["on", "off"]), *cfg], None),
        }[kind]

    def serve(self, rnd: Round) -> Proc:
        return self.spawn(
            rnd,
            "serve",
            [str(self.opsdash), "serve", "--config", str(self.profile), "--listen", "127.0.0.1:0"],
        )

    def run_round(self, number: int, kills: int) -> Round:
        rnd = Round(number)
        end = time.monotonic() + self.seconds
        serves = [self.serve(rnd), self.serve(rnd)]
        if self.dashboard:
            self.spawn(
                rnd, "dashboard", [str(self.python), "-c", DASHBOARD, str(self.profile), str(self.seconds)]
            )

        def loop(kinds: list[str]) -> None:
            while time.monotonic() < end:
                argv, stdin = self.command(self.rng.choice(kinds))
                proc = self.spawn(rnd, argv[1] if argv[1] != "demo" else "fault", argv, stdin)
                proc.popen.wait()

        loops = [
            threading.Thread(target=loop, args=(kinds,))
            for kinds in (
                ["check", "validate", "preflight"],
                ["history", "audit-tail", "check"],
                ["runbook", "fault", "validate"],
            )
        ]
        for t in loops:
            t.start()
        # the killer: SIGKILL at random moments, to any process but the serves' last stop
        while time.monotonic() < end - 0.3:
            time.sleep(self.rng.uniform(0.2, self.seconds / max(kills, 1)))
            if rnd.kills >= kills:
                continue
            with self._lock:
                alive = [
                    p for p in rnd.procs if p.popen.poll() is None and time.monotonic() - p.started > 0.15
                ]
            if alive:
                victim = self.rng.choice(alive)
                victim.killed = True
                victim.popen.kill()
                rnd.kills += 1
                if victim in serves:  # a service that dies is restarted, as systemd would
                    serves[serves.index(victim)] = self.serve(rnd)
        for t in loops:
            t.join()
        for proc in serves:
            proc.ready.wait(60)  # a serve restarted just now may still be starting
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        for proc in rnd.procs:
            try:
                proc.popen.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                rnd.failures.append(f"{proc.kind} did not end: {' '.join(proc.argv[1:3])}")
                proc.popen.kill()
                proc.popen.wait()
        time.sleep(0.05)  # the collector threads read the last output
        self.examine(rnd)
        return rnd

    # ------------------------------------------------------------------ the record after a round

    def examine(self, rnd: Round) -> None:
        db = self.data / "history.db"
        conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            try:
                problems = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            except sqlite3.DatabaseError as exc:
                problems = [str(exc)]
            if problems != ["ok"]:
                rnd.failures.append(f"integrity_check: {'; '.join(problems)[:300]}")
                rnd.corrupt = True
                return
            runs = {r[0] for r in conn.execute("SELECT run_id FROM runs")}
            for proc in rnd.procs:
                said = DB_ERRORS.search(proc.err) or DB_ERRORS.search(proc.out)
                if said:
                    line = next(x for x in (proc.err + proc.out).splitlines() if DB_ERRORS.search(x))
                    rnd.failures.append(f"{proc.kind} said: {line.strip()[:300]}")
                code = proc.popen.returncode
                if proc.killed:
                    continue
                if proc.kind == "serve" and code != 0:
                    rnd.failures.append(f"serve exited {code} on SIGTERM: {proc.err.strip()[-300:]}")
                if proc.kind == "dashboard" and code != 0:
                    rnd.failures.append(f"dashboard exited {code}: {proc.err.strip()[-300:]}")
                if proc.kind in ("check", "validate", "preflight") and code in (0, 1, 2):
                    self._has_rows(rnd, conn, runs, proc)
                if proc.kind == "runbook" and code in (0, 1):
                    self.completed_runbooks += 1
                if code not in (0, 1, 2) and proc.kind not in ("serve", "dashboard", "runbook"):
                    rnd.failures.append(
                        f"{' '.join(proc.argv[1:3])} exited {code}: {proc.err.strip()[-300:]}"
                    )
            finished = conn.execute(
                "SELECT count(*) FROM runbook_sessions "
                "WHERE runbook_id = 'torture-drill' AND status != 'active'"
            ).fetchone()[0]
            if finished < self.completed_runbooks:
                rnd.failures.append(
                    f"{self.completed_runbooks} runbook runs completed, {finished} sessions recorded finished"
                )
            doubled = conn.execute(
                "SELECT key, count(*) FROM alerts WHERE status = 'firing' "
                "AND rule IN ('check-critical', 'credentials-rejected') GROUP BY key HAVING count(*) > 1"
            ).fetchall()
            for key, count in doubled:
                rnd.failures.append(f"{count} alerts firing at once for one incident ({key})")
        finally:
            conn.close()
        verify = subprocess.run(
            [str(self.opsdash), "audit", "verify"], env=self.env, capture_output=True, text=True, timeout=120
        )
        text = verify.stdout + verify.stderr
        if verify.returncode == 1 and "repair" in text.lower():
            rnd.repaired += 1  # a record torn by a kill, repaired into a signed repair record
        elif verify.returncode != 0:
            rnd.failures.append(f"audit verify exited {verify.returncode}: {text.strip()[-300:]}")

    @staticmethod
    def _has_rows(rnd: Round, conn: sqlite3.Connection, runs: set[str], proc: Proc) -> None:
        try:
            report = json.loads(proc.out)
        except ValueError:
            rnd.failures.append(f"{proc.kind} exited {proc.popen.returncode} without a JSON report")
            return
        run_id = report.get("run_id")
        if run_id not in runs:
            rnd.failures.append(
                f"{proc.kind} exited {proc.popen.returncode} but run {run_id} is not in history"
            )
            return
        if proc.kind == "check":
            stored = conn.execute("SELECT count(*) FROM check_results WHERE run_id = ?", [run_id]).fetchone()[
                0
            ]
            expected = len(report.get("summary", {}).get("checks", []))
            if stored != expected:
                rnd.failures.append(f"check run {run_id}: {stored} of {expected} results stored")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of a round (default 4)")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs per round (default 3)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-dashboard", action="store_true", help="leave out the dashboard under pilot")
    parser.add_argument("--opsdash", type=Path, default=Path(sys.executable).with_name("opsdash"))
    parser.add_argument("--keep", action="store_true", help="keep the data directory for a look")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    root = Path(tempfile.mkdtemp(prefix="opsdash-torture-"))
    torture = Torture(args.opsdash.resolve(), root, seed, args.seconds, not args.no_dashboard)
    print(
        f"torture: {args.rounds} rounds of {args.seconds:g} s, seed {seed}, data in {root / 'data'}",
        flush=True,
    )
    failed = kills = repaired = procs = number = 0
    try:
        torture.start_demo()
        for number in range(1, args.rounds + 1):
            rnd = torture.run_round(number, args.kills)
            kills, repaired, procs = kills + rnd.kills, repaired + rnd.repaired, procs + len(rnd.procs)
            kinds: dict[str, int] = {}
            for p in rnd.procs:
                kinds[p.kind] = kinds.get(p.kind, 0) + 1
            mix = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            state = "ok" if not rnd.failures else f"FAILED ({len(rnd.failures)})"
            print(
                f"round {number}: {len(rnd.procs)} processes ({mix}), {rnd.kills} killed: {state}", flush=True
            )
            for failure in rnd.failures:
                print(f"  - {failure}", flush=True)
            failed += bool(rnd.failures)
            if rnd.corrupt:
                print(
                    "torture: the record is corrupt; the rounds after this one would prove nothing",
                    flush=True,
                )
                break
    finally:
        torture.stop_demo()
        if not args.keep and not failed:
            shutil.rmtree(root, ignore_errors=True)
    print(
        f"torture: {number} rounds, {procs} processes, {kills} killed, {repaired} audit repairs, "
        f"{failed} rounds failed"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
