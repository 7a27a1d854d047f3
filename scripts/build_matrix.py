"""Build the checked-in project trees with the real bundlers and record what reached the build.

Each tree in tests/fixtures/builds/ is a small Vite 8 or Next.js app with layered env files, its
build script and its framework config. This script copies every tree into a scratch directory,
installs the bundlers there with npm, runs the tree's own `build` script, and copies the client
output (Vite's outDir, Next's .next/static) back into the tree. Beside it, it writes
`expected.json`: the secret-named variables as the framework's own loader resolves them (Vite's
`loadEnv`, `@next/env`), and which of them reached the browser bundle (their value is in a built
file). tests/unit/ops/test_init_builds.py then holds `opsdash init` + `opsdash validate` against
that record, with no Node needed.

    .venv/bin/python scripts/build_matrix.py [--only NAME]

Needs Node.js and npm; nothing is downloaded by the test suite. The values in the trees are fake.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from env_reference import NODE as LOADER  # the frameworks' own loaders, with a mode

from opsdash.core.profile import SECRET_PATTERNS

ROOT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "builds"
PACKAGES = ["vite@8", "next@15", "react@19", "react-dom@19", "@next/env@15"]
OUTPUT = {"vite": None, "next": ".next/static"}  # vite: the tree's outDir, read from the built tree


def framework_of(tree: Path) -> str:
    return "next" if (tree / "next.config.js").is_file() else "vite"


def vite_out_dir(tree: Path) -> str:
    text = (tree / "vite.config.js").read_text(encoding="utf-8")
    marker = "outDir: '"
    return text.split(marker, 1)[1].split("'", 1)[0] if marker in text else "dist"


def mode_of(build: str) -> str:
    words = build.split()
    return words[words.index("--mode") + 1] if "--mode" in words else "production"


def is_secret(name: str) -> bool:
    bare = name
    for prefix in ("VITE_", "NEXT_PUBLIC_", "APP_"):
        bare = bare.removeprefix(prefix)
    return any(fnmatch.fnmatchcase(bare.upper(), p) for p in SECRET_PATTERNS)


def built_text(output: Path) -> str:
    return "\n".join(
        p.read_text(encoding="utf-8", errors="replace") for p in sorted(output.rglob("*")) if p.is_file()
    )


def build_one(tree: Path, scratch: Path, versions: dict[str, str]) -> dict[str, object]:
    work = scratch / tree.name
    shutil.copytree(tree, work, ignore=shutil.ignore_patterns("dist", "build", ".next", "expected.json"))
    package = json.loads((work / "package.json").read_text(encoding="utf-8"))
    build = package["scripts"]["build"]
    framework = framework_of(work)
    env = dict(os.environ, PATH=f"{scratch / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}")
    env.pop("NODE_ENV", None)
    env["NEXT_TELEMETRY_DISABLED"] = "1"
    build_cmd = ["sh", "-c", build]  # the tree's own build script, as `npm run build` runs it
    subprocess.run(build_cmd, cwd=work, env=env, check=True, capture_output=True)  # noqa: S603
    mode = mode_of(build) if framework == "vite" else "production"
    loaded = subprocess.run(  # noqa: S603 - our loader, our tree
        ["node", str(scratch / "load.cjs"), framework, str(work), mode],  # noqa: S607
        cwd=scratch,
        check=True,
        capture_output=True,
        text=True,
    )
    resolved = {k: v for k, v in json.loads(loaded.stdout).items() if is_secret(k) and v}
    out_rel = OUTPUT[framework] or vite_out_dir(work)
    shipped_text = built_text(work / out_rel)
    shipped = sorted(k for k, v in resolved.items() if v in shipped_text)
    target = tree / out_rel
    shutil.rmtree(tree / out_rel.split("/")[0], ignore_errors=True)
    shutil.copytree(work / out_rel, target)
    record = {
        "framework": framework,
        "build": build,
        "mode": mode,
        "bundle": out_rel,
        "built_with": versions[framework],
        "secrets": sorted(resolved),
        "shipped": shipped,
    }
    (tree / "expected.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="build only this tree")
    args = parser.parse_args()
    if not (shutil.which("node") and shutil.which("npm")):
        print("node and npm are needed to build the trees; skipped")
        return 0
    trees = [t for t in sorted(ROOT.iterdir()) if t.is_dir() and args.only in (None, t.name)]
    if not trees:
        print(f"no tree {args.only!r} in {ROOT}", file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="opsdash-builds-"))
    print(f"installing {' '.join(PACKAGES)} into {scratch} ...", flush=True)
    subprocess.run(  # noqa: S603 - fixed arguments
        ["npm", "install", "--silent", "--no-audit", "--no-fund", *PACKAGES],  # noqa: S607
        cwd=scratch,
        check=True,
    )
    (scratch / "load.cjs").write_text(LOADER, encoding="utf-8")
    versions = {
        name: json.loads((scratch / "node_modules" / pkg / "package.json").read_text())["version"]
        for name, pkg in (("vite", "vite"), ("next", "next"))
    }
    versions = {k: f"{k} {v}" for k, v in versions.items()}
    for tree in trees:
        record = build_one(tree, scratch, versions)
        print(f"{tree.name}: {record['built_with']}, mode {record['mode']}: shipped {record['shipped']}")
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
