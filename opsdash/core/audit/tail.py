"""Reading a (possibly multi-gigabyte) audit log without reading it all.

`LineIndex` finds the last page by scanning backwards from the end through an mmap, so the newest
records show at once; the full index of line starts (an `array('Q')`, 8 bytes a line) is built
afterwards in chunks with progress. Lines are read with `os.pread`. `Follower` picks up appended
lines and survives truncation and rotation by reopening. `RecordFilter` selects by kind, operator,
text and time, and never crashes on a line that is not JSON or not UTF-8: it marks it instead.

`StreamIndex` is what a scrolling view uses: the current log and its rotated predecessors as one
stream, indexed from the end backwards only as far as the operator scrolls, so opening a 1 GB log
costs one page, never a full scan; it follows appends and rotation without losing its place.
"""

from __future__ import annotations

import bisect
import json
import mmap
import os
import threading
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

CHUNK = 16 * 1024 * 1024


class LineIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size
        self._mm: mmap.mmap | None = mmap.mmap(self.fd, 0, access=mmap.ACCESS_READ) if self.size else None
        self.offsets: array[int] | None = None  # line starts, once build() has run

    def close(self) -> None:
        if self._mm is not None:
            self._mm.close()
        os.close(self.fd)

    def __enter__(self) -> LineIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, start: int, end: int) -> bytes:
        return os.pread(self.fd, end - start, start)

    def iter_backwards(self) -> Iterator[tuple[int, bytes]]:
        """(offset, line) from the last line to the first, found with mmap.rfind."""
        mm = self._mm
        if mm is None:
            return
        end = self.size
        if end and mm[end - 1 : end] == b"\n":
            end -= 1
        while end > 0:
            start = mm.rfind(b"\n", 0, end) + 1
            yield start, mm[start:end]
            end = start - 1

    def last_lines(self, n: int) -> list[tuple[int, bytes]]:
        out = []
        for item in self.iter_backwards():
            out.append(item)
            if len(out) >= n:
                break
        return out[::-1]

    def build(self, progress: Callable[[int, int], None] | None = None) -> array[int]:
        """Index every line start; `progress(bytes_done, total)` is called after each chunk."""
        offsets = array("Q", [0] if self.size else [])
        position = 0
        while position < self.size:
            chunk = os.pread(self.fd, min(CHUNK, self.size - position), position)
            base = position
            index = chunk.find(b"\n")
            while index >= 0:
                if base + index + 1 < self.size:
                    offsets.append(base + index + 1)
                index = chunk.find(b"\n", index + 1)
            position += len(chunk)
            if progress is not None:
                progress(position, self.size)
        self.offsets = offsets
        return offsets

    def refresh(self) -> str | None:
        """Catch up with the file: "appended" (new lines indexed), "reset" (truncated or replaced:
        build() again), or None (unchanged). Needs a built index."""
        assert self.offsets is not None, "build() first"
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return "reset"
        if stat.st_ino != os.fstat(self.fd).st_ino or stat.st_size < self.size:
            self.close()
            self.__init__(self.path)  # type: ignore[misc]
            return "reset"
        if stat.st_size == self.size:
            return None
        old = self.size
        if self._mm is not None:
            self._mm.close()
        self.size = stat.st_size
        self._mm = mmap.mmap(self.fd, 0, access=mmap.ACCESS_READ)
        if old == 0:
            self.offsets.append(0)
        elif self.read(old - 1, old) == b"\n":
            self.offsets.append(old)
        chunk = self.read(old, self.size)
        index = chunk.find(b"\n")
        while index >= 0:
            if old + index + 1 < self.size:
                self.offsets.append(old + index + 1)
            index = chunk.find(b"\n", index + 1)
        return "appended"

    def iter_lines(self) -> Iterator[tuple[int, bytes]]:
        """(line number, line) from the first line, read in large chunks (for a filter scan)."""
        number, position, carry = 0, 0, b""
        while position < self.size:
            chunk = carry + os.pread(self.fd, min(CHUNK, self.size - position), position)
            position += min(CHUNK, self.size - position)
            lines = chunk.split(b"\n")
            carry = lines.pop()
            for raw in lines:
                yield number, raw
                number += 1
        if carry:
            yield number, carry

    def line(self, number: int) -> bytes:
        """Line `number` (0-based) from the built index."""
        assert self.offsets is not None, "build() first"
        start = self.offsets[number]
        end = self.offsets[number + 1] - 1 if number + 1 < len(self.offsets) else self.size
        data = self.read(start, end)
        return data[:-1] if data.endswith(b"\n") else data


@dataclass
class Follower:
    """New complete lines appended to a log, across truncation and rotation."""

    path: Path
    position: int = 0
    max_read: int = 4 * 1024 * 1024  # a burst is read over several polls, in bounded memory
    _inode: int | None = None
    _partial: bytes = b""

    @classmethod
    def at_end(cls, path: Path) -> Follower:
        follower = cls(path)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return follower
        follower.position, follower._inode = stat.st_size, stat.st_ino
        return follower

    def poll(self) -> tuple[list[bytes], str | None]:
        """(new lines, event) where event is None, "truncated" or "rotated". At most `max_read` bytes
        are read per call; call again at once while lines keep coming."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return [], None
        event = None
        if self._inode is not None and stat.st_ino != self._inode:
            event, self.position, self._partial = "rotated", 0, b""
        elif stat.st_size < self.position:
            event, self.position, self._partial = "truncated", 0, b""
        self._inode = stat.st_ino
        if stat.st_size == self.position:
            return [], event
        with self.path.open("rb") as handle:
            handle.seek(self.position)
            data = handle.read(min(stat.st_size - self.position, self.max_read))
        self.position += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an incomplete last line waits for the rest
        return [line for line in lines if line], event


@dataclass(frozen=True)
class Entry:
    """One line of the log as shown to an operator."""

    raw: bytes
    record: dict[str, Any] | None
    problem: str | None  # "not UTF-8", "not JSON" ...

    @classmethod
    def parse(cls, raw: bytes) -> Entry:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return cls(raw, None, "not UTF-8")
        try:
            record = json.loads(text)
        except ValueError:
            return cls(raw, None, "not JSON")
        if not isinstance(record, dict):
            return cls(raw, None, "not a record")
        return cls(raw, record, None)

    def text(self) -> str:
        return self.raw.decode("utf-8", "replace")

    def summary(self) -> str:
        if self.record is None:
            return f"[{self.problem}] {self.text()[:200]}"
        r = self.record
        details = r.get("details") or {}
        extra = (
            " ".join(f"{k}={v}" for k, v in details.items()) if isinstance(details, dict) else str(details)
        )
        parts = [
            str(r.get("ts", "?")),
            f"#{r.get('seq', '?')}",
            str(r.get("kind", "?")),
            str(r.get("operator", "?")),
            str(r.get("action", "")),
            str(r.get("subject", "")),
            str(r.get("outcome", "")),
            extra,
        ]
        return "  ".join(p for p in parts if p)


def parse_since(text: str) -> datetime:
    """An ISO time (2026-11-26T10:00, 2026-11-26) or a relative one (15m, 2h, 3d)."""
    from datetime import UTC, timedelta

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[:-1].isascii() and text[:-1].isdigit() and text[-1:] in units:
        try:
            return datetime.now(UTC) - timedelta(seconds=int(text[:-1]) * units[text[-1]])
        except OverflowError:  # further back than any date: every record
            return datetime.min.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r}: use an ISO time (2026-11-26T10:00) or 15m / 2h / 3d") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RecordFilter:
    kind: str | None = None
    operator: str | None = None
    grep: str | None = None
    since: datetime | None = None

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.kind, self.operator, self.grep, self.since))

    def quick(self, raw: bytes) -> bool:
        """A cheap byte test that every match passes (records are canonical JSON), to skip parsing."""
        if (
            self.kind is not None
            and f'"kind":"{self.kind}"'.encode() not in raw
            and raw.lstrip().startswith(b"{")
        ):
            return False
        if (
            self.operator is not None
            and json.dumps(self.operator).encode() not in raw
            and raw.lstrip().startswith(b"{")
        ):
            return False
        return self.grep is None or self.grep.lower().encode() in raw.lower()

    def match(self, entry: Entry) -> bool:
        if self.grep is not None and self.grep.lower() not in entry.text().lower():
            return False
        needs_record = self.kind is not None or self.operator is not None or self.since is not None
        if entry.record is None:
            return not needs_record  # a broken line is shown unless a field filter excludes it
        r = entry.record
        if self.kind is not None and r.get("kind") != self.kind:
            return False
        if self.operator is not None and r.get("operator") != self.operator:
            return False
        if self.since is not None:
            try:
                when = datetime.fromisoformat(str(r.get("ts")))
            except ValueError:
                return False
            if when < self.since:
                return False
        return True


def tail(path: Path, n: int, flt: RecordFilter | None = None) -> list[Entry]:
    """The last `n` entries matching the filter, read backwards from the end (no full scan needed)."""
    flt = flt or RecordFilter()
    if not path.exists():
        return []
    out: list[Entry] = []
    with LineIndex(path) as index:
        for _offset, raw in index.iter_backwards():
            entry = Entry.parse(raw)
            if flt.match(entry):
                out.append(entry)
                if len(out) >= n:
                    break
    return out[::-1]


@dataclass
class _Part:
    path: Path
    fd: int
    inode: int
    base: int  # where this file starts in the stream
    size: int


class StreamIndex:
    """Line starts of a log and its rotated files (oldest first) seen as one stream.

    Positions are byte offsets in the concatenation of the files, so they stay valid when the
    current file is rotated (its bytes keep their place; the new file starts after them).
    `offsets` holds the line starts of [low, end), ascending; `extend_back` indexes further back
    on demand. Lines are read with `os.pread`; nothing is mapped or held in memory but offsets.
    """

    def __init__(self, files: Sequence[Path]) -> None:
        self.parts: list[_Part] = []
        self.lock = threading.Lock()  # refresh (follower) and extend_back (scroll) run on threads
        self.current = files[-1] if files else None
        for path in files:
            self._add_part(path)
        self.offsets: array[int] = array("Q")
        self.low = self.end

    @classmethod
    def of_directory(cls, directory: Path) -> StreamIndex:
        from opsdash.core.audit.log import log_files

        return cls(log_files(directory))

    def _add_part(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        stat = os.fstat(fd)
        self.parts.append(_Part(path, fd, stat.st_ino, self.end, stat.st_size))

    def close(self) -> None:
        for part in self.parts:
            os.close(part.fd)
        self.parts = []

    def __enter__(self) -> StreamIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def end(self) -> int:
        last = self.parts[-1] if getattr(self, "parts", None) else None
        return last.base + last.size if last else 0

    @property
    def complete(self) -> bool:
        """Every line of every file is indexed."""
        return self.low == 0

    @property
    def files(self) -> int:
        return len(self.parts)

    def _part_at(self, position: int) -> _Part:
        bases = [p.base for p in self.parts]
        return self.parts[max(0, bisect.bisect_right(bases, position) - 1)]

    # ---------------------------------------------------------------- indexing

    def extend_back(self, budget: int = 4 * 1024 * 1024) -> int:
        """Index about `budget` more bytes before `low` (at least one whole line); returns how many
        line starts were added (they are prepended to `offsets`)."""
        chunks: list[array[int]] = []
        position, remaining = self.low, budget
        while position > 0 and remaining > 0:
            part = self._part_at(position - 1)
            start = max(part.base, position - remaining)
            data = os.pread(part.fd, position - start, start - part.base)
            starts = array("Q")
            index = data.find(b"\n")
            while index >= 0:
                if start + index + 1 < position:
                    starts.append(start + index + 1)
                index = data.find(b"\n", index + 1)
            if start == part.base:
                starts.insert(0, part.base)  # a file's first byte always starts a line
            if not starts:
                if chunks:  # the budget ends inside a line: that line waits for the next call
                    break
                remaining = position - part.base  # one line longer than the budget: find its start
                continue
            chunks.append(starts)
            remaining -= position - starts[0]
            position = starts[0]
        added = array("Q")
        for chunk in reversed(chunks):
            added.extend(chunk)
        if added:
            with self.lock:
                self.offsets = added + self.offsets
                self.low = position
        return len(added)

    def _index_appended(self, part: _Part, old_size: int, new_size: int) -> None:
        if old_size == 0:
            self.offsets.append(part.base)
        elif os.pread(part.fd, 1, old_size - 1) == b"\n":
            self.offsets.append(part.base + old_size)
        position = old_size
        while position < new_size:
            data = os.pread(part.fd, min(CHUNK, new_size - position), position)
            index = data.find(b"\n")
            while index >= 0:
                if position + index + 1 < new_size:
                    self.offsets.append(part.base + position + index + 1)
                index = data.find(b"\n", index + 1)
            position += len(data)
        part.size = new_size

    def refresh(self) -> str | None:
        """Catch up with the files: "appended", "rotated" (the current file was renamed and a new
        one started: both are read), "reset" (truncated or replaced in place: open a new index),
        or None (nothing changed)."""
        with self.lock:
            return self._refresh()

    def _refresh(self) -> str | None:
        if self.current is None:
            return None
        try:
            stat = os.stat(self.current)
        except FileNotFoundError:
            return None  # mid-rotation: the new file appears on the next look
        if not self.parts:
            self._add_part(self.current)
            part = self.parts[0]
            self.low = 0
            size, part.size = part.size, 0
            if not size:
                return None
            self._index_appended(part, 0, size)
            return "appended"
        last = self.parts[-1]
        if stat.st_ino != last.inode:
            final = os.fstat(last.fd).st_size  # lines written just before the rename
            if final > last.size:
                self._index_appended(last, last.size, final)
            self._add_part(self.current)
            new = self.parts[-1]
            size, new.size = new.size, 0
            if size:
                self._index_appended(new, 0, size)
            return "rotated"
        if stat.st_size < last.size:
            return "reset"
        if stat.st_size == last.size:
            return None
        self._index_appended(last, last.size, stat.st_size)
        return "appended"

    # ---------------------------------------------------------------- reading

    def line_at(self, position: int) -> bytes:
        """The line starting at stream `position`."""
        part = self._part_at(position)
        limit = part.base + part.size
        k = bisect.bisect_right(self.offsets, position)
        if position >= self.low and k < len(self.offsets):
            stop = min(self.offsets[k], limit)
            data = os.pread(part.fd, stop - position, position - part.base)
        else:  # not indexed (a filter result further back): read up to the newline
            data, at = b"", position
            while at < limit:
                more = os.pread(part.fd, min(65536, limit - at), at - part.base)
                cut = more.find(b"\n")
                if cut >= 0:
                    data += more[: cut + 1]
                    break
                data += more
                at += len(more)
        return data[:-1] if data.endswith(b"\n") else data

    def scan(
        self, keep: Callable[[bytes], bool], progress: Callable[[int, int], None] | None = None
    ) -> array[int]:
        """Stream positions of every line `keep` accepts, oldest first, read in large chunks."""
        out = array("Q")
        total = self.end
        for part in list(self.parts):
            position, carry, carry_at = 0, b"", part.base
            size = part.size
            while position < size:
                data = carry + os.pread(part.fd, min(CHUNK, size - position), position)
                at = carry_at
                lines = data.split(b"\n")
                carry = lines.pop()
                for raw in lines:
                    if keep(raw):
                        out.append(at)
                    at += len(raw) + 1
                carry_at = at
                position += min(CHUNK, size - position)
                if progress is not None:
                    progress(part.base + position, total)
            if carry and keep(carry):
                out.append(carry_at)
        return out
