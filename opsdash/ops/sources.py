"""The files a watch's state is read from — the profile and the target's env files — and reading
them again when they change on disk.

The watch loop (`ops.checks.Watch`: the dashboard, `check --watch` and `opsdash serve`) calls
`Sources.reload()` every second, off the event loop. It compares each file's inode, size and
mtime_ns with the last look — an editor that replaces the file (a new inode) is noticed as surely
as one that rewrites it, and nothing is read while nothing changed — and reads the files again
when one did. Files that do not read — invalid TOML, an env line that does not parse, a file gone
in the middle of a save — leave the last good state in place and say what is wrong, naming the
file and line; they are tried again when they change again, so fixing the file recovers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from opsdash.core.envfiles import framework_files
from opsdash.core.errors import InputError, OpsdashError
from opsdash.core.health.probes import ProbeContext
from opsdash.core.profile import Check, Profile
from opsdash.core.secrets import redactor
from opsdash.ops.base import Ops

Stamp = tuple[int, int, int] | None  # (inode, size, mtime_ns); None: no such file


def stamp(path: Path) -> Stamp:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def env_paths(profile: Profile, env_files: Sequence[Path] | None) -> list[Path]:
    """Every file the target's environment may come from, present or not: a framework's file that
    appears mid-session (`.env.production.local`) changes the environment as much as an edit."""
    if env_files:
        return list(env_files)
    env = profile.env
    return [*framework_files(env.framework, env.mode, env.dir), *env.files]


@dataclass(frozen=True)
class Reload:
    """What reading the changed files again gave: the session, checks and probe context to go on
    with (the last good ones when `problem` is set), which files changed, and what is wrong with
    them (`file:line: ...`, secrets masked) when they did not read."""

    ops: Ops
    checks: tuple[Check, ...]
    ctx: ProbeContext
    changed: tuple[Path, ...]
    problem: str | None = None


class Sources:
    """A watch's profile and env files as last read, and what was read from them: the checks (as
    `choose` picks them from the profile) and the probe context with the target's credentials."""

    def __init__(
        self,
        ops: Ops,
        choose: Callable[[Profile], Sequence[Check]],
        *,
        env_files: Sequence[Path] | None = None,
        from_env: bool | None = None,
    ) -> None:
        self.ops, self.choose, self.env_files, self.from_env = ops, choose, env_files, from_env
        # stamped before reading: a write that lands while they are read is noticed on the next look
        self.good = {p: stamp(p) for p in self._paths(ops)}
        self.seen = dict(self.good)  # as at the last attempt, good or not: what a change is against
        self.checks = tuple(choose(ops.profile))
        self.ctx = ops.probe_context(env_files=env_files, from_env=from_env)

    def _paths(self, ops: Ops) -> list[Path]:
        own = [ops.config.path] if ops.config is not None else []
        return list(dict.fromkeys([*own, *env_paths(ops.profile, self.env_files)]))

    def reload(self) -> Reload | None:
        """None when nothing changed since the last look. Otherwise the files are read again — the
        profile only if it changed since the last good read; the env files always (their secrets
        are registered with the redactor as they are read, as at start) — and the result is the
        new state, or the last good one with the problem."""
        seen = {p: stamp(p) for p in self.seen}  # before reading, as at start
        changed = tuple(p for p, s in seen.items() if s != self.seen[p])
        if not changed:
            return None
        try:
            ops = self.ops
            if ops.config is not None and seen[ops.config.path] != self.good.get(ops.config.path):
                ops = ops.reloaded()
            paths = env_paths(ops.profile, self.env_files)
            seen.update((p, stamp(p)) for p in paths if p not in seen)
            gone = [p for p in paths if seen[p] is None and self.good.get(p) is not None]
            if gone:
                raise InputError(f"{gone[0]}: the env file is gone (deleted, or being saved)")
            checks = tuple(self.choose(ops.profile))
            ctx = ops.probe_context(env_files=self.env_files, from_env=self.from_env)
            self._refuse_unparseable(ctx)
        except Exception as exc:  # a bug too is said where the operator looks, and keeps the last good state
            problem = (
                str(exc) if isinstance(exc, OpsdashError) else f"internal error: {type(exc).__name__}: {exc}"
            )
            self.seen = seen  # tried again when a file changes again, not on every look
            return Reload(self.ops, self.checks, self.ctx, changed, redactor.redact(problem))
        self.good = {p: seen[p] for p in self._paths(ops)}
        self.seen = dict(self.good)
        self.ops, self.checks, self.ctx = ops, checks, ctx
        return Reload(ops, checks, ctx, changed)

    def _refuse_unparseable(self, ctx: ProbeContext) -> None:
        """A line that newly does not parse is a half-saved env file, most likely: its values are
        not used. (One already there in the last good read is validation's `dotenv-parse-error`
        finding, and does not stop a reload.)"""
        known = set(self.ctx.env.problems) if self.ctx.env is not None else set()
        for problem in ctx.env.problems if ctx.env is not None else ():
            if problem.kind == "parse-error" and problem not in known:
                raise InputError(f"{problem.source}: {problem.message}")
