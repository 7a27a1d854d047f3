"""Hold opsdash's framework env reading against the frameworks' own loaders on the same trees.

For random project trees (values with `#`, `$NAME`, `${NAME:-default}`, `\\$`, quotes, spaces, in
every file of the framework's layering), compares what opsdash reads (`load_environment` with
`framework=`) with what Vite's `loadEnv(mode, dir, '')` and Next.js's `@next/env` `loadEnvConfig`
return. Prints the number of trees, variables compared and mismatches (with the file contents of the
first few).

Needs Node.js and npm, and installs the reference packages into a scratch directory:
    .venv/bin/python scripts/env_reference.py [--trees 300] [--seed 1]
(`npm install vite@8 @next/env` into a temp dir; nothing is downloaded by the test suite).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from opsdash.core.envfiles import framework_files, load_environment

PIECES = ["abc", "x#y", " spaced ", "$HOME_URL", "${BASE}", "${MISSING:-dflt}", "\\$5", "a=b", "ü", "'q'"]
KEYS = ["VITE_A", "VITE_B", "VITE_SECRET", "NEXT_PUBLIC_C", "BASE", "HOME_URL"]

NODE = r"""
const [framework, dir, mode = 'production'] = process.argv.slice(2);
let env;
if (framework === 'vite') {
  env = require('vite').loadEnv(mode, dir, '');
} else {
  const before = new Set(Object.keys(process.env));
  require('@next/env').loadEnvConfig(dir, false, { info() {}, error() {} });
  env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !before.has(k)));
}
process.stdout.write(JSON.stringify(env));
"""


def value(rng: random.Random) -> str:
    text = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 3)))
    quote = rng.choice(["", "", '"', "'"])
    return f"{quote}{text}{quote}" if quote and quote not in text else text


def tree(root: Path, framework: str, rng: random.Random) -> None:
    for path in framework_files(framework, "production", root):
        if rng.random() < 0.7:
            keys = rng.sample(KEYS, rng.randint(1, len(KEYS)))
            path.write_text("".join(f"{k}={value(rng)}\n" for k in keys))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per tree for a loader")
    args = parser.parse_args()
    if not (shutil.which("node") and shutil.which("npm")):
        print("node and npm are needed for the reference loaders; skipped")
        return 0
    scratch = Path(tempfile.mkdtemp(prefix="opsdash-envref-"))
    subprocess.run(
        ["npm", "install", "--silent", "--no-audit", "--no-fund", "vite@8", "@next/env"],  # noqa: S607
        cwd=scratch,
        check=True,
    )
    script = scratch / "load.js"
    script.write_text(NODE)
    rng = random.Random(args.seed)  # noqa: S311 - reproducible test data, not secrets
    compared = mismatched = crashed = hung = 0
    differ: dict[str, int] = {}
    shown = 0
    for framework in ("vite", "next"):
        for i in range(args.trees):
            root = scratch / f"{framework}-{i}"
            root.mkdir()
            tree(root, framework, rng)
            try:
                done = subprocess.run(  # noqa: S603 - our own script and tree
                    ["node", str(script), framework, str(root)],  # noqa: S607 - node from PATH, as npm
                    capture_output=True,
                    text=True,
                    cwd=scratch,
                    timeout=args.timeout,
                )
            except subprocess.TimeoutExpired:  # a self-referring value: Vite's loader never returns
                hung += 1
                continue
            if done.returncode != 0:  # the loader itself failed (a self-referring value overflows its stack)
                crashed += 1
                continue
            out = done.stdout
            theirs = {k: v for k, v in json.loads(out).items() if k in KEYS}
            files = [p for p in framework_files(framework, "production", root) if p.is_file()]
            ours = {k: v.value for k, v in load_environment(files, framework=framework).values.items()}
            compared += len(set(theirs) | set(ours))
            if theirs != ours:
                mismatched += 1
                differ[framework] = differ.get(framework, 0) + 1
                if shown < 5:
                    shown += 1
                    print(f"--- {framework} tree {i}: theirs {theirs}\n    ours   {ours}")
                    for p in files:
                        print(f"    {p.name}: {p.read_text()!r}")
    print(
        f"{2 * args.trees} trees, {compared} variables compared, {mismatched} trees differ; "
        f"the reference loader crashed on {crashed} and did not return within {args.timeout:g} s on {hung}"
    )
    for framework in ("vite", "next"):
        print(f"  {framework}: {differ.get(framework, 0)} of {args.trees} trees differ")
    shutil.rmtree(scratch, ignore_errors=True)
    return 1 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
