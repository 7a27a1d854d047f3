"""The working tree, build output and configured paths: a hard-coded fallback in source, a built
bundle, a binary file, a huge file, and what is skipped (with a reason, never silently)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from opsdash.core.errors import InputError
from opsdash.core.trace import files as tracefiles
from opsdash.core.trace.files import trace_paths
from opsdash.core.trace.match import Matcher, Needle

SECRET = "ik_" + secrets.token_urlsafe(24)
MATCHER = Matcher([Needle("IKHOKHA_API_SECRET", SECRET)])


def _tree(root: Path) -> None:
    (root / "src" / "config").mkdir(parents=True)
    (root / "src" / "config" / "ikhokha.ts").write_text(
        f"export const config = {{\n  secret: import.meta.env.IKHOKHA_API_SECRET ||\n    '{SECRET}',\n}};\n"
    )
    (root / "src" / "app.ts").write_text("console.log('hello')\n")
    (root / "dist" / "assets").mkdir(parents=True)
    (root / "dist" / "assets" / "index-4f3a.js").write_text(
        f'!function(){{const e="{SECRET[:10]}"+"{SECRET[10:]}";fetch("/x",{{headers:{{k:e}}}})}}();'
    )
    (root / "node_modules" / "lib").mkdir(parents=True)
    (root / "node_modules" / "lib" / "index.js").write_text(f"'{SECRET}'")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text(SECRET)


def test_source_fallback_and_bundle_are_found_git_and_node_modules_skipped(tmp_path: Path) -> None:
    _tree(tmp_path)
    trace = trace_paths([tmp_path], MATCHER)
    found = {f.path: [(h.encoding, h.line) for h in f.hits] for f in trace.found}
    assert found == {"dist/assets/index-4f3a.js": [("concat", 1)], "src/config/ikhokha.ts": [("raw", 3)]}
    assert trace.files == 3 and trace.skipped == []


def test_skip_dirs_can_be_changed(tmp_path: Path) -> None:
    _tree(tmp_path)
    trace = trace_paths([tmp_path], MATCHER, skip_dirs=[".git"])
    assert "node_modules/lib/index.js" in {f.path for f in trace.found}


def test_a_file_path_and_a_binary_file(tmp_path: Path) -> None:
    blob = tmp_path / "app.sqlite"
    blob.write_bytes(b"SQLite format 3\0" + b"\0\1" * 5000 + SECRET.encode() + b"\0")
    (found,) = trace_paths([blob], MATCHER).found
    assert found.binary and found.path == str(blob)
    assert found.hits[0].offset == 16 + 10000


def test_huge_file_is_read_in_windows_and_the_edge_is_covered(tmp_path: Path) -> None:
    edge = tracefiles.WINDOW + MATCHER.overlap - 4  # across the first window's end
    path = tmp_path / "big.js"
    with path.open("wb") as handle:
        handle.write(b"a\n" * (edge // 2))
        handle.write(SECRET.encode())
        handle.write(b"b\n" * tracefiles.WINDOW)
        handle.write(SECRET.encode())
    (found,) = trace_paths([path], MATCHER).found
    assert [(h.offset, h.line) for h in found.hits] == [
        (edge, edge // 2 + 1),
        (edge + len(SECRET) + 2 * tracefiles.WINDOW, edge // 2 + tracefiles.WINDOW + 1),
    ]


def test_over_the_cap_and_unreadable_files_are_listed_not_passed(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"x" * 2000)
    secret_file = tmp_path / "locked.env"
    secret_file.write_text(SECRET)
    secret_file.chmod(0)
    trace = trace_paths([tmp_path], MATCHER, max_file=1000)
    if os.geteuid() == 0:  # root reads a 000 file anyway
        assert [f.path for f in trace.found] == ["locked.env"]
        assert trace.skipped == ["big.bin (2000 bytes, over the 1000-byte cap)"]
    else:
        assert sorted(trace.skipped) == [
            "big.bin (2000 bytes, over the 1000-byte cap)",
            "locked.env (Permission denied)",
        ]


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "link.txt").symlink_to(outside / "secret.txt")
    (tree / "linkdir").symlink_to(outside)
    assert trace_paths([tree], MATCHER).found == []


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or directory"):
        trace_paths([tmp_path / "dist"], MATCHER)
