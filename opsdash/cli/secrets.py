"""`opsdash secrets`: where the target's credentials are. `trace` parses, calls ops/trace.run and
renders; options for more places to look (the live site) are added beside the ones here."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from opsdash.cli.common import chosen_format, common_options, format_option
from opsdash.cli.render import emit
from opsdash.core.findings import Severity
from opsdash.ops.base import Ops


@click.group()
def secrets() -> None:
    """The target's credentials: where their values are (trace)."""


@secrets.command()
@common_options
@click.option(
    "--repo",
    type=click.Path(path_type=Path),
    help="The app's git repository: every object in it is searched, reachable or not (all branches, "
    "tags, stashes, reflogs, deleted branches still in packs, loose objects). Default: [target.trace] "
    "repo in the profile.",
)
@click.option(
    "--path",
    "paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A file or directory to search too (source, build output; repeatable). Default: [target.trace] "
    "paths and target.bundle_dir. .git and node_modules are skipped ([target.trace] skip_dirs).",
)
@click.option("--no-git", is_flag=True, help="Do not search the git history; only the paths.")
@click.option(
    "--full",
    is_flag=True,
    help="Read every object again: forget which objects earlier traces found clean. Without it only "
    "objects new since the last trace under the same values are read.",
)
@click.option(
    "--live",
    is_flag=True,
    help="Also the live site: base_url's HTML and every script, stylesheet, module preload and source map "
    "it references (same origin, gzip as served, within one deadline), and try each previous value "
    "found anywhere against the provider with a signed read-only request.",
)
@click.option(
    "--live-origin",
    "live_origins",
    multiple=True,
    metavar="URL",
    help="Another origin the live site's assets may come from (your CDN) to fetch too (repeatable).",
)
@format_option("sarif")
@click.option("--verbose", "-v", is_flag=True, help="Also show INFO findings (previous values found).")
@click.option("--no-history", is_flag=True, help="Do not record this run in history.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def trace(
    config: Path | None,
    env_files: tuple[Path, ...],
    from_env: bool | None,
    as_json: bool,
    operator: str | None,
    repo: Path | None,
    paths: tuple[Path, ...],
    no_git: bool,
    full: bool,
    live: bool,
    live_origins: tuple[str, ...],
    fmt: str,
    verbose: bool,
    no_history: bool,
    quiet: bool,
) -> None:
    """Find the target's secret values in the app's git history, files and builds.

    opsdash knows the values (the env the profile reads) and the fingerprints of the previous ones
    (kept per run), so it looks for exactly those: as written, base64/base64url at every alignment,
    URL-encoded, hex, JS/JSON-escaped, or split into "a"+"b" literals in minified code. A previous
    (rotated-away) value is found by its fingerprint among tokens of the same shape.

    Each finding names the variable, the object or file, the line, the encoding, and for history the
    commit(s) with author date and whether a remote-tracking branch holds them (pushed); values are
    shown only as masked fingerprints (a value in a file name too). A current value found is CRIT
    (rotate it: rewriting history does not un-leak it). A previous one is INFO without --live; with
    --live it is tried at the provider: CRIT while the provider still accepts it, UNKNOWN when it
    cannot tell, INFO once rejected.

    A symlink or FIFO named with --path is followed or listed; inside a searched directory, a
    symlink out of it (or to nothing) and special files are listed as not searched (UNKNOWN), and a
    path under which no file was searched is UNKNOWN, never clean.

    The first trace of a repository reads every object (progress on stderr); later ones read only
    objects that are new (the history database remembers the ones found clean, by id, for the same
    values). --full reads everything again.

    \b
    Examples:
      opsdash secrets trace --repo ../app
      opsdash secrets trace --live            (the live site; previous values tried at the provider)
      opsdash secrets trace --repo ../app --path ../app/src --path ../app/dist --json
    \b
    Exit codes: 0 nothing found, 1 WARN, 2 CRIT (a current value found; with --live, a previous one
    still accepted), 3 UNKNOWN: not a git repository, git missing, unreadable objects, files not
    searched, nothing to trace, or a config error.
    """
    from opsdash.cli.render import emit_report, report_text
    from opsdash.ops import trace_live

    fmt = chosen_format(fmt, as_json)
    ops = Ops.open(config, operator=operator)
    progress = None if quiet or not sys.stderr.isatty() else _progress
    result = trace_live.run(
        ops,
        repo=repo,
        paths=list(paths) or None,
        use_git=not no_git,
        full=full,
        env_files=list(env_files) or None,
        from_env=from_env,
        progress=progress,
        record=not no_history,
        live=live,
        origins=live_origins,
    )
    if progress is not None:
        emit("", err=True)
    if not no_history:
        ops.audit.require_written("secrets trace")
    report = result.report
    if not emit_report(report, fmt, profile=ops.config.path if ops.config else None):
        emit(_searched(result))
        emit(report_text(report, min_severity=Severity.INFO if verbose else Severity.WARN))
    sys.exit(report.exit_code())


def _progress(p: object) -> None:
    from opsdash.core.trace.git import Progress

    assert isinstance(p, Progress)
    rate = p.bytes / p.seconds / 1e6 if p.seconds else 0.0
    of = f"/{p.total:,}" if p.total is not None else ""
    emit(f"\rgit objects: {p.objects:,}{of}, {p.bytes / 1e6:,.0f} MB, {rate:,.0f} MB/s  ", err=True, nl=False)


def _searched(result: object) -> str:
    from opsdash.ops.trace import TraceRun

    assert isinstance(result, TraceRun)
    parts = []
    if result.git is not None:
        g = result.git
        known = f", {g.skipped:,} known clean" if g.skipped else ""
        parts.append(f"git: {g.objects:,} objects read ({g.bytes / 1e6:,.1f} MB{known}) in {g.seconds:.2f} s")
    if result.files is not None:
        f = result.files
        skipped = f", {len(f.skipped)} not searched" if f.skipped else ""
        parts.append(f"files: {f.files:,} searched ({f.bytes / 1e6:,.1f} MB{skipped})")
    live = result.report.summary.get("live")
    if isinstance(live, dict):
        errors = sum(1 for a in live["assets"] if a["error"])
        failed = f", {errors} not scanned" if errors else ""
        parts.append(f"live site: {len(live['assets'])} assets from {live['base_url']}{failed}")
    traced = ", ".join(result.report.summary.get("traced", []))
    previous = result.report.summary.get("previous", 0)
    return f"Traced {traced} and {previous} previous value(s). " + "; ".join(parts) + "."
