"""Find known secret values in bytes, in the encodings they travel in.

opsdash knows *the* values (the target's env) and the fingerprints of the previous ones, so it looks
for exactly those, never for patterns. Every encoded form of every value is worked out once, when the
`Matcher` is built; `scan` is then one `bytes.find` loop per form (measured faster than one regex
alternation: CPython's search skips by the form's length, ~10 GB/s a form, while `re` tries every
branch at every position that starts like one, ~200 MB/s for 30 forms).

Encodings (`Hit.encoding`):

- `raw`: the UTF-8 bytes;
- `base64`, `base64url`: the value inside a longer base64 text, at each of the 3 byte alignments
  (only the characters the value alone decides are searched, so neighbours do not matter);
- `url`: percent-encoded as `encodeURIComponent`/`quote` write it, partly or every byte, either case;
- `hex`: both cases;
- `js-escape`: `\\uXXXX` or `\\xXX` for every character (either case), or JSON's string escapes;
- `concat`: split into string literals joined by `+` (`"abc"+"def"`, as minifiers leave it).

Previous values are known only by their fingerprint (`core.secrets.fingerprint`, 32 bits of
SHA-256). Tokens of the value's shape -- the alphabet of the current value of the same variable (or a
generic token alphabet), exactly the known length, delimited by characters outside the alphabet,
'=' ending a run except as base64 padding (so `KEY=value` yields `value`) -- are fingerprinted and
compared. A 32-bit fingerprint matches a random token with odds 2**-32, so a
scan of N candidate tokens against P fingerprints expects N*P/2**32 false matches: 1 million tokens of
the exact shape against 3 fingerprints is 0.0007. That is why the shape must fit (a token of another
length is never hashed), and why a previous hit carries the candidate (`Hit.value`, in memory only) so
the caller can prove it against the provider; a false match is simply not accepted there.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus

from opsdash.core.secrets import MASK, fingerprint, mask

# Bump when the forms searched change: a cache of scanned objects keyed on `Matcher.key` is then stale.
MATCHER_VERSION = 2  # 2: '=' ends a run (KEY=value), so earlier clean scans may have missed one
# A derived form shorter than this would match by chance (a 6-character base64 core is everywhere).
MIN_FORM = 8
ENCODINGS = ("raw", "base64", "base64url", "url", "hex", "js-escape", "concat")

_B64URL = bytes.maketrans(b"+/", b"-_")
# Quote, optional blanks, '+', optional blanks, quote: where a minifier joined two literals.
_JOIN = re.compile(rb"[\"'`][ \t]*\+[ \t]*[\"'`]")
_PLUS_QUOTE = re.compile(rb"\+[ \t]*[\"'`]")

# Alphabets a previous value is looked for in, smallest first: the first that holds the current
# value of the same variable is its shape (a provider issues every secret of one kind alike).
_ALPHABETS: tuple[bytes, ...] = (
    b"0123456789abcdef",
    b"0123456789ABCDEF",
    b"0123456789abcdefABCDEF",
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-",
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/=",
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-+/=.~",
)
_GENERIC = _ALPHABETS[-1]
# '=' is in two alphabets as base64's padding only: a run of the alphabet stops at '=' (so
# `KEY=value` is KEY, then value) and a candidate may end with up to this many '=' after its run.
_EQUALS = ord("=")
PADDING = 2


@dataclass(frozen=True)
class Needle:
    """A value to find."""

    name: str  # the env variable, e.g. "IKHOKHA_API_SECRET"
    value: str = field(repr=False)  # the secret: never rendered, never stored


@dataclass(frozen=True)
class PreviousPrint:
    """A rotated-away value known only by its fingerprint (`core.secrets.fingerprint`)."""

    name: str
    fingerprint: str  # "sha256:1a2b3c4d"
    length: int | None  # when known


@dataclass(frozen=True)
class Hit:
    name: str  # the variable
    encoding: str  # one of ENCODINGS
    offset: int  # byte offset in the scanned data
    line: int  # 1-based line of the offset
    previous: bool  # True: matched a PreviousPrint
    # Only for previous: the candidate that matched, kept in memory so it can be tried against the
    # provider. NEVER rendered or stored.
    value: str | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Span:
    """A hit before its line is counted: `scan` for one file, the git scanner for a batch of objects."""

    name: str
    encoding: str
    start: int
    end: int
    previous: bool = False
    value: str | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class _Shape:
    table: bytes  # alphabet bytes -> 1, the rest ('=' too) -> 0
    run: bytes  # the fewest ones a candidate has: `length`, less the padding it may end with
    length: int
    prints: dict[str, str]  # fingerprint -> variable
    padded: bool  # the alphabet has '=': a candidate may end with up to PADDING of them


def encoded_forms(value: str) -> list[tuple[str, bytes]]:
    """Every form `value` is searched in, as (encoding, bytes), each distinct form once."""
    raw = value.encode("utf-8", "surrogatepass")
    forms: list[tuple[str, bytes]] = [("raw", raw)]
    for core in _base64_cores(raw):
        forms.append(("base64", core))
        forms.append(("base64url", core.translate(_B64URL)))
    url = [
        quote(value, safe=""),
        quote(value, safe="!'()*"),  # encodeURIComponent
        quote_plus(value, safe=""),
        "".join(f"%{b:02X}" for b in raw),
    ]
    for text in url:
        forms.append(("url", text.encode()))
        forms.append(("url", _lower_escapes(text).encode()))
    forms.append(("hex", raw.hex().encode()))
    forms.append(("hex", raw.hex().upper().encode()))
    for fmt in ("\\u{:04x}", "\\u{:04X}"):
        forms.append(("js-escape", "".join(fmt.format(ord(c)) for c in value).encode()))
    if all(ord(c) < 256 for c in value):
        for fmt in ("\\x{:02x}", "\\x{:02X}"):
            forms.append(("js-escape", "".join(fmt.format(ord(c)) for c in value).encode()))
    backslashed = value.replace("\\", "\\\\")  # a minifier quotes with ", ' or `, escaping that one
    for text in (backslashed, backslashed.replace("'", "\\'"), backslashed.replace("`", "\\`")):
        forms.append(("js-escape", text.encode("utf-8", "surrogatepass")))
    for ascii_only in (False, True):
        quoted = json.dumps(value, ensure_ascii=ascii_only)[1:-1]
        forms.append(("js-escape", quoted.encode("utf-8", "surrogatepass")))
        forms.append(("js-escape", quoted.replace("/", "\\/").encode("utf-8", "surrogatepass")))
    seen: set[bytes] = set()
    out: list[tuple[str, bytes]] = []
    for encoding, form in forms:
        if form in seen or (encoding != "raw" and (form == raw or len(form) < MIN_FORM)):
            continue
        seen.add(form)
        out.append((encoding, form))
    return out


def _base64_cores(raw: bytes) -> Iterator[bytes]:
    """The base64 characters `raw` alone decides when it starts 0, 1 or 2 bytes into a 3-byte group.

    Character i of a base64 text covers bits [6i, 6i+6); the value holds bits [8a, 8(a+n)).
    """
    n = len(raw)
    for align in range(3):
        text = base64.b64encode(b"\0" * align + raw + b"\0\0")
        first = -(-8 * align // 6)
        last = 8 * (align + n) // 6
        if last > first:
            yield text[first:last]


def _lower_escapes(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def _alphabet(current: str | None) -> bytes:
    if current:
        raw = current.encode("utf-8", "surrogatepass")
        for alphabet in _ALPHABETS:
            if not raw.translate(None, alphabet):
                return alphabet
    return _GENERIC


class Matcher:
    """Finds `needles` in every encoding and `previous` values by fingerprint. Build once, scan often."""

    def __init__(self, needles: Sequence[Needle], previous: Sequence[PreviousPrint] = ()) -> None:
        self._forms: list[tuple[bytes, str, str]] = []  # (form, variable, encoding)
        self._raw: list[tuple[bytes, str]] = []
        self._raw_values: list[tuple[str, str]] = []  # (value, variable): for `redact`
        seen: set[tuple[str, bytes]] = set()
        current: dict[str, str] = {}
        for needle in needles:
            if not needle.value:
                continue
            current.setdefault(needle.name, needle.value)
            for encoding, form in encoded_forms(needle.value):
                if (needle.name, form) not in seen:
                    seen.add((needle.name, form))
                    self._forms.append((form, needle.name, encoding))
            self._raw.append((needle.value.encode("utf-8", "surrogatepass"), needle.name))
            self._raw_values.append((needle.value, needle.name))
        live_prints = {fingerprint(n.value) for n in needles if n.value}
        shapes: dict[tuple[bytes, int], dict[str, str]] = {}
        for prev in previous:
            length = prev.length or (len(current[prev.name]) if prev.name in current else None)
            if prev.fingerprint in live_prints or not length or length < MIN_FORM:
                continue  # a value still current is found as such; an unknown length has no shape
            shapes.setdefault((_alphabet(current.get(prev.name)), length), {})[prev.fingerprint] = prev.name
        self._shapes = [
            _Shape(
                bytes(1 if i in alphabet and i != _EQUALS else 0 for i in range(256)),
                b"\1" * (length - PADDING if _EQUALS in alphabet else length),
                length,
                prints,
                _EQUALS in alphabet,
            )
            for (alphabet, length), prints in shapes.items()
        ]
        self._key = self._make_key(needles, previous)
        longest = max((len(f) for f, _, _ in self._forms), default=0)
        self.overlap = max(longest, *(s.length + 2 for s in self._shapes), 0) + 64

    @property
    def key(self) -> str:
        """What was searched for, as a hash of fingerprints (never of values alone): equal keys mean a
        scan's result still holds, so a cache of scanned objects is kept per key."""
        return self._key

    @property
    def empty(self) -> bool:
        return not self._forms and not self._shapes

    @staticmethod
    def _make_key(needles: Sequence[Needle], previous: Sequence[PreviousPrint]) -> str:
        parts = sorted(
            {f"n:{n.name}:{fingerprint(n.value)}:{len(n.value)}" for n in needles if n.value}
            | {f"p:{p.name}:{p.fingerprint}:{p.length}" for p in previous}
        )
        text = f"v{MATCHER_VERSION}\n" + "\n".join(parts)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]

    def redact(self, text: str) -> str:
        """`text` (a path, a name) with every value this matcher finds in it, in any encoding,
        replaced by a mask: what the trace keeps or shows about *where* a value was never holds it."""
        data = text.encode("utf-8", "surrogatepass")
        spans = self.spans(data)
        if not spans:
            return text
        values = {n: v for v, n in self._raw_values}
        out, at = [], 0
        for span in spans:
            if span.start < at:
                continue  # inside a span already masked
            hidden = span.value if span.previous else values.get(span.name)
            out.append(data[at : span.start].decode("utf-8", "surrogatepass"))
            out.append(mask(hidden) if hidden else f"{MASK} ({span.name}, {span.encoding})")
            at = span.end
        out.append(data[at:].decode("utf-8", "surrogatepass"))
        return "".join(out)

    def scan(self, data: bytes) -> list[Hit]:
        """Every hit in `data`, ordered by offset, each with its 1-based line."""
        spans = self.spans(data)
        hits: list[Hit] = []
        line, counted = 1, 0
        for span in spans:
            line += data.count(b"\n", counted, span.start)
            counted = span.start
            hits.append(Hit(span.name, span.encoding, span.start, line, span.previous, span.value))
        return hits

    def spans(self, data: bytes | bytearray, start: int = 0, end: int | None = None) -> list[Span]:
        """Every hit inside data[start:end] (no copy of the region), ordered by offset."""
        stop = len(data) if end is None else end
        found: set[Span] = set()
        for form, name, encoding in self._forms:
            at = data.find(form, start, stop)
            while at >= 0:
                found.add(Span(name, encoding, at, at + len(form)))
                at = data.find(form, at + 1, stop)
        if self._raw:
            found.update(self._concat(data, start, stop))
        for shape in self._shapes:
            found.update(self._previous(data, start, stop, shape))
        return sorted(found, key=lambda s: (s.start, s.name, s.encoding))

    def _concat(self, data: bytes | bytearray, start: int, stop: int) -> list[Span]:
        """Values split into literals joined by `+`: join them near each `"+"` and search again."""
        joins = []
        # `+` then a quote is rare enough to find with sre's literal-prefix scan (~4 GB/s); the
        # quote before it is checked here. Five `find`s of `"+"`-like probes were 10x slower.
        for m in _PLUS_QUOTE.finditer(data, start, stop):
            before = m.start() - 1
            while before >= start and data[before] in b" \t":
                before -= 1
            if before >= start and data[before] in b"\"'`":
                joins.append(m.start())
        if not joins:
            return []
        reach = 2 * max(len(raw) for raw, _ in self._raw) + 16
        windows: list[list[int]] = []
        for at in sorted(joins):
            lo, hi = max(start, at - reach), min(stop, at + reach)
            if windows and lo <= windows[-1][1]:
                windows[-1][1] = max(windows[-1][1], hi)
            else:
                windows.append([lo, hi])
        spans: list[Span] = []
        for lo, hi in windows:
            spans.extend(self._joined(bytes(data[lo:hi]), lo))
        return spans

    def _joined(self, window: bytes, lo: int) -> Iterator[Span]:
        """`window` (at `lo` in the data) with its joins removed, searched for each raw value."""
        pieces: list[bytes] = []
        kept: list[int] = []  # piece i starts at kept[i] in the joined text and at origin[i] in the data
        origin: list[int] = []
        joined_at = length = 0
        for m in _JOIN.finditer(window):
            pieces.append(window[joined_at : m.start()])
            kept.append(length)
            origin.append(lo + joined_at)
            length += m.start() - joined_at
            joined_at = m.end()
        pieces.append(window[joined_at:])
        kept.append(length)
        origin.append(lo + joined_at)
        joined = b"".join(pieces)

        def back(pos: int) -> int:
            i = bisect.bisect_right(kept, pos) - 1
            return origin[i] + pos - kept[i]

        for raw, name in self._raw:
            at = joined.find(raw)
            while at >= 0:
                first, last = back(at), back(at + len(raw) - 1) + 1
                if last - first > len(raw):  # crosses a join: a plain hit is found as `raw`
                    yield Span(name, "concat", first, last)
                at = joined.find(raw, at + 1)

    @staticmethod
    def _previous(data: bytes | bytearray, start: int, stop: int, shape: _Shape) -> list[Span]:
        """Runs of exactly `shape.length` alphabet characters (or, for a base64 alphabet, a run up to
        PADDING shorter and the '=' that make up the length), fingerprinted. A value with '=' inside it
        (not as padding) is not found this way; one found as `KEY=value` is.

        The region is mapped to 0/1 (one `translate`), then each run of at least `length` ones is
        found with one `find` and skipped to its end: ~700 MB/s, where a regex over the text is ~100.
        """
        flags = bytes(data[start:stop]).translate(shape.table)
        spans = []
        at = flags.find(shape.run)
        while at >= 0:
            end = flags.find(b"\0", at)
            if end < 0:
                end = len(flags)
            short = shape.length - (end - at)  # '=' the candidate must end with
            pad = start + end + short
            if (
                shape.padded
                and 0 < short <= PADDING
                and pad <= stop
                and data[start + end : pad] == b"=" * short
            ):
                end += short  # base64 padding: the run, then its '='
                short = 0
            if short == 0:
                candidate = bytes(data[start + at : start + end]).decode("ascii")
                name = shape.prints.get(fingerprint(candidate))
                if name is not None:
                    spans.append(Span(name, "raw", start + at, start + end, previous=True, value=candidate))
            at = flags.find(shape.run, end)
        return spans
