"""`benchmarks/history.py --database postgresql://...|auto`: the same year of history on PostgreSQL.

`auto` starts a temporary server from the PostgreSQL server binaries (tests/pg.py: initdb, pg_ctl;
fsync off, as the tests run it) and removes it after; a URL uses that server, in schemas of its
own (`opsdash_bench_<pid>`, `..._raw_<pid>`, `..._moved_<pid>`: the user needs CREATE on the
database) dropped at the end. Prints, each beside its goal:
  - insert rate of history.runs.record(report, results=...) on PostgreSQL (one transaction a run,
    under the write lock, as opsdash records) vs raw psycopg on a copy of the same schema in the
    same run, alternating chunks of 100 runs: `executemany` (pipelined), `COPY` (text, psycopg's
    default) and `COPY ... (FORMAT BINARY)` with the columns' types set (the wire format opsdash's
    record path uses) of the same rows, built from the same results inside the clock as the SQLite
    benchmark's raw does (goal: opsdash >= 0.7x of each);
  - `opsdash history list` (and `-n 500 --json`, `show latest`) wall time with
    OPSDASH_DATABASE_URL set, beside `opsdash --version` (goal: history list <= 0.2 s), and how
    much of it is importing the driver (-X importtime), a floor opsdash does not control;
  - `opsdash history migrate --to` of the same year from an SQLite data directory (filled in the
    same loop, untimed) into an empty schema (goal <= 60 s), and that `history list -n 10000
    --json` reads the same from both.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from opsdash.core.findings import Report  # noqa: E402
from opsdash.storage.checks import CHECK_COLUMNS  # noqa: E402
from opsdash.storage.history import History  # noqa: E402


def _schema_url(url: str, admin: psycopg.Connection[Any], name: str) -> str:
    admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    admin.execute(f"CREATE SCHEMA {name}")
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={name}')}"


@contextlib.contextmanager
def database(url: str) -> Iterator[tuple[str, str, str]]:
    """(opsdash's, raw's, migrate's) URLs: three empty schemas on the server, dropped after."""
    server = None
    if url == "auto":
        from tests.pg import start_server

        server = start_server()
        url = server.admin_url
    names = [
        f"opsdash_bench_{os.getpid()}",
        f"opsdash_bench_raw_{os.getpid()}",
        f"opsdash_bench_moved_{os.getpid()}",
    ]
    try:
        with psycopg.connect(url, autocommit=True) as admin:
            urls = [_schema_url(url, admin, n) for n in names]
        yield urls[0], urls[1], urls[2]
    finally:
        with contextlib.suppress(psycopg.Error), psycopg.connect(url, autocommit=True) as admin:
            for name in names:
                admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        if server is not None:
            server.stop()


RAW_RUN = (
    "INSERT INTO runs (run_id, kind, target, operator, started_at, duration_ms, verdict, counts, summary) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
RAW_CHECKS = (
    f"INSERT INTO check_results ({', '.join(CHECK_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(CHECK_COLUMNS))})"
)
RAW_FINDINGS = (
    "INSERT INTO findings (run_id, rule, severity, category, subject, title, detail, remediation, runbook, "
    "evidence) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def _findings(report: Report) -> list[tuple[Any, ...]]:
    return [
        (
            report.run_id,
            f.rule,
            f.severity.value,
            f.category,
            f.subject,
            f.title,
            f.detail,
            f.remediation,
            f.runbook,
            json.dumps(dict(f.evidence)),
        )
        for f in report.findings
    ]


def raw_executemany(
    conn: psycopg.Connection[Any], report: Report, run: tuple[Any, ...], rows: list[Any]
) -> None:
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute(RAW_RUN, run)
        cursor.executemany(RAW_FINDINGS, _findings(report))
        cursor.executemany(RAW_CHECKS, rows)


def raw_copy(conn: psycopg.Connection[Any], report: Report, run: tuple[Any, ...], rows: list[Any]) -> None:
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute(RAW_RUN, run)
        cursor.executemany(RAW_FINDINGS, _findings(report))
        with cursor.copy(f"COPY check_results ({', '.join(CHECK_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


# PostgreSQL's types of check_results' columns: what the binary COPY peer sets, as opsdash does
_NUMERIC = {"latency_ms": "float8", "duration_ms": "float8", "attempts": "int8", "facts_id": "int8"}
CHECK_TYPES = [_NUMERIC.get(c, "text") for c in CHECK_COLUMNS]


def raw_copy_binary(
    conn: psycopg.Connection[Any], report: Report, run: tuple[Any, ...], rows: list[Any]
) -> None:
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute(RAW_RUN, run)
        cursor.executemany(RAW_FINDINGS, _findings(report))
        statement = f"COPY check_results ({', '.join(CHECK_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        with cursor.copy(statement) as copy:
            copy.set_types(CHECK_TYPES)
            for row in rows:
                copy.write_row(row)


RAW = {"executemany": raw_executemany, "copy": raw_copy, "binary": raw_copy_binary}


def settle(url: str) -> None:
    """What the server does on its own after a million fresh rows (autovacuum's ANALYZE, dirty
    pages written back), done before the CLI timings instead of during them. CHECKPOINT needs a
    superuser (or pg_checkpoint): a server that refuses it is left to write back on its own."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [  # this benchmark's schema only: the database may hold a team's own tables
            f"{schema}.{table}"
            for schema, table in conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            )
        ]
        conn.execute(f"VACUUM ANALYZE {', '.join(tables)}")  # names from the catalogue
        with contextlib.suppress(psycopg.Error):
            conn.execute("CHECKPOINT")
    os.sync()


def psycopg_import(env: dict[str, str], repeat: int, cwd: Path) -> list[float]:
    """Seconds `opsdash history list` spends importing psycopg (and what only it imports), from
    -X importtime's cumulative figure for the package, one process each."""
    found = []
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "opsdash", "history", "list"],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        )
        lines = [line for line in done.stderr.splitlines() if line.rstrip().endswith("| psycopg")]
        found.append(int(lines[-1].split("|")[1]) / 1e6 if lines else 0.0)
    return found


def run(args: argparse.Namespace, root: Path) -> None:
    from history import CHUNK, OPSDASH, goal, raw_rows, spread, wall, workload  # the SQLite benchmark's

    data = root / "data"  # the SQLite year `history migrate` copies
    print(
        f"history benchmark on PostgreSQL: {args.runs:,} runs x {args.checks} checks, {os.cpu_count()} cores"
    )
    with database(args.database) as (url, raw_url, moved_url):
        with History.open(data, database=url):  # the schema, migrated
            pass
        with History.open(data, database=raw_url):  # raw's copy of the same schema
            pass
        rates: dict[str, list[float]] = {"opsdash": [], "executemany": [], "copy": [], "binary": []}
        t0 = time.perf_counter()
        with (
            History.open(data, database=url) as team,
            History.open(data) as local,
            psycopg.connect(raw_url, autocommit=True) as raw,
        ):
            chunk: list[tuple[Report, list[Any]]] = []
            turn = 0
            for n, report, results in workload(args.runs, args.checks):
                local.runs.record(report, operator="bench", results=results)  # the year to migrate
                chunk.append((report, results))
                if len(chunk) < CHUNK and n != args.runs - 1:
                    continue
                count = sum(len(res) for _, res in chunk)
                order: tuple[str, ...] = ("opsdash", "executemany", "copy", "binary")
                order = order[turn % 4 :] + order[: turn % 4]  # each goes first in turn
                turn += 1
                for who in order:
                    begin = time.perf_counter()
                    for rep, res in chunk:
                        if who == "opsdash":
                            team.runs.record(rep, operator="bench", results=res)
                        else:  # raw builds the same values from the same results inside the clock
                            run_row, check_rows = raw_rows(rep, res)
                            suffixed = (f"{run_row[0]}-{who}", *run_row[1:])
                            checks = [(suffixed[0], *r[1:]) for r in check_rows]
                            RAW[who](raw, rep, suffixed, checks)
                    rates[who].append(count / (time.perf_counter() - begin))
                chunk = []
        print(f"  fill took {time.perf_counter() - t0:.0f} s")
        print("\ninsert on PostgreSQL (one transaction a run, per chunk of 100 runs; medians and ranges)")
        print(f"  opsdash runs.record        {spread(rates['opsdash'], 'rows/s')}")
        print(f"  raw psycopg executemany    {spread(rates['executemany'], 'rows/s')}")
        print(f"  raw psycopg COPY           {spread(rates['copy'], 'rows/s')} (text, psycopg's default)")
        print(f"  raw psycopg binary COPY    {spread(rates['binary'], 'rows/s')} (types set, as opsdash)")
        for who in ("executemany", "copy", "binary"):
            ratios = [o / r for o, r in zip(rates["opsdash"], rates[who], strict=True)]
            met = goal(statistics.median(ratios) >= 0.7, ">= 0.7x")
            print(f"  ratio opsdash/{who:12} {spread(ratios, 'x')} {met}  (same-run, chunk by chunk)")

        env = {**os.environ, "OPSDASH_DATA_DIR": str(data), "XDG_CONFIG_HOME": str(root / "config")}
        for name in ("OPSDASH_DEBUG", "OPSDASH_CONFIG", "OPSDASH_DATABASE"):
            env.pop(name, None)
        team_env = {**env, "OPSDASH_DATABASE_URL": url}
        settle(url)
        print(f"\nCLI on PostgreSQL ({args.repeat} runs each after a warm-up; medians, ranges; peak RSS)")
        print("  (settled first: VACUUM ANALYZE and a checkpoint, so the CLI is timed, not the server's")
        print("   autovacuum and writeback of the million rows just written; the SQLite run syncs likewise)")
        commands = {
            "opsdash --version (start)": [OPSDASH, "--version"],
            "history list": [OPSDASH, "history", "list"],
            "history list -n 500 --json": [OPSDASH, "history", "list", "-n", "500", "--json"],
            "history show latest": [OPSDASH, "history", "show", "latest"],
        }
        for label, command in commands.items():
            times, peak = wall(command, team_env, args.repeat, root)
            extra = f" {goal(statistics.median(times) <= 0.2, '<= 0.2 s')}" if label == "history list" else ""
            print(f"  {label:30} {spread(times)}  {peak:5.0f} MiB{extra}")
        imports = psycopg_import(team_env, args.repeat, root)
        print(f"  of which importing psycopg    {spread(imports)} (-X importtime inside history list)")
        print("  (the driver's import is a floor opsdash does not control: psycopg imports asyncio,")
        print("   importlib.metadata and every adapter eagerly; the rest is opsdash's start, rich,")
        print("   one connection (TCP, SCRAM), the schema's version and two indexed queries)")

        print("\nmoving in: opsdash history migrate --to (the SQLite year into an empty schema)")
        begin = time.perf_counter()
        done = subprocess.run(
            [OPSDASH, "history", "migrate", "--to", moved_url],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
        )
        took = time.perf_counter() - begin
        if done.returncode != 0:
            print(f"  migrate FAILED ({done.returncode}): {done.stderr.strip()[-400:]}")
            return
        print(f"  {args.runs:,} runs migrated in {took:.1f} s {goal(took <= 60, '<= 60 s')}")
        listing = [OPSDASH, "history", "list", "-n", "10000", "--json"]
        before = subprocess.run(listing, env=env, cwd=root, capture_output=True, text=True).stdout
        after = subprocess.run(
            listing, env={**env, "OPSDASH_DATABASE_URL": moved_url}, cwd=root, capture_output=True, text=True
        ).stdout
        print(
            f"  history list -n 10000 --json identical before and after: {before == after and bool(before)}"
        )
