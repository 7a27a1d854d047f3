"""The filter a runbook command's output passes through on its way to its output file, so the raw
output never touches the disk: `python -P -m opsdash.core.runbooks.maskfilter` between the command
and the file (see the executor's wrapper).

It learns the secrets to mask from file descriptor 3, which the executor fills through a pipe (never
argv or the environment, which other processes can read), then copies stdin to stdout with each one
masked by the one masker. It writes whole lines, so a secret is never cut in two across writes; a line
longer than `_LONG_LINE` is written in pieces that keep back the longest secret's length.
"""

from __future__ import annotations

import json
import os
import sys

from opsdash.core.secrets import Redactor

SECRETS_FD = 3
_LONG_LINE = 64 * 1024


def _write(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


def _safe_cut(data: bytes, at: int, values: list[bytes]) -> int:
    """A place at or before `at` where no secret is cut in two: moved back past any registered value
    that spans it, then to just after a space or punctuation, so that a token (which the fingerprint
    masking looks at whole) is not cut either. `at` itself when no such place is found."""
    cut = at
    for _ in range(len(values) + 1):
        spanning = [
            start
            for v in values
            if (start := data.rfind(v, max(0, cut - len(v) + 1), cut + len(v) - 1)) != -1
            and start < cut < start + len(v)
        ]
        if not spanning:
            break
        cut = min(spanning)
    near = max(0, cut - 1024)  # a token longer than that is no secret opsdash fingerprints
    boundary = max(data.rfind(c, near, cut) for c in (b" ", b"\t", b",", b";", b'"', b"'", b"="))
    return boundary + 1 if boundary > 0 else cut


def run(redactor: Redactor, keep: int, values: list[bytes] | None = None) -> None:
    def masked(data: bytes) -> bytes:
        # surrogateescape: bytes that are not UTF-8 go through as they came
        return redactor.redact(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")

    pending = b""
    while data := os.read(0, 65536):
        pending += data
        cut = pending.rfind(b"\n") + 1
        if not cut and len(pending) > _LONG_LINE:
            cut = _safe_cut(pending, len(pending) - keep, values or [])
        if cut > 0:
            _write(masked(pending[:cut]))
            pending = pending[cut:]
    if pending:
        _write(masked(pending))


def main() -> int:
    with os.fdopen(SECRETS_FD, "rb") as source:
        known = json.loads(source.read() or b"{}")
    redactor = Redactor()
    for value in known.get("values", []):
        redactor.register(value)
    redactor.register_fingerprints(known.get("fingerprints", []))
    keep = max([256, *(len(v.encode()) for v in known.get("values", []))])
    try:
        run(redactor, keep, [v.encode() for v in known.get("values", []) if v])
    except BrokenPipeError:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
