"""Every object of a git repository, reachable or not, read once and searched for the known values.

`git cat-file --batch-all-objects --batch --unordered` streams the whole object database (all refs,
tags, stashes, reflogs, deleted branches still in packs, loose and dangling objects) in pack order,
each object once. The stream is read in large chunks and each chunk of whole objects is searched in
one pass (`Matcher.spans` over the chunk; a hit is kept when it lies inside one object). Only when a
blob holds a value are the commits that put it at a path looked for: `git diff-tree --stdin -c` over
the commit objects the stream held (reachable or not, so a stash or a deleted branch's commit is
named too), then their author dates and whether a remote-tracking ref reaches them.

Incremental: given the ids already scanned clean under the same `Matcher.key`, the object ids are
listed (`--batch-check`, cheap) and only the unseen ones are read. Objects that held a value are
never remembered as clean: they are read again each time (they are few), so a previous value found
in them is in memory for the provider test; where they were found is remembered instead
(`known_places`), and the new commits' trees add to it.

The core runs `git` as a subprocess and reads no settings or storage: the caller (ops/trace.py)
brings the cache and keeps what comes back.
"""

from __future__ import annotations

import bisect
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from opsdash.core.errors import InputError
from opsdash.core.text import visible
from opsdash.core.trace.match import Hit, Matcher, Span

CHUNK = 4 << 20  # bytes read from git at a time
PIPE_SIZE = 1 << 20  # git's stdout pipe: 64 KiB by default, so git and opsdash would take turns
WINDOW = 8 << 20  # an object larger than this is searched in windows of this size
SEARCHED = frozenset({b"blob", b"commit", b"tag"})  # trees hold names and binary ids only
_HEX = frozenset("0123456789abcdef")
OID_LENGTHS = (40, 64)  # hex digits of an object id: SHA-1 and SHA-256 repositories


@dataclass(frozen=True)
class Place:
    """A commit that put a blob at a path (or, for a commit or tag object, the object itself)."""

    commit: str
    path: str


@dataclass(frozen=True)
class Location:
    commit: str
    path: str
    author_date: str  # ISO 8601, as the commit records it ("" when unknown)
    reachable: bool  # from a ref (a deleted branch's or a dropped stash's commit is not)
    pushed: bool  # reachable from refs/remotes/*


@dataclass
class ObjectHits:
    oid: str
    kind: str  # blob, commit or tag
    hits: list[Hit]
    locations: list[Location] = field(default_factory=list)  # empty: a dangling blob

    @property
    def places(self) -> list[Place]:
        return [Place(loc.commit, loc.path) for loc in self.locations]


@dataclass(frozen=True)
class Progress:
    objects: int
    bytes: int
    seconds: float
    total: int | None  # objects to read, when known


@dataclass
class GitTrace:
    repo: str  # the absolute git directory
    found: list[ObjectHits]
    clean: list[str]  # ids read in this scan that held nothing (the cache keeps them)
    objects: int = 0  # objects read
    bytes: int = 0  # bytes of objects read
    skipped: int = 0  # objects not read: scanned clean before under the same needles
    seconds: float = 0.0


def git_dir(repo: Path, git: str = "git") -> str:
    """The repository's absolute git directory, or an InputError an operator can act on."""
    if shutil.which(git) is None:
        raise InputError(
            f"git is not installed or not on PATH (looked for {git!r}); install git to trace history"
        )
    if not repo.exists():
        raise InputError(f"{repo}: no such directory")
    if not repo.is_dir():
        raise InputError(f"{repo}: not a directory")
    own = _run(git, repo, ["rev-parse", "--absolute-git-dir"], what="find the repository").strip()
    try:  # a linked worktree shares its main repository's objects: one cache for all of them
        common = _run(git, repo, ["rev-parse", "--path-format=absolute", "--git-common-dir"], "find it")
    except InputError:  # git before 2.31
        return own
    return common.strip() or own


def trace_repository(
    repo: Path,
    matcher: Matcher,
    *,
    known_clean: Collection[str] = frozenset(),
    known_places: Mapping[str, Iterable[Place]] | None = None,
    progress: Callable[[Progress], None] | None = None,
    git: str = "git",
) -> GitTrace:
    """Search every object in `repo`'s object database (those in `known_clean` excepted)."""
    started = time.perf_counter()
    gdir = git_dir(repo, git)
    where = Path(gdir)
    trace = GitTrace(repo=gdir, found=[], clean=[])
    wanted: list[str] | None = None
    if known_clean:
        listed = _run(
            git,
            where,
            ["cat-file", "--batch-all-objects", "--batch-check=%(objectname)", "--unordered"],
            "list objects",
        ).split()
        wanted = [oid for oid in listed if oid not in known_clean]
        trace.skipped = len(listed) - len(wanted)
    commits: list[str] = []
    reader = _Reader(matcher, trace, commits, progress, started, None if wanted is None else len(wanted))
    if wanted is None or wanted:
        args = (
            ["cat-file", "--batch", "--unordered", "--batch-all-objects"]
            if wanted is None
            else ["cat-file", "--batch", "--buffer"]
        )
        _stream(git, where, args, wanted, reader)
    if trace.found:
        _locate(git, where, trace, commits, known_places or {}, matcher)
    trace.seconds = time.perf_counter() - started
    return trace


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(LC_ALL="C", GIT_TERMINAL_PROMPT="0", GIT_NO_REPLACE_OBJECTS="1")
    return env


def _run(git: str, where: Path, args: list[str], what: str, stdin: str | None = None) -> str:
    """git's output as text. Paths in it (a file name in any byte encoding) are not strict UTF-8:
    bytes that are not UTF-8 come back as surrogate escapes (`decode_path`), never as an error."""
    try:
        done = subprocess.run(  # noqa: S603 - git, with arguments opsdash builds
            [git, "-C", str(where), *args],
            input=stdin.encode() if stdin is not None else None,
            capture_output=True,
            env=_env(),
            check=False,
        )
    except OSError as exc:
        raise InputError(f"could not run git to {what}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        stderr = done.stderr.decode("utf-8", "replace")
        raise InputError(f"{where}: git could not {what}: {_first_line(stderr)}")
    return decode_path(done.stdout)


def decode_path(raw: bytes) -> str:
    """A path git printed, as text: UTF-8 where it is, the other bytes as surrogate escapes (shown
    as `\\udcXX` by `core.text.visible`, so a name in Latin-1 is readable and never a crash)."""
    return raw.decode("utf-8", "surrogateescape")


def _first_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[0] if lines else "no message from git"


def _stream(git: str, where: Path, args: list[str], wanted: list[str] | None, reader: _Reader) -> None:
    try:
        proc = subprocess.Popen(  # noqa: S603 - git, with arguments opsdash builds
            [git, "-C", str(where), *args],
            stdin=subprocess.PIPE if wanted is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
            pipesize=PIPE_SIZE,
        )
    except OSError as exc:
        raise InputError(f"could not run git to read objects: {exc.strerror or exc}") from None
    assert proc.stdout is not None and proc.stderr is not None
    errors: list[bytes] = []
    drain = threading.Thread(
        target=lambda: errors.append(proc.stderr.read() if proc.stderr else b""), daemon=True
    )
    drain.start()
    feeder = None
    if wanted is not None:
        feeder = threading.Thread(target=_feed, args=(proc.stdin, wanted), daemon=True)
        feeder.start()
    try:
        reader.read(proc.stdout)
    except BaseException:
        proc.kill()
        raise
    finally:
        code = proc.wait()
        drain.join()
        if feeder is not None:
            feeder.join()
    if code != 0 or reader.incomplete:
        message = _first_line(b"".join(errors).decode("utf-8", "replace"))
        raise InputError(f"{where}: git could not read the object database: {message}")


def _feed(stdin: IO[bytes] | None, wanted: list[str]) -> None:
    if stdin is None:
        return
    try:
        stdin.write(("\n".join(wanted) + "\n").encode())
        stdin.close()
    except (BrokenPipeError, OSError):
        pass  # git stopped early; its exit status says why


class _Reader:
    """Parses `<oid> <type> <size>\\n<content>\\n` records out of chunks and searches them."""

    def __init__(
        self,
        matcher: Matcher,
        trace: GitTrace,
        commits: list[str],
        progress: Callable[[Progress], None] | None,
        started: float,
        total: int | None,
    ) -> None:
        self.matcher, self.trace, self.commits = matcher, trace, commits
        self.progress, self.started, self.total = progress, started, total
        self.incomplete = False
        self._told = started

    def read(self, out: IO[bytes]) -> None:
        buf = bytearray()
        while True:
            chunk = out.read(CHUNK)
            if not chunk:
                break
            buf += chunk
            used = self._whole(buf, out)
            if used:
                del buf[:used]
            self._tell()
        if buf:
            self.incomplete = True
        self._tell(final=True)

    def _whole(self, buf: bytearray, out: IO[bytes]) -> int:
        """Search every whole object at the start of `buf`; returns the bytes used."""
        pos = 0
        objects: list[tuple[int, int, str, bytes]] = []  # content start, end, id, type
        size_of = len(buf)
        while True:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                break
            header = bytes(buf[pos:nl]).split()
            if len(header) == 2 and header[1] == b"missing":
                pos = nl + 1
                continue
            if len(header) != 3:
                raise InputError(f"{self.trace.repo}: git printed an object header opsdash cannot read")
            oid, kind, size = header[0].decode(), header[1], int(header[2])
            end = nl + 1 + size
            if end + 1 > size_of:
                if size > WINDOW and not objects:
                    self._large(buf, nl + 1, oid, kind, size, out)  # consumes buf
                    return 0
                break
            objects.append((nl + 1, end, oid, kind))
            pos = end + 1
        if objects:
            self._search(buf, objects)
        return pos

    def _search(self, buf: bytearray, objects: list[tuple[int, int, str, bytes]]) -> None:
        trace = self.trace
        starts = [o[0] for o in objects]
        spans = self.matcher.spans(buf, objects[0][0], objects[-1][1]) if not self.matcher.empty else []
        by_object: dict[int, list[Span]] = {}
        for span in spans:
            i = bisect.bisect_right(starts, span.start) - 1
            if i >= 0 and span.end <= objects[i][1] and objects[i][3] in SEARCHED:
                by_object.setdefault(i, []).append(span)
        for i, (start, end, oid, kind) in enumerate(objects):
            trace.objects += 1
            trace.bytes += end - start
            if kind == b"commit":
                self.commits.append(oid)
            if i in by_object:
                hits = _hits(buf, start, by_object[i])
                trace.found.append(ObjectHits(oid, kind.decode(), hits))
            else:
                trace.clean.append(oid)

    def _large(self, buf: bytearray, start: int, oid: str, kind: bytes, size: int, out: IO[bytes]) -> None:
        """An object larger than WINDOW: searched window by window, keeping `overlap` bytes between
        windows so a form across a window's edge is whole in the next; the rest of `buf` after it is
        searched as usual (only this record's bytes are read here). Memory stays within about two
        windows whatever the object's size."""
        overlap = self.matcher.overlap
        data = bytearray(buf[start:])
        del buf[:]
        base = 0  # offset in the object of data[0]
        lines = 0  # newlines before data[0]
        reported_to = 0  # spans ending at or before this object offset were seen in a window
        hits: list[Hit] = []
        remaining = size + 1 - len(data)  # +1: the record's closing newline
        while True:
            while len(data) < WINDOW + overlap and remaining > 0:
                chunk = out.read(min(CHUNK, remaining))
                if not chunk:
                    self.incomplete = True
                    return
                data += chunk
                remaining -= len(chunk)
            limit = min(len(data), size - base)
            if kind in SEARCHED and not self.matcher.empty:
                for span in self.matcher.spans(data, 0, limit):
                    if base + span.end > reported_to:
                        line = lines + data.count(b"\n", 0, span.start) + 1
                        hits.append(
                            Hit(span.name, span.encoding, base + span.start, line, span.previous, span.value)
                        )
                reported_to = base + limit
            if base + limit >= size:
                break
            keep = limit - overlap
            lines += data.count(b"\n", 0, keep)
            del data[:keep]
            base += keep
            self._tell()
        self.trace.objects += 1
        self.trace.bytes += size
        if kind == b"commit":
            self.commits.append(oid)
        if hits:
            unique = {(h.offset, h.name, h.encoding, h.previous): h for h in hits}
            self.trace.found.append(
                ObjectHits(oid, kind.decode(), sorted(unique.values(), key=lambda h: h.offset))
            )
        else:
            self.trace.clean.append(oid)

    def _tell(self, final: bool = False) -> None:
        now = time.perf_counter()
        if self.progress is not None and (final or now - self._told >= 0.5):
            self._told = now
            self.progress(Progress(self.trace.objects, self.trace.bytes, now - self.started, self.total))


def _hits(buf: bytearray, start: int, spans: list[Span]) -> list[Hit]:
    hits = []
    line, counted = 1, start
    for span in spans:
        line += buf.count(b"\n", counted, span.start)
        counted = span.start
        hits.append(Hit(span.name, span.encoding, span.start - start, line, span.previous, span.value))
    return hits


# --- where a blob was put ------------------------------------------------------------------------


def _locate(
    git: str,
    where: Path,
    trace: GitTrace,
    commits: list[str],
    known: Mapping[str, Iterable[Place]],
    matcher: Matcher,
) -> None:
    """Where each found object was put. A path that holds a value itself (`cache/<secret>.json`) is
    kept with the value masked (`Matcher.redact`): a location is shown and cached, never a secret."""
    blobs = {o.oid: o for o in trace.found if o.kind == "blob"}
    places: dict[str, set[Place]] = {oid: set(known.get(oid, ())) for oid in blobs}
    if blobs and commits:
        for commit, oid, path in _diff_tree(git, where, commits):
            if oid in places:
                places[oid].add(Place(commit, matcher.redact(path)))
    for obj in trace.found:
        if obj.kind in ("commit", "tag"):
            places[obj.oid] = {Place(obj.oid, f"({obj.kind} message)")}
    named = sorted({p.commit for ps in places.values() for p in ps if p.path != "(tag message)"})
    dates = _author_dates(git, where, named)
    reachable = _rev_list(git, where, "--all")
    pushed = _rev_list(git, where, "--remotes")
    for obj in trace.found:
        obj.locations = sorted(
            (
                Location(
                    p.commit,
                    p.path,
                    dates.get(p.commit, ""),
                    p.commit in reachable,
                    p.commit in pushed,
                )
                for p in places.get(obj.oid, ())
            ),
            key=lambda loc: (loc.author_date, loc.commit, loc.path),
        )


def _diff_tree(git: str, where: Path, commits: list[str]) -> Iterator[tuple[str, str, str]]:
    """(commit, blob, path) for every blob a commit adds or changes; merges and stashes by their
    combined diff (a blob their result has that no parent had)."""
    out = _run(
        git,
        where,
        ["diff-tree", "--stdin", "-r", "-c", "--root", "--no-renames", "--no-ext-diff", "-z"],
        "list the commits' changes",
        stdin="\n".join(commits) + "\n",
    )
    commit = ""
    fields = out.split("\0")
    i = 0
    while i < len(fields):
        item = fields[i]
        if item.startswith(":"):
            oid = item.split()[-2]  # ":mode.. oid.. result-oid status": the result is before the status
            path = visible(fields[i + 1]) if i + 1 < len(fields) else ""
            if oid.strip("0"):  # all zeros: deleted (40 digits for SHA-1, 64 for SHA-256)
                yield commit, oid, path
            i += 2
            continue
        stripped = item.strip()
        if len(stripped) in OID_LENGTHS and set(stripped) <= _HEX:
            commit = stripped
        i += 1


def _author_dates(git: str, where: Path, commits: list[str]) -> dict[str, str]:
    if not commits:
        return {}
    out = _run(
        git,
        where,
        ["log", "--no-walk=unsorted", "--stdin", "--format=%H %aI"],
        "read commit dates",
        stdin="\n".join(commits) + "\n",
    )
    dates = {}
    for line in out.splitlines():
        oid, _, date = line.partition(" ")
        dates[oid] = date
    return dates


def _rev_list(git: str, where: Path, which: str) -> set[str]:
    return set(_run(git, where, ["rev-list", which], f"list commits ({which})").split())
