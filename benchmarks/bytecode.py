"""Byte-compile opsdash and its installed dependencies before timing anything that starts a process.

pip compiles every package it installs; an editable install of opsdash has no .pyc, and a sandbox
with PYTHONDONTWRITEBYTECODE=1 leaves even the dependencies without them, so every launch would
compile Textual, rich and pydantic again and start-up figures would measure the compiler. Both
sides of a ratio (opsdash and its peer) then start from compiled code, as after `pip install`.
"""

from __future__ import annotations

import compileall
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def compile_installed() -> None:
    compileall.compile_dir(str(ROOT / "opsdash"), quiet=1)
    compileall.compile_dir(sysconfig.get_paths()["purelib"], quiet=1, workers=0)
