"""The working tree, build output and other configured paths, searched for the known values.

Source files (a hard-coded fallback such as `src/config/ikhokha.ts`), a build directory, a copied
`.env`: each regular file is read in windows (memory stays flat whatever its size) and searched with
the one `Matcher`. `.git` and `node_modules` are skipped (the git scanner reads the object database;
dependencies are not the app's). A path named by the operator is followed even when it is a symlink;
a symlink inside a searched tree is not followed: one that points into the tree is searched there,
one that points out of it (or at nothing) is listed in `skipped`, as is a FIFO, socket or device
(opening a FIFO would block). A binary file is searched like any other (a secret in a SQLite
file or an archive is still a leak); its hits are named by byte offset, since lines mean nothing
there. A file over the size cap, or one that cannot be read, is listed in `skipped`: never silently
passed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from opsdash.core.errors import InputError
from opsdash.core.trace.match import Hit, Matcher

SKIP_DIRS = (".git", "node_modules")
MAX_FILE = 100 << 20  # bytes; a larger file is listed as skipped
WINDOW = 8 << 20
_SNIFF = 8192


@dataclass(frozen=True)
class FileHits:
    path: str  # as given, or relative to the directory given
    root: str  # the path given (a directory or a file)
    hits: tuple[Hit, ...]
    binary: bool  # a NUL in its first 8 KiB: offsets, not lines, say where


@dataclass
class FileTrace:
    found: list[FileHits] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)  # "path (why)"


def trace_paths(
    paths: Sequence[Path],
    matcher: Matcher,
    *,
    skip_dirs: Iterable[str] = SKIP_DIRS,
    max_file: int = MAX_FILE,
    progress: Callable[[int, int], None] | None = None,
) -> FileTrace:
    """Search every regular file under `paths` (files or directories). A path that does not exist
    is an InputError: a configured path that is gone must not pass as clean."""
    skip = set(skip_dirs)
    trace = FileTrace()
    for root in paths:
        if not root.exists():
            raise InputError(f"{root}: no such file or directory (a path to trace)")
        for path, shown in _files(root, skip, trace):
            _search(path, shown, str(root), matcher, trace, max_file)
            if progress is not None:
                progress(trace.files, trace.bytes)
    return trace


def _files(root: Path, skip: set[str], trace: FileTrace) -> Iterable[tuple[Path, str]]:
    if not root.is_dir():  # a path named by the operator is followed, symlink or not
        yield root, str(root)
        return

    def unreadable(exc: OSError) -> None:
        trace.skipped.append(f"{exc.filename} ({exc.strerror or exc})")

    inside = root.resolve()
    for here, dirs, files in os.walk(root, onerror=unreadable):
        linked = [d for d in dirs if d not in skip and Path(here, d).is_symlink()]
        dirs[:] = sorted(d for d in dirs if d not in skip and d not in linked)
        for name in sorted([*files, *linked]):
            path = Path(here, name)
            shown = path.relative_to(root).as_posix()
            if path.is_symlink():
                why = _link(path, inside)
                if why:
                    trace.skipped.append(f"{shown} ({why})")
                continue
            yield path, shown


def _link(path: Path, inside: Path) -> str | None:
    """Why a symlink in a searched tree is not searched, or None when what it points at is in the
    tree (searched there, under its own name)."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return "a symbolic link to nothing: not followed"
    if target == inside or inside in target.parents:
        return None
    return f"a symbolic link out of the searched tree, to {target}: not followed"


_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a directory",
}


def _search(path: Path, shown: str, root: str, matcher: Matcher, trace: FileTrace, max_file: int) -> None:
    try:
        info = path.stat()  # a link in a tree never gets here (`_files`); one named is followed
        if not stat.S_ISREG(info.st_mode):  # opened, a FIFO would block; a device never ends
            kind = _KINDS.get(stat.S_IFMT(info.st_mode), "a special file")
            trace.skipped.append(f"{shown} (not a regular file: {kind})")
            return
        if info.st_size > max_file:
            trace.skipped.append(f"{shown} ({info.st_size} bytes, over the {max_file}-byte cap)")
            return
        with path.open("rb") as handle:
            hits, binary, size = _read(handle, matcher)
    except OSError as exc:
        trace.skipped.append(f"{shown} ({exc.strerror or exc})")
        return
    trace.files += 1
    trace.bytes += size
    if hits:
        trace.found.append(FileHits(shown, root, tuple(hits), binary))


def _read(handle: object, matcher: Matcher) -> tuple[list[Hit], bool, int]:
    """Window by window, keeping `matcher.overlap` bytes so a form across a window's edge is whole
    in the next; a hit is kept once (by the first window that holds it whole)."""
    read = handle.read  # type: ignore[attr-defined]
    overlap = matcher.overlap
    data = bytearray(read(WINDOW + overlap))
    binary = b"\0" in data[:_SNIFF]
    base = lines = reported_to = 0
    hits: dict[tuple[int, str, str, bool], Hit] = {}
    while True:
        more = read(WINDOW) if len(data) >= WINDOW + overlap else b""
        last = not more
        for span in matcher.spans(data):
            if base + span.end > reported_to:
                line = lines + data.count(b"\n", 0, span.start) + 1
                hit = Hit(span.name, span.encoding, base + span.start, line, span.previous, span.value)
                hits.setdefault((hit.offset, hit.name, hit.encoding, hit.previous), hit)
        reported_to = base + len(data)
        if last:
            return sorted(hits.values(), key=lambda h: h.offset), binary, base + len(data)
        keep = len(data) - overlap
        lines += data.count(b"\n", 0, keep)
        del data[:keep]
        base += keep
        data += more
