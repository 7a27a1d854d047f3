"""Generate docs/schemas/<stem>.schema.json, the JSON Schema of every --json output, from the models
in opsdash/cli/schemas.py.

Usage: .venv/bin/python scripts/gen_schemas.py [--check]   (--check: exit 1 if any file is stale)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from opsdash.cli.schemas import render, schemas

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "schemas"
SUFFIX = ".schema.json"


def expected() -> dict[Path, str]:
    """Every file this script writes, with its text."""
    return {OUT / f"{stem}{SUFFIX}": render(schema) for stem, schema in schemas().items()}


def stale_files(files: dict[Path, str]) -> list[Path]:
    """Files missing or different, and schema files no output has any more."""
    out = [p for p, text in files.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    out += sorted(p for p in OUT.glob(f"*{SUFFIX}") if p not in files)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if any file is stale; write nothing")
    args = parser.parse_args()
    files = expected()
    stale = stale_files(files)
    if args.check:
        if stale:
            names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
            print(f"stale: {names}; run .venv/bin/python scripts/gen_schemas.py", file=sys.stderr)
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for path in stale:
        if path in files:
            path.write_text(files[path], encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
        else:
            path.unlink()
            print(f"removed {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
