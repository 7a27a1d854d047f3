"""Reading operator-supplied text files, and the one file lock, shared by every reader and writer."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class UnreadableFile(Exception):
    """A file that cannot be used as text; `str()` is the one-line message naming file and line."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}" if line else f"{path}: {reason}")
        self.path, self.line, self.reason = path, line, reason


def read_text(path: Path, what: str, *, max_bytes: int | None = None) -> str:
    """The UTF-8 text of `path` (a leading BOM dropped). Missing, unreadable, oversized, binary or
    non-UTF-8 files raise UnreadableFile; `what` names the kind of file in the message."""
    article = "an" if what[:1] in "aeiou" else "a"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UnreadableFile(path, 0, f"{what} not found") from None
    except IsADirectoryError:
        raise UnreadableFile(path, 0, f"is a directory, not {article} {what}") from None
    except OSError as exc:
        raise UnreadableFile(path, 0, f"cannot read {what} ({exc.strerror})") from None
    if max_bytes is not None and len(raw) > max_bytes:
        raise UnreadableFile(
            path, 0, f"{len(raw):,} bytes is too large for {article} {what} (limit {max_bytes:,})"
        )
    if b"\0" in raw:
        line = raw[: raw.index(b"\0")].count(b"\n") + 1
        raise UnreadableFile(path, line, f"binary content (NUL byte); this is not {article} {what}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UnreadableFile(
            path, line, f"not valid UTF-8 text (byte {exc.start}); is this {article} {what}?"
        ) from None


class LinkRefused(OSError):
    """A path opsdash writes to is a symbolic link: another user could have pointed it anywhere."""


def open_private(path: Path, flags: int) -> int:
    """os.open for a file opsdash writes: never through a symbolic link, created 0600."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LinkRefused(
                errno.ELOOP, f"{path} is a symbolic link; opsdash does not write through links"
            ) from None
        raise


def write_file(path: Path, data: bytes | str, mode: int = 0o600) -> None:
    """Replace `path` with `data` atomically: a new file beside it (never through a link, with
    `mode` from birth), then a rename, which replaces a link planted at `path` instead of writing
    through it."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
        os.chmod(temp, mode)  # whatever the umask
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on `path` (created 0600): across processes, and across threads too, since
    every holder opens its own file description."""
    fd = open_private(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
